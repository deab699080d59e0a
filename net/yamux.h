/* yamux stream multiplexer (/yamux/1.0.0), sans-I/O.
 *
 * One wisp_yamux is one session over one secure channel. It never touches a
 * socket or a clock: the connection feeds it decrypted bytes with
 * wisp_yamux_read(), pulls the bytes to encrypt and send with
 * wisp_yamux_pull(), and drives its timers with wisp_yamux_expiry() and
 * wisp_yamux_handle_expiry(). Every call that needs the time takes `now`.
 *
 * Wire (hashicorp/yamux spec.md, libp2p/specs yamux/README.md): 12-byte
 * big-endian header {version 0, type, flags, stream id, length}; types data,
 * window update, ping, go away; flags SYN, ACK, FIN, RST. The client (dialer)
 * opens odd ids, the server (listener) even ids; id 0 is the session. Every
 * stream starts with a 256 KiB window in each direction that counts data
 * payload only; a window update's length is a delta.
 *
 * What this session sends, and why (interop with go-yamux, rust-yamux and
 * js @chainsafe/libp2p-yamux):
 *   - SYN as a window update (delta = cfg.window - 256 KiB) as soon as the
 *     stream is opened, like go and js; data may follow before the ACK.
 *   - ACK as a window update as soon as the stream_open callback accepts an
 *     inbound stream (go acks on Accept); its delta is cfg.window - 256 KiB
 *     plus whatever the application consumed before the pull.
 *   - FIN always as its own zero-length window update after the last data
 *     frame, never on a data frame with payload: js handles the FIN flag of
 *     a data frame before its payload and drops that payload when its own
 *     write side is already closed.
 *   - RST as a zero-length window update. An RST's length is ignored on
 *     input (go-yamux puts an error code there).
 *   - ping replies carry exactly the ACK flag and the request's value; our
 *     own pings exactly SYN, one at a time (rust and js fail the session on an
 *     unsolicited or mismatched ping reply).
 *
 * Errors. Peer faults are in the peer class (wisp_err_is_peer()):
 *   WISP_ERR_MALFORMED      version != 0, or a type above 3;
 *   WISP_ERR_PROTOCOL       ping or go away on a stream id != 0; data or
 *                           window update on id 0; a SYN with our parity; a
 *                           SYN for an id that is open; a frame without SYN
 *                           for an id never opened (remote parity above the
 *                           highest id the peer opened, or our parity at or
 *                           above our next id); data after the peer's FIN;
 *                           a window update that takes the send window past
 *                           2^32-1; a ping whose flags are not exactly SYN or
 *                           exactly ACK;
 *   WISP_ERR_FLOW_CONTROL   a data frame longer than the stream's receive
 *                           window (what the peer still had credit for);
 *   WISP_ERR_STREAM_LIMIT   more than cfg.max_refused inbound streams refused
 *                           in a row for lack of room (max_streams).
 * Local conditions:
 *   WISP_ERR_LIMIT          more control frames (ping replies, refusal RSTs)
 *                           waiting to be pulled than cfg.max_ctrl_bytes
 *                           allows: the connection is not pulling while the
 *                           peer keeps asking (a ping flood). Local class: we
 *                           may be the slow side;
 *   WISP_ERR_TIMEOUT        no reply to our ping within cfg.ping_timeout_ns;
 *   WISP_ERR_RESET          the peer sent GO_AWAY with a non-zero code;
 *   WISP_ERR_NOMEM          growing the control queue failed.
 * Any of these fails the session: wisp_yamux_read() (or handle_expiry())
 * returns it, stream_closed(err) is called for every stream, queued data is
 * dropped, and, unless the peer's GO_AWAY caused it, one GO_AWAY is queued:
 * code 1 (protocol error) for the peer class, 2 (internal error) otherwise.
 * Pulling after a failure yields only that GO_AWAY; every later call returns
 * the failure (read, handle_expiry) or WISP_ERR_CLOSED (the rest).
 *
 * Frames this session tolerates without failing: data, window updates and FIN
 * for a stream that was closed or reset (an id the rules above say was opened
 * once) are dropped; RST for any unknown stream is dropped; a ping reply that
 * matches no ping of ours is dropped and counted; a SYN with RST is dropped
 * (no stream is created); a second FIN is ignored. A SYN for an id below
 * the highest the peer has opened is accepted when that id is not open
 * (go-yamux can send SYNs out of order), so an id reused after its close
 * opens a new stream.
 *
 * Callbacks. All run on the caller's thread inside the call that triggers
 * them: read() runs stream_open, stream_data, stream_fin, stream_acked,
 * stream_closed, ping_rtt and go_away; pull() runs stream_writable; close()
 * and reset() run stream_closed for their own stream; handle_expiry() runs
 * stream_closed when a ping timeout fails the session. A callback may call
 * wisp_yamux_open, set_user, write, write_copy, consumed, close, reset, ping,
 * go_away and the read-only queries on the same session, for any stream. It
 * must not call wisp_yamux_read, pull, handle_expiry (they return
 * WISP_ERR_STATE) or wisp_yamux_free. Stream memory is released only after
 * the outermost call returns, so a stream that a callback closes, resets or
 * fails stays valid to the code that delivered the callback; the ids a
 * callback sees are checked again after it returns.
 *
 * Stream lifetime, as the application sees it: from wisp_yamux_open() (or
 * an accepting stream_open) to stream_closed, which is delivered exactly once
 * per stream and is the last callback for that id; after it every call with
 * that id returns WISP_ERR_NOTFOUND. stream_closed's err is
 *   0                  both halves closed: we called close() and the peer's
 *                      FIN arrived (in either order);
 *   WISP_ERR_RESET     the peer reset the stream (or refused our SYN);
 *   WISP_ERR_CLOSED    we reset it (wisp_yamux_reset(), or stream_data
 *                      returned < 0);
 *   other              the session failed with that error.
 * Queued data and our FIN still go out after stream_closed(0) when the
 * send window allows: the session keeps the stream until then. Such
 * streams count toward max_streams.
 *
 * Memory: one allocation per stream at open (cached for reuse), the stream
 * table (open addressing, grows up to 2 x max_streams slots), each stream's
 * queue of buffer references, the control queue (grows up to
 * max_ctrl_bytes). Nothing is allocated per frame; payload is never copied on
 * input and copied once, into the caller's buffer, on output.
 *
 * Threads: a session belongs to one thread; nothing in it is shared.
 */
