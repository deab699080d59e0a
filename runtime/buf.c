#include "runtime/buf.h"

#include <ck_ring.h>
#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"
#include "runtime/ring.h"
#include "runtime/tsan.h"

/* Payload sizes of the classes. The largest serves a 1 MiB gossip message
 * (the default max message size) plus its framing, and a 1 MiB
 * request/response chunk compressed at zstd's worst case (1 MiB + 4 KiB)
 * with its prefix. */
/* 256 KiB between 64 KiB and 1 MiB: a 100 KB message would otherwise pin
 * ten times its size (found by the js gossip interop test's large burst).
 * 68 KiB: a 64 KiB gossip message with its RPC framing (or with the event
 * header that carries it to the application) just misses 64 KiB, and was
 * charged 256 KiB: the default pool then held about 250 of them, which a
 * node at 50 msg/s of 64 KiB exhausts with its message cache alone (found
 * by perf/gossip-bench). 128 KiB keeps the step to the next class at 2x. */
static const uint32_t class_len[WISP_POOL_CLASSES] = { 256,	   4096,	  65536,	    69632,
						       131072, 262144, (1u << 20) + 8192 };

/* A class caches at most this many released buffers; beyond that they go
 * back to the allocator. */
#define CLASS_CACHE_MAX 65536u

struct pool_class {
	ck_ring_t ring; /* free list: released buffers, any thread in and out */
	ck_ring_buffer_t *slots;
	uint32_t buf_bytes; /* header + payload */
};

struct wisp_pool {
	struct pool_class cls[WISP_POOL_CLASSES];
	const wisp_mem *mem;
	size_t max_bytes;
	_Atomic uint64_t bytes;
	_Atomic uint64_t in_use;
	_Atomic uint64_t high;
	wisp_stat exhausted;
	wisp_stat too_large;
};

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 2;
	while (p < n && p < (1u << 31))
		p <<= 1;
	return p;
}

int wisp_pool_new(wisp_pool **out, const wisp_mem *mem, size_t max_bytes)
{
	*out = NULL;
	if (max_bytes < (size_t)class_len[WISP_POOL_CLASSES - 1] * 2)
		return WISP_ERR_INVALID_ARG;
	wisp_pool *p = wisp_calloc(mem, 1, sizeof(*p));
	if (!p)
		return WISP_ERR_NOMEM;
	p->mem = mem;
	p->max_bytes = max_bytes;
	for (int i = 0; i < WISP_POOL_CLASSES; i++) {
		struct pool_class *c = &p->cls[i];
		c->buf_bytes = (uint32_t)sizeof(wisp_buf) + class_len[i];
		uint64_t most = max_bytes / c->buf_bytes + 1;
		uint32_t slots = pow2_at_least(most < CLASS_CACHE_MAX ? most + 1 : CLASS_CACHE_MAX);
		c->slots = wisp_calloc(mem, slots, sizeof(*c->slots));
		if (!c->slots) {
			wisp_pool_free(p);
			return WISP_ERR_NOMEM;
		}
		ck_ring_init(&c->ring, slots);
	}
	*out = p;
	return WISP_OK;
}

void wisp_pool_free(wisp_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < WISP_POOL_CLASSES; i++) {
		struct pool_class *c = &p->cls[i];
		if (!c->slots)
			continue;
		wisp_buf *b;
		while (ck_ring_dequeue_mpmc(&c->ring, c->slots, &b)) {
			WISP_TSAN_ACQUIRE(b);
			wisp_free(p->mem, b);
		}
		wisp_free(p->mem, c->slots);
	}
	wisp_free(p->mem, p);
}

size_t wisp_pool_max_len(const wisp_pool *p)
{
	(void)p;
	return class_len[WISP_POOL_CLASSES - 1];
}

static void note_in_use(wisp_pool *p)
{
	uint64_t now = atomic_fetch_add_explicit(&p->in_use, 1, memory_order_relaxed) + 1;
	uint64_t high = atomic_load_explicit(&p->high, memory_order_relaxed);
	while (now > high &&
	       !atomic_compare_exchange_weak_explicit(&p->high, &high, now, memory_order_relaxed,
						      memory_order_relaxed))
		;
}

wisp_buf *wisp_buf_alloc(wisp_pool *p, size_t len)
{
	uint32_t i = 0;
	while (i < WISP_POOL_CLASSES && len > class_len[i])
		i++;
	if (i == WISP_POOL_CLASSES) {
		wisp_stat_add_shared(&p->too_large, 1);
		return NULL;
	}
	struct pool_class *c = &p->cls[i];
	wisp_buf *b = NULL;
#ifndef WISP_NOMEMPOOL
	if (ck_ring_dequeue_mpmc(&c->ring, c->slots, &b))
		WISP_TSAN_ACQUIRE(b); /* pairs with the release in wisp_buf_unref */
	else
		b = NULL;
#endif
	if (!b) {
		uint64_t bytes = atomic_fetch_add_explicit(&p->bytes, c->buf_bytes,
							   memory_order_relaxed);
		if (bytes + c->buf_bytes > p->max_bytes) {
			atomic_fetch_sub_explicit(&p->bytes, c->buf_bytes, memory_order_relaxed);
			wisp_stat_add_shared(&p->exhausted, 1);
			return NULL;
		}
		b = wisp_malloc(p->mem, c->buf_bytes);
		if (!b) {
			atomic_fetch_sub_explicit(&p->bytes, c->buf_bytes, memory_order_relaxed);
			wisp_stat_add_shared(&p->exhausted, 1);
			return NULL;
		}
		b->pool = p;
		b->cls = i;
		b->cap = class_len[i];
	}
	atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
	b->len = (uint32_t)len;
	note_in_use(p);
	return b;
}

void wisp_buf_unref(wisp_buf *b)
{
	if (!b)
		return;
	/* acq_rel: every holder's accesses happen before the buffer is reused. */
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	wisp_pool *p = b->pool;
	struct pool_class *c = &p->cls[b->cls];
	atomic_fetch_sub_explicit(&p->in_use, 1, memory_order_relaxed);
#ifndef WISP_NOMEMPOOL
	WISP_TSAN_RELEASE(b);
	unsigned int ticket;
	void **slot = ck_ring_enqueue_reserve_mpmc(&c->ring, c->slots, &ticket);
	if (slot) {
		WISP_TSAN_ACQUIRE(slot); /* after the last lap's writer */
		*slot = b;
		WISP_TSAN_RELEASE(slot);
		wisp_ring_commit_mp(&c->ring, ticket);
		return;
	}
#endif
	atomic_fetch_sub_explicit(&p->bytes, c->buf_bytes, memory_order_relaxed);
	wisp_free(p->mem, b);
}

void wisp_pool_stats_get(const wisp_pool *p, wisp_pool_stats *out)
{
	out->in_use = atomic_load_explicit(&p->in_use, memory_order_relaxed);
	out->high = atomic_load_explicit(&p->high, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&p->bytes, memory_order_relaxed);
	out->exhausted = wisp_stat_get(&p->exhausted);
	out->too_large = wisp_stat_get(&p->too_large);
}
