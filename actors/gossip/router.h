/* gossipsub router (/meshsub/1.0.0, 1.1.0, 1.2.0), sans-I/O.
 *
 * One router per node, owned by one thread (the gossip actor). It never
 * touches a socket or a clock: the owner feeds it RPC frames with
 * wisp_gs_router_handle_rpc(), tells it about peers and subscriptions, and
 * drives the heartbeat with wisp_gs_router_expiry() /
 * wisp_gs_router_handle_expiry(). Everything it wants done goes out through
 * the callbacks in wisp_gs_ops: frames to send, signatures to check, messages
 * to validate and deliver, score inputs, PX suggestions.
 *
 * Peers are small integer handles the owner assigns (< cfg.max_peers), one
 * per connected peer that speaks a meshsub protocol. Topics are strings; the
 * router keeps an index and gives each known topic a small number (stable
 * while the topic is known; names in callbacks are slices valid during the
 * call).
 *
 * What the router does (specs: libp2p/specs pubsub/gossipsub v1.0, v1.1,
 * v1.2; pubsub/README.md):
 *   - announces our subscriptions to every new peer and on every change;
 *     tracks each peer's (at most cfg.max_peer_subs; topics only peers know
 *     at most cfg.max_remote_topics);
 *   - keeps a mesh per subscribed topic: D_lo <= degree <= D_hi after each
 *     heartbeat, the D_score best kept when pruning, D_out outbound peers,
 *     negative scores pruned, opportunistic grafting every
 *     opportunistic_graft_ticks heartbeats, PRUNE backoff both ways (remote
 *     backoffs clamped to [backoff_min, backoff_max]), PX to and from
 *     well-scored peers only (our entries carry the signed peer records
 *     ops.peer_record gives; received entries go to ops.px as they came);
 *   - fanout for topics we publish to without subscribing (mesh publish),
 *     forgotten fanout_ttl after the last publish; flood publishing (own
 *     messages to every subscriber above publish_threshold) per topic;
 *   - a message cache (mcache_len heartbeats, gossip about the last
 *     mcache_gossip) and IHAVE/IWANT: gossip to max(D_lazy, gossip_factor x
 *     eligible) non-mesh peers above gossip_threshold; IHAVE budgets per peer
 *     and heartbeat (max_ihave_messages, max_ihave_length); IWANT promises
 *     followed for iwant_followup, a broken one is a score event;
 *   - a seen cache (seen_ttl): duplicates are dropped before any signature
 *     check; IGNORE_RETRY and a bad signature do not mark the id seen (a
 *     forged copy must not shadow the genuine message);
 *   - explicit peers: never in a mesh, always sent every message of their
 *     topics, their RPCs always accepted, a GRAFT from them is refused;
 *   - IDONTWANT (v1.2): sent to mesh peers on the first receipt of a message
 *     whose data is larger than the topic's threshold (before validation);
 *     a peer's IDONTWANTs suppress sends of that id to it for idontwant_ttl;
 *   - per topic: StrictSign / StrictNoSign, the message-id function, the
 *     max data size, the IDONTWANT threshold, flood or mesh publish, the send
 *     priority and a cap on messages in validation;
 *   - graylisting: RPCs from peers scoring below graylist_threshold are
 *     ignored (counted); explicit peers are never graylisted.
 *
 * Message pipeline (one received Message):
 *   topic not subscribed -> dropped (counted); data over the topic's max,
 *   or the topic's signature policy broken -> INVALID score event (not
 *   seen); id computed; seen or in validation -> duplicate (score event when
 *   the copy was accepted, INVALID when rejected); `from` is our own id but
 *   we have no record of it -> dropped (counted); otherwise the message is
 *   copied once into a pooled frame (uvarint || RPC{publish=[msg]}: the bytes
 *   every forward shares), IDONTWANT goes out, and for StrictSign topics
 *   ops.verify runs; then ops.validate; then on ACCEPT: ops.deliver, the
 *   mcache, forwarding to mesh and explicit peers (not to the peer it came
 *   from, its author, peers that sent it during validation, or peers that
 *   said IDONTWANT). REJECT and IGNORE mark the id seen; IGNORE_RETRY does not.
 *
 * Errors. wisp_gs_router_handle_rpc() returns peer-class errors (see
 * actors/gossip/rpc.h) for RPCs that do not decode: the whole RPC is dropped
 * and the owner counts it and may close the stream. Semantic misbehaviour
 * (GRAFT in backoff, invalid messages, floods over budgets) is not an error:
 * it is counted and reported as score events. Local conditions:
 * WISP_ERR_INVALID_ARG (bad handle, bad argument), WISP_ERR_STATE (called
 * from inside a callback where not allowed), WISP_ERR_LIMIT (a configured
 * capacity is full), WISP_ERR_NOMEM.
 *
 * Callbacks run on the owner's thread inside the call that triggers them.
 * Inside any callback the owner may call only wisp_gs_router_verified(),
 * wisp_gs_router_validated() (the verdict is queued and applied when the
 * outermost router call returns) and the read-only queries; every other
 * call returns WISP_ERR_STATE (wisp_gs_router_free() must not be called).
 *
 * Memory: everything is allocated in wisp_gs_router_new(), sized by the
 * config: peers, per-peer subscription records, the topic table, the
 * mcache, the seen cache, the messages in validation, IWANT promises,
 * IDONTWANT sets, backoffs, and the RPC decode/encode scratch. Frames come
 * from the wisp_pool given at creation. Nothing is allocated per message.
 * Every bound that is hit is counted in wisp_gs_router_stats.
 *
 * Threads: a router belongs to one thread. wisp_gs_verify() (rpc.h) is pure
 * and may run on any thread.
 */
