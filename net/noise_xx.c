/* Noise_XX_25519_ChaChaPoly_SHA256 over OpenSSL EVP. The contract is in
 * net/noise_xx.h; section numbers below are those of the Noise spec, rev 34. */
#include "net/noise_xx.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <wisp/error.h>

/* Exactly HASHLEN bytes, so h starts as the name itself (5.2). */
static const char protocol_name[] = "Noise_XX_25519_ChaChaPoly_SHA256";
_Static_assert(sizeof(protocol_name) - 1 == WISP_NOISE_XX_HASHLEN, "name is HASHLEN bytes");

/* ---- algorithms, fetched once per process ---------------------------- */

/* Explicitly fetched algorithms: passing EVP_sha256() or
 * EVP_chacha20_poly1305() to an init would make OpenSSL 3 look the
 * implementation up again on every call. */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *alg_sha256;
static EVP_CIPHER *alg_chachapoly;

static void algs_fetch(void)
{
	alg_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	alg_chachapoly = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

static int algs_get(void)
{
	if (pthread_once(&algs_once, algs_fetch) != 0 || !alg_sha256 || !alg_chachapoly)
		return WISP_ERR_CRYPTO;
	return 0;
}

/* OpenSSL queues an error record on failure; a failure handled here must
 * not be reported again by whatever next looks at this thread's queue. */
static int fail(wisp_noise_xx *x, int err)
{
	ERR_clear_error();
	x->broken = true;
	return err;
}

/* ---- hashing: SHA-256, HMAC, HKDF (4.3) ------------------------------- */

/* out = SHA-256(a || b || c); any part may be empty (NULL). */
static int sha256(wisp_noise_xx *x, uint8_t out[32], const uint8_t *a, size_t alen,
		  const uint8_t *b, size_t blen, const uint8_t *c, size_t clen)
{
	unsigned int olen = 0;

	if (EVP_DigestInit_ex2(x->md, NULL, NULL) != 1 ||
	    (alen && EVP_DigestUpdate(x->md, a, alen) != 1) ||
	    (blen && EVP_DigestUpdate(x->md, b, blen) != 1) ||
	    (clen && EVP_DigestUpdate(x->md, c, clen) != 1) ||
	    EVP_DigestFinal_ex(x->md, out, &olen) != 1 || olen != 32)
		return WISP_ERR_CRYPTO;
	return 0;
}

#define SHA256_BLOCK 64

/* HMAC-SHA256 (RFC 2104) with a 32-byte key over d1 || d2. Keys here are
 * always HASHLEN bytes, shorter than the block, so they are only padded. */
static int hmac(wisp_noise_xx *x, uint8_t out[32], const uint8_t key[32], const uint8_t *d1,
		size_t l1, const uint8_t *d2, size_t l2)
{
	uint8_t pad[SHA256_BLOCK], inner[32];
	int rc;

	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = (uint8_t)((i < 32 ? key[i] : 0) ^ 0x36);
	rc = sha256(x, inner, pad, sizeof(pad), d1, l1, d2, l2);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = (uint8_t)((i < 32 ? key[i] : 0) ^ 0x5c);
	if (rc == 0)
		rc = sha256(x, out, pad, sizeof(pad), inner, sizeof(inner), NULL, 0);
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

/* HKDF(chaining_key, ikm) with two outputs (4.3). out1/out2 may alias ck. */
static int hkdf2(wisp_noise_xx *x, const uint8_t ck[32], const uint8_t *ikm, size_t ilen,
		 uint8_t out1[32], uint8_t out2[32])
{
	static const uint8_t one = 1, two = 2;
	uint8_t temp[32], o1[32], o2[32];
	int rc = hmac(x, temp, ck, ikm, ilen, NULL, 0);

	if (rc == 0)
		rc = hmac(x, o1, temp, &one, 1, NULL, 0);
	if (rc == 0)
		rc = hmac(x, o2, temp, o1, sizeof(o1), &two, 1);
	if (rc == 0) {
		memcpy(out1, o1, 32);
		memcpy(out2, o2, 32);
	}
	OPENSSL_cleanse(temp, sizeof(temp));
	OPENSSL_cleanse(o1, sizeof(o1));
	OPENSSL_cleanse(o2, sizeof(o2));
	return rc;
}

/* ---- the AEAD (5.1, 12.3) --------------------------------------------- */

/* ChaChaPoly nonce: 32 bits of zeros, then n as 64-bit little endian. */
static void make_nonce(uint8_t iv[12], uint64_t n)
{
	memset(iv, 0, 4);
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(n >> (8 * i));
}

/* Encrypts in[0..len) into out (out == in allowed) and writes the tag at
 * out + len. key NULL keeps the key already loaded in c. */
static int aead_seal(EVP_CIPHER_CTX *c, const uint8_t *key, uint64_t n, const uint8_t *ad,
		     size_t adlen, uint8_t *out, const uint8_t *in, size_t len)
{
	uint8_t iv[12];
	int outl;

	make_nonce(iv, n);
	if (EVP_CipherInit_ex(c, NULL, NULL, key, iv, 1) != 1 ||
	    (adlen && EVP_CipherUpdate(c, NULL, &outl, ad, (int)adlen) != 1) ||
	    (len && EVP_CipherUpdate(c, out, &outl, in, (int)len) != 1) ||
	    EVP_CipherFinal_ex(c, out + len, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, WISP_NOISE_XX_TAGLEN, out + len) != 1)
		return WISP_ERR_CRYPTO;
	return 0;
}

/* Decrypts buf[0..len) in place and checks the tag at buf + len. On a tag
 * mismatch the unauthenticated plaintext is wiped. */
static int aead_open(EVP_CIPHER_CTX *c, const uint8_t *key, uint64_t n, const uint8_t *ad,
		     size_t adlen, uint8_t *buf, size_t len)
{
	uint8_t iv[12], tag[WISP_NOISE_XX_TAGLEN];
	int outl;

	make_nonce(iv, n);
	memcpy(tag, buf + len, sizeof(tag));
	if (EVP_CipherInit_ex(c, NULL, NULL, key, iv, 0) != 1 ||
	    (adlen && EVP_CipherUpdate(c, NULL, &outl, ad, (int)adlen) != 1) ||
	    (len && EVP_CipherUpdate(c, buf, &outl, buf, (int)len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, sizeof(tag), tag) != 1)
		return WISP_ERR_CRYPTO;
	if (EVP_CipherFinal_ex(c, buf + len, &outl) != 1) {
		OPENSSL_cleanse(buf, len);
		return WISP_ERR_DECRYPT;
	}
	return 0;
}

/* ---- SymmetricState (5.2) --------------------------------------------- */

static int mix_hash(wisp_noise_xx *x, const uint8_t *data, size_t len)
{
	return sha256(x, x->h, x->h, sizeof(x->h), data, len, NULL, 0);
}

static int mix_key(wisp_noise_xx *x, const uint8_t *ikm, size_t len)
{
	int rc = hkdf2(x, x->ck, ikm, len, x->ck, x->k);
	if (rc == 0) {
		/* HASHLEN is 32, so temp_k needs no truncation. */
		x->n = 0;
		x->has_k = true;
	}
	return rc;
}

/* Encrypts buf[0..len) in place (tag at buf + len) with ad = h, then
 * MixHash(ciphertext); without a key, only MixHash(plaintext). */
static int encrypt_and_hash(wisp_noise_xx *x, uint8_t *buf, size_t len)
{
	int rc;

	if (!x->has_k)
		return mix_hash(x, buf, len);
	rc = aead_seal(x->send, x->k, x->n, x->h, sizeof(x->h), buf, buf, len);
	if (rc == 0) {
		x->n++;
		rc = mix_hash(x, buf, len + WISP_NOISE_XX_TAGLEN);
	}
	return rc;
}

/* Decrypts buf[0..len) (ciphertext || tag when keyed) in place. The hash
 * must cover the ciphertext, which in-place decryption destroys, so the new
 * h is computed first and installed only once the tag checks out. */
static int decrypt_and_hash(wisp_noise_xx *x, uint8_t *buf, size_t len)
{
	uint8_t next_h[32];
	int rc;

	if (!x->has_k)
		return mix_hash(x, buf, len);
	rc = sha256(x, next_h, x->h, sizeof(x->h), buf, len, NULL, 0);
	if (rc == 0)
		rc = aead_open(x->recv, x->k, x->n, x->h, sizeof(x->h), buf, len - WISP_NOISE_XX_TAGLEN);
	if (rc == 0) {
		x->n++;
		memcpy(x->h, next_h, sizeof(x->h));
	}
	return rc;
}

/* ---- X25519 (12.1) ------------------------------------------------------ */

/* DH(mine, peer) mixed into the chaining key. OpenSSL refuses an all-zero
 * result (RFC 7748 section 6.1): only a low-order point from the remote
 * produces one, so that failure is the peer's. */
static int mix_dh(wisp_noise_xx *x, EVP_PKEY_CTX *mine, EVP_PKEY *peer)
{
	uint8_t shared[WISP_NOISE_XX_DHLEN];
	size_t len = sizeof(shared);
	int rc;

	/* validate_peer = 0: the check would create a context per call, and
	 * every 32-byte string is a valid X25519 public key anyway. */
	if (EVP_PKEY_derive_set_peer_ex(mine, peer, 0) != 1)
		return WISP_ERR_CRYPTO;
	if (EVP_PKEY_derive(mine, shared, &len) != 1 || len != sizeof(shared)) {
		OPENSSL_cleanse(shared, sizeof(shared));
		return WISP_ERR_HANDSHAKE;
	}
	rc = mix_key(x, shared, sizeof(shared));
	OPENSSL_cleanse(shared, sizeof(shared));
	return rc;
}

/* Loads a received public key into one of the placeholder keys made at
 * init, so no key object is created mid-handshake. */
static int set_remote(EVP_PKEY *key, uint8_t copy[32], const uint8_t *pub)
{
	memcpy(copy, pub, WISP_NOISE_XX_DHLEN);
	return EVP_PKEY_set1_encoded_public_key(key, copy, WISP_NOISE_XX_DHLEN) == 1 ? 0
										       : WISP_ERR_CRYPTO;
}

static int make_pair(EVP_PKEY **key, EVP_PKEY_CTX **dh, uint8_t pub[32], const uint8_t *secret)
{
	uint8_t s[32];
	size_t len = WISP_NOISE_XX_DHLEN;
	int rc = 0;

	if (secret)
		memcpy(s, secret, sizeof(s));
	else if (RAND_priv_bytes(s, sizeof(s)) != 1)
		return WISP_ERR_CRYPTO;
	*key = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, s, sizeof(s));
	OPENSSL_cleanse(s, sizeof(s));
	if (!*key || EVP_PKEY_get_raw_public_key(*key, pub, &len) != 1 || len != WISP_NOISE_XX_DHLEN)
		rc = WISP_ERR_CRYPTO;
	if (rc == 0) {
		*dh = EVP_PKEY_CTX_new_from_pkey(NULL, *key, NULL);
		if (!*dh || EVP_PKEY_derive_init(*dh) != 1)
			rc = WISP_ERR_CRYPTO;
	}
	return rc;
}

static EVP_PKEY *make_placeholder(void)
{
	/* The base point u = 9: any valid public key will do until the
	 * remote's arrives. */
	static const uint8_t nine[32] = { 9 };
	return EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, nine, sizeof(nine));
}

/* ---- lifecycle ---------------------------------------------------------- */

void wisp_noise_xx_fini(wisp_noise_xx *x)
{
	/* The frees wipe OpenSSL's copies of the keys (clear_free). */
	EVP_CIPHER_CTX_free(x->send);
	EVP_CIPHER_CTX_free(x->recv);
	EVP_MD_CTX_free(x->md);
	EVP_PKEY_CTX_free(x->s_dh);
	EVP_PKEY_CTX_free(x->e_dh);
	EVP_PKEY_free(x->s);
	EVP_PKEY_free(x->e);
	EVP_PKEY_free(x->rs);
	EVP_PKEY_free(x->re);
	OPENSSL_cleanse(x, sizeof(*x));
}

int wisp_noise_xx_init(wisp_noise_xx *x, bool initiator, const uint8_t *prologue, size_t plen,
		       const uint8_t *s_secret, const uint8_t *e_secret)
{
	int rc = algs_get();

	memset(x, 0, sizeof(*x));
	x->initiator = initiator;
	if (rc != 0)
		goto out;
	rc = WISP_ERR_CRYPTO;
	x->send = EVP_CIPHER_CTX_new();
	x->recv = EVP_CIPHER_CTX_new();
	x->md = EVP_MD_CTX_new();
	x->rs = make_placeholder();
	x->re = make_placeholder();
	if (!x->send || !x->recv || !x->md || !x->rs || !x->re)
		goto out;
	/* Bind the cipher and digest once; later inits pass NULL and reuse
	 * the provider contexts. */
	if (EVP_CipherInit_ex(x->send, alg_chachapoly, NULL, NULL, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(x->recv, alg_chachapoly, NULL, NULL, NULL, 0) != 1 ||
	    EVP_DigestInit_ex2(x->md, alg_sha256, NULL) != 1)
		goto out;
	rc = make_pair(&x->s, &x->s_dh, x->s_pub, s_secret);
	if (rc == 0)
		rc = make_pair(&x->e, &x->e_dh, x->e_pub, e_secret);
	if (rc != 0)
		goto out;

	/* InitializeSymmetric(protocol_name); MixHash(prologue). XX has no
	 * pre-messages. */
	memcpy(x->h, protocol_name, sizeof(x->h));
	memcpy(x->ck, x->h, sizeof(x->ck));
	rc = mix_hash(x, prologue, plen);
out:
	if (rc != 0) {
		ERR_clear_error();
		wisp_noise_xx_fini(x);
	}
	return rc;
}

/* ---- handshake (5.3, 7.5) ------------------------------------------------- */

/* What each XX message holds before its payload: e (32); e, s (32 + 48);
 * s (48). Encrypted statics carry a tag; payloads after the first DH too. */
static const uint8_t msg_head[3] = { 32, 32 + 48, 48 };
static const uint8_t msg_tag[3] = { 0, 16, 16 };

size_t wisp_noise_xx_msg_head(unsigned i)
{
	return i < 3 ? msg_head[i] : 0;
}

size_t wisp_noise_xx_msg_overhead(unsigned i)
{
	return i < 3 ? (size_t)msg_head[i] + msg_tag[i] : 0;
}

bool wisp_noise_xx_my_turn(const wisp_noise_xx *x)
{
	/* The initiator writes messages 0 and 2, the responder message 1. */
	return !x->broken && x->msgs < 3 && ((x->msgs % 2 == 0) == x->initiator);
}

bool wisp_noise_xx_done(const wisp_noise_xx *x)
{
	return !x->broken && x->msgs == 3;
}

unsigned wisp_noise_xx_next_msg(const wisp_noise_xx *x)
{
	return x->msgs;
}

/* Split() (5.2): the two transport keys, loaded once into the cipher
 * contexts; the handshake's own key and chaining key are wiped. */
static int split(wisp_noise_xx *x)
{
	uint8_t k1[32], k2[32];
	int rc = hkdf2(x, x->ck, NULL, 0, k1, k2);

	if (rc == 0 &&
	    (EVP_CipherInit_ex(x->send, NULL, NULL, x->initiator ? k1 : k2, NULL, 1) != 1 ||
	     EVP_CipherInit_ex(x->recv, NULL, NULL, x->initiator ? k2 : k1, NULL, 0) != 1))
		rc = WISP_ERR_CRYPTO;
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(x->ck, sizeof(x->ck));
	OPENSSL_cleanse(x->k, sizeof(x->k));
	x->has_k = false;
	x->send_n = 0;
	x->recv_n = 0;
	return rc;
}

ssize_t wisp_noise_xx_write(wisp_noise_xx *x, uint8_t *out, size_t cap, const uint8_t *payload,
			    size_t plen)
{
	unsigned i = x->msgs;
	size_t head, total;
	int rc = 0;

	if (!wisp_noise_xx_my_turn(x))
		return WISP_ERR_STATE;
	head = msg_head[i];
	if (plen > WISP_NOISE_XX_MAX_MSG - head - msg_tag[i])
		return WISP_ERR_NOBUF;
	total = head + plen + msg_tag[i];
	if (cap < total)
		return WISP_ERR_NOBUF;
	if (plen && payload != out + head)
		memmove(out + head, payload, plen);

	switch (i) {
	case 0: /* -> e */
		memcpy(out, x->e_pub, 32);
		rc = mix_hash(x, x->e_pub, 32);
		break;
	case 1: /* <- e, ee, s, es */
		memcpy(out, x->e_pub, 32);
		rc = mix_hash(x, x->e_pub, 32);
		if (rc == 0)
			rc = mix_dh(x, x->e_dh, x->re);
		if (rc == 0) {
			memcpy(out + 32, x->s_pub, 32);
			rc = encrypt_and_hash(x, out + 32, 32);
		}
		if (rc == 0)
			rc = mix_dh(x, x->s_dh, x->re);
		break;
	default: /* -> s, se */
		memcpy(out, x->s_pub, 32);
		rc = encrypt_and_hash(x, out, 32);
		if (rc == 0)
			rc = mix_dh(x, x->s_dh, x->re);
		break;
	}
	if (rc == 0)
		rc = encrypt_and_hash(x, out + head, plen);
	if (rc == 0 && ++x->msgs == 3)
		rc = split(x);
	if (rc != 0)
		return fail(x, rc);
	return (ssize_t)total;
}

ssize_t wisp_noise_xx_read(wisp_noise_xx *x, uint8_t *msg, size_t len, uint8_t **payload)
{
	unsigned i = x->msgs;
	size_t head;
	int rc = 0;

	if (x->broken || i >= 3 || wisp_noise_xx_my_turn(x))
		return WISP_ERR_STATE;
	if (len < wisp_noise_xx_msg_overhead(i) || len > WISP_NOISE_XX_MAX_MSG)
		return fail(x, len > WISP_NOISE_XX_MAX_MSG ? WISP_ERR_TOO_LARGE : WISP_ERR_TRUNCATED);
	head = msg_head[i];

	switch (i) {
	case 0: /* -> e */
		rc = set_remote(x->re, x->re_pub, msg);
		if (rc == 0)
			rc = mix_hash(x, x->re_pub, 32);
		break;
	case 1: /* <- e, ee, s, es */
		rc = set_remote(x->re, x->re_pub, msg);
		if (rc == 0)
			rc = mix_hash(x, x->re_pub, 32);
		if (rc == 0)
			rc = mix_dh(x, x->e_dh, x->re);
		if (rc == 0)
			rc = decrypt_and_hash(x, msg + 32, 48);
		if (rc == 0)
			rc = set_remote(x->rs, x->rs_pub, msg + 32);
		if (rc == 0) {
			x->has_rs = true;
			rc = mix_dh(x, x->e_dh, x->rs);
		}
		break;
	default: /* -> s, se */
		rc = decrypt_and_hash(x, msg, 48);
		if (rc == 0)
			rc = set_remote(x->rs, x->rs_pub, msg);
		if (rc == 0) {
			x->has_rs = true;
			rc = mix_dh(x, x->e_dh, x->rs);
		}
		break;
	}
	if (rc == 0)
		rc = decrypt_and_hash(x, msg + head, len - head);
	if (rc == 0 && ++x->msgs == 3)
		rc = split(x);
	if (rc != 0)
		return fail(x, rc);
	*payload = msg + head;
	return (ssize_t)(len - head - msg_tag[i]);
}

const uint8_t *wisp_noise_xx_local_static(const wisp_noise_xx *x)
{
	return x->s_pub;
}

bool wisp_noise_xx_has_remote_static(const wisp_noise_xx *x)
{
	return x->has_rs;
}

const uint8_t *wisp_noise_xx_remote_static(const wisp_noise_xx *x)
{
	return x->rs_pub;
}

const uint8_t *wisp_noise_xx_handshake_hash(const wisp_noise_xx *x)
{
	return x->h;
}

/* ---- transport (5.1, 11.3) ------------------------------------------------ */

int wisp_noise_xx_seal(wisp_noise_xx *x, uint8_t *out, const uint8_t *in, size_t len)
{
	int rc;

	if (!wisp_noise_xx_done(x))
		return WISP_ERR_STATE;
	/* 2^64 - 1 is reserved (5.1): the nonce before it is the last one. */
	if (x->send_n == UINT64_MAX)
		return WISP_ERR_LIMIT;
	rc = aead_seal(x->send, NULL, x->send_n, NULL, 0, out, in, len);
	if (rc != 0)
		return fail(x, rc);
	x->send_n++;
	return 0;
}

int wisp_noise_xx_open(wisp_noise_xx *x, uint8_t *buf, size_t len)
{
	int rc;

	if (!wisp_noise_xx_done(x))
		return WISP_ERR_STATE;
	if (len < WISP_NOISE_XX_TAGLEN)
		return WISP_ERR_TRUNCATED;
	if (x->recv_n == UINT64_MAX)
		return WISP_ERR_LIMIT;
	rc = aead_open(x->recv, NULL, x->recv_n, NULL, 0, buf, len - WISP_NOISE_XX_TAGLEN);
	if (rc == WISP_ERR_DECRYPT) {
		/* A failed tag leaves the nonce where it was (5.1). */
		ERR_clear_error();
		return rc;
	}
	if (rc != 0)
		return fail(x, rc);
	x->recv_n++;
	return 0;
}

void wisp_noise_xx_set_nonces(wisp_noise_xx *x, uint64_t send, uint64_t recv)
{
	x->send_n = send;
	x->recv_n = recv;
}
