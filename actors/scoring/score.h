/* gossipsub v1.1 peer scoring: the score function, sans-I/O.
 *
 *   Score(p) = TopicCap(sum_t w_t * (w1 P1 + w2 P2 + w3 P3 + w3b P3b + w4 P4))
 *              + w5 P5 + w6 P6 + w7 P7
 *
 * P1 time in mesh (quanta since GRAFT, capped), P2 first deliveries (capped
 * counter), P3 mesh delivery deficit squared (after an activation time in
 * the mesh), P3b sticky failure penalty (the deficit squared, added at PRUNE),
 * P4 invalid messages squared, P5 the application's value, P6 the surplus of
 * peers sharing an IP over a threshold, squared, P7 the behaviour penalty
 * counter over a threshold, squared (libp2p specs, pubsub/gossipsub/
 * gossipsub-v1.1.md, "Peer Scoring"). Counters decay every decay_interval by
 * their factor and snap to 0 below decay_to_zero.
 *
 * The model:
 * - Peers are small integer handles (< max_peers) the owner assigns; each
 *   connected peer also carries its peer id, so that a peer that disconnects
 *   with a non-positive score and reconnects (under any handle) within
 *   retain_score gets its counters back. Topics are small indices
 *   (< max_topics) the owner assigns; a topic counts only once it has
 *   parameters (wisp_score_set_topic).
 * - All memory is allocated by wisp_score_new(): max_peers connected plus
 *   max_retained disconnected records, each with max_topics topic counters.
 *   No event allocates.
 * - Time comes from the caller (`now`, ns, monotonic). Decay runs from
 *   wisp_score_handle_expiry() when wisp_score_expiry() is reached; a late
 *   call catches up on every interval it missed.
 *
 * Where this follows go-libp2p-pubsub (score.go) and where it does not:
 * - as in go and rust-libp2p: P1 counts whole quanta, counters are decayed
 *   only for connected peers (a retained score neither decays nor grows),
 *   only non-positive scores are retained, a retained peer loses its P2
 *   counters and pays P3b for an active deficit at disconnect, and retained
 *   peers still count towards P6 until they expire; IPv6 peers count both
 *   under their address and under their /64; loopback addresses never count;
 * - P3 applies only while the peer is in the mesh (as rust-libp2p; go keeps
 *   applying it after a PRUNE until the next GRAFT, on top of P3b);
 * - time in mesh and P3 activation are computed from `now` at each query, not
 *   refreshed at decay ticks;
 * - a GRAFT for a peer already in the mesh keeps its original graft time;
 * - counters are clamped (WISP_SCORE_COUNTER_MAX, app value to
 *   +-WISP_SCORE_APP_MAX) so the score stays finite whatever the events.
 *
 * Thread: one owner thread per wisp_score (the scoring actor); nothing here
 * blocks, locks or reads a clock.
 *
 * Argument order: the score object, then the peer, then the topic, then
 * values, then `now`.
 */
#ifndef WISP_ACTORS_SCORING_SCORE_H
#define WISP_ACTORS_SCORING_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#define WISP_SCORE_PARAMS_VERSION 1

/* Bounds validate() enforces, so memory and arithmetic stay bounded. */
#define WISP_SCORE_MAX_PEERS_LIMIT 65536u
#define WISP_SCORE_MAX_TOPICS_LIMIT 1024u
#define WISP_SCORE_WEIGHT_MAX 1e9         /* |any weight| */
#define WISP_SCORE_COUNTER_MAX 1e12       /* P3b, P4 and P7 counters are clamped here */
#define WISP_SCORE_APP_MAX 1e15           /* |P5| is clamped here */
#define WISP_SCORE_IP_WHITELIST_MAX 8

/* Per-topic parameters. Durations in milliseconds. A weight of 0 disables its
 * component; validate() then relaxes that component's other fields (decay in
 * [0, 1), caps and thresholds finite and >= 0, so a zeroed struct passes),
 * except the P4 decay, which must always be in (0, 1), as in go. */