#ifndef WISP_ACTORS_GOSSIP_ROUTER_H
#define WISP_ACTORS_GOSSIP_ROUTER_H

#include <stdbool.h>

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#include "actors/gossip/rpc.h"
#include "runtime/buf.h"

/* Protocol versions of a peer (the meshsub protocol it negotiated). */
#define WISP_GS_PROTO_V10 0x10u /* /meshsub/1.0.0 */
#define WISP_GS_PROTO_V11 0x11u /* /meshsub/1.1.0: PX, backoff */
#define WISP_GS_PROTO_V12 0x12u /* /meshsub/1.2.0: IDONTWANT */

#define WISP_GS_ID_MAX 256u         /* hard bound on lim.max_id */
#define WISP_GS_NO_TOPIC UINT32_MAX /* events without a topic */
#define WISP_GS_NEVER UINT64_MAX    /* wisp_gs_router_expiry(): no timer */

/* The send priority: a class in the low byte (0 control, 1 own publish,
 * 2 forward, as the send queue orders them) and the topic's priority (0..255,
 * higher first within a class) in the second byte. With topic priority 0 the
 * value is just the class. */
enum { WISP_GS_PRIO_CONTROL = 0, WISP_GS_PRIO_PUBLISH = 1, WISP_GS_PRIO_FORWARD = 2 };
#define WISP_GS_PRIO(cls, topic_prio) ((int)(cls) | (int)(topic_prio) << 8)
#define WISP_GS_PRIO_CLASS(prio) ((prio) & 0xff)
#define WISP_GS_PRIO_TOPIC(prio) (((prio) >> 8) & 0xff)

typedef enum wisp_gs_sign_policy {
	WISP_GS_SIGN_STRICT, /* from, seqno (8 bytes), signature required and verified */
	WISP_GS_SIGN_NONE,   /* StrictNoSign: from, seqno, signature, key must be absent */
} wisp_gs_sign_policy;

typedef enum wisp_gs_msgid {
	WISP_GS_MSGID_DEFAULT,   /* from || seqno (go-libp2p and rust-libp2p default) */
	WISP_GS_MSGID_KEY_SEQNO, /* PublicKey protobuf of the author || seqno
				    (js-libp2p 2.x StrictSign default) */
	WISP_GS_MSGID_CONTENT,   /* SHA-256(data), 32 bytes (js StrictNoSign default) */
	WISP_GS_MSGID_CUSTOM,    /* profile.msgid_fn */
} wisp_gs_msgid;

