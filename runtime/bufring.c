#include "runtime/bufring.h"

#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"

int wisp_bufring_push(const wisp_mem *mem, wisp_bufring *r, wisp_buf *b, wisp_tstamp expires, uint32_t max)
{
	if (r->count == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : WISP_BUFRING_MIN;
		if (cap > max)
			return WISP_ERR_LIMIT;
		wisp_bufring_entry *q = wisp_malloc(mem, cap * sizeof(*q));
		if (!q)
			return WISP_ERR_NOMEM;
		for (uint32_t i = 0; i < r->count; i++)
			q[i] = *wisp_bufring_at(r, i);
		wisp_free(mem, r->q);
		r->q = q;
		r->cap = cap;
		r->head = 0;
	}
	*wisp_bufring_at(r, r->count) = (wisp_bufring_entry){ wisp_buf_ref(b), expires };
	r->count++;
	return WISP_OK;
}

void wisp_bufring_clear(const wisp_mem *mem, wisp_bufring *r)
{
	wisp_bufring_entry *e;
	while ((e = wisp_bufring_front(r))) {
		wisp_buf_unref(e->buf);
		wisp_bufring_pop(r);
	}
	wisp_free(mem, r->q);
	memset(r, 0, sizeof(*r));
}
