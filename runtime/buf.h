/* Pooled, reference-counted message buffers.
 *
 * Messages in mailboxes point at wisp_bufs; one buffer can be shared by many
 * receivers (a gossip message fanned out to every peer) by taking a
 * reference per receiver. Buffers come from size classes; each class keeps
 * released buffers on a lock-free free list (a ck_ring) and allocates new ones
 * lazily, so the steady state does no malloc per message. The pool's total
 * bytes are bounded: past the bound an allocation fails (and is counted)
 * instead of growing memory.
 *
 * Threads: every function may be called from any thread. A buffer's bytes
 * are written by its producer before it is handed over; receivers treat a
 * shared buffer (refs > 1) as read-only.
 *
 * WISP_NOMEMPOOL builds (sanitizer runs) allocate and free every buffer with
 * the pool's wisp_mem, keeping the same accounting and bound.
 */
#ifndef WISP_RUNTIME_BUF_H
#define WISP_RUNTIME_BUF_H

#include <stdatomic.h>
#include <stdint.h>

#include <wisp/mem.h>

#include "runtime/stat.h"

typedef struct wisp_pool wisp_pool;

typedef struct wisp_buf {
	_Atomic uint32_t refs;
	uint32_t len;        /* bytes in use; the owner sets it */
	uint32_t cap;        /* bytes available in data[] */
	uint32_t cls;        /* size class index */
	wisp_pool *pool;
	uint64_t reserved_;   /* keeps data[] 16-byte aligned */
	unsigned char data[];
} wisp_buf;

#define WISP_POOL_CLASSES 7

typedef struct wisp_pool_stats {
	uint64_t in_use;    /* buffers handed out and not yet released */
	uint64_t high;      /* the most ever in use at once */
	uint64_t bytes;     /* bytes allocated from wisp_mem (in use + cached) */
	uint64_t exhausted; /* allocations refused by the byte bound */
	uint64_t too_large; /* allocations over the largest class */
} wisp_pool_stats;

/* Create a pool bounded to max_bytes of buffers (headers included).
 * Errors: WISP_ERR_NOMEM, WISP_ERR_INVALID_ARG (max_bytes too small). */
int wisp_pool_new(wisp_pool **out, const wisp_mem *mem, size_t max_bytes);

/* Free the pool and every cached buffer. Buffers still in use are a bug of
 * the caller: they are counted in stats.in_use before this call. */
void wisp_pool_free(wisp_pool *p);

/* A buffer of at least len bytes, refs = 1, len set. NULL when len is over
 * the largest class (wisp_pool_max_len()) or the byte bound is
 * reached; both are counted. */
wisp_buf *wisp_buf_alloc(wisp_pool *p, size_t len);

/* The largest length wisp_buf_alloc() can serve. */
size_t wisp_pool_max_len(const wisp_pool *p);

static inline wisp_buf *wisp_buf_ref(wisp_buf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

/* Drop one reference; the last one returns the buffer to its pool.
 * NULL is allowed. */
void wisp_buf_unref(wisp_buf *b);

void wisp_pool_stats_get(const wisp_pool *p, wisp_pool_stats *out);

#endif