typedef enum wisp_gs_verdict {
	WISP_GS_ACCEPT,       /* deliver, forward, cache */
	WISP_GS_REJECT,       /* invalid: the sender is penalized; id marked seen */
	WISP_GS_IGNORE,       /* drop quietly; id marked seen */
	WISP_GS_IGNORE_RETRY, /* drop quietly; id NOT marked seen: it may come again */
} wisp_gs_verdict;

#define WISP_GS_PROFILE_VERSION 1

/* Per-topic behaviour; copied at wisp_gs_router_subscribe(). Every node on a
 * topic must use the same sign policy and message-id function. */
typedef struct wisp_gs_topic_profile {
	uint32_t version;          /* WISP_GS_PROFILE_VERSION */
	wisp_gs_sign_policy sign;  /* default WISP_GS_SIGN_STRICT */
	wisp_gs_msgid msgid;       /* default WISP_GS_MSGID_DEFAULT */
	/* WISP_GS_MSGID_CUSTOM: pure function writing m's id into out[0..cap)
	 * (cap = lim.max_id); returns its length, 1..cap, or 0 when m has no id
	 * (the message is then invalid). */
	size_t (*msgid_fn)(void *ctx, const wisp_gs_message *m, uint8_t *out, size_t cap);
	void *msgid_ctx;
	uint32_t max_size;         /* data bytes; 0 = lim.max_message (default 0) */
	uint32_t idontwant_threshold; /* IDONTWANT for data longer than this; UINT32_MAX
					 = never (default 1000) */
	bool flood_publish;        /* own messages to every subscriber above
				      publish_threshold, else mesh/fanout (default true) */
	uint8_t priority;          /* WISP_GS_PRIO topic priority (default 0) */
	uint32_t max_validating;   /* messages of this topic in verification and
				      validation at once; 0 = only the global cap (default 0) */
} wisp_gs_topic_profile;

void wisp_gs_topic_profile_default(wisp_gs_topic_profile *p) WISP_NONNULL(1);

#define WISP_GS_CONFIG_VERSION 1

/* Router options. Fill with wisp_gs_config_default(), then change fields;
 * wisp_gs_router_new() copies the struct. Times in ns. */
