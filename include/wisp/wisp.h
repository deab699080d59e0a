/* wisp: libp2p-compatible peer-to-peer networking for validator nodes.
 *
 * The application holds a wisp_node. Every call on it is a thread-safe
 * enqueue that returns at once: it never blocks on the network, and a full
 * queue is reported as WISP_ERR_AGAIN (and counted), never waited out.
 * Results and events come back through an event ring that one application
 * thread drains with wisp_node_next_event(); wisp_node_event_fd() is an fd
 * that application can poll in its own event loop.
 *
 * Threads: wisp_node_new/start/stop/free are called by one controlling thread.
 * Commands (wisp_node_probe, later publish/subscribe/request) may be called
 * from any number of threads at once, between start and stop. Events are
 * drained by one thread at a time.
 */
#ifndef WISP_WISP_H
#define WISP_WISP_H

#include <wisp/common.h>
#include <wisp/error.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WISP_VERSION_STRING "0.1.0"

typedef struct wisp_node wisp_node;

/* ---- options ----------------------------------------------------------- */

#define WISP_OPTIONS_VERSION 4

/* Creation options. Initialize with wisp_options_default(), then change
 * fields; wisp_node_new() copies the struct, so it may live on the stack.
 * New fields are only ever appended, and `version` tells the library which
 * fields the caller knows about. */
typedef struct wisp_options {
	uint32_t version;          /* WISP_OPTIONS_VERSION */
	uint32_t workers;          /* network worker threads; 0 = online CPUs */
	uint32_t actor_threads;    /* threads hosting the actors; 0 = 1 */
	int pin_workers;           /* pin worker i to CPU i mod online CPUs (default 1) */
	uint32_t mailbox_slots;    /* messages per actor mailbox, power of two (default 4096) */
	uint32_t event_slots;      /* events in the application's ring, power of two (default 4096) */
	uint32_t ring_entries;     /* io_uring submission entries per thread (default 256) */
	uint32_t stats_interval_ms;/* a WISP_EVENT_STATS every this often; 0 = never (default 0) */
	uint32_t probe_slots;      /* probes in flight at once (default 64) */
	size_t pool_bytes;         /* upper bound on pooled message buffers, bytes (default 256 MiB: a
				      bound, allocated as used; 64 KiB gossip at full rate needs ~128 MiB) */
	const wisp_mem *mem;       /* allocator; NULL = libc */

	/* Networking (version 2). */
	const wisp_privkey *identity; /* the node's libp2p key, copied at creation; NULL = a fresh random key */
	const char *const *listen;    /* multiaddrs to listen on ("/ip4/0.0.0.0/tcp/4001", "/ip6/::1/tcp/0") */
	uint32_t n_listen;
	uint32_t dial_timeout_ms;      /* TCP connect (default 10000) */
	uint32_t handshake_timeout_ms; /* connect to muxer up: multistream, Noise, yamux (default 10000) */
	uint32_t max_conns;            /* connections per worker (default 1024) */
	uint32_t max_streams_per_conn; /* yamux streams at once per connection, both directions (default 512) */
	size_t conn_send_budget;       /* bytes the kernel may hold for one connection before we stop
				          pulling its output (default 4 MiB) */
	uint32_t stall_timeout_ms;     /* a connection at its budget whose peer takes none of our bytes
				          this long is not reading: closed with WISP_ERR_LIMIT
				          (default 10000) */
	const char *agent;             /* identify agentVersion; NULL = "wisp/<version>" */
	uint32_t services;             /* WISP_SERVICE_* bits: diagnostic protocols served (default 0) */

	/* Gossip (version 3). */
	/* Explicit peers (gossipsub v1.1 explicit peering): multiaddrs with
	 * /p2p/<id>, at most WISP_MAX_EXPLICIT_PEERS. The node dials them at
	 * start and again explicit_redial_ms after a dial fails or the last
	 * connection goes; they get every message of the topics they join,
	 * are never in a mesh, and are never scored out. Configure it on both
	 * sides. Events of these dials carry cookie WISP_COOKIE_EXPLICIT + the
	 * peer's index in this array. */
	const char *const *explicit_peers;
	uint32_t n_explicit_peers;
	uint32_t explicit_redial_ms;   /* default 10000 */

	/* Request/response (version 4). */
	uint32_t max_requests_out;     /* our requests in flight at once, all peers and protocols; past it
				          wisp_request() says WISP_ERR_LIMIT in its end event (default 1024) */
	uint32_t max_requests_in;      /* peers' requests being answered at once, all protocols; past it
				          they get "resource unavailable" (default 1024) */
} wisp_options;

#define WISP_MAX_EXPLICIT_PEERS 64
#define WISP_COOKIE_EXPLICIT 0xffffffff00000000ull
/* Dials the node makes by itself after gossipsub peer exchange (a PRUNE
 * from a peer scoring at least the accept-PX threshold named peers, with
 * their signed peer records): their CONNECTED / DIAL_FAILED events carry
 * this cookie. */
#define WISP_COOKIE_PX 0xfffffffe00000000ull

/* Diagnostic protocols, off by default: a peer could make us send bytes. */
#define WISP_SERVICE_PERF 1u /* serve /perf/1.0.0 */
#define WISP_SERVICE_ECHO 2u /* serve /wisp/echo/1.0.0 (echoes every byte back) */

/* Fill *o with the defaults above. */
WISP_API void wisp_options_default(wisp_options *o) WISP_NONNULL(1);

/* ---- lifecycle --------------------------------------------------------- */

/* Create a node from *o (copied). Allocates but starts no thread.
 * Errors: WISP_ERR_INVALID_ARG (bad option: wisp_node_new_errmsg() says
 * which), WISP_ERR_NOMEM. On error *out is NULL. */
