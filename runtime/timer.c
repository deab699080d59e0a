#include "runtime/timer.h"

#include <wisp/error.h>

#include "runtime/mem.h"

static void place(wisp_timer_heap *h, uint32_t i, wisp_timer *t)
{
	h->v[i] = t;
	t->slot = i + 1;
}

static void sift_up(wisp_timer_heap *h, uint32_t i)
{
	wisp_timer *t = h->v[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (h->v[parent]->deadline <= t->deadline)
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(wisp_timer_heap *h, uint32_t i)
{
	wisp_timer *t = h->v[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->deadline < h->v[c]->deadline)
			c++;
		if (t->deadline <= h->v[c]->deadline)
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, t);
}

int wisp_timer_heap_arm(wisp_timer_heap *h, const wisp_mem *mem, wisp_timer *t, wisp_tstamp deadline)
{
	if (t->slot) {
		uint32_t i = t->slot - 1;
		wisp_tstamp old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			sift_up(h, i);
		else
			sift_down(h, i);
		return WISP_OK;
	}
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 16;
		wisp_timer **v = wisp_realloc(mem, h->v, cap * sizeof(*v));
		if (!v)
			return WISP_ERR_NOMEM;
		h->v = v;
		h->cap = cap;
	}
	t->deadline = deadline;
	h->v[h->n] = t;
	sift_up(h, h->n++);
	return WISP_OK;
}

void wisp_timer_heap_disarm(wisp_timer_heap *h, wisp_timer *t)
{
	if (!t->slot)
		return;
	uint32_t i = t->slot - 1;
	t->slot = 0;
	wisp_timer *last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	if (i > 0 && h->v[(i - 1) / 2]->deadline > last->deadline)
		sift_up(h, i);
	else
		sift_down(h, i);
}

void wisp_timer_heap_fini(wisp_timer_heap *h, const wisp_mem *mem)
{
	for (uint32_t i = 0; i < h->n; i++)
		h->v[i]->slot = 0;
	wisp_free(mem, h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
