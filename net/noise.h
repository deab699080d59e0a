/* libp2p Noise (/noise): the secure channel of every wisp connection, as a
 * sans-I/O state machine. Bytes in, bytes out; no sockets, no clocks, no
 * threads. The worker that owns the connection feeds what it received and
 * sends what this module writes.
 *
 * Protocol: Noise_XX_25519_ChaChaPoly_SHA256, empty prologue (net/noise_xx.h
 * is the Noise layer). On the wire every handshake and transport message is
 * a frame: 2-byte big-endian length || message, at most 65535 bytes of
 * message, so a transport frame carries at most 65519 bytes of plaintext.
 *
 *   msg 1  initiator -> responder  e                 (payload must be empty)
 *   msg 2  responder -> initiator  e, ee, s, es      + responder payload
 *   msg 3  initiator -> responder  s, se             + initiator payload
 *
 * Payload (protobuf, proto2):
 *   NoiseHandshakePayload { bytes identity_key = 1; bytes identity_sig = 2;
 *                           NoiseExtensions extensions = 4; }
 *   NoiseExtensions { repeated bytes webtransport_certhashes = 1;
 *                     repeated string stream_muxers = 2; }
 * identity_key is the libp2p PublicKey protobuf (secp256k1 only in wisp);
 * identity_sig signs "noise-libp2p-static-key:" || the sender's 32-byte
 * X25519 static key. A remote payload is accepted only when the signature
 * verifies and, when the caller expects a peer id (dialing .../p2p/<id>), the
 * key's peer id is that one. webtransport_certhashes and unknown fields are
 * skipped.
 *
 * Muxer negotiation in the handshake (libp2p connections/
 * inlined-muxer-negotiation.md): each side may list stream_muxers; when both
 * do, the muxer is the first of the initiator's list that the responder also
 * lists, and a handshake with two lists and no common entry fails. When
 * either list is empty, wisp_noise_muxer() is NULL and the connection
 * negotiates its muxer with multistream-select as usual.
 * Interop: @chainsafe/libp2p-noise 16.1 (js-libp2p 2.x) as the initiator
 * picks the first entry of the *responder's* list that it supports, so with
 * two muxers listed in different orders js and wisp can pick different ones
 * (checked against it: js [yamux, mplex] -> wisp [mplex, yamux] gives js
 * mplex, wisp yamux). Advertise one muxer (wisp has only yamux) and both
 * sides agree.
 *
 * State: one enum, named by what the object expects next (noise.c):
 *   initiator  SEND_MSG1 -> EXPECT_MSG2 -> SEND_MSG3 -> TRANSPORT
 *   responder  EXPECT_MSG1 -> SEND_MSG2 -> EXPECT_MSG3 -> TRANSPORT
 * and FAILED. Errors: every error except WISP_ERR_NOBUF, WISP_ERR_STATE and
 * WISP_ERR_INVALID_ARG (caller mistakes, detected before anything changed)
 * moves the object to FAILED, after which every handshake, seal and open
 * call returns that same error; the caller closes the connection. Peer
 * faults are in the wisp_err_is_peer() class, so scoring can act on them.
 *
 * Memory: wisp_noise_new() makes one allocation through the given wisp_mem,
 * and OpenSSL creates its objects then too. Nothing allocates per frame;
 * the handshake makes a few short-lived allocations inside OpenSSL 3.0
 * (see net/noise_xx.h). Both handshake_read() and open() decrypt in place in
 * the caller's buffer.
 *
 * Threads: a wisp_noise belongs to the thread that owns its connection;
 * every call on it must come from that thread.
 */
#ifndef WISP_NET_NOISE_H
#define WISP_NET_NOISE_H

#include <stdbool.h>

#include <wisp/common.h>
#include <wisp/identity.h>
#include <wisp/mem.h>

#define WISP_NOISE_MAX_FRAME 65535u /* message bytes in one frame, tag included */
#define WISP_NOISE_TAG_LEN 16u
#define WISP_NOISE_MAX_PLAINTEXT (WISP_NOISE_MAX_FRAME - WISP_NOISE_TAG_LEN)
#define WISP_NOISE_FRAME_HEAD 2u    /* the big-endian length */
/* Room that always suffices for handshake_write() (and any one frame). */
#define WISP_NOISE_MAX_WIRE (WISP_NOISE_FRAME_HEAD + WISP_NOISE_MAX_FRAME)