WISP_API int wisp_node_new(wisp_node **out, const wisp_options *o) WISP_WARN_UNUSED WISP_NONNULL(1, 2);

/* Why the calling thread's last wisp_node_new() failed ("" when it did
 * not). Never NULL; valid until that thread's next wisp_node_new(). */
WISP_API const char *wisp_node_new_errmsg(void);

/* Create the io_uring instances, start the worker and actor threads and the
 * actors. Blocks until every thread has set up or one has failed.
 * Errors: WISP_ERR_IO_URING (io_uring cannot be created: kernel too old,
 * kernel.io_uring_disabled, seccomp; wisp_node_errmsg names the errno),
 * WISP_ERR_IO (thread creation), WISP_ERR_NOMEM, WISP_ERR_STATE (not new). */
WISP_API int wisp_node_start(wisp_node *n) WISP_WARN_UNUSED WISP_NONNULL(1);

/* Stop: refuse new commands, let the actors drain their mailboxes and stop,
 * then the workers, join every thread and release every in-flight buffer.
 * Events already queued stay readable until wisp_node_free(). Idempotent.
 * Returns WISP_OK, or WISP_ERR_STATE when the node never started. */
WISP_API int wisp_node_stop(wisp_node *n) WISP_NONNULL(1);

/* Stop if needed and release everything, including undrained events.
 * NULL is allowed. */
WISP_API void wisp_node_free(wisp_node *n);

/* The last error's explanation for this node (never NULL, "" when none).
 * Valid until the next call on the node from the controlling thread. */
WISP_API const char *wisp_node_errmsg(const wisp_node *n) WISP_NONNULL(1);

/* ---- events ------------------------------------------------------------ */

typedef enum wisp_event_type {
	WISP_EVENT_NONE = 0,
	WISP_EVENT_PROBE = 1, /* a wisp_node_probe() came back */
	WISP_EVENT_STATS = 2, /* a periodic runtime figures snapshot */
	WISP_EVENT_LISTENING = 3,    /* after start, once per listen address: u.listen */
	WISP_EVENT_CONNECTED = 4,    /* a connection is secure and multiplexed: u.peer; cookie of the dial, 0 inbound */
	WISP_EVENT_DISCONNECTED = 5, /* it ended: u.peer, status = why */
	WISP_EVENT_DIAL_FAILED = 6,  /* wisp_dial() failed (cookie): u.peer (peer set if known), status, stage */
	WISP_EVENT_IDENTIFY = 7,     /* a peer's identify (or identify push): u.identify */
	WISP_EVENT_PING = 8,         /* wisp_ping() finished: u.ping, status */
	WISP_EVENT_TEST = 9,         /* wisp_stream_test() finished: u.test, status */
	WISP_EVENT_CLOSED = 10,      /* wisp_disconnect() done: status WISP_OK or WISP_ERR_NOTFOUND */
	WISP_EVENT_INBOUND_FAILED = 11, /* an inbound connection failed before its session was up: u.peer, status */
	WISP_EVENT_SUBSCRIBED = 12,   /* wisp_subscribe() / wisp_unsubscribe() done: u.topic, status */
	WISP_EVENT_PUBLISHED = 13,    /* wisp_publish() done: u.published; status WISP_OK or why not */
	WISP_EVENT_MESSAGE = 14,      /* a validated message on a subscribed topic: u.message */
	WISP_EVENT_VALIDATE = 15,     /* a message waits for wisp_validate(): u.message (ref set) */
	WISP_EVENT_REQUEST = 16,      /* a peer's request waits for wisp_respond(): u.request */
	WISP_EVENT_RESPONSE = 17,     /* a chunk of the response to wisp_request() (cookie): u.response */
	WISP_EVENT_RESPONSE_END = 18, /* that request ended: status WISP_OK or why not; u.response */
	WISP_EVENT_RESPOND_READY = 19,/* a request whose wisp_respond() said AGAIN has room again:
					 u.request (ref only) */
	WISP_EVENT_PEER_SCORE = 20,   /* wisp_peer_score() came back: u.score */
	WISP_EVENT_SYNC_CHUNK = 21,   /* wisp_sync_start(): a chunk arrived and matched its hash: u.sync */
	WISP_EVENT_SYNC_DONE = 22,    /* ... the sync ended: status WISP_OK (every chunk) or why not; u.sync */
} wisp_event_type;

#define WISP_ADDR_TEXT_MAX 128

/* u.listen */
typedef struct wisp_listen_info {
	char addr[WISP_ADDR_TEXT_MAX]; /* "/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2..." */
} wisp_listen_info;

/* u.peer */
typedef struct wisp_peer_info {
	wisp_peer_id peer;       /* len 0 when not known (a dial that failed before the handshake) */
	char peer_text[WISP_PEER_ID_TEXT_MAX];
	int inbound;             /* 1: the peer dialed us */
	char addr[WISP_ADDR_TEXT_MAX]; /* the remote's address ("/ip4/127.0.0.1/tcp/53412") */
	char stage[16];          /* failures: "connect", "security", "handshake", "muxer", "session" */
	uint64_t conn;           /* the connection's id */
} wisp_peer_info;

