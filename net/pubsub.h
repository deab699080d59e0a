/* gossipsub's streams, on the worker that owns the connection.
 *
 * Per peer, gossipsub uses two long-lived streams: ours, write-only, and the
 * peer's, which we only read. This module keeps both next to the socket:
 *
 *   inbound   RPC frames (uvarint length, at most the RPC limit, checked
 *             from the prefix) are cut out of the stream into pooled buffers
 *             and handed to the gossip actor; a frame over the limit resets
 *             the stream and counts a peer error;
 *   outbound  the gossip actor hands frames here with a queue level (a
 *             class, control > own publish > forward, and the topic's
 *             priority: a high-priority topic's publishes and forwards go
 *             ahead of every normal one) and, for forwards, an expiry. They
 *             wait in a per-connection queue bounded in bytes and are fed to
 *             the stream in level order while it drains; a stale forward is
 *             dropped when its turn comes. A frame that does not fit the
 *             budget evicts the newest frames of lower levels, lowest first,
 *             and is dropped itself only when those do not make room. Every
 *             drop is counted and reported to the actor (a peer that cannot
 *             keep up).
 *
 * The gossip actor hears WISP_GMSG_PEER_UP when the first gossipsub stream of
 * a connection is open (either direction), WISP_GMSG_PEER_DOWN when that
 * connection ends (also when only a record was sent for it, so the actor
 * lets the record go), WISP_GMSG_RPC for every frame, and WISP_GMSG_RECORD
 * with the peer's signed peer record from identify (before or after
 * PEER_UP: identify and gossipsub negotiate side by side).
 *
 * Worker thread only.
 */
#ifndef WISP_NET_PUBSUB_H
#define WISP_NET_PUBSUB_H

#include "net/shard.h"

struct wisp_node;

#define WISP_PROTO_MESHSUB_12 "/meshsub/1.2.0"
#define WISP_PROTO_MESHSUB_11 "/meshsub/1.1.0"
#define WISP_PROTO_MESHSUB_10 "/meshsub/1.0.0"

/* Queue levels, fed in this order. */
enum {
	WISP_PUBSUB_CONTROL = 0,
	WISP_PUBSUB_PUBLISH_HIGH = 1, /* own publish on a high-priority topic */
	WISP_PUBSUB_FORWARD_HIGH = 2, /* forward (or IWANT reply) on a high-priority topic */
	WISP_PUBSUB_PUBLISH = 3,
	WISP_PUBSUB_FORWARD = 4,
	WISP_PUBSUB_LEVELS = 5
};

/* Messages the gossip actor takes from workers. */
enum wisp_gossip_wmsg {
	WISP_GMSG_PEER_UP = 100,   /* a: conn ref, buf: wisp_pubsub_peer */
	WISP_GMSG_PEER_DOWN = 101, /* a: conn ref */
	WISP_GMSG_RPC = 102,       /* a: conn ref, buf: one RPC (the frame's payload, len set) */
	WISP_GMSG_DROPPED = 103,   /* a: conn ref, b: frames dropped << 8 | level */
	WISP_GMSG_RECORD = 105,    /* a: conn ref, b: seq, buf: the peer's signed record (verified) */
};

typedef struct wisp_pubsub_peer {
	wisp_peer_id peer;
	uint32_t version;  /* 10, 11 or 12: the protocol the stream agreed */
	bool outbound;     /* we dialed the connection */
	bool has_ip;
	uint8_t ip[16];    /* the remote address (IPv4 v4-mapped), for IP colocation scoring */
} wisp_pubsub_peer;

/* Add the three /meshsub protocols to the node's table (before start). */
int wisp_pubsub_register(struct wisp_node *n);

/* A connection reached its session: open our stream (1.2.0, then 1.1.0,
 * 1.0.0). */
void wisp_pubsub_upgraded(wisp_shard_conn *sc);
/* identify brought the peer's signed record (verified, naming the
 * connection's peer): a copy goes to the gossip actor for PX. Counted in
 * actor_full when it cannot be sent. */
void wisp_pubsub_peer_record(wisp_shard_conn *sc, const uint8_t *record, size_t len, uint64_t seq);
/* The connection ends: release the queue, tell the actor. */
void wisp_pubsub_closed(wisp_shard_conn *sc);

/* WMSG_GS_SEND: queue frame (a reference is taken) for the connection ref
 * resolves to, at queue level `level` and, for forwards, with an expiry
 * (0 = none). */
void wisp_pubsub_send(wisp_shard *s, wisp_conn_ref ref, wisp_buf *frame, int level, wisp_tstamp expires);

#endif
