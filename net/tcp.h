/* TCP over io_uring, one engine per network worker.
 *
 * The engine owns sockets and the io_uring operations on them; it knows
 * nothing of the protocols above. Received bytes go up through callbacks;
 * bytes to send come down as references to pooled buffers.
 *
 *   listen    a socket with a multishot accept; every accepted fd is handed
 *             to the owner, which may adopt it here or pass it to another
 *             worker (connections are sharded across workers);
 *   dial      IORING_OP_CONNECT linked to a timeout;
 *   receive   one multishot recv per connection into this worker's ring of
 *             provided buffers; the callback sees the bytes in place and the
 *             buffer goes back to the ring when it returns;
 *   send      the owner queues buffer segments; at most one sendmsg per
 *             connection is in flight, carrying everything queued (up to
 *             WISP_TCP_IOV segments), so a loop turn makes one send per
 *             connection however many messages it queued;
 *   close     graceful (queued bytes first, then FIN) or reset (RST);
 *             the connection's memory is the owner's again only after its
 *             `closed` callback, which comes after the last completion.
 *
 * Connections live in owner memory (wisp_tcp_conn is embedded in the
 * owner's connection object); io_uring user_data carries the pointer, which
 * stays valid because nothing is released while an operation is in flight.
 *
 * Threads: the worker's loop thread only.
 */
#ifndef WISP_NET_TCP_H
#define WISP_NET_TCP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <wisp/common.h>

#include "runtime/buf.h"
#include "runtime/loop.h"
#include "runtime/stat.h"

#define WISP_TCP_IOV 32       /* segments in one sendmsg */
#define WISP_TCP_SEGS 64      /* segments queued per connection */

/* user_data kinds of the engine (the loop routes them here). */
enum {
	WISP_UD_TCP_ACCEPT = WISP_UD_USER,
	WISP_UD_TCP_CONNECT,
	WISP_UD_TCP_RECV,
	WISP_UD_TCP_SEND,
	WISP_UD_TCP_CANCEL,
	WISP_UD_TCP_SHUTDOWN,
	WISP_UD_TCP_TIMEOUT,
};

typedef struct wisp_tcp wisp_tcp;
typedef struct wisp_tcp_conn wisp_tcp_conn;
typedef struct wisp_tcp_listener wisp_tcp_listener;

enum wisp_tcp_state {
	WTCP_IDLE,
	WTCP_CONNECTING,
	WTCP_OPEN,
	WTCP_CLOSING,  /* sending what is queued, then FIN, then waiting for the peer's */
	WTCP_DRAINING, /* cancelled; waiting for the last completions */
	WTCP_CLOSED,
};

typedef struct wisp_tcp_seg {
	wisp_buf *buf;
	uint32_t off, len;
} wisp_tcp_seg;

struct wisp_tcp_conn {
	wisp_tcp *tcp;
	int fd;
	enum wisp_tcp_state state;
	uint32_t inflight;    /* io_uring operations not yet completed */
	bool recv_armed;
	bool sending;
	bool reset;           /* close with RST */
	bool eof;             /* the peer's FIN arrived */
	int close_err;        /* why it closed, for the closed callback */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	/* send queue: ring of segments, head is the oldest */
	wisp_tcp_seg segs[WISP_TCP_SEGS];
	uint32_t seg_head, seg_count;
	uint64_t queued;      /* bytes queued, not yet sent */
	struct msghdr msg;
	struct iovec iov[WISP_TCP_IOV];
	struct __kernel_timespec timeout;
	uint64_t bytes_in, bytes_out;
	bool timer_armed;     /* connect timeout or close linger pending */
	bool dirty;           /* on the engine's flush list */
	wisp_tcp_conn *next_dirty;
	wisp_tcp_conn *next_open; /* the engine's list, for teardown */
	wisp_tcp_conn *prev_open;
};