typedef struct wisp_gs_config {
	uint32_t version; /* WISP_GS_CONFIG_VERSION */

	/* mesh degrees (v1.0/v1.1): defaults 8, 6, 12, 4, 2, 6. Need
	 * 1 <= d_lo <= d <= d_hi, d_score <= d, d_out < d_lo, d_out <= d / 2. */
	uint32_t d, d_lo, d_hi, d_score, d_out, d_lazy;
	uint64_t heartbeat_ns;        /* 1 s */
	uint64_t heartbeat_delay_ns;  /* first heartbeat after creation: 100 ms */
	uint64_t fanout_ttl_ns;       /* 60 s */
	uint32_t mcache_len;          /* heartbeats a message stays cached: 5 */
	uint32_t mcache_gossip;       /* heartbeats gossiped about: 3 (<= mcache_len) */
	uint64_t seen_ttl_ns;         /* 120 s */
	uint64_t prune_backoff_ns;    /* sent in our PRUNEs: 60 s */
	uint64_t unsubscribe_backoff_ns; /* PRUNEs when we unsubscribe: 10 s */
	uint64_t backoff_min_ns;      /* a remote backoff is clamped to [min, max]: 1 s */
	uint64_t backoff_max_ns;      /* 1 h */
	uint64_t backoff_slack_ns;    /* we wait this long past a backoff before grafting:
					 2 heartbeats (2 s) */
	uint64_t graft_flood_ns;      /* a GRAFT this soon after our PRUNE costs a second
					 penalty: 10 s */
	uint32_t opportunistic_graft_ticks; /* 60 (0 = off) */
	uint32_t opportunistic_graft_peers; /* 2 */
	double gossip_factor;         /* 0.25 */
	uint32_t max_ihave_length;    /* ids we ask one peer for per heartbeat, and ids in
					 our IHAVEs to one peer per heartbeat: 5000 */
	uint32_t max_ihave_messages;  /* IHAVE RPCs heeded from one peer per heartbeat: 10 */
	uint32_t max_iwant_serve;     /* messages sent to one peer for its IWANTs per
					 heartbeat: 1000 */
	uint64_t iwant_followup_ns;   /* an IWANT not answered in time is a broken promise: 3 s */
	bool do_px;                   /* PX in our PRUNEs: true */
	uint32_t px_peers;            /* peers suggested per PRUNE, and heeded per received
					 PRUNE: 16 */
	uint32_t max_idontwant_ids;   /* IDONTWANT ids heeded from one peer per heartbeat: 1000 */
	uint64_t idontwant_ttl_ns;    /* how long a peer's IDONTWANT suppresses sends: 3 s */
	uint64_t validate_timeout_ns; /* a message without verdict this long is dropped as
					 IGNORE (0 = wait forever): 30 s */
	uint64_t forward_ttl_ns;      /* `expires` given with forwards and IWANT replies
					 (now + ttl; 0 = never): 3 s */

	/* score thresholds (v1.1); scores come from ops.score */
	double gossip_threshold;      /* -4000 */
	double publish_threshold;     /* -8000 */
	double graylist_threshold;    /* -16000 */
	double accept_px_threshold;   /* 100 */
	double opportunistic_graft_threshold; /* 5 */

	/* capacities (bounded memory) */
	uint32_t max_peers;           /* peer handles are < this: 256 */
	uint32_t max_topics;          /* topics we subscribe or publish to: 256 */
	uint32_t max_remote_topics;   /* topics only peers subscribe to: 512 */
	uint32_t max_peer_subs;       /* subscriptions tracked per peer: 128 */
	uint32_t mcache_cap;          /* messages cached: 8192 */
	uint32_t seen_cap;            /* ids remembered: 65536 */
	uint32_t max_pending;         /* messages in verification/validation: 1024 */
	uint32_t max_promises;        /* IWANT ids in flight: 8192 */
	uint32_t max_idontwant;       /* IDONTWANT ids remembered, all peers: 16384 */
	uint32_t max_idontwant_peer;  /* ... one peer: 2048 */
	uint32_t max_backoffs;        /* (peer, topic) backoffs: 4096 */

	wisp_gs_limits lim;           /* RPC decode limits, also obeyed by what we send */
	wisp_gs_topic_profile default_profile; /* topics published to without a
						  subscription use it */
	uint64_t seed;                /* randomness (shuffles, seqnos, hash keys);
					 0 = from getrandom at creation */
} wisp_gs_config;

void wisp_gs_config_default(wisp_gs_config *c) WISP_NONNULL(1);

/* Score inputs. */
typedef enum wisp_gs_event_type {
	WISP_GS_EV_GRAFT,          /* peer joined our mesh of topic */
	WISP_GS_EV_PRUNE,          /* peer left our mesh of topic (aux: wisp_gs_prune_reason) */
	WISP_GS_EV_FIRST_DELIVERY, /* peer first delivered a message we then accepted */
	WISP_GS_EV_DUPLICATE,      /* peer delivered a copy of an accepted message; aux =
				      ms after our first receipt (UINT32_MAX unknown) */
	WISP_GS_EV_INVALID,        /* peer delivered an invalid message (aux:
				      wisp_gs_invalid_reason) */
	WISP_GS_EV_BROKEN_PROMISE, /* peer did not answer our IWANT within iwant_followup */
	WISP_GS_EV_BEHAVIOUR,      /* behaviour penalty (P7); aux = count (GRAFT in
				      backoff: 1, +1 within graft_flood) */
} wisp_gs_event_type;

typedef enum wisp_gs_prune_reason {
	WISP_GS_PRUNED_BY_PEER,   /* its PRUNE */
	WISP_GS_PRUNED_SCORE,     /* negative score */
	WISP_GS_PRUNED_EXCESS,    /* over D_hi */
	WISP_GS_PRUNED_UNSUB,     /* we or it unsubscribed */
	WISP_GS_PRUNED_GONE,      /* removed peer */
} wisp_gs_prune_reason;

