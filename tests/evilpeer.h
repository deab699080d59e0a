/* An evil peer for the bad-input tests.
 *
 * Plain sockets on the test thread (non-blocking, every wait bounded by a
 * deadline in poll()), and the library's own sans-I/O pieces to craft the
 * bytes: multistream-select (net/mss.h), the Noise XX layer
 * (net/noise_xx.h, so the handshake payload can be anything at all), and
 * yamux headers (net/yamux.h). Each step is a separate call, so a test can
 * stop, cut, or replace any message.
 *
 * Functions that talk to the socket return 0, a negative errno
 * (-ETIMEDOUT when the deadline passed, -EPIPE when the node closed the
 * connection in an orderly way, -ECONNRESET when it reset it), or a
 * negative WISP_ERR_* from the protocol pieces.
 *
 * Test thread only; one ev_peer per connection.
 */
#ifndef WISP_TESTS_EVILPEER_H
#define WISP_TESTS_EVILPEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <wisp/identity.h>

#include "net/noise.h"
#include "net/noise_xx.h"

#define EV_RX_CAP (2 * WISP_NOISE_MAX_WIRE)

/* How message 3's identity_sig is made. */
typedef enum ev_sig {
	EV_SIG_GOOD,         /* our key over our static key: a valid payload */
	EV_SIG_WRONG_KEY,    /* another key's signature over our static key */
	EV_SIG_WRONG_STATIC, /* our key, over some other X25519 key */
	EV_SIG_GARBAGE,      /* random bytes */
	EV_SIG_NONE,         /* no identity_sig field at all */
} ev_sig;

typedef struct ev_peer {
	int fd;
	bool eof;            /* the node closed (or reset) the connection */
	int close_err;       /* 0 for an orderly close, else the errno */
	uint8_t rx[EV_RX_CAP];
	size_t rx_len;       /* received and not yet consumed */
	uint64_t bytes_in;

	wisp_privkey key;    /* our identity */
	wisp_noise_xx xx;
	bool xx_live;
	bool transport;      /* the handshake is done: rx holds Noise frames */
	uint8_t remote_payload[1024]; /* the node's handshake payload, as received */
	size_t remote_payload_len;

	/* yamux, parsed from the node's frames once transport is up */
	uint8_t yhdr[12];
	uint32_t yhdr_len;
	uint32_t yskip;      /* payload bytes of the frame in hand still to come */
	uint32_t next_id;    /* our next stream id (odd: we dialed) */
	uint32_t frames_in, acks_in, rsts_in, syns_in, fins_in, pings_in, go_aways_in;
	uint32_t go_away_code;
	uint64_t data_in;
	bool answer_pings;   /* reply to the node's pings (default true) */

	/* A layer above (tests/evilgossip.h) may take the streams' traffic:
	 * on_frame sees every yamux header once it is counted (SYN, FIN, RST,
	 * window updates), on_data the payload bytes of data frames, which are
	 * otherwise skipped. They may send (ev_send_sealed) but not pump. A
	 * non-zero return fails the pump with that error. NULL: not called. */
	int (*on_frame)(struct ev_peer *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t len);
	int (*on_data)(struct ev_peer *p, uint32_t id, const uint8_t *b, size_t n);
	uint32_t ydata_id;   /* the stream of the data frame in hand */
} ev_peer;

/* ---- sockets ------------------------------------------------------------ */

/* Connect to 127.0.0.1:port. rcvbuf > 0 sets SO_RCVBUF before connecting (a
 * small receive window for a peer that will stop reading). A fresh identity
 * is generated. */
int ev_connect(ev_peer *p, uint16_t port, int rcvbuf);
/* A listening socket on 127.0.0.1:0; *port gets the port. Returns the fd. */
int ev_listen(uint16_t *port);
/* Accept one connection on lfd into p (fresh identity, or *key if given). */
int ev_accept(ev_peer *p, int lfd, const wisp_privkey *key, unsigned timeout_ms);
void ev_close(ev_peer *p);

/* Send every byte (or fail). */
int ev_send(ev_peer *p, const void *buf, size_t n, unsigned timeout_ms);
/* Receive until rx holds at least need bytes. */
int ev_fill(ev_peer *p, size_t need, unsigned timeout_ms);
/* Receive whatever comes within timeout_ms (at least one read). */
int ev_recv_some(ev_peer *p, unsigned timeout_ms);
void ev_consume(ev_peer *p, size_t n);
/* Read (and, in transport, parse) until the node closes the connection:
 * true when it did before the deadline (EOF or a reset). */
bool ev_wait_closed(ev_peer *p, unsigned timeout_ms);

/* ---- multistream-select ------------------------------------------------- */

/* One message: uvarint(len) || text || '\n' into out; returns its size. */
size_t ev_mss_msg(uint8_t *out, size_t cap, const char *text);
/* Negotiate proto as the dialer (header and proposal pipelined). Returns
 * 0, WISP_ERR_REFUSED ("na"), another mss error, or a socket error. */
int ev_mss_dial(ev_peer *p, const char *proto, unsigned timeout_ms);
/* Read one whole mss message into text (NUL-terminated, newline stripped). */
int ev_mss_read(ev_peer *p, char *text, size_t cap, unsigned timeout_ms);
/* Serve /noise as the listener (the node dials us). */
int ev_mss_listen_noise(ev_peer *p, unsigned timeout_ms);

/* ---- Noise --------------------------------------------------------------- */

/* Start the XX state as initiator or responder. */
int ev_noise_start(ev_peer *p, bool initiator);
/* The framed message 1 (initiator) into out; returns its length. */
ssize_t ev_noise_msg1(ev_peer *p, uint8_t *out, size_t cap);
/* Read and decrypt the framed message 2; the payload goes to
 * remote_payload. Returns 0 or an error. */
int ev_noise_read_msg2(ev_peer *p, unsigned timeout_ms);
/* The framed message 3 with a payload made as sig says, listing
 * /yamux/1.0.0 in stream_muxers when muxer. */
ssize_t ev_noise_msg3(ev_peer *p, ev_sig sig, bool muxer, uint8_t *out, size_t cap);
/* The whole dialer side: /noise, messages 1 to 3 with a good payload and
 * the inline muxer. Then transport. */
int ev_handshake(ev_peer *p, unsigned timeout_ms);

/* Transport: one framed, sealed Noise frame of pt[0..n) (n <= 65519) into
 * out; returns its length. */
ssize_t ev_seal(ev_peer *p, const void *pt, size_t n, uint8_t *out, size_t cap);
/* Seal pt[0..n) into as many frames as it takes and send them. */
int ev_send_sealed(ev_peer *p, const void *pt, size_t n, unsigned timeout_ms);

/* ---- yamux --------------------------------------------------------------- */

/* A yamux frame header into out (12 bytes); returns 12. */
size_t ev_ymx(uint8_t *out, uint8_t type, uint16_t flags, uint32_t id, uint32_t len);
/* Read, decrypt and parse the node's yamux frames for up to timeout_ms,
 * answering pings, until cond(p, arg) holds (NULL: one read). Returns 0
 * when cond holds, or an error (-EPIPE / -ECONNRESET when closed). */
int ev_pump(ev_peer *p, bool (*cond)(ev_peer *, void *), void *arg, unsigned timeout_ms);

#endif