#ifndef WISP_NET_YAMUX_H
#define WISP_NET_YAMUX_H

#include <stdbool.h>

#include <wisp/common.h>
#include <wisp/mem.h>

#include "runtime/buf.h"

#define WISP_YAMUX_HEADER_LEN 12
#define WISP_YAMUX_INITIAL_WINDOW (256u * 1024u) /* spec: every stream starts here */
#define WISP_YAMUX_NEVER UINT64_MAX              /* wisp_yamux_expiry(): no timer */

enum {
	WISP_YAMUX_DATA = 0,
	WISP_YAMUX_WINDOW_UPDATE = 1,
	WISP_YAMUX_PING = 2,
	WISP_YAMUX_GO_AWAY = 3,
};

enum {
	WISP_YAMUX_SYN = 1,
	WISP_YAMUX_ACK = 2,
	WISP_YAMUX_FIN = 4,
	WISP_YAMUX_RST = 8,
};

enum {
	WISP_YAMUX_GOAWAY_NORMAL = 0,
	WISP_YAMUX_GOAWAY_PROTOCOL = 1,
	WISP_YAMUX_GOAWAY_INTERNAL = 2,
};

/* Writes one 12-byte header to out (which has room for it). */
static inline void wisp_yamux_put_header(uint8_t *out, uint8_t type, uint16_t flags, uint32_t id,
					 uint32_t len)
{
	out[0] = 0;
	out[1] = type;
	out[2] = (uint8_t)(flags >> 8);
	out[3] = (uint8_t)flags;
	out[4] = (uint8_t)(id >> 24);
	out[5] = (uint8_t)(id >> 16);
	out[6] = (uint8_t)(id >> 8);
	out[7] = (uint8_t)id;
	out[8] = (uint8_t)(len >> 24);
	out[9] = (uint8_t)(len >> 16);
	out[10] = (uint8_t)(len >> 8);
	out[11] = (uint8_t)len;
}

