#include "runtime/mailbox.h"

#include <string.h>

#include <wisp/error.h>

#include "runtime/loop.h"
#include "runtime/mem.h"
#include "runtime/ring.h"
#include "runtime/tsan.h"

CK_RING_PROTOTYPE(wisp_msg, wisp_msg)

static int lane_init(wisp_lane *l, const wisp_mem *mem, uint32_t slots)
{
	l->slots = wisp_malloc_aligned(mem, (size_t)slots * sizeof(wisp_msg), 64);
	if (!l->slots)
		return WISP_ERR_NOMEM;
	ck_ring_init(&l->ring, slots);
	return WISP_OK;
}

int wisp_mailbox_init(wisp_mailbox *mb, const wisp_mem *mem, uint32_t slots, uint32_t loops,
		      struct wisp_loop *owner)
{
	memset(mb, 0, sizeof(*mb));
	if (slots < 4 || (slots & (slots - 1)))
		return WISP_ERR_INVALID_ARG;
	mb->owner = owner;
	if (lane_init(&mb->shared, mem, slots))
		goto nomem;
	if (loops) {
		mb->lanes = wisp_calloc(mem, loops, sizeof(*mb->lanes));
		if (!mb->lanes)
			goto nomem;
		mb->n_lanes = loops;
		for (uint32_t i = 0; i < loops; i++)
			if (lane_init(&mb->lanes[i], mem, slots))
				goto nomem;
	}
	return WISP_OK;
nomem:
	wisp_mailbox_fini(mb, mem);
	return WISP_ERR_NOMEM;
}

static uint64_t lane_fini(wisp_lane *l, const wisp_mem *mem)
{
	uint64_t left = 0;
	wisp_msg m;
	if (!l->slots)
		return 0;
	while (ck_ring_dequeue_spsc_wisp_msg(&l->ring, l->slots, &m)) {
		WISP_TSAN_ACQUIRE(l);
		wisp_buf_unref(m.buf);
		left++;
	}
	wisp_free_aligned(mem, l->slots);
	l->slots = NULL;
	return left;
}

uint64_t wisp_mailbox_fini(wisp_mailbox *mb, const wisp_mem *mem)
{
	uint64_t left = lane_fini(&mb->shared, mem);
	if (mb->lanes) {
		for (uint32_t i = 0; i < mb->n_lanes; i++)
			left += lane_fini(&mb->lanes[i], mem);
		wisp_free(mem, mb->lanes);
		mb->lanes = NULL;
	}
	mb->n_lanes = 0;
	return left;
}

int wisp_mailbox_send_mpsc(wisp_mailbox *mb, const wisp_msg *m, struct wisp_loop *from)
{
	if (atomic_load_explicit(&mb->closed, memory_order_acquire)) {
		wisp_stat_add_shared(&mb->refused_closed, 1);
		return WISP_ERR_CLOSED;
	}
	bool ok;
	if (from && from->lane < mb->n_lanes) {
		wisp_lane *l = &mb->lanes[from->lane];
		/* Released before the enqueue, acquired after the dequeue: the
		 * edge TSan cannot see through ck's volatile accesses. */
		WISP_TSAN_RELEASE(l);
		/* after the consumer's read of this slot, a lap ago */
		WISP_TSAN_ACQUIRE(&l->slots[ck_pr_load_uint(&l->ring.p_tail) & l->ring.mask]);
		ok = ck_ring_enqueue_spsc_wisp_msg(&l->ring, l->slots, (struct wisp_msg *)m);
	} else {
		wisp_lane *l = &mb->shared;
		unsigned int ticket;
		WISP_TSAN_RELEASE(l);
		struct wisp_msg *slot = ck_ring_enqueue_reserve_mpsc_wisp_msg(&l->ring, l->slots, &ticket);
		ok = slot != NULL;
		if (ok) {
			/* Orders this write after the previous producer's write
			 * of the same slot, one lap earlier. */
			WISP_TSAN_ACQUIRE(slot);
			*slot = *m;
			WISP_TSAN_RELEASE(slot);
			wisp_ring_commit_mp(&l->ring, ticket);
		}
	}
	if (!ok) {
		wisp_stat_add_shared(&mb->full, 1);
		return WISP_ERR_AGAIN;
	}
	if (mb->owner)
		wisp_loop_notify(mb->owner, from);
	return WISP_OK;
}

static bool lane_recv(wisp_lane *l, wisp_msg *m)
{
	/* The shared lane's consumer side is single-consumer too. */
	struct wisp_msg *slot = &l->slots[ck_pr_load_uint(&l->ring.c_head) & l->ring.mask];
	if (!ck_ring_dequeue_spsc_wisp_msg(&l->ring, l->slots, m))
		return false;
	WISP_TSAN_ACQUIRE(l);
	/* Our read of the slot comes before the write of whoever takes it a
	 * lap later (the shared lane's producers acquire it before writing). */
	WISP_TSAN_RELEASE(slot);
	return true;
}

/* Messages taken from one lane in a row before the next lane's turn: keeps
 * the consumer on one cache line stream, and bounds how long one producer
 * can hold the others back. */
#define LANE_BURST 32u

bool wisp_mailbox_recv_mpsc(wisp_mailbox *mb, wisp_msg *m)
{
	/* Round-robin over the loop lanes and the shared lane (index n_lanes). */
	uint32_t n = mb->n_lanes + 1;
	for (uint32_t k = 0; k <= n; k++) {
		uint32_t i = mb->next_lane;
		if (mb->burst < LANE_BURST &&
		    lane_recv(i == mb->n_lanes ? &mb->shared : &mb->lanes[i], m)) {
			mb->burst++;
			wisp_stat_add(&mb->received, 1);
			return true;
		}
		mb->next_lane = i + 1 == n ? 0 : i + 1;
		mb->burst = 0;
	}
	return false;
}

bool wisp_mailbox_pending(wisp_mailbox *mb)
{
	if (ck_ring_size(&mb->shared.ring))
		return true;
	for (uint32_t i = 0; i < mb->n_lanes; i++)
		if (ck_ring_size(&mb->lanes[i].ring))
			return true;
	return false;
}
