/* The scoring actor: owns peer scores (actors/scoring/score.h), fed by
 * events from the gossip actor, and sends it snapshots of every score so the
 * router reads them locally.
 *
 * It also keeps the request/response reputations (actors/scoring/rep.h)
 * by peer id, adds their penalties to gossip scores, answers the
 * application's score queries, and sends the request/response actor the
 * reputations WISP_SCORING_SNAPSHOT_MS after they change.
 *
 * Handles are the gossip actor's small peer numbers, reused for new peers.
 * A snapshot goes out WISP_SCORING_SNAPSHOT_MS after a change (events and
 * decay rounds) and carries the sequence number of the last PEER_ADD it
 * reflects, so the gossip actor does not take a handle's old peer's score
 * for its new one; decay runs only while some peer is scored. An idle
 * node's actor sleeps.
 */
#ifndef WISP_ACTORS_SCORING_ACTOR_H
#define WISP_ACTORS_SCORING_ACTOR_H

#include <wisp/identity.h>

#include "actors/scoring/rep.h"
#include "actors/scoring/score.h"
#include "runtime/loop.h"

struct wisp_node;

#define WISP_SCORING_SNAPSHOT_MS 200

enum wisp_scoring_msg {
	WISP_SMSG_EVENT = 200,       /* a, b: a packed wisp_score_event */
	WISP_SMSG_PEER_ADD = 201,    /* a: handle, b: its sequence number (increasing), buf: wisp_scoring_peer */
	WISP_SMSG_PEER_REMOVE = 202, /* a: handle */
	WISP_SMSG_TOPIC = 203,       /* a: topic index, buf: wisp_score_topic_params, or NULL to stop */
	WISP_SMSG_APP_SCORE = 204,   /* from the handle: buf: wisp_scoring_app */
	WISP_SMSG_REP = 205,         /* from the reqresp actor: a: wisp_rep_kind, b: latency us,
					buf: wisp_peer_id */
	WISP_SMSG_QUERY = 206,       /* from the handle: b: cookie, buf: wisp_peer_id; answered with
					WISP_EVENT_PEER_SCORE */
};

/* The application's value for a peer (P5), by peer id. */
typedef struct wisp_scoring_app {
	wisp_peer_id id;
	double value;
} wisp_scoring_app;

/* Peer ids whose application value the actor remembers (connected or not). */
#define WISP_SCORING_APP_MAX 1024

typedef struct wisp_scoring_peer {
	wisp_peer_id id;
	bool has_ip;
	uint8_t ip[16]; /* IPv4 as v4-mapped */
} wisp_scoring_peer;

typedef struct wisp_scoring wisp_scoring;

extern const wisp_actor_ops wisp_scoring_ops;

/* p: the parameters (copied). Errors: WISP_ERR_NOMEM, WISP_ERR_INVALID_ARG. */
int wisp_scoring_new(wisp_scoring **out, struct wisp_node *node, const wisp_score_params *p);
void wisp_scoring_free(wisp_scoring *s);

/* The reputations the scoring actor sends the request/response actor
 * (WISP_RMSG_REPS: an array of these), for its sync helper. */
typedef struct wisp_scoring_rep {
	wisp_peer_id id;
	double score;       /* as wisp_peer_score_info.score */
	double reliability;
	double latency_ms;
} wisp_scoring_rep;

/* Counters, any thread (relaxed). */
typedef struct wisp_scoring_stats {
	wisp_stat events, bad_events, snapshots, snapshot_drops;
	wisp_stat app_full; /* application values refused: WISP_SCORING_APP_MAX ids remembered */
} wisp_scoring_stats;
const wisp_scoring_stats *wisp_scoring_stats_of(const wisp_scoring *s);

#endif
