/* The Noise Protocol Framework (revision 34), one protocol only:
 * Noise_XX_25519_ChaChaPoly_SHA256.
 *
 *   XX:  -> e
 *        <- e, ee, s, es
 *        -> s, se
 *
 * This layer knows nothing about libp2p: no framing, no identity payload,
 * any prologue and any payloads. net/noise.c builds the libp2p handshake on
 * it; the tests check it against the cacophony and snow test vectors.
 *
 * Crypto is OpenSSL EVP. Every OpenSSL object (two cipher contexts, one
 * digest context, four X25519 keys, two derive contexts) is created in
 * wisp_noise_xx_init(); messages and transport frames reuse them (ciphers are
 * re-keyed and re-nonced with EVP_CipherInit_ex and a NULL cipher), so the
 * transport path allocates nothing at all. OpenSSL 3.0 still allocates
 * briefly inside the handshake: EVP_DigestInit_ex2 re-creates the SHA-256
 * provider context on every hash, and setting a DH peer takes a reference
 * record; none of it outlives the call.
 *
 * Sizes: messages are at most WISP_NOISE_XX_MAX_MSG bytes (the Noise
 * limit); the caller bounds payloads so the message fits.
 *
 * Threads: one owner thread per object; different objects are independent.
 */
#ifndef WISP_NET_NOISE_XX_H
#define WISP_NET_NOISE_XX_H

#include <stdbool.h>

#include <wisp/common.h>

#define WISP_NOISE_XX_DHLEN 32u
#define WISP_NOISE_XX_HASHLEN 32u
#define WISP_NOISE_XX_TAGLEN 16u
#define WISP_NOISE_XX_MAX_MSG 65535u

/* OpenSSL types, kept opaque here so users of this header need not include
 * OpenSSL's. */
struct evp_cipher_ctx_st;
struct evp_md_ctx_st;
struct evp_pkey_st;
struct evp_pkey_ctx_st;

/* A HandshakeState with its SymmetricState, then the two transport
 * CipherStates. Embedded by value in its owner (no allocation of its own);
 * every field is private to noise_xx.c. */
typedef struct wisp_noise_xx {
	struct evp_cipher_ctx_st *send; /* our direction: handshake encryption, then transport */
	struct evp_cipher_ctx_st *recv; /* the remote's direction */
	struct evp_md_ctx_st *md;       /* SHA-256, for h, HMAC and HKDF */
	struct evp_pkey_st *s, *e;      /* our static and ephemeral key pairs */
	struct evp_pkey_st *rs, *re;    /* the remote's keys (placeholders until received) */
	struct evp_pkey_ctx_st *s_dh, *e_dh; /* derive contexts of s and e */
	uint8_t ck[WISP_NOISE_XX_HASHLEN];
	uint8_t h[WISP_NOISE_XX_HASHLEN];
	uint8_t k[32];     /* handshake cipher key (valid when has_k) */
	uint64_t n;        /* handshake cipher nonce */
	uint64_t send_n;   /* transport nonces */
	uint64_t recv_n;
	uint8_t s_pub[WISP_NOISE_XX_DHLEN], e_pub[WISP_NOISE_XX_DHLEN];
	uint8_t rs_pub[WISP_NOISE_XX_DHLEN], re_pub[WISP_NOISE_XX_DHLEN];
	uint8_t msgs;      /* handshake messages written or read: 0..3 */
	bool initiator;
	bool has_k;
	bool has_rs;
	bool broken;       /* a handshake or crypto error: nothing works any more */
} wisp_noise_xx;

/* Initializes x (whatever it held) as the initiator or the responder:
 * Initialize(protocol name), MixHash(prologue), and the local key pairs from
 * the given 32-byte X25519 secrets, or from RAND_priv_bytes() when a secret
 * is NULL (fixed secrets are for test vectors). The secrets are copied; the
 * caller wipes its own. prologue may be NULL when plen is 0.
 * Returns 0 or WISP_ERR_CRYPTO (OpenSSL could not allocate or initialize
 * something; x is then released as by wisp_noise_xx_fini()). */
int wisp_noise_xx_init(wisp_noise_xx *x, bool initiator, const uint8_t *prologue, size_t plen,
		       const uint8_t *s_secret, const uint8_t *e_secret) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Frees every OpenSSL object and wipes every key and chaining value. Safe on
 * a zero-filled struct and after a failed init; x may then be re-initialized. */
void wisp_noise_xx_fini(wisp_noise_xx *x) WISP_NONNULL(1);

/* True when it is this side's turn to write a handshake message. */
bool wisp_noise_xx_my_turn(const wisp_noise_xx *x) WISP_NONNULL(1);

/* True once all three handshake messages are through and the transport
 * keys are in place. */
bool wisp_noise_xx_done(const wisp_noise_xx *x) WISP_NONNULL(1);

