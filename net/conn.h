/* A libp2p connection, sans-I/O: TCP bytes in, TCP bytes out.
 *
 * The connection runs the upgrade and then the streams:
 *
 *   multistream-select "/noise"  ->  Noise XX (identities checked)
 *   -> "/yamux/1.0.0", agreed inside the Noise handshake when both sides list
 *      it there (as js-libp2p and go-libp2p do), else by multistream-select
 *      over the secure channel
 *   -> yamux; every stream runs its own multistream-select and is then
 *      served by the handler its protocol registered (wisp_proto).
 *
 * The owner (a network worker) feeds received bytes to wisp_conn_read(),
 * takes ready-to-send buffers from wisp_conn_pull() (sealed Noise frames,
 * each a pooled buffer), and calls wisp_conn_handle_expiry() at
 * wisp_conn_expiry(). After any error the connection is failed: the owner
 * closes the socket and frees the connection.
 *
 * Streams are served by handlers (wisp_stream_ops): they are called on the
 * connection's thread, from inside wisp_conn_read() / wisp_conn_pull() /
 * wisp_conn_free(); they may write to, close or reset any stream of the
 * connection and open new ones, but must not free the connection.
 *
 * One owner thread per connection.
 */
#ifndef WISP_NET_CONN_H
#define WISP_NET_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#include "net/mss.h"
#include "net/yamux.h"
#include "runtime/buf.h"

typedef struct wisp_conn wisp_conn;
typedef struct wisp_stream wisp_stream;
typedef struct wisp_proto wisp_proto;

/* ---- protocols ---------------------------------------------------------- */

/* How a negotiated stream is served. */
typedef struct wisp_stream_ops {
	/* Negotiation finished (inbound: the peer asked for this protocol;
	 * outbound: the peer accepted it). Set s->user here. Return < 0 to
	 * reset the stream (closed() still follows). */
	int (*open)(wisp_stream *s);
	/* n > 0 bytes, valid during the call. The handler calls
	 * wisp_stream_consumed() for bytes it is done with (here or later);
	 * the peer's window reopens only then. */
	void (*data)(wisp_stream *s, const uint8_t *p, size_t n);
	/* The peer half-closed. Optional. */
	void (*fin)(wisp_stream *s);
	/* Queued bytes fell below the writable mark. Optional. */
	void (*writable)(wisp_stream *s);
	/* Last call for s: 0 after a clean close both ways; WISP_ERR_RESET
	 * (the peer reset), WISP_ERR_CLOSED (we reset, or the connection
	 * ended), WISP_ERR_REFUSED (outbound: the peer does not speak the
	 * protocol), or the connection's error. */
	void (*closed)(wisp_stream *s, int err);
} wisp_stream_ops;

struct wisp_proto {
	const char *id;            /* e.g. "/ipfs/ping/1.0.0"; borrowed, lives as long as the table */
	const wisp_stream_ops *ops;
	void *ctx;                 /* the handler's, read as s->proto->ctx */
	uint32_t max_streams;      /* open streams of this protocol per connection, both directions */
	uint32_t index;            /* in its table */
	bool outbound_only;        /* we open it; inbound requests hear "na" (not advertised) */
};

#define WISP_PROTO_MAX 32

/* The protocols a node serves and may open. Filled before the node starts
 * and read-only afterwards, so every worker reads it without locks. */
typedef struct wisp_proto_table {
	wisp_proto p[WISP_PROTO_MAX];
	uint32_t n;
} wisp_proto_table;

/* Add a protocol. Errors: WISP_ERR_LIMIT (table full), WISP_ERR_EXISTS,
 * WISP_ERR_INVALID_ARG (an id multistream-select cannot carry, no ops,
 * max_streams 0). */
int wisp_proto_add(wisp_proto_table *t, const char *id, const wisp_stream_ops *ops, void *ctx,
		   uint32_t max_streams) WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;
const wisp_proto *wisp_proto_find(const wisp_proto_table *t, const char *id, size_t len) WISP_NONNULL(1, 2);

/* ---- streams ------------------------------------------------------------ */

enum wisp_stream_state {
	STREAM_EXPECT_NEGOTIATION, /* multistream-select on the stream */
	STREAM_OPEN,               /* served by its handler */
	STREAM_CLOSED,             /* closed() delivered; memory about to go */
};

struct wisp_stream {
	wisp_conn *conn;
	uint32_t id;               /* yamux stream id */
	bool outbound;
	enum wisp_stream_state state;
	const wisp_proto *proto;   /* the negotiated (outbound: requested) protocol */
	void *user;                /* the handler's */
	uint64_t cookie;           /* the opener's, from wisp_conn_open_stream() */
	struct wisp_stream_neg *neg; /* during negotiation */
	int close_err;             /* reported by closed() instead of yamux's */
	uint32_t credit_skip;      /* received bytes already credited to the window */
	bool counted;              /* holds one of its protocol's per-connection slots */
	bool fin_pending;          /* the peer's FIN came during negotiation */
	uint32_t walk;             /* the last writable() walk that visited it */
	wisp_stream *prev, *next;  /* the connection's list */
};

