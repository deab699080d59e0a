/* The node behind the public handle: its threads, actors and event ring.
 * Internal: actors reach the application through wisp_node_emit(). */
#ifndef WISP_RUNTIME_NODE_H
#define WISP_RUNTIME_NODE_H

#include <stdatomic.h>

#include <wisp/wisp.h>

#include <sys/socket.h>

#include "net/conn.h"
#include "runtime/buf.h"
#include "runtime/loop.h"
#include "runtime/mailbox.h"

struct wisp_worker;
struct wisp_telemetry;
struct wisp_peers;
struct wisp_gossip;
struct wisp_scoring;
struct wisp_reqresp;
struct wisp_rr_shared;

/* A request/response protocol the application registered. */
typedef struct wisp_rr_proto {
	char id[WISP_REQRESP_PROTOCOL_MAX + 1];
	wisp_reqresp_opts o;
	const wisp_proto *p; /* its entry in the node's table */
} wisp_rr_proto;

#define WISP_MAX_LISTEN 8
#define WISP_MAX_ADVERTISE 16
/* Our peer record: at most 16 addresses of at most 64 bytes, a key and a
 * signature fit well within this. */
#define WISP_NODE_RECORD_MAX 2048

enum wisp_node_state { NODE_NEW = 0, NODE_RUNNING = 1, NODE_STOPPED = 2 };

struct wisp_node {
	wisp_options opt;
	const wisp_mem *mem;
	wisp_uring_features feat;
	wisp_pool *pool;

	uint32_t n_workers, n_hosts;
	wisp_loop *workers;             /* n_workers, pinned */
	wisp_loop *hosts;               /* n_hosts, host the actors */
	wisp_actor *worker_actors;      /* one per worker: its mailbox */
	struct wisp_worker *worker_state;
	wisp_actor telemetry;
	struct wisp_telemetry *tele_state;
	wisp_actor peers;
	struct wisp_peers *peers_state;
	wisp_actor gossip;
	struct wisp_gossip *gossip_state;
	wisp_actor scoring;
	struct wisp_scoring *scoring_state;
	wisp_actor reqresp;
	struct wisp_reqresp *rr_state;

	/* Request/response: protocols fixed at start; in slots shared with
	 * application threads (actors/reqresp/actor.h); request ids. */
	wisp_rr_proto rr[WISP_REQRESP_MAX_PROTOCOLS];
	uint32_t n_rr;
	struct wisp_rr_shared *rr_in;   /* options.max_requests_in */
	_Atomic uint64_t rr_next_id;

	/* The network: read-only once started, except the counters. */
	wisp_privkey identity;
	wisp_peer_id peer_id;
	char peer_text[WISP_PEER_ID_TEXT_MAX];
	wisp_proto_table protos;
	struct {
		uint64_t dial_timeout_ns, handshake_timeout_ns, stall_timeout_ns;
		size_t conn_send_budget;
		uint32_t max_conns_per_worker, max_streams_per_conn;
		uint32_t n_listen;
		struct sockaddr_storage listen_req[WISP_MAX_LISTEN];
		socklen_t listen_req_len[WISP_MAX_LISTEN];
		int listen_fds[WISP_MAX_LISTEN];      /* bound at start, handed to worker 0 */
		char listen_text[WISP_MAX_LISTEN][WISP_ADDR_TEXT_MAX]; /* bound, with /p2p */
		uint32_t n_advertise;                 /* identify listenAddrs (wildcards expanded) */
		uint8_t advertise[WISP_MAX_ADVERTISE][64];
		uint32_t advertise_len[WISP_MAX_ADVERTISE];
		/* Our signed peer record (codec/peer_record.h) of the advertised
		 * addresses, sealed at start before any thread runs, seq = the
		 * wall clock then in ns (RFC 0003 allows epoch time; a restart
		 * gives a larger one). Sent in identify; len 0 when the node
		 * listens nowhere (as js-libp2p: nothing to certify). */
		uint8_t record[WISP_NODE_RECORD_MAX];
		uint32_t record_len;
		char agent[128];
		size_t pubsub_budget;        /* gossipsub frames queued per connection, bytes */
		uint32_t pubsub_max_frames;  /* ... and frames per priority class */
		uint32_t pubsub_max_rpc;     /* largest RPC frame accepted */
		wisp_stat identify_errors, ping_errors; /* several writers */
		wisp_stat peer_record_errors;           /* several writers: refused records in identify */
	} net;

	/* Explicit gossip peers, parsed from the options (read-only). */
	struct wisp_dial_req *xpeers;   /* WISP_MAX_EXPLICIT_PEERS */
	uint32_t n_xpeers;
	uint64_t xpeer_redial_ns;

	/* Events to the application: many producers, the draining thread. */
	wisp_mailbox events;
	int event_fd;
	_Atomic uint32_t app_waiting;   /* the drainer found the ring empty */
	wisp_stat events_dropped;       /* several writers */
	wisp_stat discarded;            /* controller only */

	/* The command gate: calls in flight, and the flag that closes it. */
	_Atomic uint32_t inflight;
	_Atomic bool closing;
	_Atomic int state;

	char errmsg[256];
};

/* Queue an event for the application: type, status, cookie, and an owned
 * payload buffer (or NULL). from: the calling loop (NULL elsewhere). On
 * failure the buffer is released and the drop counted. Returns WISP_OK or
 * WISP_ERR_AGAIN/CLOSED. */
int wisp_node_emit(wisp_node *n, wisp_loop *from, wisp_event_type type, int status, uint64_t cookie,
		   wisp_buf *buf);

/* The index of id among the explicit peers, or -1. Any thread. */
int wisp_node_explicit_index(const wisp_node *n, const wisp_peer_id *id);

/* The command gate: application calls hold it while they touch mailboxes.
 * enter returns WISP_ERR_CLOSED when the node is not running. */
int wisp_node_gate_enter(wisp_node *n);
void wisp_node_gate_exit(wisp_node *n);

/* Fill *out (any thread). */
void wisp_node_stats_fill(const wisp_node *n, wisp_stats *out);

#endif
