/* A growable FIFO of buffer references (with an optional expiry each): the
 * per-connection and per-stream send queues. Starts empty (no memory) and
 * doubles from WISP_BUFRING_MIN up to a caller's cap. One thread.
 */
#ifndef WISP_RUNTIME_BUFRING_H
#define WISP_RUNTIME_BUFRING_H

#include <wisp/common.h>
#include <wisp/mem.h>

#include "runtime/buf.h"

#define WISP_BUFRING_MIN 64u
_Static_assert((WISP_BUFRING_MIN & (WISP_BUFRING_MIN - 1)) == 0, "ring indices are masked");

typedef struct wisp_bufring_entry {
	wisp_buf *buf;
	wisp_tstamp expires;
} wisp_bufring_entry;

typedef struct wisp_bufring {
	wisp_bufring_entry *q;
	uint32_t cap, head, count; /* cap: 0 or WISP_BUFRING_MIN doubled, a power of two */
} wisp_bufring;

/* The i-th entry from the oldest. */
static inline wisp_bufring_entry *wisp_bufring_at(const wisp_bufring *r, uint32_t i)
{
	return &r->q[(r->head + i) & (r->cap - 1)];
}

/* Append b (a reference is taken). Errors: WISP_ERR_LIMIT (more than max
 * entries), WISP_ERR_NOMEM. */
int wisp_bufring_push(const wisp_mem *mem, wisp_bufring *r, wisp_buf *b, wisp_tstamp expires, uint32_t max)
	WISP_WARN_UNUSED;

static inline wisp_bufring_entry *wisp_bufring_front(wisp_bufring *r)
{
	return r->count ? &r->q[r->head] : NULL;
}

/* Drop the front entry (its reference is the caller's business). */
static inline void wisp_bufring_pop(wisp_bufring *r)
{
	r->head = (r->head + 1) & (r->cap - 1);
	r->count--;
}

/* The newest entry, taken off the ring (the caller owns its reference). */
static inline wisp_bufring_entry wisp_bufring_take_back(wisp_bufring *r)
{
	r->count--;
	return *wisp_bufring_at(r, r->count);
}

/* Release every reference and the ring's memory. */
void wisp_bufring_clear(const wisp_mem *mem, wisp_bufring *r);

#endif
