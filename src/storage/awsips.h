/*
 * AWS's published IP ranges (ip-ranges.json), for cloudfront's ipfilteredby: a client inside
 * AWS (or inside the listed regions) is sent straight to S3 rather than through CloudFront,
 * as Distribution's s3filter.go decides it. The ranges are fetched at start-up and then every
 * updatefrequency on a thread of their own (never on a request's path); until one fetch has
 * worked, no client counts as inside AWS.
 */
#ifndef BERTH_STORAGE_AWSIPS_H
#define BERTH_STORAGE_AWSIPS_H

#include <stddef.h>
#include <stdint.h>

struct berth_awsips;

/* Fetches url once (a failure is logged, not returned: Distribution starts anyway), then
 * again every update_ms on its own thread. regions: comma-separated AWS regions whose ranges
 * count ("us-east-1, eu-west-1"; case and spaces ignored), or NULL / "" for every range.
 * *out is the caller's (berth_awsips_free). Blocks for the first fetch (bounded by timeouts). */
int berth_awsips_new(struct berth_awsips **out, const char *url, int64_t update_ms, const char *regions);

/* Replaces the ranges with those of an ip-ranges.json document (prefixes[].ip_prefix,
 * ipv6_prefixes[].ipv6_prefix, each with its region). 0, or BERTH_EINVALID (ranges kept) when
 * it is not such a document. Entries whose prefix does not parse are skipped. */
int berth_awsips_load(struct berth_awsips *ips, const char *json, size_t len);

/* 1 if ip (an IPv4 or IPv6 address, no port) lies in one of the ranges; 0 otherwise, and for
 * anything that is not an address. Thread-safe. */
int berth_awsips_contains(struct berth_awsips *ips, const char *ip);

/* Stops the updater and frees everything. Accepts NULL. */
void berth_awsips_free(struct berth_awsips *ips);

#endif