typedef enum wisp_gs_invalid_reason {
	WISP_GS_INVALID_REJECTED,  /* the application said REJECT */
	WISP_GS_INVALID_SIGNATURE, /* StrictSign check failed */
	WISP_GS_INVALID_POLICY,    /* fields the topic's policy forbids or requires */
	WISP_GS_INVALID_TOO_LARGE, /* data over the topic's max */
	WISP_GS_INVALID_NO_ID,     /* the message-id function found no id */
} wisp_gs_invalid_reason;

typedef struct wisp_gs_score_event {
	wisp_gs_event_type type;
	uint32_t peer;
	uint32_t topic;            /* topic number, or WISP_GS_NO_TOPIC */
	const uint8_t *topic_name; /* valid during the callback */
	uint32_t topic_len;
	uint32_t aux;
	wisp_tstamp now;
} wisp_gs_score_event;

typedef struct wisp_gs_ops {
	/* One RPC frame for peer (uvarint length prefix included). frame is
	 * pooled and refcounted and may be shared with other peers: take a
	 * reference (wisp_buf_ref) to keep it; never write to it. prio:
	 * WISP_GS_PRIO(class, topic priority). expires: drop the frame if not
	 * sent by then (forwards and IWANT replies; 0 = never). Required. */
	void (*send)(void *ctx, uint32_t peer, wisp_buf *frame, int prio, wisp_tstamp expires);
	/* A new message on a StrictSign topic needs its signature checked: run
	 * wisp_gs_verify(m, ...) anywhere and call wisp_gs_router_verified(r,
	 * ref, ok, now). m points into frame; the router holds frame until the
	 * answer or validate_timeout, so a check that runs after the callback
	 * returns takes its own reference on frame (the struct *m is copied by
	 * value). NULL: the router verifies inline. */
	void (*verify)(void *ctx, uint64_t ref, wisp_buf *frame, const wisp_gs_message *m);
	/* Application validation; answer with wisp_gs_router_validated(r, ref,
	 * verdict, now). As for verify: m points into frame (reference it to use
	 * it after the callback), id is valid during the call only. NULL:
	 * ACCEPT. */
	void (*validate)(void *ctx, uint64_t ref, uint32_t topic, wisp_buf *frame,
			 const wisp_gs_message *m, const uint8_t *id, size_t id_len,
			 uint32_t from_peer);
	/* An accepted message for the application (own publishes are not
	 * delivered). m points into frame: take a reference to keep it. from_peer
	 * may have been removed meanwhile. Optional. */
	void (*deliver)(void *ctx, uint32_t topic, wisp_buf *frame, const wisp_gs_message *m,
			const uint8_t *id, size_t id_len, uint32_t from_peer);
	/* Score inputs for the scoring actor. Optional. */
	void (*score_event)(void *ctx, const wisp_gs_score_event *ev);
	/* A peer suggested by PX in a PRUNE from a peer scoring at least
	 * accept_px_threshold (at most px_peers per PRUNE): its id and its
	 * signed peer record (record NULL and record_len 0 when the entry had
	 * none), both as received, unchecked, valid during the call. Verifying
	 * the record and dialing are the owner's (codec/peer_record.h).
	 * Optional. */
	void (*px)(void *ctx, const uint8_t *peer_id, size_t len, const uint8_t *record, size_t record_len);
	/* The signed peer record of peer (from its identify), to send with it
	 * when PX names it; NULL when there is none. The bytes must stay valid
	 * until the router call that asked returns. At most
	 * WISP_GS_MAX_PEER_RECORD bytes are sent (a longer one is left out).
	 * Optional: without it PX entries carry the peer id only. */
	const uint8_t *(*peer_record)(void *ctx, uint32_t peer, size_t *len);
	/* The current score of peer (the owner's snapshot). NULL: 0 for all. */
	double (*score)(void *ctx, uint32_t peer);
} wisp_gs_ops;