/* Queue b->data[off..off+len) (the stream takes its own reference).
 * Errors: WISP_ERR_STATE (not open), WISP_ERR_CLOSED, WISP_ERR_NOMEM,
 * WISP_ERR_LIMIT (the connection's send budget is used up: the peer is not
 * reading fast enough; every open stream's writable() runs once it has
 * drained to half the budget). */
int wisp_stream_write(wisp_stream *s, wisp_buf *b, size_t off, size_t len) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;
/* Copy p[0..n) into a pooled buffer and queue it (small writes).
 * Errors: as wisp_stream_write(), WISP_ERR_INVALID_ARG (too large). */
int wisp_stream_write_copy(wisp_stream *s, const void *p, size_t n) WISP_NONNULL(1) WISP_WARN_UNUSED;
/* For handlers that send back what they received (echo, ping): not refused
 * by the send budget, because what they queue is bounded by the receive
 * window they themselves grant. Errors: as wisp_stream_write_copy() but
 * never WISP_ERR_LIMIT. */
int wisp_stream_answer_copy(wisp_stream *s, const void *p, size_t n) WISP_NONNULL(1) WISP_WARN_UNUSED;
/* The same for bytes already in a pooled buffer (the stream takes a
 * reference on b). */
int wisp_stream_answer(wisp_stream *s, wisp_buf *b, size_t off, size_t len) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;
/* True when the connection is within half its send budget; when not, every
 * open stream hears writable() once it is. */
bool wisp_stream_conn_room(const wisp_stream *s) WISP_NONNULL(1);
/* The handler is done with n more received bytes. */
void wisp_stream_consumed(wisp_stream *s, size_t n) WISP_NONNULL(1);
/* Half-close (FIN after queued data). Idempotent. */
void wisp_stream_close(wisp_stream *s) WISP_NONNULL(1);
/* Reset now: closed(WISP_ERR_CLOSED) runs before this returns, and s must
 * not be used afterwards. */
void wisp_stream_reset(wisp_stream *s) WISP_NONNULL(1);
/* Bytes written and not yet handed to the socket. */
size_t wisp_stream_queued(const wisp_stream *s) WISP_NONNULL(1);

/* ---- connections -------------------------------------------------------- */

enum wisp_conn_state {
	CONN_EXPECT_SECURITY,  /* multistream-select for /noise */
	CONN_EXPECT_HANDSHAKE, /* Noise XX */
	CONN_EXPECT_MUXER,     /* multistream-select for /yamux/1.0.0, encrypted */
	CONN_OPEN,             /* yamux session up */
	CONN_FAILED,
};

#define WISP_CONN_CONFIG_VERSION 1

typedef struct wisp_conn_config {
	uint32_t version;
	const wisp_privkey *identity;     /* borrowed for the connection's life */
	const wisp_proto_table *protos;   /* borrowed, read-only */
	wisp_pool *pool;                  /* output buffers */
	wisp_yamux_config yamux;
	uint64_t handshake_timeout_ns;    /* from creation until the muxer is up (10 s) */
	size_t send_budget;               /* bytes queued (here and in the kernel's path) past which
					     stream writes are refused with WISP_ERR_LIMIT; 0 = none */
	bool inline_muxer;                /* list /yamux/1.0.0 in the Noise handshake (true) */
} wisp_conn_config;

void wisp_conn_config_default(wisp_conn_config *c) WISP_NONNULL(1);

typedef struct wisp_conn_callbacks {
	/* Secure and multiplexed: the remote peer id is known and streams may
	 * be opened. */
	void (*upgraded)(void *ctx, wisp_conn *c);
} wisp_conn_callbacks;

typedef struct wisp_conn_stats {
	uint64_t frames_in, frames_out;     /* Noise transport frames */
	uint64_t streams_in, streams_out;   /* negotiated */
	uint64_t streams_refused;           /* inbound: unknown protocol (we said na) */
	uint64_t streams_capped;            /* inbound: protocol's per-connection cap reached */
	uint64_t negotiation_errors;        /* stream multistream-select failures */
	uint64_t budget_refused;            /* stream writes refused by the send budget */
} wisp_conn_stats;

/* A connection; dialer: we opened the TCP connection (Noise initiator,
 * multistream dialer, yamux client). expect: the peer id dialed, or NULL.
 * Errors: WISP_ERR_NOMEM, WISP_ERR_CRYPTO, WISP_ERR_INVALID_ARG. */
int wisp_conn_new(wisp_conn **out, const wisp_mem *mem, const wisp_conn_config *cfg, bool dialer,
		  const wisp_peer_id *expect, const wisp_conn_callbacks *cb, void *ctx, wisp_tstamp now)
	WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;

