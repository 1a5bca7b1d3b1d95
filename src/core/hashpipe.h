/*
 * A hasher that runs on a thread of its own: the caller only copies its bytes into a bounded
 * ring and goes on receiving and writing while another core digests them. Large uploads use
 * it so that hashing (a third of the work) overlaps the network and the disk.
 *
 * At most one pipe per online core runs at once (berth_hash_pipe_start answers BERTH_EBUSY
 * beyond that, and the caller hashes inline): more would only compete for the same cores, and
 * each pipe holds a ring of BERTH_HASH_PIPE_RING bytes, so memory stays bounded whatever the
 * number of uploads.
 */
#ifndef BERTH_CORE_HASHPIPE_H
#define BERTH_CORE_HASHPIPE_H

#include <stddef.h>

#include "core/digest.h"

#define BERTH_HASH_PIPE_RING (512u << 10)

struct berth_hash_pipe;

/* Starts a pipe feeding h, which it owns until berth_hash_pipe_finish gives it back.
 * 0, or BERTH_EBUSY (every slot in use) / BERTH_ERROR (no thread): h stays the caller's. */
int berth_hash_pipe_start(struct berth_hash_pipe **out, struct berth_hasher *h);
/* Copies n bytes into the ring, waiting while it is full. */
void berth_hash_pipe_update(struct berth_hash_pipe *p, const void *buf, size_t n);
/* Waits until every byte given is hashed, stops the thread, frees the pipe and returns the
 * hasher. */
struct berth_hasher *berth_hash_pipe_finish(struct berth_hash_pipe *p);

#endif
