/* A network worker's shard of connections.
 *
 * The shard ties the TCP engine (net/tcp.h) to the libp2p connections
 * (net/conn.h) it carries: bytes received go to wisp_conn_read(), and at the
 * end of every loop turn each connection that has output is pulled into
 * sealed frames and handed to the engine as one send. Connection timers
 * (handshake timeout, yamux keep-alive) sit on the loop's timer heap.
 *
 * Budget: a connection's queued bytes (inside the connection plus those the
 * kernel has not taken yet) are bounded by conn_send_budget. Past it the
 * connection stops being pulled and stream writes are refused; if for
 * stall_timeout it stays there and the kernel takes none of its bytes, the
 * peer is not reading, and the connection is closed with WISP_ERR_LIMIT
 * (counted as slow_closes).
 *
 * Everything here runs on the worker's loop thread. Other threads reach a
 * shard only through the worker's mailbox (runtime/worker.h).
 */
#ifndef WISP_NET_SHARD_H
#define WISP_NET_SHARD_H

#include <wisp/identity.h>

#include "net/conn.h"
#include "net/tcp.h"
#include "runtime/timer.h"

struct wisp_node;
typedef struct wisp_shard wisp_shard;

/* A connection's reference across threads: worker, slot, generation.
 * A stale reference (the slot was reused) resolves to nothing. */
typedef uint64_t wisp_conn_ref;

static inline wisp_conn_ref wisp_conn_ref_make(uint32_t worker, uint32_t slot, uint32_t gen)
{
	return (uint64_t)(worker & 0xff) << 56 | (uint64_t)gen << 24 | (slot & 0xffffff);
}

static inline uint32_t wisp_conn_ref_worker(wisp_conn_ref r)
{
	return (uint32_t)(r >> 56);
}

typedef struct wisp_shard_conn {
	wisp_tcp_conn tcp;        /* first: the engine's callbacks give its address */
	wisp_shard *shard;
	wisp_conn *conn;          /* once the TCP connection is up */
	uint32_t slot, gen;
	bool used;
	bool dialer;
	bool upgraded;            /* the peers actor heard of it */
	bool closing;
	bool has_expect;
	bool dirty;
	int err;                  /* why it is closing */
	uint64_t cookie;          /* the dial's */
	wisp_peer_id expect;
	wisp_timer timer;
	wisp_tstamp over_budget_since; /* 0 when within the budget, else since when it made no progress */
	wisp_tstamp pool_retry_at;     /* output waits for pool buffers: flush again then (0: no) */
	struct wisp_shard_conn *next_dirty;
	struct wisp_builtin_conn *bi; /* built-in protocols' per-connection state */
	struct wisp_pubsub_conn *ps;  /* gossipsub's streams and send queue */
	bool rr_up;                   /* the request/response actor heard of it */
} wisp_shard_conn;

/* gossipsub's streams on this worker (net/pubsub.h) */
typedef struct wisp_pubsub_stats {
	wisp_stat rpcs_in, rpc_bytes_in, frames_out, frame_bytes_out;
	wisp_stat oversized, actor_full, expired, over_budget, no_stream;
	wisp_stat evicted;      /* of over_budget: queued frames dropped for a higher level's */
	wisp_stat open_failed;  /* our stream refused or reset before it opened */
	wisp_stat nomem_skipped; /* inbound frames skipped: the pool was exhausted */
} wisp_pubsub_stats;

/* request/response streams on this worker (net/reqresp.h) */
typedef struct wisp_rr_wstats {
	wisp_stat opened, responses_ok, failed, timeouts, canceled, refused, resets, bad_responses;
	wisp_stat chunks_in, bytes_in;
	wisp_stat requests_in, bad_requests, respond_timeouts, chunks_out, bytes_out;
	wisp_stat dropped;  /* streams or chunks lost: table full, pool exhausted, mailbox full */
	wisp_stat late;     /* chunks for requests that had ended */
} wisp_rr_wstats;

typedef struct wisp_shard_stats {
	wisp_stat conns_in, conns_out, upgraded, handshake_failures, handshake_timeouts;
	wisp_stat peer_errors, slow_closes, conn_limit, budget_stalls, pool_stalls;
	wisp_stat adopt_failures, dial_failures;
	wisp_stat streams_refused, streams_capped; /* summed from closed connections */
} wisp_shard_stats;

struct wisp_shard {
	struct wisp_node *node;
	wisp_loop *loop;
	wisp_actor *actor;
	uint32_t index;
	wisp_tcp tcp;
	bool tcp_up;
	wisp_conn_config ccfg;
	wisp_shard_conn *slots;
	uint32_t n_slots;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t next_adopt;        /* round robin for accepted sockets */
	wisp_shard_conn *dirty;
	size_t budget;
	uint64_t stall_ns;
	wisp_tcp_listener *listeners;
	uint32_t n_listeners;
	wisp_shard_stats stats;
	struct wisp_builtin_shard *bi;
	wisp_pubsub_stats pubsub;
	struct wisp_rr_shard *rr;
	wisp_rr_wstats rrs;
};

/* On the worker's thread, from its actor's start: the TCP engine, the
 * connection table, and accepting on the listening sockets handed over
 * (worker 0 accepts for everyone and deals connections round robin).
 * Errors: WISP_ERR_NOMEM, WISP_ERR_IO_URING. */
int wisp_shard_start(wisp_shard *s, struct wisp_node *node, uint32_t index, wisp_loop *loop, wisp_actor *actor);
/* From the actor's stop: close every connection and wait for the engine. */
void wisp_shard_stop(wisp_shard *s);

/* Commands from the worker's mailbox. */
void wisp_shard_dial(wisp_shard *s, const struct sockaddr *addr, socklen_t len, const wisp_peer_id *expect,
		     uint64_t cookie);
void wisp_shard_adopt(wisp_shard *s, int fd);
/* Resolve a reference; NULL when stale or not upgraded. */
wisp_shard_conn *wisp_shard_find(wisp_shard *s, wisp_conn_ref ref);
wisp_conn_ref wisp_shard_ref(const wisp_shard_conn *sc);
/* Close gracefully (GO_AWAY, flush, FIN) or abortively. */
void wisp_shard_close(wisp_shard_conn *sc, int err, bool abort);
/* The connection has output: pull it at the end of this turn. */
void wisp_shard_mark(wisp_shard_conn *sc);

#endif