/* u.identify; strings are NUL-terminated, inside the event. */
typedef struct wisp_identify_info {
	wisp_peer_id peer;
	char peer_text[WISP_PEER_ID_TEXT_MAX];
	int push;                     /* from /ipfs/id/push/1.0.0 */
	const char *agent;
	const char *protocol_version;
	const char *observed_addr;    /* how the peer sees us; "" when absent or unknown */
	const char *const *protocols;
	uint32_t n_protocols;
	const char *const *listen_addrs; /* those wisp can print; others are skipped */
	uint32_t n_listen_addrs;
	uint32_t skipped_addrs;
	uint8_t public_key[64];       /* protobuf PublicKey, as sent */
	uint32_t public_key_len;
	/* The signed peer record (identify field 8): 1 when it came, verified
	 * and names this peer (gossipsub PX then hands it on to others); 0 when
	 * there was none; < 0 the WISP_ERR_* it was refused with (the identify
	 * itself stands). */
	int signed_peer_record;
} wisp_identify_info;

/* u.ping */
typedef struct wisp_ping_info {
	wisp_peer_id peer;
	char peer_text[WISP_PEER_ID_TEXT_MAX];
	uint64_t rtt_ns;
} wisp_ping_info;

typedef enum wisp_test_kind {
	WISP_TEST_ECHO = 1, /* `streams` streams on /wisp/echo/1.0.0, each sends `bytes` and checks the echo */
	WISP_TEST_RTT = 2,  /* one echo stream: `count` round trips of `size` bytes */
	WISP_TEST_PERF = 3, /* /perf/1.0.0: send `upload` bytes, ask for `download` */
} wisp_test_kind;

typedef struct wisp_test_spec {
	wisp_test_kind kind;
	uint64_t bytes;     /* ECHO, per stream */
	uint32_t streams;   /* ECHO, 1..1024 */
	uint32_t size;      /* RTT message size, 1..65536 */
	uint32_t count;     /* RTT round trips */
	uint64_t upload;    /* PERF */
	uint64_t download;  /* PERF */
} wisp_test_spec;

/* u.test */
typedef struct wisp_test_result {
	wisp_peer_id peer;
	char peer_text[WISP_PEER_ID_TEXT_MAX];
	wisp_test_spec test;
	int ok;                  /* every byte came back as sent */
	uint64_t elapsed_ns;     /* first write to last byte */
	uint64_t bytes;          /* ECHO: payload bytes echoed, all streams */
	uint8_t sha256[32];      /* ECHO: of stream 0's payload */
	uint64_t p50_ns, p90_ns, p99_ns, max_ns; /* RTT */
	uint64_t upload_ns, download_ns;         /* PERF: until the upload was sent, then the download */
} wisp_test_result;

#define WISP_PROBE_MAX_WORKERS 64

/* A probe's journey: application -> telemetry actor -> every worker ->
 * telemetry actor -> application. Times are CLOCK_MONOTONIC ns. */
typedef struct wisp_probe_result {
	wisp_tstamp sent;          /* wisp_node_probe() enqueued it */
	wisp_tstamp actor_recv;    /* the telemetry actor took it from its mailbox */
	wisp_tstamp done;          /* the last worker's answer reached the actor */
	uint32_t workers;          /* workers that answered */
	uint32_t unreachable;      /* workers whose mailbox was full */
	wisp_tstamp worker_recv[WISP_PROBE_MAX_WORKERS]; /* each worker took it */
} wisp_probe_result;

struct wisp_stats;

typedef struct wisp_event {
	wisp_event_type type;
	int status;      /* WISP_OK, or why the command failed */
	uint64_t cookie; /* the caller's value from the command */
	union {
		const wisp_probe_result *probe; /* WISP_EVENT_PROBE */
		const struct wisp_stats *stats; /* WISP_EVENT_STATS */
		const wisp_listen_info *listen; /* WISP_EVENT_LISTENING */
		const wisp_peer_info *peer;     /* CONNECTED, DISCONNECTED, DIAL_FAILED, CLOSED */
		const wisp_identify_info *identify;
		const wisp_ping_info *ping;
		const wisp_test_result *test;
		const struct wisp_topic_info *topic;
		const struct wisp_published_info *published;
		const struct wisp_message_info *message;
		const struct wisp_request_info *request;
		const struct wisp_response_info *response;
		const struct wisp_peer_score_info *score;
		const struct wisp_sync_info *sync;
		const void *data;
	} u;
	void *priv_;     /* owned buffer: released by wisp_event_release() */
} wisp_event;

/* Take the next event, if any. Returns 1 with *ev filled, 0 when the ring is
 * empty: from then on, wisp_node_event_fd() becomes readable when the next
 * event arrives. Every event taken must be given back with
 * wisp_event_release(). One thread drains at a time. */
WISP_API int wisp_node_next_event(wisp_node *n, wisp_event *ev) WISP_WARN_UNUSED WISP_NONNULL(1, 2);

/* Release what *ev points at. */
WISP_API void wisp_event_release(wisp_node *n, wisp_event *ev) WISP_NONNULL(1, 2);

/* An fd (eventfd) that is readable while events may be waiting. It is reset
 * by wisp_node_next_event() when that finds the ring empty. Owned by the
 * node; do not close it. -1 before wisp_node_new() succeeded. */
WISP_API int wisp_node_event_fd(const wisp_node *n) WISP_NONNULL(1);

/* ---- commands (any thread, between start and stop) --------------------- */

/* Send a probe through the runtime: it visits the telemetry actor and every
 * worker and comes back as a WISP_EVENT_PROBE event carrying cookie.
 * Errors: WISP_ERR_AGAIN (mailbox full, counted), WISP_ERR_CLOSED. */
WISP_API int wisp_node_probe(wisp_node *n, uint64_t cookie) WISP_NONNULL(1);

/* ---- the network ------------------------------------------------------ */

/* The node's peer id. Any thread, after wisp_node_new(). */
WISP_API const wisp_peer_id *wisp_node_peer_id(const wisp_node *n) WISP_NONNULL(1);

