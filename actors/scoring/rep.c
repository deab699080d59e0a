#include "actors/scoring/rep.h"

#include <string.h>

#include <wisp/error.h>

/* Below this a decayed count is gone. */
#define ZERO 0.01

int wisp_reps_init(wisp_reps *r, const wisp_mem *mem, uint32_t max_ids)
{
	memset(r, 0, sizeof(*r));
	r->max = max_ids;
	return wisp_idtab_init(&r->tab, mem, sizeof(wisp_rep), max_ids);
}

void wisp_reps_fini(wisp_reps *r, const wisp_mem *mem)
{
	wisp_idtab_fini(&r->tab, mem);
}

const wisp_rep *wisp_reps_get(const wisp_reps *r, const wisp_peer_id *id)
{
	return wisp_idtab_get((wisp_idtab *)&r->tab, id, false);
}

/* Room for one more: the record touched longest ago goes. */
static void evict_oldest(wisp_reps *r)
{
	wisp_rep *old = NULL;
	for (uint32_t i = 0; i < r->tab.cap; i++) {
		wisp_rep *p = wisp_idtab_slot(&r->tab, i);
		if (p && (!old || p->touched < old->touched))
			old = p;
	}
	if (old)
		wisp_idtab_remove(&r->tab, old);
}

const wisp_rep *wisp_reps_note(wisp_reps *r, const wisp_peer_id *id, wisp_rep_kind kind, uint64_t latency_us,
			       wisp_tstamp now)
{
	if ((unsigned)kind > WISP_REP_OVER_LIMIT)
		return NULL;
	wisp_rep *p = wisp_idtab_get(&r->tab, id, false);
	if (!p) {
		if (r->tab.count >= r->max)
			evict_oldest(r);
		p = wisp_idtab_get(&r->tab, id, true);
		if (!p)
			return NULL;
	}
	p->touched = now;
	switch (kind) {
	case WISP_REP_OK: {
		p->ok += 1;
		double ms = (double)latency_us / 1000.0;
		p->latency_ms = p->latency_ms == 0 ? ms : p->latency_ms + WISP_REP_LATENCY_ALPHA * (ms - p->latency_ms);
		break;
	}
	case WISP_REP_FAILED:
		p->failed += 1;
		break;
	case WISP_REP_BAD:
		p->bad += 1;
		break;
	case WISP_REP_OVER_LIMIT:
		p->bad += WISP_REP_OVER_LIMIT_WEIGHT;
		break;
	}
	return p;
}

uint32_t wisp_reps_decay(wisp_reps *r, wisp_tstamp now)
{
	if (!r->decayed || now <= r->decayed) {
		r->decayed = r->decayed ? r->decayed : now;
		return r->tab.count;
	}
	/* whole seconds only (the rest waits for the next call): no libm */
	uint64_t secs = (now - r->decayed) / 1000000000u;
	if (!secs)
		return r->tab.count;
	r->decayed += secs * 1000000000u;
	double f = 1.0;
	for (uint64_t k = 0; k < secs && f > 1e-9; k++)
		f *= WISP_REP_DECAY;
	for (uint32_t i = 0; i < r->tab.cap; i++) {
		wisp_rep *p = wisp_idtab_slot(&r->tab, i);
		if (p) {
			p->ok *= f;
			p->failed *= f;
			p->bad *= f;
		}
	}
	/* then drop what decayed to nothing (a removal shifts a later entry
	 * into slot i: look at it again) */
	for (uint32_t i = 0; i < r->tab.cap;) {
		wisp_rep *p = wisp_idtab_slot(&r->tab, i);
		if (p && p->ok < ZERO && p->failed < ZERO && p->bad < ZERO)
			wisp_idtab_remove(&r->tab, p);
		else
			i++;
	}
	return r->tab.count;
}