/* The index (0, 1, 2) of the next handshake message, 3 when done. */
unsigned wisp_noise_xx_next_msg(const wisp_noise_xx *x) WISP_NONNULL(1);

/* Bytes message i (0..2) carries before its payload (32, 80, 48) and in all
 * besides the payload (32, 96, 64). */
size_t wisp_noise_xx_msg_head(unsigned i);
size_t wisp_noise_xx_msg_overhead(unsigned i);

/* Writes the next handshake message carrying payload[0..plen) into
 * out[0..cap). payload (NULL when plen is 0) may be anywhere, also inside out (it is moved to
 * out + wisp_noise_xx_msg_head() first, so a caller may build it there and
 * avoid the copy). After the third message the transport keys are split.
 * Returns the message length (head + plen (+ 16 when encrypted)), or
 *   WISP_ERR_STATE   not our turn, or the handshake is over (x unchanged);
 *   WISP_ERR_NOBUF   cap too small, or the message would exceed
 *                    WISP_NOISE_XX_MAX_MSG (x and out unchanged);
 *   WISP_ERR_HANDSHAKE  a DH result was all zeros (the remote sent a
 *                    low-order point);
 *   WISP_ERR_CRYPTO  OpenSSL failed.
 * After HANDSHAKE or CRYPTO the object is unusable. */
ssize_t wisp_noise_xx_write(wisp_noise_xx *x, uint8_t *out, size_t cap, const uint8_t *payload,
			    size_t plen) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Reads the next handshake message msg[0..len) (one whole message, no
 * framing), decrypting the payload in place: on success *payload points at
 * the payload inside msg and the payload length is returned. msg is
 * clobbered either way. After the third message the transport keys are split.
 * Errors:
 *   WISP_ERR_STATE      not the remote's turn, or the handshake is over
 *                       (x and msg unchanged);
 *   WISP_ERR_TRUNCATED  len is below wisp_noise_xx_msg_overhead();
 *   WISP_ERR_TOO_LARGE  len is over WISP_NOISE_XX_MAX_MSG;
 *   WISP_ERR_DECRYPT    the static key or payload failed authentication
 *                       (the unauthenticated plaintext is wiped);
 *   WISP_ERR_HANDSHAKE  a DH result was all zeros (low-order point);
 *   WISP_ERR_CRYPTO     OpenSSL failed.
 * After any error but STATE the object is unusable. */
ssize_t wisp_noise_xx_read(wisp_noise_xx *x, uint8_t *msg, size_t len, uint8_t **payload)
	WISP_NONNULL(1, 2, 4) WISP_WARN_UNUSED;

/* Our static public key (known from init), the remote's (valid once
 * wisp_noise_xx_has_remote_static()), and the handshake hash h (the value
 * the test vectors give once the handshake is done; channel binding). */
const uint8_t *wisp_noise_xx_local_static(const wisp_noise_xx *x) WISP_NONNULL(1);
bool wisp_noise_xx_has_remote_static(const wisp_noise_xx *x) WISP_NONNULL(1);
const uint8_t *wisp_noise_xx_remote_static(const wisp_noise_xx *x) WISP_NONNULL(1);
const uint8_t *wisp_noise_xx_handshake_hash(const wisp_noise_xx *x) WISP_NONNULL(1);

/* Transport: encrypts in[0..len) with the send key and the next send nonce
 * into out[0..len + 16) (ciphertext || tag), empty associated data.
 * out == in is allowed (in place); other overlaps are not. in may be NULL
 * when len is 0. The caller bounds len (the frame limit).
 * Returns 0, WISP_ERR_STATE (handshake not done), WISP_ERR_LIMIT (the
 * nonce reached 2^64 - 1, which Noise reserves: the session is over) or
 * WISP_ERR_CRYPTO. */
int wisp_noise_xx_seal(wisp_noise_xx *x, uint8_t *out, const uint8_t *in, size_t len)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Transport: decrypts buf[0..len) (ciphertext || tag, len >= 16) in place
 * with the receive key and the next receive nonce; the plaintext is
 * buf[0..len - 16). Returns 0, WISP_ERR_STATE, WISP_ERR_TRUNCATED (len < 16),
 * WISP_ERR_LIMIT (receive nonce exhausted), WISP_ERR_DECRYPT (tag mismatch;
 * the nonce does not advance and buf is wiped) or WISP_ERR_CRYPTO (the
 * object is then unusable). */
int wisp_noise_xx_open(wisp_noise_xx *x, uint8_t *buf, size_t len) WISP_NONNULL(1, 2)
	WISP_WARN_UNUSED;

/* Tests only: set the transport nonces. */
void wisp_noise_xx_set_nonces(wisp_noise_xx *x, uint64_t send, uint64_t recv) WISP_NONNULL(1);

#endif