/* Connect to a multiaddr "/ip4|ip6/<addr>/tcp/<port>[/p2p/<peer id>]"; with
 * /p2p the remote must prove that identity. Result: WISP_EVENT_CONNECTED or
 * WISP_EVENT_DIAL_FAILED with cookie. Already connected to that peer:
 * CONNECTED at once with the existing connection. Errors (nothing queued):
 * WISP_ERR_INVALID_ARG / WISP_ERR_UNKNOWN_CODE / WISP_ERR_MALFORMED (the
 * address), WISP_ERR_AGAIN (queue full), WISP_ERR_CLOSED / WISP_ERR_STATE
 * (not running). Any thread. */
WISP_API int wisp_dial(wisp_node *n, const char *multiaddr, uint64_t cookie) WISP_NONNULL(1, 2);

/* One ping round trip on /ipfs/ping/1.0.0. Result: WISP_EVENT_PING
 * (status WISP_ERR_NOTFOUND when not connected). Errors as wisp_dial(). */
WISP_API int wisp_ping(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie) WISP_NONNULL(1, 2);

/* Close every connection to peer (GO_AWAY, flush, FIN). Result:
 * WISP_EVENT_CLOSED, then DISCONNECTED per connection. */
WISP_API int wisp_disconnect(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie) WISP_NONNULL(1, 2);

/* A diagnostic transfer to a connected peer (which must serve the
 * protocol). Result: WISP_EVENT_TEST. Errors as wisp_dial(), and
 * WISP_ERR_INVALID_ARG for a test out of its bounds. */
WISP_API int wisp_stream_test(wisp_node *n, const wisp_peer_id *peer, const wisp_test_spec *t,
			      uint64_t cookie) WISP_NONNULL(1, 2, 3);

/* ---- figures ----------------------------------------------------------- */

/* ---- gossip (gossipsub v1.0 to v1.2) ----------------------------------- */

typedef enum wisp_sign_policy {
	WISP_SIGN_STRICT = 0, /* StrictSign: from, seqno, signature (and key) on every message */
	WISP_SIGN_NONE = 1,   /* StrictNoSign: none of them */
} wisp_sign_policy;

typedef enum wisp_msgid_kind {
	WISP_MSGID_DEFAULT = 0, /* libp2p's default: from || seqno (StrictSign) */
	WISP_MSGID_CONTENT = 1, /* SHA-256 of the data (the Atlas profile; StrictNoSign needs it) */
	WISP_MSGID_KEY_SEQNO = 2, /* the author's PublicKey protobuf || seqno: js-libp2p's default
				     under StrictSign */
} wisp_msgid_kind;

typedef enum wisp_verdict {
	WISP_VERDICT_ACCEPT = 0,
	WISP_VERDICT_REJECT = 1,       /* invalid: the sender is penalized */
	WISP_VERDICT_IGNORE = 2,       /* dropped, not penalized, remembered as seen */
	WISP_VERDICT_IGNORE_RETRY = 3, /* dropped and forgotten: the id may come again */
} wisp_verdict;

typedef enum wisp_topic_priority {
	WISP_PRIORITY_NORMAL = 0,
	WISP_PRIORITY_HIGH = 1, /* consensus traffic: proposals, votes */
} wisp_topic_priority;

typedef enum wisp_compression {
	WISP_COMPRESS_NONE = 0,
	WISP_COMPRESS_ZSTD = 1, /* the data travels as one zstd frame */
} wisp_compression;

#define WISP_TOPIC_OPTS_VERSION 2

/* A topic's profile; every node on a topic must use the same sign policy,
 * message-id function and compression. */
typedef struct wisp_topic_opts {
	uint32_t version;
	wisp_sign_policy sign;     /* default WISP_SIGN_STRICT */
	wisp_msgid_kind msgid;     /* default WISP_MSGID_DEFAULT under StrictSign, CONTENT under none */
	uint32_t max_size;         /* largest message data, bytes (default 1 MiB); with compression,
				      the largest decompressed data */
	uint32_t idontwant_min;    /* send IDONTWANT for messages at least this big on the wire
				      (default 1024) */
	int flood_publish;         /* own messages to every peer above the publish threshold (default 1) */
	int validate;              /* 1: every message waits for wisp_validate() (default 0: accept) */
	/* version 2 */
	/* HIGH: in every peer's send queue this topic's publishes and forwards
	 * go ahead of all NORMAL topics' (control frames still go first), and
	 * when a peer falls behind its byte budget, NORMAL frames are evicted
	 * to make room for them (default NORMAL). */
	wisp_topic_priority priority;
	/* ZSTD: wisp_publish() compresses the data; received data is
	 * decompressed before validation and delivery, never past max_size (a
	 * frame that is not zstd, is corrupt, or holds more is rejected and its
	 * sender penalized: msg_decompress_failed). Message ids are computed
	 * on the compressed bytes. Not a libp2p standard: only for topics every
	 * subscriber runs with it (default NONE). */
	wisp_compression compress;
} wisp_topic_opts;

WISP_API void wisp_topic_opts_default(wisp_topic_opts *o) WISP_NONNULL(1);

/* u.topic */
typedef struct wisp_topic_info {
	char topic[256];
	int subscribed;
} wisp_topic_info;

/* u.published: status WISP_OK (queued to `peers` peers), or why not:
 * WISP_ERR_NOTFOUND (no peers on the topic yet: cached and gossiped to peers
 * that join), WISP_ERR_TOO_LARGE, WISP_ERR_EXISTS (the same message was
 * published before), WISP_ERR_NOMEM (the buffer pool is exhausted: retry
 * when traffic drains). */
