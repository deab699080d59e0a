/* Helpers over Concurrency Kit rings.
 *
 * ck's multi-producer enqueue reserves a ticket with a CAS and then spins
 * until every earlier ticket is published. When an earlier producer is
 * preempted mid-publish (more threads than cores), the spinners burn whole
 * scheduler slices: measured here at a few hundred operations per second
 * with four producers on two cores. wisp reserves with ck and publishes with
 * wisp_ring_commit_mp, which yields the CPU after a short spin so the
 * preempted producer can finish. */
#ifndef WISP_RUNTIME_RING_H
#define WISP_RUNTIME_RING_H

#include <ck_pr.h>
#include <ck_ring.h>
#include <sched.h>

/* Spins before yielding: about a microsecond of pause instructions, longer
 * than any uncontended publish. */
#define WISP_RING_SPINS 256

/* Publish the slot reserved under ticket (ck_ring_enqueue_reserve_mp*). */
static inline void wisp_ring_commit_mp(ck_ring_t *ring, unsigned int ticket)
{
	unsigned int spins = 0;
	while (ck_pr_load_uint(&ring->p_tail) != ticket) {
		if (++spins < WISP_RING_SPINS) {
			ck_pr_stall();
		} else {
			spins = 0;
			sched_yield();
		}
	}
	/* The slot's bytes are visible before the new tail. */
	ck_pr_fence_store();
	ck_pr_store_uint(&ring->p_tail, ticket + 1);
}

#endif
