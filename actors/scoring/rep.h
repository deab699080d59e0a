/* Request/response reputation: what a peer's requests and responses say
 * about it, by peer id, sans-I/O.
 *
 *   reliability  (ok + 1) / (ok + failed + 2) over decayed counts of our
 *                requests' outcomes (a new peer starts at 1/2);
 *   latency      an exponential average of the first-byte latency of the
 *                requests that succeeded;
 *   penalty      -WISP_REP_BAD_WEIGHT * bad^2, bad a decayed count of
 *                violations: framing broken either way and content that
 *                failed its check count 1, a request past our limits
 *                WISP_REP_OVER_LIMIT_WEIGHT.
 *
 * The scoring actor adds the penalty to the peer's gossip score (beside the
 * application's P5 value), so a peer that serves bad chunks loses standing
 * in the mesh too, and sends the whole record to the request/response actor,
 * whose sync helper picks peers by it.
 *
 * A fixed table (max_ids) by peer id; when it is full the record touched
 * longest ago makes room. One thread.
 */
#ifndef WISP_ACTORS_SCORING_REP_H
#define WISP_ACTORS_SCORING_REP_H

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#include "peerset/idtab.h"

#define WISP_REP_BAD_WEIGHT 10.0
#define WISP_REP_OVER_LIMIT_WEIGHT 0.1
#define WISP_REP_DECAY 0.99      /* per second: a penalty halves in about 70 s */
#define WISP_REP_LATENCY_ALPHA 0.2

typedef enum wisp_rep_kind {
	WISP_REP_OK = 0,         /* our request was answered (latency given) */
	WISP_REP_FAILED = 1,     /* it timed out, was reset or refused */
	WISP_REP_BAD = 2,        /* the peer broke the framing, or served content that failed its check */
	WISP_REP_OVER_LIMIT = 3, /* its request was past our limits */
} wisp_rep_kind;

typedef struct wisp_rep {
	wisp_peer_id id; /* first: the table's key */
	double ok, failed, bad;
	double latency_ms; /* 0 until a success */
	wisp_tstamp touched;
} wisp_rep;

typedef struct wisp_reps {
	wisp_idtab tab;
	uint32_t max;
	wisp_tstamp decayed;
} wisp_reps;

int wisp_reps_init(wisp_reps *r, const wisp_mem *mem, uint32_t max_ids) WISP_WARN_UNUSED;
void wisp_reps_fini(wisp_reps *r, const wisp_mem *mem);

/* Record one outcome; returns the peer's record (NULL only for kind out of
 * range). */
const wisp_rep *wisp_reps_note(wisp_reps *r, const wisp_peer_id *id, wisp_rep_kind kind, uint64_t latency_us,
			       wisp_tstamp now);
/* The record of id, or NULL. */
const wisp_rep *wisp_reps_get(const wisp_reps *r, const wisp_peer_id *id);

/* Decay every record by the whole seconds since the last decay; records
 * that decayed to nothing are dropped.
 * Returns how many records are left. */
uint32_t wisp_reps_decay(wisp_reps *r, wisp_tstamp now);

static inline double wisp_rep_penalty(const wisp_rep *p)
{
	return p ? -WISP_REP_BAD_WEIGHT * p->bad * p->bad : 0.0;
}

static inline double wisp_rep_reliability(const wisp_rep *p)
{
	return p ? (p->ok + 1.0) / (p->ok + p->failed + 2.0) : 0.5;
}

#endif