typedef struct wisp_score_topic_params {
	double topic_weight; /* >= 0 */

	/* P1: time in mesh = whole quanta since GRAFT, capped. */
	double time_in_mesh_weight;         /* >= 0 */
	uint32_t time_in_mesh_quantum_ms;   /* > 0 */
	double time_in_mesh_cap;            /* > 0 when the weight is not 0 */

	/* P2: first deliveries, a counter capped when it is incremented. */
	double first_message_deliveries_weight; /* >= 0 */
	double first_message_deliveries_decay;  /* (0, 1) */
	double first_message_deliveries_cap;    /* > 0 */

	/* P3: (threshold - mesh deliveries)^2 when below the threshold, once the
	 * peer has been in the mesh longer than the activation time. A mesh
	 * delivery is a first delivery, or a duplicate received while the message
	 * was being validated or within window_ms after it was validated. */
	double mesh_message_deliveries_weight;       /* <= 0 */
	double mesh_message_deliveries_decay;        /* (0, 1) */
	double mesh_message_deliveries_threshold;    /* > 0 */
	double mesh_message_deliveries_cap;          /* >= threshold */
	uint32_t mesh_message_deliveries_activation_ms; /* >= 1000 */
	uint32_t mesh_message_deliveries_window_ms;

	/* P3b: sticky; the P3 deficit squared is added when the peer leaves the
	 * mesh (PRUNE or disconnect) with an active deficit. */
	double mesh_failure_penalty_weight; /* <= 0 */
	double mesh_failure_penalty_decay;  /* (0, 1) */

	/* P4: invalid messages, squared. */
	double invalid_message_deliveries_weight; /* <= 0 */
	double invalid_message_deliveries_decay;  /* (0, 1), always */
} wisp_score_topic_params;

typedef struct wisp_score_thresholds {
	double gossip;              /* <= 0: no gossip to or from peers below */
	double publish;             /* <= gossip: no flood-published messages to peers below */
	double graylist;            /* <= publish: every RPC from peers below is ignored */
	double accept_px;           /* >= 0: PX from peers below is ignored */
	double opportunistic_graft; /* >= 0: median mesh score below it triggers opportunistic grafts */
} wisp_score_thresholds;

/* An address prefix exempt from P6. addr is 16 bytes: IPv4 as v4-mapped
 * (::ffff:a.b.c.d) with prefix_len 96 + the IPv4 prefix length. */
typedef struct wisp_score_ip_prefix {
	uint8_t addr[16];
	uint8_t prefix_len; /* 0..128 */
} wisp_score_ip_prefix;

/* Global parameters. Initialize with wisp_score_params_default() (or
 * wisp_score_atlas()), then change fields; wisp_score_new() copies them. */
typedef struct wisp_score_params {
	uint32_t version; /* WISP_SCORE_PARAMS_VERSION */

	double topic_score_cap; /* >= 0; 0 = no cap on the (positive) sum of topic scores */

	/* P5 */
	double app_specific_weight; /* >= 0 (the value itself may be negative) */

	/* P6 */
	double ip_colocation_factor_weight;    /* <= 0 */
	double ip_colocation_factor_threshold; /* >= 1 when the weight is not 0 */
	uint32_t n_ip_whitelist;
	wisp_score_ip_prefix ip_whitelist[WISP_SCORE_IP_WHITELIST_MAX];

	/* P7 */
	double behaviour_penalty_weight;    /* <= 0 */
	double behaviour_penalty_threshold; /* >= 0 */
	double behaviour_penalty_decay;     /* (0, 1) when the weight is not 0 */

	uint32_t decay_interval_ms; /* >= 1000 (as go) */
	double decay_to_zero;       /* (0, 1) */
	uint32_t retain_score_ms;   /* 0 = forget a peer at disconnect */

	wisp_score_thresholds thresholds;

	uint32_t max_peers;    /* handles are < max_peers; 1..WISP_SCORE_MAX_PEERS_LIMIT */
	uint32_t max_retained; /* disconnected peers remembered at once; 0..WISP_SCORE_MAX_PEERS_LIMIT */
	uint32_t max_topics;   /* topic indices are < max_topics; 1..WISP_SCORE_MAX_TOPICS_LIMIT */
} wisp_score_params;

