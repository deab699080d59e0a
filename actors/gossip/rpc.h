/* gossipsub RPCs (/meshsub/1.0.0, 1.1.0, 1.2.0): the wire types, a bounded
 * zero-copy decoder, an encoder, and the StrictSign helpers.
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
 * Every field is proto2 `optional`: presence matters. A Message field that
 * was on the wire has its has_* flag set even when it is empty, and the
 * encoder writes exactly the fields whose flag is set, in field-number order.
 * That is how go, rust and js re-encode a message to check its signature, so
 * wisp_gs_sign_bytes() reproduces what the author signed.
 *
 * On a stream each RPC is one uvarint length-prefixed frame (codec/frame.h).
 *
 * Decoding never allocates: slices point into the caller's buffer, and every
 * count is checked against wisp_gs_limits BEFORE any entry is used: a first
 * pass walks the protobuf structure only (keys and lengths), counts and
 * refuses with WISP_ERR_TOO_LARGE as soon as a count passes its limit; the
 * second pass fills the arrays. A control flood is refused before the router
 * looks at a single id. Unknown fields are skipped; a repeated singular field
 * keeps its last value; several ControlMessage fields are merged (protobuf
 * semantics).
 *
 * Errors (all in the peer class, wisp_err_is_peer()):
 *   WISP_ERR_TOO_LARGE   the RPC, a field, or a count is over a limit;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_WIRE_TYPE, WISP_ERR_MALFORMED
 *                        from codec/pb.h: not a well-formed protobuf, or a
 *                        known field with the wrong wire type.
 *
 * Threads: pure functions over caller memory; a wisp_gs_rpc is used by one
 * thread at a time. wisp_gs_verify() may run on any thread.
 */
#ifndef WISP_ACTORS_GOSSIP_RPC_H
#define WISP_ACTORS_GOSSIP_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#include "runtime/buf.h"

/* StrictSign signs "libp2p-pubsub:" || Message without signature and key. */
#define WISP_GS_SIGN_PREFIX "libp2p-pubsub:"
#define WISP_GS_SIGN_PREFIX_LEN 14

/* Fixed bounds on Message fields that no limit covers (a peer id is at most
 * 44 bytes, an RSA-4096 key about 550): longer is WISP_ERR_TOO_LARGE. */
#define WISP_GS_MAX_FROM 64u
#define WISP_GS_MAX_SEQNO 64u
#define WISP_GS_MAX_SIGNATURE 1024u
#define WISP_GS_MAX_KEY 1024u
#define WISP_GS_MAX_PEER_RECORD 8192u /* PeerInfo.signedPeerRecord */

/* StrictSign seqnos are 8 bytes (big-endian counter or random). */
#define WISP_GS_SEQNO_LEN 8u

typedef struct wisp_gs_bytes {
	const uint8_t *data; /* may be NULL when len is 0 */
	uint32_t len;
} wisp_gs_bytes;

typedef struct wisp_gs_subopt {
	bool subscribe;       /* absent = false (unsubscribe) */
	wisp_gs_bytes topic;  /* absent = empty */
} wisp_gs_subopt;

typedef struct wisp_gs_message {
	bool has_from, has_data, has_seqno, has_topic, has_signature, has_key;
	wisp_gs_bytes from, data, seqno, topic, signature, key;
	/* The Message encoding as received (the publish field's payload); the
	 * encoder writes it as is when raw.data is not NULL. Set raw to {0} to
	 * encode from the fields. */
	wisp_gs_bytes raw;
} wisp_gs_message;

/* A range [first, first + n) of wisp_gs_rpc.ids or .px. */
typedef struct wisp_gs_range {
	uint32_t first, n;
} wisp_gs_range;

typedef struct wisp_gs_ihave {
	wisp_gs_bytes topic;
	wisp_gs_range ids;
} wisp_gs_ihave;

typedef struct wisp_gs_prune {
	wisp_gs_bytes topic;
	bool has_backoff;
	uint64_t backoff;  /* seconds, as sent (the router clamps it) */
	wisp_gs_range px;  /* PeerInfo entries in wisp_gs_rpc.px */
} wisp_gs_prune;