struct wisp_tcp_listener {
	wisp_tcp *tcp;
	int fd;
	bool armed;
	bool closing;
	uint32_t inflight;
	struct sockaddr_storage addr; /* bound address (port filled in) */
	socklen_t addr_len;
	void *user;
	wisp_tcp_listener *next;
};

/* Callbacks into the owner (the worker's connection shard). All run on the
 * loop thread, inside completion handling; they may call any function of
 * this header except wisp_tcp_fini(). */
typedef struct wisp_tcp_ops {
	/* A new inbound socket. The owner calls wisp_tcp_adopt() on some
	 * worker's engine, or closes fd. */
	void (*accepted)(void *ctx, wisp_tcp_listener *l, int fd);
	/* A dial finished: err is WISP_OK (connection open and receiving),
	 * WISP_ERR_TIMEOUT, WISP_ERR_REFUSED (nobody listening) or WISP_ERR_IO.
	 * On error `closed` follows. */
	void (*connected)(void *ctx, wisp_tcp_conn *c, int err);
	/* Bytes arrived: p[0..n) is valid only during the call. */
	void (*recv)(void *ctx, wisp_tcp_conn *c, const uint8_t *p, size_t n);
	/* The peer half-closed (err WISP_OK) or the socket failed (WISP_ERR_IO,
	 * WISP_ERR_RESET). Nothing more will be received. */
	void (*eof)(void *ctx, wisp_tcp_conn *c, int err);
	/* A send completed: the queue has room again. The owner may queue
	 * more (it is submitted with the loop's next flush). */
	void (*sent)(void *ctx, wisp_tcp_conn *c);
	/* Last call for c: every operation has completed and the fd is closed;
	 * c's memory is the owner's again. */
	void (*closed)(void *ctx, wisp_tcp_conn *c, int err);
} wisp_tcp_ops;

typedef struct wisp_tcp_config {
	uint32_t buf_size;    /* provided receive buffer size, 16 KiB */
	uint32_t buf_count;   /* receive buffers per worker, power of two, 512 */
	uint32_t backlog;     /* listen backlog */
	uint64_t close_linger_ns; /* graceful close waits this long for the peer's FIN */
} wisp_tcp_config;

void wisp_tcp_config_default(wisp_tcp_config *c) WISP_NONNULL(1);

typedef struct wisp_tcp_stats {
	wisp_stat accepted, accept_errors, dials, dial_errors, dial_timeouts;
	wisp_stat recv_cqes, recv_bytes, recv_nobufs, send_calls, send_bytes, send_errors;
	wisp_stat resets, closes, open;
} wisp_tcp_stats;

struct wisp_tcp {
	wisp_loop *loop;
	const wisp_mem *mem;
	wisp_tcp_config cfg;
	const wisp_tcp_ops *ops;
	void *ctx;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	uint16_t bgid;
	bool br_registered;
	uint32_t inflight;          /* all operations of the engine */
	wisp_tcp_conn *open_list;   /* connections not yet closed */
	wisp_tcp_conn *dirty;       /* connections with a send to submit */
	wisp_tcp_listener *listeners;
	wisp_tcp_stats stats;
};

/* Set up the engine on loop's thread (after the ring exists): registers the
 * provided-buffer ring. Errors: WISP_ERR_NOMEM; WISP_ERR_IO_URING (the
 * kernel lacks provided-buffer rings, Linux < 5.19). */
int wisp_tcp_init(wisp_tcp *t, wisp_loop *loop, const wisp_mem *mem, const wisp_tcp_config *cfg,
		  const wisp_tcp_ops *ops, void *ctx) WISP_NONNULL(1, 2, 3, 5);

/* The loop's completion handler for the engine's kinds. */
void wisp_tcp_on_cqe(wisp_tcp *t, const struct io_uring_cqe *cqe, wisp_tstamp now) WISP_NONNULL(1, 2);

/* Submit one sendmsg for every connection that queued bytes since the last
 * flush and has no send in flight. The worker calls it at the end of each
 * loop turn, after the protocols above queued their output. */