/* Defaults for a validator network (values and reasons in score.c). No
 * topic is scored until wisp_score_set_topic(). */
void wisp_score_params_default(wisp_score_params *p) WISP_NONNULL(1);

/* Moderate topic parameters for a topic with no known message rate: P1 on,
 * P2 on with a cap of 100 deliveries, P3/P3b off, P4 on. Decay factors are
 * computed for p's decay interval and decay_to_zero. */
void wisp_score_topic_default(wisp_score_topic_params *tp, const wisp_score_params *p) WISP_NONNULL(1, 2);

/* Check p (or tp) the way go-libp2p-pubsub does: signs, decay factors in
 * (0, 1), caps, thresholds ordered, finite numbers; plus wisp's bounds.
 * Returns 0, or WISP_ERR_INVALID_ARG with a sentence naming the field in why
 * (NUL-terminated, truncated to cap; why may be NULL when cap is 0). */
int wisp_score_params_validate(const wisp_score_params *p, char *why, size_t cap) WISP_NONNULL(1);
int wisp_score_topic_params_validate(const wisp_score_topic_params *tp, char *why, size_t cap) WISP_NONNULL(1);

/* The decay factor that takes a counter of 1 down to decay_to_zero in
 * `seconds`, with one decay every interval_ms (at least one decay). */
double wisp_score_decay_factor(double seconds, uint32_t interval_ms, double decay_to_zero);

/* ---- the Atlas profile ------------------------------------------------ */

/* The four Atlas gossip topics, in this order. */
enum {
	WISP_SCORE_ATLAS_HEARTBEAT = 0, /* atlas/heartbeat/v1 */
	WISP_SCORE_ATLAS_PROPOSAL = 1,  /* atlas/proposal/v1 */
	WISP_SCORE_ATLAS_VOTE = 2,      /* atlas/vote/v1 */
	WISP_SCORE_ATLAS_TX = 3,        /* atlas/tx/v1 */
	WISP_SCORE_ATLAS_TOPICS = 4,
};

/* "atlas/heartbeat/v1" ... for i < WISP_SCORE_ATLAS_TOPICS, else NULL. */
const char *wisp_score_atlas_topic_name(unsigned i);

/* What the Atlas profile assumes about the network; message rates set the
 * P2 caps and the P3 thresholds. Zero fields take the defaults in brackets. */
typedef struct wisp_score_atlas_net {
	double validators;      /* validators voting each round [100] */
	double round_s;         /* time between proposals [2] */
	double votes_per_round; /* votes each validator sends per round [2] */
	double heartbeat_s;     /* each validator's heartbeat interval [10] */
	double tx_per_s;        /* transactions gossiped per second [50] */
	double mesh_d;          /* gossipsub D [8] */
} wisp_score_atlas_net;

/* Fill p with the defaults and tp[0..WISP_SCORE_ATLAS_TOPICS) with the Atlas
 * topic parameters for net (NULL = all defaults). The result validates. */
void wisp_score_atlas(wisp_score_params *p, wisp_score_topic_params tp[WISP_SCORE_ATLAS_TOPICS],
		      const wisp_score_atlas_net *net) WISP_NONNULL(1, 2);

/* ---- the score object ------------------------------------------------- */

typedef struct wisp_score wisp_score;

/* Allocate every table through mem (NULL = libc) and copy p. The first decay
 * is due at now + decay_interval.
 * Errors: WISP_ERR_INVALID_ARG (p does not validate), WISP_ERR_NOMEM.
 * On error *out is NULL. */
int wisp_score_new(wisp_score **out, const wisp_mem *mem, const wisp_score_params *p, wisp_tstamp now)
	WISP_WARN_UNUSED WISP_NONNULL(1, 3);
void wisp_score_free(wisp_score *s);

