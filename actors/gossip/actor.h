/* The gossip actor: hosts the gossipsub router (actors/gossip/router.h) and
 * connects it to the rest of the node.
 *
 *   workers  -> PEER_UP / PEER_DOWN / RPC / DROPPED (net/pubsub.h), and
 *               VERIFIED answers to signature checks it dealt them;
 *   router   -> frames to the worker holding each peer's connection (with
 *               their priority class and expiry), signature checks dealt to
 *               the workers round robin (they do not serialize on this
 *               thread), messages to validate and deliver to the
 *               application, score inputs to the scoring actor;
 *   scoring  -> snapshots of every peer's score, which the router reads;
 *   handle   -> subscribe, unsubscribe, publish, validation verdicts;
 *   workers  -> RECORD: a peer's signed peer record from identify (already
 *               verified), kept per connection (pooled, one per connection,
 *               released with it) and sent in our PRUNEs' PX;
 *   router   -> PX from trusted peers: the entry's record is verified here
 *               and its peer, when worth it, dialed by the peers actor
 *               (WISP_PMSG_PX_DIAL) while the node has fewer than D_hi
 *               gossip peers, PX dials in flight included.
 *
 * Peers are the router's small handles; one per peer id (gossip stays on the
 * first connection to a peer; RPCs on a second one are counted as
 * unknown_conn).
 *
 * State is touched by the actor's thread only.
 */
#ifndef WISP_ACTORS_GOSSIP_ACTOR_H
#define WISP_ACTORS_GOSSIP_ACTOR_H

#include <wisp/wisp.h>

#include "actors/gossip/router.h"
#include "peerset/peers.h"
#include "runtime/loop.h"

struct wisp_node;

enum wisp_gossip_msg {
	/* 100..103 and 105 come from workers: net/pubsub.h */
	WISP_GMSG_VERIFIED = 104,    /* from a worker: a: ref, b: 1 ok / 0 bad */
	WISP_GMSG_SCORES = 110,      /* from scoring: a: entries, b: the PEER_ADD sequence number it
					reflects (actors/scoring/actor.h), buf: double[a] */
	WISP_GMSG_SUBSCRIBE = 120,   /* from the handle: b: cookie, buf: wisp_gossip_sub */
	WISP_GMSG_UNSUBSCRIBE = 121, /* b: cookie, buf: wisp_gossip_sub (opts unused) */
	WISP_GMSG_PUBLISH = 122,     /* b: cookie, buf: wisp_gossip_pub + topic + data */
	WISP_GMSG_VALIDATE = 123,    /* a: ref, b: wisp_verdict */
};

typedef struct wisp_gossip_sub {
	char topic[256];
	uint32_t len;
	wisp_topic_opts opts;
} wisp_gossip_sub;

typedef struct wisp_gossip_pub {
	uint32_t topic_len;
	uint32_t data_len;
	/* topic bytes, then data bytes */
} wisp_gossip_pub;

typedef struct wisp_gossip wisp_gossip;

extern const wisp_actor_ops wisp_gossip_ops;

/* Errors: WISP_ERR_NOMEM, WISP_ERR_INVALID_ARG (cfg). */
int wisp_gossip_new(wisp_gossip **out, struct wisp_node *node, const wisp_gs_config *cfg);
void wisp_gossip_free(wisp_gossip *g);

/* A test hook: the configuration wisp_node_start() creates the router from.
 * Between wisp_node_new() and wisp_node_start(), on the controlling thread,
 * a test may shorten its times (heartbeat_ns, backoff_slack_ns, mcache_len,
 * iwant_followup_ns, ...) so that what takes minutes with the defaults runs
 * in seconds. The capacities (max_peers, max_topics, max_remote_topics,
 * lim) sized the actor's tables at wisp_gossip_new() and must not change. */
wisp_gs_config *wisp_gossip_config_for_tests(wisp_gossip *g);

typedef struct wisp_gossip_stats {
	wisp_stat peers, peers_refused, rpc_errors, unknown_conn, verify_dealt, verify_inline;
	wisp_stat verify_failed, delivered, events_dropped, send_failed, frames_dropped;
	wisp_stat decompress_failed; /* compressed topics: received data that did not decompress */
	/* PX entries the router handed over: not followed (no record, no TCP
	 * address, ourselves, a peer we have or dial, enough peers, no buffer),
	 * refused records, records with a key we do not verify, dials asked of
	 * the peers actor */
	wisp_stat px_ignored, px_bad_record, px_unsupported_key, px_dialed;
} wisp_gossip_stats;
const wisp_gossip_stats *wisp_gossip_stats_of(const wisp_gossip *g);
/* The router's counters as of the actor's last message or heartbeat (the
 * actor's thread copies them word by word; any thread reads them). */
void wisp_gossip_router_stats(const wisp_gossip *g, wisp_gs_router_stats *out);

/* What a PX entry's record allows. */
typedef enum wisp_px_verdict {
	WISP_PX_DIAL,            /* *out is the dial: the record's peer, one TCP address */
	WISP_PX_NO_RECORD,       /* the entry came without one */
	WISP_PX_BAD_RECORD,      /* it does not open (codec/peer_record.h), or it is
				    another peer's than the entry's */
	WISP_PX_UNSUPPORTED_KEY, /* signed with a key type wisp does not verify */
	WISP_PX_NO_ADDR,         /* no address wisp can dial (/ip4|ip6/../tcp/..) */
} wisp_px_verdict;

/* The check the actor makes on a PX entry for peer entry with record
 * record[0..len): opens and verifies the record, requires it to name entry,
 * and picks the address to dial (the first that is not loopback, else the
 * first). Pure; any thread. */
wisp_px_verdict wisp_gossip_px_record(const wisp_peer_id *entry, const uint8_t *record, size_t len,
				      wisp_dial_req *out) WISP_NONNULL(1, 4);

#endif