typedef enum wisp_gs_pub_status {
	WISP_GS_PUB_OK,        /* queued to `peers` peers */
	WISP_GS_PUB_NO_PEERS,  /* no peer to send to now; the message is cached and
				  gossiped to peers that join the mesh */
	WISP_GS_PUB_TOO_LARGE, /* data over the topic's max size */
	WISP_GS_PUB_DUPLICATE, /* its id was seen already (content ids) */
	WISP_GS_PUB_NO_MEMORY, /* the buffer pool is exhausted */
	WISP_GS_PUB_NO_KEY,    /* StrictSign topic, router created without a key */
	WISP_GS_PUB_NO_TOPIC,  /* the topic table is full */
} wisp_gs_pub_status;

typedef struct wisp_gs_publish_result {
	wisp_gs_pub_status status;
	uint32_t peers;              /* frames queued */
	uint32_t id_len;
	uint8_t id[WISP_GS_ID_MAX];  /* the message id (when status is OK or NO_PEERS) */
} wisp_gs_publish_result;

typedef struct wisp_gs_router_stats {
	uint64_t heartbeats;
	uint64_t rpc_in, rpc_bad, rpc_graylisted, rpc_out, send_nomem;
	uint64_t subs_in, subs_capped, topics_capped, subs_ignored;
	uint64_t msg_in, msg_not_subscribed, msg_too_large, msg_policy, msg_no_id, msg_self;
	uint64_t msg_duplicate, msg_pending_full, msg_bad_signature;
	uint64_t msg_accepted, msg_rejected, msg_ignored, msg_retry, msg_validate_timeout;
	uint64_t msg_delivered, msg_forwarded, msg_idontwant_skipped;
	uint64_t pub_ok, pub_no_peers, pub_failed;
	uint64_t ihave_in, ihave_ignored, iwant_in_ids, iwant_served, iwant_unknown;
	uint64_t iwant_budget, iwant_out_ids, promises_broken, promises_dropped;
	uint64_t graft_in, graft_refused, graft_backoff, prune_in, px_accepted, px_ignored;
	uint64_t px_out, px_out_records; /* PX entries in our PRUNEs, and those with a record */
	uint64_t idontwant_in, idontwant_dropped, idontwant_out;
	uint64_t seen_evicted, mcache_evicted, backoff_dropped;
	uint64_t mesh_grafts, mesh_prunes; /* by us */
	uint32_t peers, topics, pending, mcache, seen, promises, idontwant, backoffs;
	uint32_t mesh, fanout; /* (peer, topic) pairs in our meshes and fanouts now */
} wisp_gs_router_stats;

typedef struct wisp_gs_router wisp_gs_router;

/* Create a router. cfg NULL: defaults; ops is copied (send is required);
 * ctx is passed to every callback. key: our identity, copied (wiped at free),
 * used to sign StrictSign publishes; NULL when every topic we publish to is
 * StrictNoSign. pool: where frames come from, borrowed (must outlive the
 * router). now: the first heartbeat is at now + heartbeat_delay.
 * Errors: WISP_ERR_INVALID_ARG (a config value out of range, send NULL),
 * WISP_ERR_IO (getrandom failed with seed 0), WISP_ERR_NOMEM. */
int wisp_gs_router_new(wisp_gs_router **out, const wisp_mem *mem, const wisp_gs_config *cfg,
		       const wisp_gs_ops *ops, void *ctx, const wisp_privkey *key, wisp_pool *pool,
		       wisp_tstamp now) WISP_NONNULL(1, 2, 4, 7) WISP_WARN_UNUSED;

/* Free the router: every buffer reference it holds is dropped, pending
 * verdicts are forgotten. No callbacks. NULL is allowed. Not from inside a
 * callback. */
void wisp_gs_router_free(wisp_gs_router *r);

/* A peer that speaks meshsub, with handle peer (< max_peers, not in use),
 * its peer id (copied), whether we dialed it (outbound counts for D_out),
 * whether it is an explicit peer, and its protocol (WISP_GS_PROTO_*). Our
 * subscriptions are sent to it at once. Errors: WISP_ERR_INVALID_ARG (handle
 * out of range, unknown protocol), WISP_ERR_EXISTS (handle in use),
 * WISP_ERR_STATE. */