void wisp_tcp_flush(wisp_tcp *t) WISP_NONNULL(1);

/* Cancel everything, close every socket and wait (on the loop's ring, at
 * most `wait_ns`) for the last completions; connections still open get
 * their `closed` callback with WISP_ERR_CLOSED. Then release the buffer
 * ring. Returns the operations that never completed (0 normally). */
uint32_t wisp_tcp_fini(wisp_tcp *t, uint64_t wait_ns) WISP_NONNULL(1);

/* A listening socket on addr (IPv4 or IPv6; port 0 picks one), made on
 * any thread (the node binds at start, so a taken port fails the start
 * with a clear message). The bound address (port filled in) goes to
 * *bound. Errors: WISP_ERR_IO (socket/bind/listen: errno says which),
 * WISP_ERR_INVALID_ARG. */
int wisp_tcp_bind(const struct sockaddr *addr, socklen_t len, uint32_t backlog, int *fd,
		  struct sockaddr_storage *bound, socklen_t *bound_len) WISP_NONNULL(1, 4, 5, 6) WISP_WARN_UNUSED;

/* Start accepting on a listening socket; the engine owns fd from now on
 * (even on error). l is owner memory, kept until wisp_tcp_unlisten()
 * completes (l->inflight == 0). Errors: WISP_ERR_IO. */
int wisp_tcp_listen_fd(wisp_tcp *t, wisp_tcp_listener *l, int fd) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Both: bind addr and accept on it. */
int wisp_tcp_listen(wisp_tcp *t, wisp_tcp_listener *l, const struct sockaddr *addr, socklen_t len)
	WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;
void wisp_tcp_unlisten(wisp_tcp_listener *l) WISP_NONNULL(1);

/* Take an accepted (or any connected) socket: sets TCP_NODELAY and starts
 * receiving. c is owner memory. Errors: WISP_ERR_IO (the fd is closed). */
int wisp_tcp_adopt(wisp_tcp *t, wisp_tcp_conn *c, int fd) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Dial addr with a timeout; `connected` reports the result.
 * Errors (immediate, no callback): WISP_ERR_IO (socket), WISP_ERR_INVALID_ARG. */
int wisp_tcp_dial(wisp_tcp *t, wisp_tcp_conn *c, const struct sockaddr *addr, socklen_t len,
		  uint64_t timeout_ns) WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;

/* Queue buf->data[off..off+len) for sending; takes its own reference on buf
 * (the caller keeps its own). The send is submitted with the loop's next
 * submission. Errors: WISP_ERR_CLOSED (closing or closed), WISP_ERR_AGAIN
 * (WISP_TCP_SEGS segments queued: retry after a completion). */
int wisp_tcp_send(wisp_tcp_conn *c, wisp_buf *buf, size_t off, size_t len) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Bytes queued and not yet acknowledged by the kernel. */
static inline uint64_t wisp_tcp_queued(const wisp_tcp_conn *c)
{
	return c->queued;
}

/* Segments the queue can still take. */
static inline uint32_t wisp_tcp_room(const wisp_tcp_conn *c)
{
	return WISP_TCP_SEGS - c->seg_count;
}

/* Graceful close: send what is queued, then FIN; the socket closes when
 * the peer's FIN arrives or after close_linger_ns. Idempotent. */
void wisp_tcp_close(wisp_tcp_conn *c) WISP_NONNULL(1);

/* Abortive close: drop the queue and reset the connection (RST).
 * err is reported by `closed`. Idempotent; may follow wisp_tcp_close(). */
void wisp_tcp_abort(wisp_tcp_conn *c, int err) WISP_NONNULL(1);

/* Text form of a socket address ("/ip4/127.0.0.1/tcp/4001" style is the
 * owner's business; this gives "127.0.0.1:4001" / "[::1]:4001"). */
void wisp_tcp_addr_str(const struct sockaddr *sa, char *out, size_t cap) WISP_NONNULL(1, 2);

#endif