/* Score topic with tp (copied), or stop scoring it (tp NULL: its counters are
 * zeroed; mesh membership is kept). Lowering a cap re-caps the counters.
 * Errors: WISP_ERR_LIMIT (topic >= max_topics), WISP_ERR_INVALID_ARG (tp
 * does not validate). */
int wisp_score_set_topic(wisp_score *s, uint32_t topic, const wisp_score_topic_params *tp) WISP_NONNULL(1);

/* A peer connected under handle `peer`. ip is 16 bytes (IPv4 as v4-mapped)
 * or NULL when unknown; unspecified, loopback and whitelisted addresses do
 * not count for P6. If id was retained and has not expired, its counters come
 * back (under the new handle and the new ip).
 * Errors: WISP_ERR_LIMIT (peer >= max_peers), WISP_ERR_EXISTS (the handle is
 * in use, or id is connected under another handle), WISP_ERR_INVALID_ARG
 * (empty id). */
int wisp_score_add_peer(wisp_score *s, uint32_t peer, const wisp_peer_id *id, const uint8_t *ip,
			wisp_tstamp now) WISP_NONNULL(1, 3);

/* The peer disconnected; its handle is free again at once. A non-positive
 * score is retained for retain_score_ms (P2 zeroed, P3b charged for an
 * active deficit, out of every mesh); when max_retained records are held, the
 * highest retained score is forgotten to make room (or this one, if it is the
 * highest). Errors: WISP_ERR_NOTFOUND (no such handle). */
int wisp_score_remove_peer(wisp_score *s, uint32_t peer, wisp_tstamp now) WISP_NONNULL(1);

/* ---- events from the router ------------------------------------------ */
/* Each returns 0, WISP_ERR_NOTFOUND (handle not connected) or WISP_ERR_LIMIT
 * (peer or topic out of range); events on topics without parameters are
 * accepted and do nothing (but GRAFT/PRUNE still track mesh membership).
 * The router dedups: call once per (message, peer). */

/* The peer joined / left our mesh for topic. A PRUNE (or a disconnect) with
 * an active P3 deficit adds the deficit squared to P3b. */
int wisp_score_graft(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now) WISP_NONNULL(1);
int wisp_score_prune(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now) WISP_NONNULL(1);

/* The peer was the first to deliver a message that then validated: P2 += 1,
 * and P3 += 1 if the peer is in the mesh (each capped). */
int wisp_score_first_delivery(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now) WISP_NONNULL(1);

/* validated_at value for a duplicate that arrived while the message was
 * still being validated (it always counts once the message validates). */
#define WISP_SCORE_VALIDATING UINT64_MAX

/* The peer delivered a valid message we already had. It counts as a mesh
 * delivery (P3 += 1, capped) if the peer is in the mesh and the copy arrived
 * while validating (validated_at == WISP_SCORE_VALIDATING; report it when the
 * message validates) or at most window_ms after validated_at, the time the
 * first copy finished validation (as go's deliveryRecord.validated). */
int wisp_score_duplicate(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp validated_at,
			 wisp_tstamp now) WISP_NONNULL(1);

/* The peer delivered a message that failed validation (REJECT, not IGNORE):
 * P4 += 1. Also for peers that forwarded it while it was validating, and for
 * later copies of a message known to be invalid. */
int wisp_score_invalid(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now) WISP_NONNULL(1);

/* P7 += count (a broken IWANT promise, a GRAFT during backoff, ...).
 * Errors also: WISP_ERR_INVALID_ARG (count negative or not finite). */
int wisp_score_behaviour_penalty(wisp_score *s, uint32_t peer, double count, wisp_tstamp now) WISP_NONNULL(1);

/* Set P5 (kept while the score is retained). Errors also:
 * WISP_ERR_INVALID_ARG (value not finite). */
int wisp_score_app_specific(wisp_score *s, uint32_t peer, double value) WISP_NONNULL(1);