int wisp_gs_router_add_peer(wisp_gs_router *r, uint32_t peer, const wisp_peer_id *id, bool outbound,
			    bool explicit_peer, uint32_t protocol, wisp_tstamp now)
	WISP_NONNULL(1, 3) WISP_WARN_UNUSED;

/* The peer is gone: it leaves every mesh (PRUNE score events), its
 * subscriptions are forgotten; backoffs with it stay (keyed by peer id).
 * Messages it sent that are in validation carry on. Unknown handles are
 * ignored. Not from inside a callback (ignored there). */
void wisp_gs_router_remove_peer(wisp_gs_router *r, uint32_t peer, wisp_tstamp now) WISP_NONNULL(1);

/* Subscribe to topic (len bytes, 1..lim.max_topic) with profile p (copied;
 * NULL: cfg.default_profile). The subscription is announced to every peer and
 * a mesh is formed (fanout peers first, then random eligible subscribers,
 * up to D) with GRAFTs. Subscribing again updates the profile only.
 * Errors: WISP_ERR_INVALID_ARG (topic length, profile: bad version,
 * StrictNoSign with an id made of from/seqno, CUSTOM without msgid_fn),
 * WISP_ERR_LIMIT (max_topics reached or the topic table is full),
 * WISP_ERR_STATE. */
int wisp_gs_router_subscribe(wisp_gs_router *r, const uint8_t *topic, size_t len,
			     const wisp_gs_topic_profile *p, wisp_tstamp now)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Leave topic: PRUNE (unsubscribe_backoff) to mesh peers, the change
 * announced to every peer. Errors: WISP_ERR_NOTFOUND (not subscribed),
 * WISP_ERR_STATE. */
int wisp_gs_router_unsubscribe(wisp_gs_router *r, const uint8_t *topic, size_t len,
			       wisp_tstamp now) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* One RPC from peer: p[0..n) is the payload of one frame (no length
 * prefix). buf, when not NULL, is the buffer p lies in; the router does not
 * keep it (a new message is copied once, into the pooled frame it is
 * forwarded in), so the caller may reuse p after the call. Callbacks run
 * inside. Returns 0 (including RPCs ignored from graylisted peers), or a
 * decode error (peer class: count it, maybe close the stream), or
 * WISP_ERR_INVALID_ARG (unknown peer), WISP_ERR_STATE. */
int wisp_gs_router_handle_rpc(wisp_gs_router *r, uint32_t peer, wisp_buf *buf, const uint8_t *p,
			      size_t n, wisp_tstamp now) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* The signature check for ref (from ops.verify) is done. ok false rejects
 * the message (score event; the id stays unseen). May be called from inside
 * a callback (applied when the outermost call returns). Errors:
 * WISP_ERR_NOTFOUND (stale or unknown ref, or not waiting for a signature). */
int wisp_gs_router_verified(wisp_gs_router *r, uint64_t ref, bool ok, wisp_tstamp now)
	WISP_NONNULL(1);

/* The application's verdict for ref (from ops.validate). May be called from
 * inside a callback. Errors: WISP_ERR_NOTFOUND (stale or unknown ref, or not
 * waiting for validation), WISP_ERR_INVALID_ARG (verdict). */
int wisp_gs_router_validated(wisp_gs_router *r, uint64_t ref, wisp_gs_verdict v, wisp_tstamp now)
	WISP_NONNULL(1);

/* Publish our own message on topic: builds the Message (StrictSign: from =
 * our peer id, seqno = 8 bytes big-endian of a counter that starts at a
 * random value, signature; key is left out since a secp256k1 key is inlined
 * in the peer id; StrictNoSign: data and topic only), computes the id, marks
 * it seen, caches it, and sends one shared frame to: every subscriber scoring
 * at least publish_threshold plus explicit peers (flood publish), else the
 * mesh (subscribed) or the fanout (not subscribed; formed on first use).
 * The topic's profile is the subscription's, else cfg.default_profile.
 * *out gets the status, the peer count and the id. Returns 0 when the
 * message was taken (status OK or NO_PEERS), else WISP_ERR_LIMIT (TOO_LARGE,
 * NO_TOPIC), WISP_ERR_EXISTS (DUPLICATE), WISP_ERR_NOMEM (NO_MEMORY),
 * WISP_ERR_STATE (NO_KEY, or inside a callback), WISP_ERR_INVALID_ARG (topic
 * length), WISP_ERR_CRYPTO (signing failed). */