typedef struct wisp_yamux wisp_yamux;

#define WISP_YAMUX_CONFIG_VERSION 1

/* Session options. Fill with wisp_yamux_config_default(), then change
 * fields; wisp_yamux_new() copies the struct. */
typedef struct wisp_yamux_config {
	uint32_t version;         /* WISP_YAMUX_CONFIG_VERSION */
	uint32_t window;          /* initial receive window per stream; >= 256 KiB (default 256 KiB) */
	uint32_t max_window;      /* auto-tune may grow a stream's receive window up to this;
				     = window disables auto-tune (default 16 MiB) */
	uint32_t max_streams;     /* streams at once, both directions, including closed streams
				     still sending; inbound SYN beyond: RST, counted (default 512) */
	uint32_t max_refused;     /* inbound SYNs refused for lack of room in a row (no stream
				     accepted in between) that are tolerated; the next one fails
				     the session with WISP_ERR_STREAM_LIMIT; 0 = never (default 32) */
	uint32_t ack_backlog;     /* our streams the peer has not ACKed yet; open() beyond
				     returns WISP_ERR_AGAIN (spec: SHOULD be <= 256; default 256) */
	uint32_t writable_mark;   /* stream_writable fires when a stream's queued bytes fall to
				     or below this after a write took them above (default 64 KiB) */
	uint64_t keepalive_ns;    /* ping when nothing was received for this long; 0 = off
				     (default 30 s) */
	uint64_t ping_timeout_ns; /* a ping without reply this long after it was queued fails the
				     session with WISP_ERR_TIMEOUT; 0 = wait forever (default 10 s) */
	uint64_t rtt_interval_ns; /* measure the RTT (for auto-tune) with a ping at creation and
				     then this often, busy or not; 0 = only keep-alive and explicit
				     pings measure it (default 30 s) */
	uint64_t tune_min_rtt_ns; /* auto-tune treats the RTT as at least this: a ping through two
				     busy event loops on loopback reads a few microseconds, which
				     would keep the window from ever growing (default 1 ms) */
	size_t max_ctrl_bytes;    /* bound on session control frames (ping replies, refusal RSTs)
				     queued for pull(); past it WISP_ERR_LIMIT (default 16 KiB) */
} wisp_yamux_config;

void wisp_yamux_config_default(wisp_yamux_config *c) WISP_NONNULL(1);

