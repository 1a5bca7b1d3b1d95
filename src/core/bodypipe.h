/*
 * A request body's way to storage and to its digest. The receiving thread copies each piece
 * once, into a ring; one thread hashes the ring and another hands it to a sink (a storage
 * writer), each on a core of its own and at its own pace. Large uploads use it so that hashing
 * (a third of the work) and writing overlap the network.
 *
 * The ring's bytes sit at ring[offset % BERTH_BODY_PIPE_RING], where offset is their place in
 * the object being written, and the ring is page-aligned. The sink is handed pieces that start
 * and end on multiples of the alignment given at start (a divisor of the ring size), all but
 * the first and the last: a file system can write them straight from the ring to the device
 * (O_DIRECT), with no copy of its own.
 *
 * At most one pipe per online core runs at once (berth_body_pipe_start answers BERTH_EBUSY
 * beyond that, and the caller hashes and writes inline): more would only compete for the same
 * cores, and each pipe holds a ring of BERTH_BODY_PIPE_RING bytes, so memory stays bounded
 * whatever the number of uploads.
 */
#ifndef BERTH_CORE_BODYPIPE_H
#define BERTH_CORE_BODYPIPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"

#define BERTH_BODY_PIPE_RING (4u << 20)

struct berth_body_pipe;

/* Takes n bytes at the sink's current end: 0 or a BERTH_E* code. Runs on the pipe's thread. */
typedef int (*berth_body_sink)(void *arg, const void *buf, size_t n);

/* Starts a pipe feeding h and the sink, which it owns until berth_body_pipe_finish gives them
 * back. offset: where the next byte goes in the object; align: a power of two dividing
 * BERTH_BODY_PIPE_RING. 0, or BERTH_EBUSY (every slot in use) / BERTH_ERROR (no thread): h and
 * the sink stay the caller's. */
int berth_body_pipe_start(struct berth_body_pipe **out, struct berth_hasher *h,
			  berth_body_sink sink, void *sink_arg, uint64_t offset, size_t align);
/*
 * A pipe for a sink that waits on a network (an S3 writer): it starts whatever the number
 * running (its threads mostly sleep on the network, and its feeder must never write inline).
 * Memory: one ring of BERTH_BODY_PIPE_RING_WAITING bytes per such pipe (the network sets the
 * pace, and such a sink buffers a part of its own: a larger ring would only hold more of the
 * body while it waits). Same answers otherwise.
 */
#define BERTH_BODY_PIPE_RING_WAITING (1u << 20)
int berth_body_pipe_start_waiting(struct berth_body_pipe **out, struct berth_hasher *h,
				  berth_body_sink sink, void *sink_arg, uint64_t offset, size_t align);

/* The largest piece berth_body_pipe_offer takes without waiting, and (a quarter of a waiting
 * pipe's ring, or the piece refused if larger) the room a refused feeder is woken for. */
#define BERTH_BODY_PIPE_OFFER_MAX (BERTH_BODY_PIPE_RING / 4)
typedef void (*berth_body_pipe_cb)(void *arg);
/*
 * For a feeder that must not wait (an HTTP polling thread): copies all n bytes into the ring
 * and answers 0 (or the sink's first error), or, when the ring has no room for them, takes
 * none, calls park(arg) at once (under the pipe's lock, so before the wake) and answers
 * BERTH_EBUSY; wake(arg) is then called once, from a pipe thread, when the ring has room for
 * BERTH_BODY_PIPE_OFFER_MAX bytes, and the feeder offers the same bytes again. A piece over
 * BERTH_BODY_PIPE_OFFER_MAX is written as berth_body_pipe_write writes it.
 */
int berth_body_pipe_offer(struct berth_body_pipe *p, const void *buf, size_t n,
			  berth_body_pipe_cb park, berth_body_pipe_cb wake, void *arg);
/* Copies n bytes into the ring, waiting while it is full. 0, or the sink's first error: the
 * sink is handed nothing after it. */
int berth_body_pipe_write(struct berth_body_pipe *p, const void *buf, size_t n);
/* Waits until every byte given is hashed and handed to the sink (or the sink failed), stops
 * the threads, frees the pipe and gives the hasher back. 0, or the sink's first error. */
int berth_body_pipe_finish(struct berth_body_pipe *p, struct berth_hasher **h);

#endif