typedef struct wisp_gs_peer_info {
	bool has_record;
	wisp_gs_bytes peer_id;
	wisp_gs_bytes record; /* signedPeerRecord, not parsed */
} wisp_gs_peer_info;

typedef struct wisp_gs_limits {
	uint32_t max_rpc;       /* bytes of one RPC (default 1 MiB + 64 KiB) */
	uint32_t max_subs;      /* SubOpts in one RPC (default 256) */
	uint32_t max_messages;  /* published messages in one RPC (default 128) */
	uint32_t max_message;   /* bytes of one Message's data (default 1 MiB) */
	uint32_t max_ihave;     /* ControlIHave entries (default 128) */
	uint32_t max_iwant;     /* ControlIWant entries (default 128) */
	uint32_t max_ids;       /* message ids over all IHAVE/IWANT/IDONTWANT (default 5000) */
	uint32_t max_graft;     /* ControlGraft entries (default 128) */
	uint32_t max_prune;     /* ControlPrune entries (default 128) */
	uint32_t max_px;        /* PeerInfo over all PRUNEs (default 64) */
	uint32_t max_idontwant; /* ControlIDontWant entries (default 128) */
	uint32_t max_topic;     /* bytes of a topic string (default 256) */
	uint32_t max_id;        /* bytes of a message id (default 128) */
} wisp_gs_limits;

void wisp_gs_limits_default(wisp_gs_limits *l) WISP_NONNULL(1);

/* 0, or WISP_ERR_INVALID_ARG when a limit is 0, max_message does not fit in
 * max_rpc, or a count is over 2^20. */
int wisp_gs_limits_check(const wisp_gs_limits *l) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* A decoded RPC, and the input of the encoder. Arrays are sized by the
 * limits given to wisp_gs_rpc_new(); counts say how many entries are used.
 * Message ids: every IHAVE's ids, then every IWANT's, then every
 * IDONTWANT's, each entry a range in ids[]. */
typedef struct wisp_gs_rpc {
	uint32_t n_subs, n_msgs, n_ihave, n_iwant, n_graft, n_prune, n_idontwant;
	uint32_t n_ids, n_px;
	bool has_control; /* a ControlMessage field was present (possibly empty) */
	wisp_gs_subopt *subs;
	wisp_gs_message *msgs;
	wisp_gs_ihave *ihave;
	wisp_gs_range *iwant;     /* ranges of ids */
	wisp_gs_bytes *graft;     /* topics */
	wisp_gs_prune *prune;
	wisp_gs_range *idontwant; /* ranges of ids */
	wisp_gs_bytes *ids;
	wisp_gs_peer_info *px;
	wisp_gs_limits lim;       /* the limits the arrays are sized by */
	const wisp_mem *mem;
} wisp_gs_rpc;

/* One allocation holding the struct and every array, sized by lim (NULL:
 * the defaults). Errors: WISP_ERR_INVALID_ARG (wisp_gs_limits_check()),
 * WISP_ERR_NOMEM. */
int wisp_gs_rpc_new(wisp_gs_rpc **out, const wisp_mem *mem, const wisp_gs_limits *lim)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;
void wisp_gs_rpc_free(wisp_gs_rpc *rpc);

/* Empties rpc (counts to 0), for building an RPC to encode. */
void wisp_gs_rpc_clear(wisp_gs_rpc *rpc) WISP_NONNULL(1);

/* Decodes p[0..n) (the payload of one frame) into rpc, whose slices then
 * borrow p. On error rpc is left empty. Errors: see the top of this file. */
int wisp_gs_rpc_decode(wisp_gs_rpc *rpc, const uint8_t *p, size_t n) WISP_NONNULL(1)
	WISP_WARN_UNUSED;

/* Decodes one Message encoding (fields bounded by lim; raw = the input).
 * Errors: as wisp_gs_rpc_decode(). */
int wisp_gs_message_decode(wisp_gs_message *m, const uint8_t *p, size_t n,
			   const wisp_gs_limits *lim) WISP_NONNULL(1, 4) WISP_WARN_UNUSED;

/* Encoded size of rpc (no frame prefix). Entries are written in field order:
 * subscriptions, messages, then one ControlMessage when has_control or any
 * control count is non-zero. */