typedef struct wisp_published_info {
	char topic[256];
	uint8_t id[64];
	uint32_t id_len;
	uint32_t peers;
} wisp_published_info;

/* u.message; data and topic point inside the event. */
typedef struct wisp_message_info {
	uint64_t ref;            /* WISP_EVENT_VALIDATE: pass to wisp_validate() */
	const char *topic;
	wisp_peer_id from;       /* the author (StrictSign), else len 0 */
	wisp_peer_id source;     /* the peer it came from */
	uint8_t id[64];
	uint32_t id_len;
	const uint8_t *data;
	uint32_t len;
} wisp_message_info;

/* Join topic (o NULL: defaults). Result: WISP_EVENT_SUBSCRIBED. Messages
 * then arrive as WISP_EVENT_MESSAGE. Errors as wisp_dial(), and
 * WISP_ERR_INVALID_ARG (topic empty or over 255 bytes, bad opts). */
WISP_API int wisp_subscribe(wisp_node *n, const char *topic, const wisp_topic_opts *o, uint64_t cookie)
	WISP_NONNULL(1, 2);
WISP_API int wisp_unsubscribe(wisp_node *n, const char *topic, uint64_t cookie) WISP_NONNULL(1, 2);

/* Publish data[0..len) on topic (subscribed or not: then fanout peers are
 * used, with the topic's options given at subscribe, else the defaults).
 * Returns at once; WISP_EVENT_PUBLISHED says how many peers it was queued
 * to, or why it was not. The data is copied. Errors as wisp_dial(), and
 * WISP_ERR_TOO_LARGE (over the pool's largest buffer). */
WISP_API int wisp_publish(wisp_node *n, const char *topic, const void *data, size_t len, uint64_t cookie)
	WISP_NONNULL(1, 2);

/* The application's verdict on a WISP_EVENT_VALIDATE message, from any
 * thread, at any time. */
WISP_API int wisp_validate(wisp_node *n, uint64_t ref, wisp_verdict v) WISP_NONNULL(1);

/* The application's score for a peer (gossipsub v1.1 P5, weight 1): added
 * to the peer's score, connected now or later (remembered for up to 1024
 * peer ids; 0 forgets it). With the default thresholds a peer below 0 is
 * not grafted, below -1000 gets no gossip, below -2000 none of our
 * publishes, below -4000 is graylisted (its RPCs ignored). No result event.
 * Errors as wisp_dial(), and WISP_ERR_INVALID_ARG (value not finite). */
WISP_API int wisp_set_app_score(wisp_node *n, const wisp_peer_id *peer, double value) WISP_NONNULL(1, 2);

/* ---- request/response --------------------------------------------------
 *
 * One stream per request, one protocol id per message type (the Atlas ones
 * are /atlas/req/<name>/<version>/pb_zstd; see wisp/atlas.h). The requester
 * writes the request and half-closes; the responder writes zero or more
 * chunks and closes. On the wire:
 *
 *   request         uvarint(content length) || one zstd frame of the content
 *   response chunk  result byte || uvarint(content length) || one zstd frame
 *
 * A non-zero result's content is a UTF-8 message of at most 256 bytes, and
 * ends the response. Lengths are checked against the protocol's maxima
 * before anything is read or allocated. A requester that breaks the framing
 * gets "invalid request" and our side of the stream closed (reset if it
 * keeps its side open past the respond timeout); a responder that breaks it
 * has the stream reset. Either way the scoring actor hears of it
 * (wisp_peer_score()).
 */

typedef enum wisp_rr_result {
	WISP_RR_SUCCESS = 0,
	WISP_RR_INVALID_REQUEST = 1,
	WISP_RR_SERVER_ERROR = 2,
	WISP_RR_UNAVAILABLE = 3, /* resource unavailable: also what limits answer */
} wisp_rr_result;

#define WISP_REQRESP_MAX_PROTOCOLS 16
#define WISP_REQRESP_PROTOCOL_MAX 128  /* bytes in a protocol id */
#define WISP_REQRESP_MAX_CHUNK (1u << 20) /* the largest request or chunk content */
#define WISP_REQRESP_MAX_ERRMSG 256

#define WISP_REQRESP_OPTS_VERSION 1

typedef struct wisp_reqresp_opts {
	uint32_t version;
	int serve;                      /* 1: answer peers' requests (WISP_EVENT_REQUEST); 0: only ask
					   (peers hear "na"). Default 1 */
	uint32_t max_request;           /* largest request content, bytes (default 64 KiB) */
	uint32_t max_chunk;             /* largest response chunk content (default WISP_REQRESP_MAX_CHUNK) */
	uint32_t max_chunks;            /* chunks in one response (default 1024) */
	/* requester */
	uint32_t first_byte_timeout_ms; /* from sending the request to the first response byte (10000) */
	uint32_t chunk_timeout_ms;      /* for each chunk after the first byte (10000) */
	/* responder */
	uint32_t respond_timeout_ms;    /* the application's first or next chunk (10000): past it the
					   stream is reset */
	uint32_t max_concurrent_per_peer; /* requests answered at once per peer (default 8) */
	uint32_t max_concurrent;        /* ... from all peers (default 128) */
	uint32_t rate_per_peer;         /* requests per second per peer, in bursts of up to twice
					   that; 0 = no limit (default 50) */
	uint32_t respond_window;        /* bytes of chunks one request may have queued behind the
					   connection before wisp_respond() says AGAIN (4 MiB) */
} wisp_reqresp_opts;

WISP_API void wisp_reqresp_opts_default(wisp_reqresp_opts *o) WISP_NONNULL(1);