/* Bounds on stream_muxers, ours and the remote's: a remote list over them
 * fails the handshake with WISP_ERR_TOO_LARGE. */
#define WISP_NOISE_MAX_MUXERS 8u
#define WISP_NOISE_MUXER_MAX_LEN 128u

/* The handshake signature's prefix (libp2p noise spec). */
#define WISP_NOISE_SIG_PREFIX "noise-libp2p-static-key:"

typedef struct wisp_noise wisp_noise;

typedef struct wisp_noise_config {
	/* Our libp2p identity, which signs our Noise static key. Borrowed
	 * during wisp_noise_new() only. Required. */
	const wisp_privkey *identity;
	/* The peer id we dialed (/p2p/<id>); the remote's key must have it.
	 * NULL accepts any remote. Copied. */
	const wisp_peer_id *expect_remote;
	/* stream_muxers we advertise, in our order of preference; NULL when
	 * n_muxers is 0. At most WISP_NOISE_MAX_MUXERS strings of 1 to
	 * WISP_NOISE_MUXER_MAX_LEN bytes. Copied. */
	const char *const *muxers;
	size_t n_muxers;
	/* Tests only: fixed 32-byte X25519 secrets for the static and the
	 * ephemeral key (NULL: random, which is what everything else wants).
	 * Copied. */
	const uint8_t *static_secret;
	const uint8_t *ephemeral_secret;
} wisp_noise_config;

/* Creates the Noise state of one connection, as the initiator (we dialed)
 * or the responder, with fresh X25519 static and ephemeral keys and our
 * handshake payload already signed. mem must outlive the object.
 * On success *out is set and 0 returned; otherwise *out is untouched and:
 *   WISP_ERR_INVALID_ARG  no identity, or muxers over the bounds above;
 *   WISP_ERR_NOMEM        the allocation failed;
 *   WISP_ERR_CRYPTO       OpenSSL or the signer failed. */
int wisp_noise_new(wisp_noise **out, const wisp_mem *mem, bool initiator,
		   const wisp_noise_config *cfg) WISP_NONNULL(1, 2, 4) WISP_WARN_UNUSED;

/* Frees n, its OpenSSL objects and every secret in it (wiped first).
 * NULL is allowed. */
void wisp_noise_free(wisp_noise *n);

/* Handshake input. Looks at in[0..len), the bytes received so far, and
 * consumes at most one whole handshake frame. Returns the bytes consumed,
 * or 0 when nothing can be consumed yet: the frame is incomplete, it is our
 * turn to write, or the handshake is over (the rest of the bytes are then
 * transport frames for wisp_noise_open(): an initiator may send its first
 * frame right behind message 3). The frame's payload is decrypted in place,
 * so in[0..consumed) is clobbered. A frame whose length field is already
 * wrong is refused as soon as the 2 length bytes are in. Errors (object
 * FAILED):
 *   WISP_ERR_TOO_LARGE   message 1 longer than 32 bytes (an initiator
 *                        payload, which the spec forbids), or a muxer list
 *                        over the bounds;
 *   WISP_ERR_TRUNCATED   a message shorter than its keys and tags;
 *   WISP_ERR_DECRYPT     a static key or payload failed authentication;
 *   WISP_ERR_HANDSHAKE   a low-order DH key; identity_key or identity_sig
 *                        missing; no common muxer;
 *   WISP_ERR_VARINT, WISP_ERR_WIRE_TYPE, WISP_ERR_MALFORMED
 *                        the payload is not a well-formed protobuf of the
 *                        schema above (MALFORMED also: a muxer with a NUL);
 *   WISP_ERR_UNKNOWN_CODE, WISP_ERR_BAD_KEY, WISP_ERR_TOO_LARGE
 *                        identity_key is not a secp256k1 PublicKey
 *                        (wisp_pubkey_decode());
 *   WISP_ERR_PEER_ID     the key is not the expected peer's;
 *   WISP_ERR_BAD_SIGNATURE  identity_sig does not verify;
 *   WISP_ERR_CRYPTO      a local OpenSSL failure. */
