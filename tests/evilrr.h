/* An evil request/response peer: the evil peer of tests/evilpeer.h with
 * streams of request/response protocols on top, in both roles, for the
 * bad-input tests over real sockets.
 *
 * It dials the node and does the handshake. As a requester it opens
 * streams for the protocol (multistream-select as the dialer); as a
 * responder it accepts the streams the node opens for them (as the
 * listener: every other protocol, identify included, hears "na"). On either, what it
 * sends is any bytes at all, cut into data frames within the node's yamux
 * window, then a FIN, an RST, or nothing; what the node sends is gathered
 * per stream, with its FIN and RST noted, and can be cut into requests or
 * response chunks (codec/rrframe.h's framing) with libzstd.
 *
 * Functions return 0 or an error as tests/evilpeer.h describes (a negative
 * errno for the socket, a WISP_ERR_* code otherwise). Test thread only.
 */
#ifndef WISP_TESTS_EVILRR_H
#define WISP_TESTS_EVILRR_H

#include "net/mss.h"
#include "tests/evilpeer.h"

#define ER_MAX_STREAMS 16
#define ER_MAX_PROTOS 4

typedef struct er_stream {
	bool used;
	bool ours;       /* we opened it (odd id) */
	bool open;       /* negotiation done, the protocol accepted */
	bool refused;    /* negotiation failed ("na"), or the stream ended before it was done */
	bool taken;      /* the node's: handed out by er_next_accepted() */
	bool fin_in;     /* the node closed its side (after the data that came with the FIN) */
	bool rst_in;     /* the node reset the stream */
	bool fin_pending;/* a data frame with FIN whose payload is still coming */
	bool fin_out, rst_out;
	uint32_t id;
	wisp_mss mss;
	uint8_t *buf;    /* the node's bytes not yet taken (negotiation messages, until open) */
	size_t len, cap;
	uint32_t credit; /* taken in and not yet given back as window */
	int64_t window;  /* bytes the node lets us send */
} er_stream;

typedef struct er_peer {
	ev_peer p;         /* first: the pump's callbacks find us from it */
	const char *protos[ER_MAX_PROTOS]; /* the protocols we accept on the node's streams */
	uint32_t n_protos;
	er_stream st[ER_MAX_STREAMS];
	uint32_t accepted; /* the node's streams for our protocols, all told */
	wisp_peer_id id;   /* our peer id */
	int err;           /* the first error seen while reading the node's frames */
} er_peer;

/* Allocate an er_peer (fresh identity once connected); NULL on failure.
 * er_free() closes it too. */
er_peer *er_new(void);
void er_free(er_peer *e);

/* Dial 127.0.0.1:port and do the handshake; protos[0..n) are the
 * protocols we accept on the node's streams (borrowed; n at most
 * ER_MAX_PROTOS). */
int er_connect(er_peer *e, uint16_t port, const char *const *protos, uint32_t n, unsigned timeout_ms);

/* Read and parse what the node sends until cond(e, arg) holds (NULL: one
 * read). 0 when it holds; -ETIMEDOUT; -EPIPE / -ECONNRESET when closed. */
int er_pump(er_peer *e, bool (*cond)(er_peer *e, void *arg), void *arg, unsigned timeout_ms);
/* Read and parse what has arrived, without waiting: 0, or -EPIPE /
 * -ECONNRESET when the node closed the connection. */
int er_poll(er_peer *e);

/* Requester role: open a stream proposing proto (borrowed) and wait until
 * the node accepts it (WISP_ERR_REFUSED when it does not; on an error the
 * stream's slot is released). */
int er_open(er_peer *e, const char *proto, er_stream **out, unsigned timeout_ms);
/* Responder role: the next stream the node opened for one of our
 * protocols, once negotiated (each is handed out once, oldest first);
 * NULL when there is none. */
er_stream *er_next_accepted(er_peer *e);

/* Bytes on s as they are, in data frames within the node's window
 * (waiting for it as needed). */
int er_send(er_peer *e, er_stream *s, const void *b, size_t n, unsigned timeout_ms);
/* Half-close s (a window update with FIN), or reset it. */
int er_fin(er_peer *e, er_stream *s, unsigned timeout_ms);
int er_rst(er_peer *e, er_stream *s, unsigned timeout_ms);
/* Forget s: its slot is free again (frames that still come for it are
 * ignored). */
void er_release(er_stream *s);

/* Take one request (response false) or response chunk off the front of
 * s->buf: 1 with *result (0 for a request) and the content in
 * out[0..*len); 0 when it is not all there yet; WISP_ERR_MALFORMED when
 * the bytes are not the framing (or the content is over cap). */
int er_take(er_stream *s, bool response, uint8_t *result, uint8_t *out, size_t cap, size_t *len);

/* ---- framing, with libzstd ------------------------------------------------ */

#define ER_Z_SIZE 1u     /* the content size in the frame header */
#define ER_Z_CHECKSUM 2u /* a content checksum after the last block */

/* One zstd frame of in[0..n) at the fastest level, its header as flags
 * (ER_Z_*) say; windowlog 0: zstd's choice. Returns its size, or
 * WISP_ERR_NOBUF. */
ssize_t er_zstd(uint8_t *out, size_t cap, const void *in, size_t n, unsigned flags, int windowlog);
/* A request (result < 0) or a response chunk with the content in[0..n):
 * [result] || uvarint(n) || er_zstd(in, content size included). */
ssize_t er_encode(uint8_t *out, size_t cap, int result, const void *in, size_t n);

#endif
