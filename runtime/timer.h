/* Timers: an intrusive binary min-heap of deadlines, one per loop.
 *
 * A timer lives in its owner's memory (no allocation per arm); the heap only
 * holds pointers and grows when more distinct timers are armed than ever
 * before. The loop sleeps in io_uring until the earliest deadline. Only the
 * owning loop's thread touches a timer.
 */
#ifndef WISP_RUNTIME_TIMER_H
#define WISP_RUNTIME_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/common.h>
#include <wisp/mem.h>

typedef struct wisp_timer wisp_timer;
typedef void wisp_timer_fn(wisp_timer *t, wisp_tstamp now);

struct wisp_timer {
	wisp_tstamp deadline;
	uint32_t slot;     /* index in the heap + 1; 0 when not armed */
	wisp_timer_fn *fn;
	void *arg;         /* for fn */
};

typedef struct wisp_timer_heap {
	wisp_timer **v;
	uint32_t n, cap;
} wisp_timer_heap;

static inline void wisp_timer_init(wisp_timer *t, wisp_timer_fn *fn, void *arg)
{
	t->deadline = 0;
	t->slot = 0;
	t->fn = fn;
	t->arg = arg;
}

static inline bool wisp_timer_armed(const wisp_timer *t)
{
	return t->slot != 0;
}

/* (Re)arm t to fire at deadline. Errors: WISP_ERR_NOMEM (heap growth). */
int wisp_timer_heap_arm(wisp_timer_heap *h, const wisp_mem *mem, wisp_timer *t, wisp_tstamp deadline);
void wisp_timer_heap_disarm(wisp_timer_heap *h, wisp_timer *t);
/* The earliest armed timer, or NULL. */
static inline wisp_timer *wisp_timer_heap_top(const wisp_timer_heap *h)
{
	return h->n ? h->v[0] : NULL;
}
void wisp_timer_heap_fini(wisp_timer_heap *h, const wisp_mem *mem);

#endif