/* Every open stream gets closed(WISP_ERR_CLOSED, or the connection's error)
 * first; then the memory goes. NULL is allowed. */
void wisp_conn_free(wisp_conn *c);

/* Received bytes, any split. Returns 0, or the error that failed the
 * connection (peer faults are WISP_ERR_* in the peer range; see
 * wisp_conn_stage() for where it happened). */
int wisp_conn_read(wisp_conn *c, const uint8_t *in, size_t n, wisp_tstamp now) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* The next buffer to send, bytes data[0..len): the raw handshake, or one
 * sealed Noise frame packing everything pending (up to 64 KiB). NULL with
 * *err 0 when nothing is pending; NULL with *err < 0 when the connection
 * failed (the error) or the pool is exhausted (WISP_ERR_NOMEM: nothing was
 * lost, retry later). The caller owns the returned reference. */
wisp_buf *wisp_conn_pull(wisp_conn *c, wisp_tstamp now, int *err) WISP_NONNULL(1, 3);
bool wisp_conn_wants_write(const wisp_conn *c) WISP_NONNULL(1);
/* Bytes queued inside the connection, not yet pulled: for the send budget. */
size_t wisp_conn_queued(const wisp_conn *c) WISP_NONNULL(1);
/* The owner tells how many pulled bytes still wait for the kernel; they
 * count against the send budget. May run writable() callbacks. */
void wisp_conn_set_pending(wisp_conn *c, size_t bytes) WISP_NONNULL(1);
/* A stream write was refused for the send budget and the streams have not
 * heard writable() since: they wait for the kernel to take bytes. */
bool wisp_conn_budget_blocked(const wisp_conn *c) WISP_NONNULL(1);

wisp_tstamp wisp_conn_expiry(const wisp_conn *c) WISP_NONNULL(1);
/* Handshake timeout (WISP_ERR_TIMEOUT) and yamux keep-alive. Returns 0 or
 * the error that failed the connection. */
int wisp_conn_handle_expiry(wisp_conn *c, wisp_tstamp now) WISP_NONNULL(1);

/* Open a stream for proto (one of the table's); its handler's open() runs
 * when the peer accepts, closed(WISP_ERR_REFUSED) when it does not.
 * Errors: WISP_ERR_STATE (not upgraded), WISP_ERR_LIMIT (the protocol's
 * per-connection cap, or yamux's), WISP_ERR_AGAIN (yamux ACK backlog),
 * WISP_ERR_CLOSED, WISP_ERR_NOMEM. */
int wisp_conn_open_stream(wisp_conn *c, const wisp_proto *proto, uint64_t cookie, wisp_stream **out)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;
/* The same, proposing protos[0..n) in order (e.g. /meshsub/1.2.0, 1.1.0,
 * 1.0.0); s->proto is the one the peer took when open() runs. The
 * per-connection cap checked is protos[0]'s. Errors: as above, and
 * WISP_ERR_INVALID_ARG (n is 0 or over WISP_MSS_MAX_DIALER_PROTOS). */
int wisp_conn_open_stream_any(wisp_conn *c, const wisp_proto *const *protos, size_t n, uint64_t cookie,
			      wisp_stream **out) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Send GO_AWAY (no new streams); the owner then closes the socket. */
void wisp_conn_go_away(wisp_conn *c) WISP_NONNULL(1);

bool wisp_conn_is_open(const wisp_conn *c) WISP_NONNULL(1);
bool wisp_conn_is_dialer(const wisp_conn *c) WISP_NONNULL(1);
/* The verified remote identity (after the handshake), else NULL. */
const wisp_peer_id *wisp_conn_remote_id(const wisp_conn *c) WISP_NONNULL(1);
const wisp_pubkey *wisp_conn_remote_key(const wisp_conn *c) WISP_NONNULL(1);
/* Where the connection is or failed: "security", "handshake", "muxer",
 * "session". */
const char *wisp_conn_stage(const wisp_conn *c) WISP_NONNULL(1);
int wisp_conn_err(const wisp_conn *c) WISP_NONNULL(1);
/* True when received bytes wait for the rest of their multistream message
 * or Noise frame: a peer that closes now has cut one short. */
bool wisp_conn_input_partial(const wisp_conn *c) WISP_NONNULL(1);
/* Streams of proto open now on c. */
uint32_t wisp_conn_proto_streams(const wisp_conn *c, const wisp_proto *proto) WISP_NONNULL(1, 2);
void wisp_conn_stats_get(const wisp_conn *c, wisp_conn_stats *out, wisp_yamux_stats *ymx) WISP_NONNULL(1, 2);

/* The owner's pointer, set freely. */
void *wisp_conn_user(const wisp_conn *c) WISP_NONNULL(1);
void wisp_conn_set_user(wisp_conn *c, void *user) WISP_NONNULL(1);

#endif