/* Register a protocol (o NULL: defaults), between wisp_node_new() and
 * wisp_node_start(), on the controlling thread. Both directions use it:
 * wisp_request() names it, and with serve its requests arrive as
 * WISP_EVENT_REQUEST. Returns its number (>= 0, the order of registration)
 * or WISP_ERR_INVALID_ARG (bad id or opts), WISP_ERR_EXISTS, WISP_ERR_LIMIT
 * (WISP_REQRESP_MAX_PROTOCOLS), WISP_ERR_STATE (started). */
WISP_API int wisp_reqresp_register(wisp_node *n, const char *protocol, const wisp_reqresp_opts *o)
	WISP_NONNULL(1, 2);

/* u.request: data points inside the event. */
typedef struct wisp_request_info {
	uint64_t ref;            /* pass to wisp_respond() */
	const char *protocol;
	uint32_t protocol_index; /* wisp_reqresp_register()'s number */
	wisp_peer_id peer;
	const uint8_t *data;
	uint32_t len;
} wisp_request_info;

/* u.response: a chunk (WISP_EVENT_RESPONSE), or the end (RESPONSE_END:
 * data NULL; chunks, bytes and elapsed_ns cover the whole response). */
typedef struct wisp_response_info {
	uint64_t id;             /* wisp_request()'s */
	const char *protocol;
	uint32_t protocol_index;
	wisp_peer_id peer;
	wisp_rr_result result;   /* the chunk's; at the end, the last chunk's */
	uint32_t index;          /* the chunk's number from 0; at the end, the number of chunks */
	const uint8_t *data;     /* content, or the error message for a non-zero result */
	uint32_t len;
	uint64_t bytes;          /* at the end: content bytes of all chunks */
	uint64_t elapsed_ns;     /* at the end: request sent to end; for a chunk, to that chunk */
} wisp_response_info;

/* Ask peer (connected) on protocol (registered) with data[0..len); returns
 * at once with *id set (when id is not NULL). The response comes as
 * WISP_EVENT_RESPONSE chunks then one WISP_EVENT_RESPONSE_END, all with
 * cookie; the end's status is WISP_OK (the peer closed after its chunks; a
 * non-zero result is in the chunks) or why not: WISP_ERR_NOTFOUND (not
 * connected), WISP_ERR_LIMIT (max_requests_out in flight, or the
 * connection's streams), WISP_ERR_REFUSED (the peer does not serve the
 * protocol), WISP_ERR_TIMEOUT (first byte, a chunk, or timeout_ms for the
 * whole response when not 0), WISP_ERR_CANCELED, WISP_ERR_RESET, or a peer
 * error (WISP_ERR_TOO_LARGE, WISP_ERR_DECOMPRESS, ...: the stream is reset
 * and the peer penalized). Errors (nothing queued): WISP_ERR_INVALID_ARG,
 * WISP_ERR_NOTFOUND (protocol not registered), WISP_ERR_TOO_LARGE (over
 * the protocol's max_request), WISP_ERR_AGAIN, WISP_ERR_CLOSED. */
WISP_API int wisp_request(wisp_node *n, const wisp_peer_id *peer, const char *protocol, const void *data,
			  size_t len, uint32_t timeout_ms, uint64_t cookie, uint64_t *id) WISP_NONNULL(1, 2, 3);

/* Cancel request id: its stream is reset and its end event says
 * WISP_ERR_CANCELED (nothing happens when it has ended). */
WISP_API int wisp_request_cancel(wisp_node *n, uint64_t id) WISP_NONNULL(1);

/* Answer request ref with one chunk, from any thread: result and
 * data[0..len) (the content, or for a non-zero result a UTF-8 message of at
 * most 256 bytes, which ends the response). last: this is the final chunk.
 * Chunks queue behind the connection; when one request has
 * respond_window bytes queued, this says WISP_ERR_AGAIN and a
 * WISP_EVENT_RESPOND_READY follows once half of them are sent.
 * Errors: WISP_ERR_NOTFOUND (no such request, or it ended: the requester
 * reset it, the respond timeout passed), WISP_ERR_TOO_LARGE (over
 * max_chunk), WISP_ERR_INVALID_ARG, WISP_ERR_AGAIN, WISP_ERR_CLOSED. */
WISP_API int wisp_respond(wisp_node *n, uint64_t ref, wisp_rr_result result, const void *data, size_t len,
			  int last) WISP_NONNULL(1);

/* End the response to ref without another chunk (also: no chunk at all). */
WISP_API int wisp_respond_end(wisp_node *n, uint64_t ref) WISP_NONNULL(1);

/* ---- chunked parallel sync ---------------------------------------------
 *
 * Download a large state, given as a list of chunks (id, SHA-256, size),
 * from several peers at once over a checkpoint protocol: each chunk is one
 * request `CheckpointRequest { uint64 height = 1; bytes chunk_id = 2; }`
 * answered by `CheckpointPart { uint64 offset = 1; bytes data = 2; }`
 * chunks holding the chunk's bytes in order (see wisp/atlas.h; the
 * protocol must be registered, with max_chunk large enough for a part).
 *
 * Several requests are in flight per peer; the next chunk goes to the peer
 * with the fewest in flight, then the best score (wisp_peer_score). A chunk
 * that fails (timeout, reset, a refusal) or exceeds chunk_timeout_ms is
 * asked of another peer; one whose bytes do not match its hash or size
 * penalizes the peer that served it (a violation in its reputation), and a
 * peer that served bad_limit bad chunks is not asked again. Every verified
 * chunk comes as a WISP_EVENT_SYNC_CHUNK (its data, and the progress); the
 * end as one WISP_EVENT_SYNC_DONE.
 */