ssize_t wisp_noise_handshake_read(wisp_noise *n, uint8_t *in, size_t len)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Handshake output. When it is our turn, writes the next handshake frame
 * into out[0..cap) and returns its length; returns 0 when we have nothing to
 * send (waiting for the remote, or the handshake is over). cap of
 * WISP_NOISE_MAX_WIRE always suffices; a wisp frame is far smaller (message
 * 1 is 34 bytes, messages 2 and 3 at most a few hundred plus the muxers).
 * Errors: WISP_ERR_NOBUF (cap too small; nothing changed, call again), or,
 * moving the object to FAILED, WISP_ERR_HANDSHAKE (low-order DH key from the
 * remote) and WISP_ERR_CRYPTO. */
ssize_t wisp_noise_handshake_write(wisp_noise *n, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* True once the handshake is complete (TRANSPORT): the remote is verified
 * and seal/open work. */
bool wisp_noise_done(const wisp_noise *n) WISP_NONNULL(1);

/* The remote's verified identity key and peer id (pointers into n, valid
 * while n is): after the handshake, and for the initiator already after
 * message 2. NULL before that and after a failure. */
const wisp_pubkey *wisp_noise_remote_key(const wisp_noise *n) WISP_NONNULL(1);
const wisp_peer_id *wisp_noise_remote_id(const wisp_noise *n) WISP_NONNULL(1);

/* The remote's stream_muxers, in its order: up to max NUL-terminated strings
 * (inside n) into out; returns how many the remote listed. 0 before the
 * handshake is done or after a failure. out may be NULL when max is 0. */
size_t wisp_noise_remote_muxers(const wisp_noise *n, const char **out, size_t max)
	WISP_NONNULL(1);

/* The muxer both sides agreed on in the handshake (a string inside n), or
 * NULL when either side listed none (negotiate with multistream-select),
 * before the handshake is done, or after a failure. */
const char *wisp_noise_muxer(const wisp_noise *n) WISP_NONNULL(1);

/* Transport output. Encrypts in[0..len) as one frame into out[0..cap):
 * 2-byte length || ciphertext || 16-byte tag. in and out must not overlap,
 * except in == out + 2 exactly (the caller placed the plaintext after room
 * for the length: sealed in place). in may be NULL when len is 0.
 * Returns 2 + len + 16, or
 *   WISP_ERR_INVALID_ARG  len > WISP_NOISE_MAX_PLAINTEXT, or another overlap;
 *   WISP_ERR_NOBUF        cap < 2 + len + 16;
 *   WISP_ERR_STATE        the handshake is not done;
 *   (nothing changed for those three), or, moving the object to FAILED:
 *   WISP_ERR_LIMIT        the send nonce reached 2^64 - 1, which Noise
 *                         reserves: the connection must close;
 *   WISP_ERR_CRYPTO. */
ssize_t wisp_noise_seal(wisp_noise *n, uint8_t *out, size_t cap, const uint8_t *in, size_t len)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Transport input. Looks at buf[0..len) for one whole frame and decrypts it
 * in place; *plain / *plen then point at the plaintext inside buf (at buf +
 * 2). Returns the bytes consumed (2 + frame length), or 0 when the frame is
 * not complete yet (*plain / *plen untouched), or
 *   WISP_ERR_STATE      the handshake is not done (nothing changed);
 *   WISP_ERR_TRUNCATED  a frame shorter than its 16-byte tag;
 *   WISP_ERR_DECRYPT    the tag does not verify (the frame bytes are wiped);
 *   WISP_ERR_LIMIT      the receive nonce reached 2^64 - 1;
 *   WISP_ERR_CRYPTO;
 * each of the last four moving the object to FAILED. */
ssize_t wisp_noise_open(wisp_noise *n, uint8_t *buf, size_t len, uint8_t **plain, size_t *plen)
	WISP_NONNULL(1, 4, 5) WISP_WARN_UNUSED;

/* Tests only: set the send and receive nonces, to reach the 2^64 - 1 guard.
 * Valid in TRANSPORT. */
void wisp_noise_test_set_nonces(wisp_noise *n, uint64_t send, uint64_t recv) WISP_NONNULL(1);

#endif