typedef struct wisp_yamux_callbacks {
	/* An inbound SYN for id. Return 0 to accept: the session ACKs the stream
	 * at the next pull; call wisp_yamux_set_user() here to attach state. Return
	 * < 0 to refuse: the stream is dropped without stream_closed and an RST is
	 * sent (counted as refused_app). Calls on id are allowed in here; if the
	 * callback resets id, stream_closed runs then and the return value is
	 * ignored. NULL accepts every stream. */
	int (*stream_open)(void *ctx, uint32_t id);
	/* n > 0 payload bytes for stream id. p points into the buffer given to
	 * wisp_yamux_read() and is valid only during the call. One data frame may
	 * arrive in several calls. The bytes count against the stream's receive
	 * window until the application calls wisp_yamux_consumed() for them (here
	 * or later). Return 0, or < 0 to reset the stream (as wisp_yamux_reset():
	 * the rest of the frame is dropped, stream_closed(WISP_ERR_CLOSED) follows
	 * at once). NULL: the data is dropped and counted consumed. */
	int (*stream_data)(void *ctx, uint32_t id, void *user, const uint8_t *p, size_t n);
	/* The peer half-closed: no more data will come. If we had closed already,
	 * stream_closed(0) follows at once. Optional. */
	void (*stream_fin)(void *ctx, uint32_t id, void *user);
	/* A stream's queued bytes fell to or below cfg.writable_mark after a
	 * write had taken them above it. Runs inside pull(). Optional. */
	void (*stream_writable)(void *ctx, uint32_t id, void *user);
	/* The peer ACKed our SYN (one slot of the ACK backlog is free again: a
	 * refused open() may be retried). Optional. */
	void (*stream_acked)(void *ctx, uint32_t id, void *user);
	/* The last callback for id; see "Stream lifetime" above for err. */
	void (*stream_closed)(void *ctx, uint32_t id, void *user, int err);
	/* A reply to our ping arrived after rtt_ns. Optional. */
	void (*ping_rtt)(void *ctx, uint64_t rtt_ns);
	/* The peer sent GO_AWAY with code. With code 0 the session stays up, but
	 * open() fails from now on and inbound SYNs are refused; with any other
	 * code read() then fails the session with WISP_ERR_RESET. go-, rust- and
	 * js-yamux close the whole session when they receive any GO_AWAY.
	 * Optional. */
	void (*go_away)(void *ctx, uint32_t code);
} wisp_yamux_callbacks;

typedef struct wisp_yamux_stats {
	uint64_t frames_in;         /* complete headers read */
	uint64_t frames_out;        /* frames written by pull() */
	uint64_t data_in;           /* payload bytes delivered to stream_data */
	uint64_t data_out;          /* payload bytes pulled */
	uint64_t streams_opened;    /* by us */
	uint64_t streams_accepted;  /* inbound, accepted */
	uint64_t streams_refused;   /* inbound, refused for lack of room or after GO_AWAY */
	uint64_t streams_refused_app; /* inbound, refused by stream_open or for memory */
	uint64_t resets_in;         /* RSTs received for live streams */
	uint64_t resets_out;        /* streams we reset */
	uint64_t window_violations; /* data beyond the window, window overflow (session fails) */
	uint64_t window_updates_out;/* window updates sent with a non-zero delta */
	uint64_t window_grows;      /* auto-tune doublings */
	uint64_t frames_ignored;    /* frames for closed streams, stray RSTs and pongs */
	uint64_t pings_in;          /* ping requests answered */
	uint64_t pings_out;         /* ping requests sent */
	uint64_t rtt_ns;            /* smoothed ping RTT; 0 until the first reply */
	uint32_t streams;           /* streams in the table now (including closing ones) */
	uint32_t unacked;           /* our streams not ACKed yet */
	size_t ctrl_queued;         /* bytes of session control frames queued */
	int err;                    /* 0, or the error that failed the session */
} wisp_yamux_stats;

/* A stream's state, for the connection layer and tests. */
typedef struct wisp_yamux_stream_info {
	uint32_t send_window;   /* bytes the peer allows us to send now */
	uint32_t recv_window;   /* current receive window size (auto-tuned) */
	uint32_t recv_credit;   /* bytes the peer may still send before our next update */
	uint32_t unconsumed;    /* delivered, not yet passed to wisp_yamux_consumed() */
	size_t queued;          /* bytes written, not yet pulled */
	bool acked;             /* inbound, or the peer ACKed our SYN */
	bool local_closed;      /* close() was called */
	bool remote_closed;     /* the peer's FIN arrived */
} wisp_yamux_stream_info;

/* Create a session. cfg NULL means the defaults; cb NULL means no
 * callbacks; the structs are copied. client: we dialed (odd stream ids). now
 * starts the timers (with rtt_interval_ns a first ping is due at once).
 * Errors: WISP_ERR_INVALID_ARG (cfg.version, window < 256 KiB, max_window <
 * window, max_streams 0 or over 2^20, ack_backlog 0, max_ctrl_bytes < 12),
 * WISP_ERR_NOMEM. */