#define WISP_SYNC_MAX_PEERS 64
#define WISP_SYNC_MAX_JOBS 4
#define WISP_SYNC_MAX_CHUNKS (1u << 20)

typedef struct wisp_sync_chunk {
	uint8_t id[64];
	uint32_t id_len;         /* 1..64 */
	uint8_t sha256[32];
	uint32_t size;           /* 1..WISP_REQRESP_MAX_CHUNK bytes */
} wisp_sync_chunk;

#define WISP_SYNC_SPEC_VERSION 1

typedef struct wisp_sync_spec {
	uint32_t version;
	const char *protocol;         /* NULL: "/atlas/req/checkpoint/1/pb_zstd" */
	uint64_t height;              /* the checkpoint's, sent in every request */
	const wisp_sync_chunk *chunks;/* copied */
	uint32_t n_chunks;            /* 1..WISP_SYNC_MAX_CHUNKS */
	const wisp_peer_id *peers;    /* copied; connected or not (a peer not connected fails its requests) */
	uint32_t n_peers;             /* 1..WISP_SYNC_MAX_PEERS */
	uint32_t per_peer;            /* requests in flight per peer (default 4) */
	uint32_t chunk_timeout_ms;    /* one chunk's whole response (default 30000) */
	uint32_t max_attempts;        /* per chunk, before the sync fails (default 8) */
	uint32_t bad_limit;           /* bad chunks after which a peer is dropped (default 2) */
} wisp_sync_spec;

WISP_API void wisp_sync_spec_default(wisp_sync_spec *s) WISP_NONNULL(1);

typedef struct wisp_sync_peer_result {
	wisp_peer_id peer;
	uint32_t chunks;         /* verified chunks it served */
	uint32_t bad;            /* chunks that failed their hash or size, or broke the framing */
	uint32_t failed;         /* requests that timed out, were reset or refused */
	int dropped;             /* not asked any more (bad_limit) */
} wisp_sync_peer_result;

/* u.sync */
typedef struct wisp_sync_info {
	uint64_t sync_id;
	uint32_t index;          /* SYNC_CHUNK: the chunk's index in the spec */
	wisp_peer_id peer;       /* SYNC_CHUNK: who served it */
	const uint8_t *data;     /* SYNC_CHUNK: its bytes */
	uint32_t len;
	uint32_t chunks_done, chunks_total;
	uint64_t bytes_done, bytes_total;
	uint64_t elapsed_ns;     /* since the start */
	const wisp_sync_peer_result *peers; /* SYNC_DONE: one per peer of the spec */
	uint32_t n_peers;
} wisp_sync_info;

/* Start a sync; returns at once with *sync_id set (when not NULL). Events
 * carry cookie. Errors: WISP_ERR_INVALID_ARG (spec), WISP_ERR_NOTFOUND (the
 * protocol is not registered), WISP_ERR_TOO_LARGE (a chunk over the pool's
 * reach), WISP_ERR_AGAIN, WISP_ERR_CLOSED. A sync that cannot run
 * (WISP_SYNC_MAX_JOBS already) ends at once with WISP_ERR_LIMIT. */
WISP_API int wisp_sync_start(wisp_node *n, const wisp_sync_spec *spec, uint64_t cookie, uint64_t *sync_id)
	WISP_NONNULL(1, 2);

/* Stop a sync: its requests are canceled and it ends with WISP_ERR_CANCELED. */
WISP_API int wisp_sync_cancel(wisp_node *n, uint64_t sync_id) WISP_NONNULL(1);

/* What the node thinks of a peer. Request/response outcomes make a
 * reputation by peer id (kept for up to 1024 ids, decaying by 1% a second):
 * reliability and latency of our requests to it, and a penalty of
 * -10 * bad^2 for the framing it broke, content that failed its check
 * (1 each) and requests past our limits (0.1 each). The penalty is added
 * to its gossipsub score beside the application's value. */
typedef struct wisp_peer_score_info {
	wisp_peer_id peer;
	int gossip;              /* a gossipsub peer now (or its score is retained) */
	double score;            /* the gossipsub score, penalty included; else the penalty */
	double app;              /* the application's value (wisp_set_app_score) */
	double reqresp_penalty;  /* <= 0 */
	double reliability;      /* (ok + 1) / (ok + failed + 2) */
	double latency_ms;       /* first byte of successful requests, averaged; 0 unknown */
	double ok, failed, bad;  /* the decayed counts */
} wisp_peer_score_info;

/* Ask for a peer's score. Result: WISP_EVENT_PEER_SCORE with cookie.
 * Errors as wisp_dial(). */
WISP_API int wisp_peer_score(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie) WISP_NONNULL(1, 2);

#define WISP_STATS_MAX_THREADS 64

typedef enum wisp_thread_kind {
	WISP_THREAD_WORKER = 1, /* pinned network worker */
	WISP_THREAD_ACTORS = 2, /* hosts actors */
} wisp_thread_kind;

/* One runtime thread's counters (monotonic since start). */
typedef struct wisp_thread_stats {
	wisp_thread_kind kind;
	int cpu;                 /* pinned CPU, or -1 */
	uint64_t turns;          /* loop iterations */
	uint64_t sleeps;         /* times it blocked in io_uring_enter */
	uint64_t wakeups;        /* wakeups it received while asleep */
	uint64_t wakes_sent;     /* wakeups it sent to sleeping threads */
	uint64_t msgs;           /* mailbox messages processed */
	uint64_t timers;         /* timers fired */
	uint64_t cpu_ns;         /* thread CPU time */
} wisp_thread_stats;