int wisp_gs_router_publish(wisp_gs_router *r, const uint8_t *topic, size_t len, const uint8_t *data,
			   size_t n, wisp_tstamp now, wisp_gs_publish_result *out)
	WISP_NONNULL(1, 2, 7) WISP_WARN_UNUSED;

/* When wisp_gs_router_handle_expiry() has work (the next heartbeat). */
wisp_tstamp wisp_gs_router_expiry(const wisp_gs_router *r) WISP_NONNULL(1);

/* Run the heartbeat if due at now: expire backoffs, seen ids, IDONTWANTs,
 * promises (broken ones are score events), validations past their timeout;
 * maintain meshes and fanout; emit gossip; shift the mcache. One control RPC
 * per peer at most. Calling early does nothing. Errors: WISP_ERR_STATE. */
int wisp_gs_router_handle_expiry(wisp_gs_router *r, wisp_tstamp now) WISP_NONNULL(1);

void wisp_gs_router_stats_get(const wisp_gs_router *r, wisp_gs_router_stats *out)
	WISP_NONNULL(1, 2);

/* ---- read-only queries (also allowed inside callbacks) ------------------ */

/* The topic number of a known topic, or WISP_ERR_NOTFOUND. */
int64_t wisp_gs_router_topic_index(const wisp_gs_router *r, const uint8_t *topic, size_t len)
	WISP_NONNULL(1);

/* The name of topic number t (NULL if unknown); *len gets its length. */
const uint8_t *wisp_gs_router_topic_name(const wisp_gs_router *r, uint32_t t, size_t *len)
	WISP_NONNULL(1, 3);

/* Mesh (fanout: fanout = true) peers of topic into out[0..cap); returns how
 * many there are (may exceed cap), or WISP_ERR_NOTFOUND. */
int wisp_gs_router_mesh_peers(const wisp_gs_router *r, const uint8_t *topic, size_t len,
			      bool fanout, uint32_t *out, size_t cap) WISP_NONNULL(1, 2);

/* Peers subscribed to topic (as they announced), or WISP_ERR_NOTFOUND. */
int wisp_gs_router_topic_peers(const wisp_gs_router *r, const uint8_t *topic, size_t len)
	WISP_NONNULL(1, 2);

/* 1 when id is in the seen cache (or in validation), else 0. */
int wisp_gs_router_seen(const wisp_gs_router *r, const uint8_t *id, size_t len) WISP_NONNULL(1);

/* 1 when we are in backoff with peer on topic (it may not be grafted). */
int wisp_gs_router_backoff(const wisp_gs_router *r, uint32_t peer, const uint8_t *topic,
			   size_t len, wisp_tstamp now) WISP_NONNULL(1, 3);

/* Walks every structure and checks its bookkeeping (topic lists against
 * per-peer records and counters, flags, the topic index, caches against
 * their maps, reference counts held per topic). O(size of the router): for
 * tests and verify builds. Returns 0 or WISP_ERR_INTERNAL. */
int wisp_gs_router_check(const wisp_gs_router *r) WISP_NONNULL(1);

/* Our own peer id (empty when the router has no key). */
const wisp_peer_id *wisp_gs_router_peer_id(const wisp_gs_router *r) WISP_NONNULL(1);

/* The id topic's profile gives m, written to out (cap >= lim.max_id).
 * Returns its length, or 0 when m has none. Pure. */
size_t wisp_gs_message_id(const wisp_gs_topic_profile *p, const wisp_gs_message *m, uint8_t *out,
			  size_t cap) WISP_NONNULL(1, 2, 3);

#endif