int wisp_yamux_new(wisp_yamux **out, const wisp_mem *mem, const wisp_yamux_config *cfg, bool client,
		   const wisp_yamux_callbacks *cb, void *ctx, wisp_tstamp now)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Free the session and every stream, dropping each queued buffer reference.
 * No callbacks. NULL is allowed. Not from inside a callback. */
void wisp_yamux_free(wisp_yamux *y);

/* Input: decrypted bytes from the channel, split anywhere. A partial header
 * is kept (at most 11 bytes); payload is passed to stream_data in place, in
 * as many pieces as the input was split into. Callbacks run inside. Returns 0,
 * or the error that failed the session (see the top of this file; also
 * returned by every later read). WISP_ERR_STATE from inside a callback. */
int wisp_yamux_read(wisp_yamux *y, const uint8_t *in, size_t len, wisp_tstamp now)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Output: writes whole frames into out[0..cap) and returns the bytes written
 * (0: nothing to send). Order: our ping, control frames (ping replies,
 * refusal RSTs), per-stream control frames (SYN, ACK, window updates, FIN,
 * RST), GO_AWAY, then data frames, one per stream in turn (round robin over
 * streams with queued data and send window), each as long as the window and
 * cap allow; a FIN follows its stream's last data frame. Frames are never
 * split across calls. stream_writable may run inside. Errors: WISP_ERR_NOBUF
 * (cap < 12 while something waits), WISP_ERR_STATE (inside a callback). */
ssize_t wisp_yamux_pull(wisp_yamux *y, uint8_t *out, size_t cap, wisp_tstamp now)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* True when pull() would write something now. */
bool wisp_yamux_wants_write(const wisp_yamux *y) WISP_NONNULL(1);

/* Open a stream: the SYN is queued (a window update, sent at the next pull)
 * and data may be written at once. *id gets the stream id, user is passed to
 * its callbacks. Errors: WISP_ERR_CLOSED (failed session, or GO_AWAY sent or
 * received), WISP_ERR_LIMIT (max_streams reached, or the id space is used
 * up), WISP_ERR_AGAIN (ack_backlog of our streams wait for an ACK: retry after
 * stream_acked or stream_closed), WISP_ERR_NOMEM. */
int wisp_yamux_open(wisp_yamux *y, void *user, uint32_t *id) WISP_NONNULL(1, 3) WISP_WARN_UNUSED;

/* Set the user pointer passed to id's callbacks. Errors: WISP_ERR_NOTFOUND. */
int wisp_yamux_set_user(wisp_yamux *y, uint32_t id, void *user) WISP_NONNULL(1);

/* Queue b->data[off..off+len) on stream id. On success the stream takes its
 * own reference on b (released once those bytes are pulled, or when the
 * stream is reset or the session fails or is freed); the caller keeps its
 * reference either way and must not change those bytes while the stream
 * holds b. len 0 does nothing. No bound on queued bytes here: the caller
 * budgets with wisp_yamux_stream_queued() and stream_writable.
 * Errors: WISP_ERR_NOTFOUND (no such stream, or stream_closed was delivered),
 * WISP_ERR_CLOSED (close() was called, or the session failed),
 * WISP_ERR_INVALID_ARG (off + len > b->len), WISP_ERR_NOMEM (growing the
 * stream's queue); on any error nothing is queued and no reference taken. */
int wisp_yamux_write(wisp_yamux *y, uint32_t id, wisp_buf *b, size_t off, size_t len)
	WISP_NONNULL(1, 3) WISP_WARN_UNUSED;

/* Copy p[0..n) into one buffer from pool and queue it (for small writes).
 * Errors: as wisp_yamux_write(), WISP_ERR_INVALID_ARG (n over
 * wisp_pool_max_len()), WISP_ERR_NOMEM (the pool is exhausted). */
int wisp_yamux_write_copy(wisp_yamux *y, uint32_t id, wisp_pool *pool, const void *p, size_t n)
	WISP_NONNULL(1, 3) WISP_WARN_UNUSED;