typedef struct wisp_stats {
	uint32_t version;        /* WISP_OPTIONS_VERSION */
	uint32_t threads;
	wisp_thread_stats thread[WISP_STATS_MAX_THREADS];
	uint64_t mailbox_full;   /* sends refused with WISP_ERR_AGAIN */
	uint64_t mailbox_closed; /* sends refused because the receiver stopped */
	uint64_t discarded;      /* messages still queued at stop, released */
	uint64_t events;         /* events the application has taken */
	uint64_t events_dropped; /* events lost because that ring was full */
	uint64_t pool_in_use;    /* pooled buffers held right now */
	uint64_t pool_high;      /* most pooled buffers ever held at once */
	uint64_t pool_exhausted; /* allocations refused by the pool's byte bound */
	uint32_t uring_flags;    /* io_uring setup flags in use (IORING_SETUP_*) */
	int uring_msg_ring;      /* 1 when wakeups use IORING_OP_MSG_RING */
	struct {
		uint64_t conns_in, conns_out;   /* TCP connections accepted / dialed */
		uint64_t open;                  /* TCP connections open now */
		uint64_t upgraded;              /* reached a yamux session */
		uint64_t handshake_failures;    /* failed before the session was up */
		uint64_t handshake_timeouts;    /* of which: the handshake timeout */
		uint64_t peer_errors;           /* closed for a protocol violation by the peer */
		uint64_t slow_closes;           /* closed because the peer stopped reading */
		uint64_t conn_limit;            /* refused: max_conns reached */
		uint64_t dial_failures;         /* TCP connect failed or timed out */
		uint64_t budget_stalls;         /* times a connection hit its send budget */
		uint64_t pool_stalls;           /* output delayed by an exhausted buffer pool */
		uint64_t bytes_in, bytes_out;   /* TCP payload bytes */
		uint64_t resets;                /* connections we reset */
		uint64_t streams_refused;       /* inbound streams for protocols we do not serve */
		uint64_t streams_capped;        /* inbound streams over a cap: a protocol's per connection
						   ("na"), or max_streams_per_conn (RST; also SYNs that
						   arrive after our GO_AWAY) */
		uint64_t identify_errors;       /* bad identify messages */
		uint64_t ping_errors;           /* failed ping round trips */
		uint64_t peer_record_errors;    /* signed peer records in identify refused (bad
						   signature, another peer's, a key type wisp does
						   not verify) */
	} net;
	struct {
		uint64_t peers;                 /* gossipsub peers now */
		uint64_t mesh;                  /* mesh links now: peers in our mesh, summed over topics */
		uint64_t rpc_in, rpc_out, rpc_bad, rpc_graylisted;
		uint64_t msg_in, msg_duplicate, msg_accepted, msg_delivered, msg_forwarded;
		uint64_t msg_rejected, msg_bad_signature, msg_policy, msg_too_large, msg_ignored;
		uint64_t published, publish_no_peers;
		uint64_t ihave_in, iwant_served, graft_in, prune_in, idontwant_in, idontwant_out;
		uint64_t frames_dropped;        /* send queue over its budget, or expired */
		uint64_t frames_evicted;        /* of frames_dropped: queued frames dropped to make room
						   for a higher-priority topic's */
		uint64_t msg_decompress_failed; /* compressed topics: not zstd, corrupt, or over max_size */
		uint64_t verify_dealt;          /* signature checks done on the workers */
		/* peer exchange (PX): peers named in PRUNEs, each with a signed
		 * peer record (gossipsub v1.1) */
		uint64_t px_received;           /* entries taken from PRUNEs of peers scoring at least
						   the accept-PX threshold (at most px_peers per PRUNE) */
		uint64_t px_ignored;            /* entries not followed: from peers below the
						   threshold, past px_peers, without a record or a TCP
						   address, already connected, or the node had enough
						   gossip peers */
		uint64_t px_bad_record;         /* records that did not verify, or named another peer
						   than their entry: never dialed */
		uint64_t px_unsupported_key;    /* records signed with a key type wisp does not
						   verify (Ed25519, RSA, ECDSA): not dialed */
		uint64_t px_dialed;             /* dials made for PX (cookie WISP_COOKIE_PX) */
		uint64_t px_records_sent;       /* entries in our PRUNEs that carried a record */
	} gossip;
	struct {
		/* as requester */
		uint64_t requests_out;          /* wisp_request() calls that reached the actor */
		uint64_t responses_ok;          /* ended WISP_OK */
		uint64_t failed;                /* ended otherwise, of which: */
		uint64_t timeouts, canceled, refused, out_limit, resets;
		uint64_t bad_responses;         /* the peer broke the framing or the limits */
		uint64_t chunks_in, bytes_in;   /* response chunks and content bytes received */
		/* as responder */
		uint64_t requests_in;           /* requests read whole */
		uint64_t admitted;              /* handed to the application */
		uint64_t busy;                  /* answered "resource unavailable": concurrency limits */
		uint64_t rate_limited;          /* ... the rate limit */
		uint64_t bad_requests;          /* broke the framing: "invalid request", reset */
		uint64_t respond_timeouts;      /* the application did not answer in time: reset */
		uint64_t chunks_out, bytes_out; /* response chunks and content bytes sent */
		uint64_t dropped;               /* streams or chunks lost to full mailboxes, the stream
						   table, or an exhausted pool (also counted elsewhere) */
	} reqresp;
} wisp_stats;

/* Snapshot the node's counters into *out. Any thread; counters are read
 * without stopping anything, so totals are individually exact but not a
 * single instant. */
WISP_API void wisp_node_stats(const wisp_node *n, wisp_stats *out) WISP_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif

#endif