size_t wisp_gs_rpc_size(const wisp_gs_rpc *rpc) WISP_NONNULL(1);

/* Writes rpc into out[0..cap). Returns the length or WISP_ERR_NOBUF. A
 * canonical input (fields in order, no unknown fields, one ControlMessage)
 * re-encodes to the same bytes. */
ssize_t wisp_gs_rpc_encode(const wisp_gs_rpc *rpc, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* rpc as one frame, uvarint(len) || RPC, in a new buffer from pool (refs 1,
 * len set; the caller owns that reference). Errors: WISP_ERR_NOMEM (the pool
 * is exhausted or the frame is over its largest class). */
int wisp_gs_rpc_frame(const wisp_gs_rpc *rpc, wisp_pool *pool, wisp_buf **out)
	WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;

/* Size of m's encoding; with_sig_key false leaves out signature and key
 * (what StrictSign signs). Raw is ignored: always from the fields. */
size_t wisp_gs_message_size(const wisp_gs_message *m, bool with_sig_key) WISP_NONNULL(1);

/* Writes m from its fields (has_* set: written, even when empty), in field
 * order. Returns the length or WISP_ERR_NOBUF. */
ssize_t wisp_gs_message_encode(const wisp_gs_message *m, bool with_sig_key, uint8_t *out,
			       size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* One published message as a complete frame, uvarint(len) || RPC{publish =
 * [m]}, the bytes every peer it goes to is sent. The message is m->raw when
 * set, else encoded from the fields. *msg_off (if not NULL) gets the offset of
 * the Message encoding inside the frame (to decode it in place).
 * Errors: WISP_ERR_NOMEM (pool exhausted or too large for it). */
int wisp_gs_publish_frame(const wisp_gs_message *m, wisp_pool *pool, wisp_buf **out,
			  size_t *msg_off) WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;

/* Size of the bytes StrictSign signs for m: the prefix plus m without
 * signature and key. */
size_t wisp_gs_sign_bytes_size(const wisp_gs_message *m) WISP_NONNULL(1);

/* Writes "libp2p-pubsub:" || Message(m without signature and key) to out:
 * re-encoded from the fields, in field-number order, exactly the fields that
 * are present, as go, rust and js do when they sign and verify. Returns the
 * length or WISP_ERR_NOBUF. */
ssize_t wisp_gs_sign_bytes(const wisp_gs_message *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Signs m (from, data, seqno, topic must be set as they will be sent) with
 * key into sig[0..cap); scratch holds the bytes to sign (at least
 * wisp_gs_sign_bytes_size(m)). Returns the signature length, WISP_ERR_NOBUF
 * or WISP_ERR_CRYPTO. */
ssize_t wisp_gs_sign(const wisp_gs_message *m, const wisp_privkey *key, uint8_t *scratch,
		     size_t scratch_cap, uint8_t *sig, size_t cap) WISP_NONNULL(1, 2, 5)
	WISP_WARN_UNUSED;

/* The StrictSign check, pure and thread-safe: from is a peer id; the public
 * key is `key` when present (a PublicKey protobuf, which must be the key of
 * `from` when `from` embeds one) or else the one inlined in `from`; seqno is 8
 * bytes; the signature verifies over wisp_gs_sign_bytes(m), written to
 * scratch (at least wisp_gs_sign_bytes_size(m) bytes: for a verifying thread,
 * one buffer of max_message + 2 KiB serves every message). Returns 0 or
 *   WISP_ERR_MALFORMED     from, seqno or signature missing, seqno not 8 bytes;
 *   WISP_ERR_PEER_ID       from is not a peer id, or key is not from's key,
 *                          or neither gives a key;
 *   WISP_ERR_BAD_KEY, WISP_ERR_UNKNOWN_CODE  key does not parse / is not
 *                          secp256k1 (wisp verifies secp256k1 only);
 *   WISP_ERR_BAD_SIGNATURE the signature does not verify;
 *   WISP_ERR_NOBUF         scratch too small (a local error);
 *   WISP_ERR_CRYPTO        the crypto library failed (local). */
int wisp_gs_verify(const wisp_gs_message *m, uint8_t *scratch, size_t scratch_cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

#endif