/* The same events as values, to travel through a mailbox. */
enum wisp_score_event_kind {
	WISP_SCORE_EV_GRAFT = 1,
	WISP_SCORE_EV_PRUNE = 2,
	WISP_SCORE_EV_FIRST_DELIVERY = 3,
	WISP_SCORE_EV_DUPLICATE = 4,        /* uses validated_at */
	WISP_SCORE_EV_INVALID = 5,
	WISP_SCORE_EV_BEHAVIOUR_PENALTY = 6,/* uses value (count) */
	WISP_SCORE_EV_APP_SPECIFIC = 7,     /* uses value */
};

typedef struct wisp_score_event {
	uint8_t kind;  /* enum wisp_score_event_kind */
	uint32_t peer;
	uint32_t topic; /* < 2^24 to fit a mailbox message */
	union {
		double value;
		wisp_tstamp validated_at;
	} u;
} wisp_score_event;

/* Apply one event. Errors: those of the event's function, or
 * WISP_ERR_INVALID_ARG (unknown kind). */
int wisp_score_apply(wisp_score *s, const wisp_score_event *e, wisp_tstamp now) WISP_NONNULL(1, 2);

/* Pack an event into the two words of a wisp_msg (a: kind, topic, peer;
 * b: value or time) and back. Unpack returns WISP_ERR_INVALID_ARG for a word
 * no event packs to; pack returns it for a topic >= 2^24. */
int wisp_score_event_pack(const wisp_score_event *e, uint64_t *a, uint64_t *b) WISP_NONNULL(1, 2, 3);
int wisp_score_event_unpack(wisp_score_event *e, uint64_t a, uint64_t b) WISP_NONNULL(1);

/* ---- reading scores ---------------------------------------------------- */

/* The score of a connected peer at now; 0 for a free handle or one out of
 * range (as go: an unknown peer scores 0). */
double wisp_score_get(const wisp_score *s, uint32_t peer, wisp_tstamp now) WISP_NONNULL(1);

/* The score of a peer id, connected or retained (not expired); 0 if unknown.
 * For the peer manager's gating (don't redial a graylisted peer). */
double wisp_score_get_id(const wisp_score *s, const wisp_peer_id *id, wisp_tstamp now) WISP_NONNULL(1, 2);

/* Fill out[i] for i < n with the score of handle i, NaN for free handles
 * (and for i >= max_peers). Returns how many entries hold a score. */
size_t wisp_score_snapshot(const wisp_score *s, double *out, size_t n, wisp_tstamp now) WISP_NONNULL(1);

/* The thresholds from the parameters, for the router. */
const wisp_score_thresholds *wisp_score_thresholds_of(const wisp_score *s) WISP_NONNULL(1);

/* The weighted parts of a connected peer's score, for tests and
 * diagnostics: score = topics + app + ip + behaviour.
 * Errors: WISP_ERR_NOTFOUND, WISP_ERR_LIMIT. */
typedef struct wisp_score_breakdown {
	double topics;    /* sum of weighted topic scores, after topic_score_cap */
	double app;       /* w5 * P5 */
	double ip;        /* w6 * P6 */
	double behaviour; /* w7 * P7 */
	double score;
} wisp_score_breakdown;
int wisp_score_explain(const wisp_score *s, uint32_t peer, wisp_tstamp now, wisp_score_breakdown *out)
	WISP_NONNULL(1, 4);

typedef struct wisp_score_stats {
	uint32_t connected;
	uint32_t retained;
	uint64_t retain_evicted; /* retained records forgotten early to make room */
	uint64_t decays;         /* decay rounds applied */
} wisp_score_stats;
void wisp_score_get_stats(const wisp_score *s, wisp_score_stats *out) WISP_NONNULL(1, 2);

/* ---- time --------------------------------------------------------------- */

/* When wisp_score_handle_expiry() is next due (the next decay). */
wisp_tstamp wisp_score_expiry(const wisp_score *s) WISP_NONNULL(1);

/* Apply every decay round due by now (one per decay interval missed) and
 * forget retained peers whose time is up. Returns the number of rounds
 * applied (0 if called early). */
int wisp_score_handle_expiry(wisp_score *s, wisp_tstamp now) WISP_NONNULL(1);

#endif