/* The application has used n more bytes of what stream_data delivered on id.
 * When the bytes used and not yet granted back reach half the stream's
 * window, a window update is queued; when it is sent, auto-tune may grow the
 * window: if the previous update (or the stream's start) was less than 2 x
 * the measured RTT ago, the window doubles, up to cfg.max_window (the peer
 * used half a window in under two round trips, so the window is what limits
 * it). Without an RTT sample the window stays. After the peer's FIN nothing is
 * sent. Errors: WISP_ERR_NOTFOUND, WISP_ERR_INVALID_ARG (n more than
 * delivered and not yet consumed). */
int wisp_yamux_consumed(wisp_yamux *y, uint32_t id, size_t n) WISP_NONNULL(1);

/* Half-close id: a FIN goes out after the data already queued; write() fails
 * afterwards. If the peer's FIN came already, stream_closed(0) runs before
 * this returns. Idempotent. Errors: WISP_ERR_NOTFOUND, WISP_ERR_CLOSED (the
 * session failed). */
int wisp_yamux_close(wisp_yamux *y, uint32_t id) WISP_NONNULL(1);

/* Reset id now: queued data is dropped, an RST is queued (none if the SYN
 * had not been pulled yet: the peer never heard of the stream) and
 * stream_closed(WISP_ERR_CLOSED) runs before this returns.
 * Errors: WISP_ERR_NOTFOUND, WISP_ERR_CLOSED (the session failed). */
int wisp_yamux_reset(wisp_yamux *y, uint32_t id) WISP_NONNULL(1);

/* Bytes written on id and not yet pulled; 0 for unknown ids. */
size_t wisp_yamux_stream_queued(const wisp_yamux *y, uint32_t id) WISP_NONNULL(1);

/* Every byte waiting for pull(): data of all streams (closing ones too),
 * their pending control frames and the session's; for the connection's send
 * budget. Data frame headers are not counted. */
size_t wisp_yamux_queued_bytes(const wisp_yamux *y) WISP_NONNULL(1);

/* Fill *out for id. Errors: WISP_ERR_NOTFOUND. */
int wisp_yamux_stream_info_get(const wisp_yamux *y, uint32_t id, wisp_yamux_stream_info *out)
	WISP_NONNULL(1, 3);

/* Send a ping now; the reply's RTT goes to ping_rtt. A ping already in flight
 * serves (no second one is sent). Errors: WISP_ERR_CLOSED (failed session). */
int wisp_yamux_ping(wisp_yamux *y, wisp_tstamp now) WISP_NONNULL(1);

/* Queue GO_AWAY with code (0 normal, 1 protocol error, 2 internal error):
 * no new streams either way afterwards (open() returns WISP_ERR_CLOSED, inbound
 * SYNs are refused with RST); open streams carry on. Other stacks end the
 * whole session when it arrives, so send it only just before closing the
 * connection. A second call does nothing. Errors: WISP_ERR_CLOSED (failed
 * session). */
int wisp_yamux_go_away(wisp_yamux *y, uint32_t code) WISP_NONNULL(1);

/* When wisp_yamux_handle_expiry() has work: the keep-alive or RTT ping, or
 * the timeout of the ping in flight. WISP_YAMUX_NEVER for none. */
wisp_tstamp wisp_yamux_expiry(const wisp_yamux *y) WISP_NONNULL(1);

/* Run the timers due at now: queue a ping, or fail the session with
 * WISP_ERR_TIMEOUT (stream_closed runs inside; the error is returned).
 * Calling early does nothing. Errors: the session's failure,
 * WISP_ERR_STATE (inside a callback). */
int wisp_yamux_handle_expiry(wisp_yamux *y, wisp_tstamp now) WISP_NONNULL(1);

void wisp_yamux_stats_get(const wisp_yamux *y, wisp_yamux_stats *out) WISP_NONNULL(1, 2);

#endif
