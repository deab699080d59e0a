/* gossipsub RPCs (/meshsub/1.0.0, 1.1.0, 1.2.0): the wire types, a bounded
 * zero-copy decoder and an encoder.
 *
 *   message RPC {
 *     repeated SubOpts subscriptions = 1;   SubOpts { bool subscribe = 1; string topicid = 2; }
 *     repeated Message publish = 2;
 *     ControlMessage control = 3;
 *   }
 *   message Message { bytes from = 1; bytes data = 2; bytes seqno = 3; string topic = 4;
 *                     bytes signature = 5; bytes key = 6; }
 *   message ControlMessage { repeated ControlIHave ihave = 1; repeated ControlIWant iwant = 2;
 *                            repeated ControlGraft graft = 3; repeated ControlPrune prune = 4;
 *                            repeated ControlIDontWant idontwant = 5; }
 *   ControlIHave { string topicID = 1; repeated bytes messageIDs = 2; }
 *   ControlIWant { repeated bytes messageIDs = 1; }
 *   ControlGraft { string topicID = 1; }
 *   ControlPrune { string topicID = 1; repeated PeerInfo peers = 2; uint64 backoff = 3; }
 *   PeerInfo     { bytes peerID = 1; bytes signedPeerRecord = 2; }
 *   ControlIDontWant { repeated bytes messageIDs = 1; }
 *
 * On a stream each RPC is one uvarint length-prefixed frame.
 *
 * Decoding never allocates: slices point into the caller's buffer, and every
 * count is checked against the limits below BEFORE the entries are looked at
 * (a first pass counts, a second fills), so a peer cannot make us walk more
 * than the limits allow ("control-message budgets checked before decoding").
 */
#ifndef WISP_ACTORS_GOSSIP_RPC_H
#define WISP_ACTORS_GOSSIP_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/common.h>

typedef struct wisp_gs_bytes {
	const uint8_t *data; /* NULL when len is 0 */
	uint32_t len;
} wisp_gs_bytes;

typedef struct wisp_gs_subopt {
	bool subscribe;
	wisp_gs_bytes topic;
} wisp_gs_subopt;

typedef struct wisp_gs_message {
	bool has_from, has_seqno, has_signature, has_key;
	wisp_gs_bytes from, data, seqno, topic, signature, key;
	/* The whole Message encoding as received (for re-encoding without
	 * signature when verifying, and for forwarding as is). */
	wisp_gs_bytes raw;
} wisp_gs_message;

typedef struct wisp_gs_ihave {
	wisp_gs_bytes topic;
	uint32_t first_id, n_ids; /* a range of wisp_gs_rpc.ids */
} wisp_gs_ihave;

typedef struct wisp_gs_prune {
	wisp_gs_bytes topic;
	bool has_backoff;
	uint64_t backoff; /* seconds, as sent (clamp before use) */
	uint32_t first_px, n_px; /* a range of wisp_gs_rpc.px */
} wisp_gs_prune;

typedef struct wisp_gs_limits {
	uint32_t max_rpc;          /* bytes of one RPC frame (default 1 MiB + 64 KiB) */
	uint32_t max_subs;         /* subscriptions in one RPC (default 256) */
	uint32_t max_messages;     /* published messages in one RPC (default 128) */
	uint32_t max_message;      /* bytes of one Message's data (default 1 MiB) */
	uint32_t max_ihave;        /* IHAVE entries (default 128) */
	uint32_t max_iwant;        /* IWANT entries (default 128) */
	uint32_t max_ids;          /* message ids over all IHAVE/IWANT/IDONTWANT (default 5000) */
	uint32_t max_graft;        /* GRAFT entries (default 128) */
	uint32_t max_prune;        /* PRUNE entries (default 128) */
	uint32_t max_px;           /* PeerInfo over all PRUNEs (default 64) */
	uint32_t max_idontwant;    /* IDONTWANT entries (default 128) */
	uint32_t max_topic;        /* bytes of a topic string (default 256) */
	uint32_t max_id;           /* bytes of a message id (default 128) */
} wisp_gs_limits;

void wisp_gs_limits_default(wisp_gs_limits *l) WISP_NONNULL(1);

/* A decoded RPC: fixed arrays sized by the limits, owned by the caller
 * (allocate one per decoder with wisp_gs_rpc_new()). */
typedef struct wisp_gs_rpc {
	uint32_t n_subs, n_msgs, n_ihave, n_iwant_ids, n_graft, n_prune, n_idontwant_ids;
	uint32_t n_ids, n_px;
	wisp_gs_subopt *subs;
	wisp_gs_message *msgs;
	wisp_gs_ihave *ihave;
	wisp_gs_bytes *ids;         /* every message id of ihave, then iwant, then idontwant */
	uint32_t first_iwant_id;    /* iwant ids are ids[first_iwant_id .. + n_iwant_ids) */
	uint32_t first_idontwant_id;
	wisp_gs_bytes *graft;       /* topics */
	wisp_gs_prune *prune;
	wisp_gs_bytes *px;          /* PeerInfo.peerID of every prune, in order */
	wisp_gs_limits lim;
} wisp_gs_rpc;

#endif
