/* An evil gossipsub peer: the evil peer of tests/evilpeer.h with a meshsub
 * layer on top, for gossip tests over real sockets.
 *
 * It dials the node, opens its own meshsub stream (multistream-select as the
 * dialer) and answers the node's streams as the listener: the node's
 * meshsub stream is accepted for the protocol given at connect, every other
 * protocol (identify) hears "na". What the node sends on its meshsub stream
 * is cut into RPC frames, decoded with the library's own codec
 * (actors/gossip/rpc.h) and counted, and each RPC is shown to an optional
 * callback. What we send is any bytes at all: RPCs built with the same
 * codec, or raw protobuf and raw frame prefixes for malformed input. Our
 * sends respect the yamux window the node gives us; the node's stream gets
 * its window back as we read (or a grant, for a peer that then stops).
 *
 * Functions return 0 or an error as tests/evilpeer.h describes (a negative
 * errno for the socket, a WISP_ERR_* code otherwise). Test thread only.
 */
#ifndef WISP_TESTS_EVILGOSSIP_H
#define WISP_TESTS_EVILGOSSIP_H

#include "actors/gossip/rpc.h"
#include "net/mss.h"
#include "tests/evilpeer.h"

#define EG_MAX_STREAMS 8

typedef struct eg_stream {
	bool used;
	bool ours;       /* we opened it (odd id) */
	bool open;       /* negotiation done, protocol accepted */
	bool gossip;     /* a meshsub stream (ours, or the node's) */
	bool ended;      /* FIN or RST seen, or refused */
	uint32_t id;
	wisp_mss mss;
	uint8_t *buf;    /* received and not yet consumed */
	size_t len, cap;
	uint32_t credit; /* consumed and not yet given back as window */
	int64_t window;  /* ours: bytes the node lets us send */
} eg_stream;

/* What the node sent us on its meshsub stream. */
typedef struct eg_counts {
	uint32_t rpcs, bad_rpcs;
	uint32_t subs, unsubs, msgs;
	uint32_t ihave, ihave_ids, iwant, iwant_ids, graft, prune, idontwant_ids;
	uint64_t last_graft_ns, last_prune_ns; /* wt_now_ns() when the last came */
	uint64_t last_prune_backoff;           /* seconds, as sent (0 when absent) */
} eg_counts;

typedef struct eg_peer eg_peer;

/* Called for every RPC the node sends; slices in rpc are valid during the
 * call only. */
typedef void eg_rpc_fn(eg_peer *e, const wisp_gs_rpc *rpc, void *arg);

struct eg_peer {
	ev_peer p;           /* first: the pump's callbacks find us from it */
	const char *proto;   /* the meshsub protocol we speak */
	wisp_gs_rpc *rpc;    /* decoder scratch for what the node sends */
	wisp_gs_rpc *out;    /* builder for what we send */
	uint8_t *enc;        /* encoder scratch (max_rpc + a frame prefix) */
	eg_stream st[EG_MAX_STREAMS];
	eg_stream *mine;     /* our meshsub stream */
	eg_stream *theirs;   /* the node's meshsub stream */
	eg_counts got;
	eg_rpc_fn *on_rpc;
	void *arg;
	bool auto_window;    /* give the node's streams their window back as we read (default true) */
	wisp_peer_id id;     /* our peer id */
	uint64_t seqno;      /* our next message's seqno */
	int err;             /* the first error seen while parsing the node's streams */
};

/* A StrictSign message of ours (or a forgery): the Message and the bytes
 * it points at, and its default id (from || seqno). */
typedef struct eg_msg {
	wisp_gs_message m;
	uint8_t from[WISP_PEER_ID_MAX], seqno[8], sig[WISP_SIG_MAX + 8];
	char topic[256];
	uint8_t id[WISP_PEER_ID_MAX + 8];
	size_t id_len;
} eg_msg;

/* Allocate an eg_peer (fresh identity once connected); NULL on failure.
 * eg_free() closes it too. */
eg_peer *eg_new(void);
void eg_free(eg_peer *e);

/* Dial 127.0.0.1:port (rcvbuf as ev_connect), do the handshake, open our
 * meshsub stream proposing proto (e.g. "/meshsub/1.1.0"), and wait until
 * it is accepted and the node's own meshsub stream is open. */
int eg_connect(eg_peer *e, uint16_t port, int rcvbuf, const char *proto, unsigned timeout_ms);
void eg_close(eg_peer *e);

/* Open another meshsub stream of ours (after the node reset the first):
 * it replaces e->mine once the node accepts it. */
int eg_open_stream(eg_peer *e, unsigned timeout_ms);

/* Read and parse what the node sends, until cond(e, arg) holds. 0 when it
 * holds; -ETIMEDOUT; -EPIPE / -ECONNRESET when closed. */
int eg_pump(eg_peer *e, bool (*cond)(eg_peer *e, void *arg), void *arg, unsigned timeout_ms);
/* Read and parse what has arrived, without waiting: 0, or -EPIPE /
 * -ECONNRESET when the node closed the connection. */
int eg_poll(eg_peer *e);

/* Give the node's meshsub stream `bytes` more window (a peer about to stop
 * reading lets the node send far ahead, so that the connection, not the
 * stream, fills up). */
int eg_grant(eg_peer *e, uint32_t bytes);

/* Bytes on our meshsub stream, as they are (a frame prefix, half a frame,
 * garbage), within the node's window (waiting for it as needed). */
int eg_send_stream(eg_peer *e, const void *b, size_t n, unsigned timeout_ms);
/* One RPC frame: uvarint(n) || payload. */
int eg_send_frame(eg_peer *e, const void *payload, size_t n, unsigned timeout_ms);
/* e->out, encoded as one frame; e->out is cleared afterwards. */
int eg_send_out(eg_peer *e, unsigned timeout_ms);

/* Single RPCs built with the codec. */
int eg_subscribe(eg_peer *e, const char *topic, bool sub, unsigned timeout_ms);
int eg_publish(eg_peer *e, const wisp_gs_message *m, unsigned timeout_ms);
int eg_graft(eg_peer *e, const char *topic, unsigned timeout_ms);
/* backoff_s 0: no backoff field. */
int eg_prune(eg_peer *e, const char *topic, uint64_t backoff_s, unsigned timeout_ms);
int eg_ihave(eg_peer *e, const char *topic, const wisp_gs_bytes *ids, uint32_t n, unsigned timeout_ms);
int eg_iwant(eg_peer *e, const wisp_gs_bytes *ids, uint32_t n, unsigned timeout_ms);

/* A StrictSign message from us on topic with data[0..n) (copied into m as a
 * slice of data: keep data alive), the next seqno, and a good signature.
 * Tests then spoil what they need (signature bytes, data, from) before
 * sending it. */
int eg_msg_sign(eg_peer *e, eg_msg *m, const char *topic, const void *data, size_t n);

#endif
