/* libp2p Noise: framing, the signed handshake payload, muxer agreement and
 * the connection's state. The contract is in net/noise.h. */
#include "net/noise.h"

#include <string.h>

#include <openssl/crypto.h>

#include <wisp/error.h>

#include "codec/pb.h"
#include "net/noise_xx.h"
#include "runtime/mem.h"

/* NoiseHandshakePayload and NoiseExtensions field numbers. */
enum { PL_IDENTITY_KEY = 1, PL_IDENTITY_SIG = 2, PL_EXTENSIONS = 4 };
enum { EXT_WEBTRANSPORT_CERTHASHES = 1, EXT_STREAM_MUXERS = 2 };

#define SIG_PREFIX_LEN (sizeof(WISP_NOISE_SIG_PREFIX) - 1)

/* Named by what the object expects next. */
typedef enum noise_state {
	NOISE_SEND_MSG1,   /* initiator: write message 1 */
	NOISE_EXPECT_MSG1, /* responder: read message 1 */
	NOISE_SEND_MSG2,   /* responder: write message 2 */
	NOISE_EXPECT_MSG2, /* initiator: read message 2 */
	NOISE_SEND_MSG3,   /* initiator: write message 3 */
	NOISE_EXPECT_MSG3, /* responder: read message 3 */
	NOISE_TRANSPORT,   /* handshake done: seal and open */
	NOISE_FAILED,      /* err says why; every call returns it */
} noise_state;

struct wisp_noise {
	const wisp_mem *mem;
	wisp_noise_xx xx;
	noise_state state;
	int err;
	bool initiator;
	bool has_expect;
	bool have_remote;
	int8_t muxer;          /* index into remote_mux of the agreed muxer, or -1 */
	uint8_t n_remote_mux;
	uint8_t n_local_mux;
	wisp_peer_id expect;
	wisp_pubkey remote_key;
	wisp_peer_id remote_id;
	char remote_mux[WISP_NOISE_MAX_MUXERS][WISP_NOISE_MUXER_MAX_LEN + 1];
	/* Our muxers, as (offset, length) of their bytes inside payload. */
	uint16_t local_mux_off[WISP_NOISE_MAX_MUXERS];
	uint8_t local_mux_len[WISP_NOISE_MAX_MUXERS];
	size_t payload_len;
	size_t payload_cap;
	uint8_t payload[]; /* our NoiseHandshakePayload, signed at new */
};

_Static_assert(WISP_NOISE_MUXER_MAX_LEN <= UINT8_MAX, "local_mux_len is a byte");

/* ---- helpers ------------------------------------------------------------ */

static size_t load_be16(const uint8_t *p)
{
	return (size_t)p[0] << 8 | p[1];
}

static void store_be16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Moves n to FAILED with err. The Noise state (keys included) is released
 * at once, and early data from the remote is discarded, as the spec asks. */
static ssize_t fail(wisp_noise *n, int err)
{
	wisp_noise_xx_fini(&n->xx);
	n->state = NOISE_FAILED;
	n->err = err;
	n->have_remote = false;
	n->n_remote_mux = 0;
	n->muxer = -1;
	OPENSSL_cleanse(n->remote_mux, sizeof(n->remote_mux));
	return err;
}

/* ---- our payload ---------------------------------------------------------- */

/* Encoded size of our NoiseExtensions (0 without muxers). */
static size_t extensions_size(const wisp_noise_config *cfg)
{
	size_t len = 0;
	for (size_t i = 0; i < cfg->n_muxers; i++)
		len += wisp_pb_bytes_size(EXT_STREAM_MUXERS, strlen(cfg->muxers[i]));
	return len;
}

static int check_config(const wisp_noise_config *cfg)
{
	if (!cfg->identity || cfg->n_muxers > WISP_NOISE_MAX_MUXERS || (cfg->n_muxers && !cfg->muxers))
		return WISP_ERR_INVALID_ARG;
	for (size_t i = 0; i < cfg->n_muxers; i++) {
		if (!cfg->muxers[i])
			return WISP_ERR_INVALID_ARG;
		size_t len = strnlen(cfg->muxers[i], WISP_NOISE_MUXER_MAX_LEN + 1);
		if (len == 0 || len > WISP_NOISE_MUXER_MAX_LEN)
			return WISP_ERR_INVALID_ARG;
	}
	return 0;
}

/* Signs our static key and writes identity_key, identity_sig and the
 * extensions into n->payload (sized by the caller for them). */
static int build_payload(wisp_noise *n, const wisp_noise_config *cfg, size_t cap)
{
	uint8_t msg[SIG_PREFIX_LEN + WISP_NOISE_XX_DHLEN], key[WISP_PUBKEY_PB_LEN], sig[WISP_SIG_MAX];
	uint8_t ext[WISP_NOISE_MAX_MUXERS * (2 + WISP_NOISE_MUXER_MAX_LEN + 1)];
	size_t ext_off[WISP_NOISE_MAX_MUXERS];
	wisp_pb_writer w, ew;
	ssize_t klen, slen, elen = 0, plen;

	memcpy(msg, WISP_NOISE_SIG_PREFIX, SIG_PREFIX_LEN);
	memcpy(msg + SIG_PREFIX_LEN, wisp_noise_xx_local_static(&n->xx), WISP_NOISE_XX_DHLEN);
	slen = wisp_privkey_sign(cfg->identity, msg, sizeof(msg), sig, sizeof(sig));
	klen = wisp_pubkey_encode(wisp_privkey_pubkey(cfg->identity), key, sizeof(key));
	if (slen < 0 || klen < 0)
		return WISP_ERR_CRYPTO;

	wisp_pb_writer_init(&ew, ext, sizeof(ext));
	for (size_t i = 0; i < cfg->n_muxers; i++) {
		size_t len = strlen(cfg->muxers[i]);
		wisp_pb_put_bytes(&ew, EXT_STREAM_MUXERS, cfg->muxers[i], len);
		ext_off[i] = ew.len - len;
	}
	elen = wisp_pb_writer_finish(&ew);

	wisp_pb_writer_init(&w, n->payload, cap);
	wisp_pb_put_bytes(&w, PL_IDENTITY_KEY, key, (size_t)klen);
	wisp_pb_put_bytes(&w, PL_IDENTITY_SIG, sig, (size_t)slen);
	if (elen > 0)
		wisp_pb_put_bytes(&w, PL_EXTENSIONS, ext, (size_t)elen);
	plen = wisp_pb_writer_finish(&w);
	if (elen < 0 || plen < 0)
		return WISP_ERR_INTERNAL; /* the sizes were computed from the same inputs */
	n->payload_len = (size_t)plen;
	for (size_t i = 0; i < cfg->n_muxers; i++) {
		n->local_mux_off[i] = (uint16_t)((size_t)plen - (size_t)elen + ext_off[i]);
		n->local_mux_len[i] = (uint8_t)strlen(cfg->muxers[i]);
	}
	n->n_local_mux = (uint8_t)cfg->n_muxers;
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

int wisp_noise_new(wisp_noise **out, const wisp_mem *mem, bool initiator,
		   const wisp_noise_config *cfg)
{
	wisp_noise *n;
	size_t cap, ext;
	int rc = check_config(cfg);

	if (rc != 0)
		return rc;
	ext = extensions_size(cfg);
	cap = wisp_pb_bytes_size(PL_IDENTITY_KEY, WISP_PUBKEY_PB_LEN) +
	      wisp_pb_bytes_size(PL_IDENTITY_SIG, WISP_SIG_MAX) +
	      (ext ? wisp_pb_bytes_size(PL_EXTENSIONS, ext) : 0);
	n = wisp_calloc(mem, 1, sizeof(*n) + cap);
	if (!n)
		return WISP_ERR_NOMEM;
	n->mem = mem;
	n->payload_cap = cap;
	n->initiator = initiator;
	n->state = initiator ? NOISE_SEND_MSG1 : NOISE_EXPECT_MSG1;
	n->muxer = -1;
	if (cfg->expect_remote) {
		n->expect = *cfg->expect_remote;
		n->has_expect = true;
	}
	/* libp2p uses an empty prologue. */
	rc = wisp_noise_xx_init(&n->xx, initiator, NULL, 0, cfg->static_secret,
				cfg->ephemeral_secret);
	if (rc == 0)
		rc = build_payload(n, cfg, cap);
	if (rc != 0) {
		wisp_noise_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void wisp_noise_free(wisp_noise *n)
{
	if (!n)
		return;
	const wisp_mem *mem = n->mem;
	wisp_noise_xx_fini(&n->xx);
	OPENSSL_cleanse(n, sizeof(*n) + n->payload_cap);
	wisp_free(mem, n);
}

/* ---- the remote's payload ------------------------------------------------- */

static int take_extensions(wisp_noise *n, const uint8_t *p, size_t len)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	int rc;

	wisp_pb_reader_init(&r, p, len);
	while ((rc = wisp_pb_next(&r, &f, WISP_NOISE_MAX_FRAME)) > 0) {
		if (f.num != EXT_STREAM_MUXERS && f.num != EXT_WEBTRANSPORT_CERTHASHES)
			continue; /* a later extension: skipped */
		if (f.wire != WISP_PB_LEN)
			return WISP_ERR_WIRE_TYPE;
		if (f.num == EXT_WEBTRANSPORT_CERTHASHES)
			continue; /* WebTransport only; not a TCP concern */
		/* Bounded before copying: count, length, and no NUL inside,
		 * since the strings are handed out as C strings. */
		if (n->n_remote_mux == WISP_NOISE_MAX_MUXERS || f.len > WISP_NOISE_MUXER_MAX_LEN)
			return WISP_ERR_TOO_LARGE;
		if (f.len && memchr(f.data, 0, f.len))
			return WISP_ERR_MALFORMED;
		char *dst = n->remote_mux[n->n_remote_mux++];
		if (f.len)
			memcpy(dst, f.data, f.len);
		dst[f.len] = '\0';
	}
	return rc;
}

static bool remote_has(const wisp_noise *n, const char *s, size_t len, int *at)
{
	for (int j = 0; j < n->n_remote_mux; j++) {
		if (strlen(n->remote_mux[j]) == len && memcmp(n->remote_mux[j], s, len) == 0) {
			*at = j;
			return true;
		}
	}
	return false;
}

/* The first muxer of the initiator's list that the responder lists too
 * (inlined-muxer-negotiation.md). Both lists non-empty and disjoint: the
 * handshake MUST fail. */
static int agree_muxer(wisp_noise *n)
{
	int at;

	n->muxer = -1;
	if (!n->n_local_mux || !n->n_remote_mux)
		return 0;
	if (n->initiator) {
		for (int i = 0; i < n->n_local_mux; i++) {
			if (remote_has(n, (const char *)n->payload + n->local_mux_off[i],
				       n->local_mux_len[i], &at)) {
				n->muxer = (int8_t)at;
				return 0;
			}
		}
	} else {
		for (int j = 0; j < n->n_remote_mux; j++) {
			size_t len = strlen(n->remote_mux[j]);
			for (int i = 0; i < n->n_local_mux; i++) {
				if (n->local_mux_len[i] == len &&
				    memcmp(n->payload + n->local_mux_off[i], n->remote_mux[j], len) == 0) {
					n->muxer = (int8_t)j;
					return 0;
				}
			}
		}
	}
	return WISP_ERR_HANDSHAKE;
}

/* Decodes and checks the remote's NoiseHandshakePayload p[0..len) (which
 * points into the caller's buffer, for this call only). */
static int take_payload(wisp_noise *n, const uint8_t *p, size_t len)
{
	uint8_t msg[SIG_PREFIX_LEN + WISP_NOISE_XX_DHLEN];
	const uint8_t *key = NULL, *sig = NULL;
	size_t klen = 0, slen = 0;
	bool has_key = false, has_sig = false;
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pubkey pub;
	wisp_peer_id id;
	int rc;

	n->n_remote_mux = 0;
	wisp_pb_reader_init(&r, p, len);
	/* The frame already bounds every field; a length past the end of the
	 * payload reads as WISP_ERR_TRUNCATED. */
	while ((rc = wisp_pb_next(&r, &f, WISP_NOISE_MAX_FRAME)) > 0) {
		switch (f.num) {
		case PL_IDENTITY_KEY:
		case PL_IDENTITY_SIG:
		case PL_EXTENSIONS:
			if (f.wire != WISP_PB_LEN)
				return WISP_ERR_WIRE_TYPE;
			break;
		default:
			continue; /* unknown fields are skipped */
		}
		/* A repeated singular field keeps its last value; repeated
		 * extensions merge, as protobuf parsers do. */
		if (f.num == PL_IDENTITY_KEY) {
			key = f.data;
			klen = f.len;
			has_key = true;
		} else if (f.num == PL_IDENTITY_SIG) {
			sig = f.data;
			slen = f.len;
			has_sig = true;
		} else if ((rc = take_extensions(n, f.data, f.len)) < 0) {
			return rc;
		}
	}
	if (rc < 0)
		return rc;
	if (!has_key || !has_sig)
		return WISP_ERR_HANDSHAKE;
	rc = wisp_pubkey_decode(&pub, key, klen);
	if (rc < 0)
		return rc;
	rc = wisp_peer_id_from_pubkey(&id, &pub);
	if (rc < 0)
		return rc;
	/* The cheap check first: a wrong peer costs no signature check. */
	if (n->has_expect && !wisp_peer_id_equal(&id, &n->expect))
		return WISP_ERR_PEER_ID;
	memcpy(msg, WISP_NOISE_SIG_PREFIX, SIG_PREFIX_LEN);
	memcpy(msg + SIG_PREFIX_LEN, wisp_noise_xx_remote_static(&n->xx), WISP_NOISE_XX_DHLEN);
	rc = wisp_pubkey_verify(&pub, msg, sizeof(msg), sig, slen);
	if (rc < 0)
		return rc;
	rc = agree_muxer(n);
	if (rc < 0)
		return rc;
	n->remote_key = pub;
	n->remote_id = id;
	n->have_remote = true;
	return 0;
}

/* ---- handshake ------------------------------------------------------------ */

ssize_t wisp_noise_handshake_read(wisp_noise *n, uint8_t *in, size_t len)
{
	unsigned i;
	size_t flen;
	uint8_t *payload;
	ssize_t plen;
	int rc;

	switch (n->state) {
	case NOISE_FAILED:
		return n->err;
	case NOISE_EXPECT_MSG1:
		i = 0;
		break;
	case NOISE_EXPECT_MSG2:
		i = 1;
		break;
	case NOISE_EXPECT_MSG3:
		i = 2;
		break;
	default:
		return 0; /* our turn, or the handshake is over */
	}
	if (len < WISP_NOISE_FRAME_HEAD)
		return 0;
	flen = load_be16(in);
	/* libp2p: the initiator sends no payload in message 1 (it would be
	 * plaintext), so message 1 is exactly its ephemeral key. */
	if (i == 0 && flen > wisp_noise_xx_msg_overhead(0))
		return fail(n, WISP_ERR_TOO_LARGE);
	if (flen < wisp_noise_xx_msg_overhead(i))
		return fail(n, WISP_ERR_TRUNCATED);
	if (len - WISP_NOISE_FRAME_HEAD < flen)
		return 0;

	plen = wisp_noise_xx_read(&n->xx, in + WISP_NOISE_FRAME_HEAD, flen, &payload);
	if (plen < 0)
		return fail(n, (int)plen);
	if (i > 0) {
		rc = take_payload(n, payload, (size_t)plen);
		if (rc < 0)
			return fail(n, rc);
	}
	n->state = i == 0 ? NOISE_SEND_MSG2 : i == 1 ? NOISE_SEND_MSG3 : NOISE_TRANSPORT;
	return (ssize_t)(WISP_NOISE_FRAME_HEAD + flen);
}

ssize_t wisp_noise_handshake_write(wisp_noise *n, uint8_t *out, size_t cap)
{
	const uint8_t *payload = NULL;
	size_t plen = 0;
	unsigned i;
	ssize_t mlen;

	switch (n->state) {
	case NOISE_FAILED:
		return n->err;
	case NOISE_SEND_MSG1:
		i = 0;
		break;
	case NOISE_SEND_MSG2:
		i = 1;
		break;
	case NOISE_SEND_MSG3:
		i = 2;
		break;
	default:
		return 0; /* waiting for the remote, or done */
	}
	if (i > 0) {
		payload = n->payload;
		plen = n->payload_len;
	}
	if (!out || cap < WISP_NOISE_FRAME_HEAD + wisp_noise_xx_msg_overhead(i) + plen)
		return WISP_ERR_NOBUF;
	mlen = wisp_noise_xx_write(&n->xx, out + WISP_NOISE_FRAME_HEAD, cap - WISP_NOISE_FRAME_HEAD,
				   payload, plen);
	if (mlen < 0)
		return fail(n, (int)mlen);
	store_be16(out, (size_t)mlen);
	n->state = i == 0 ? NOISE_EXPECT_MSG2 : i == 1 ? NOISE_EXPECT_MSG3 : NOISE_TRANSPORT;
	return (ssize_t)WISP_NOISE_FRAME_HEAD + mlen;
}

bool wisp_noise_done(const wisp_noise *n)
{
	return n->state == NOISE_TRANSPORT;
}

const wisp_pubkey *wisp_noise_remote_key(const wisp_noise *n)
{
	return n->have_remote ? &n->remote_key : NULL;
}

const wisp_peer_id *wisp_noise_remote_id(const wisp_noise *n)
{
	return n->have_remote ? &n->remote_id : NULL;
}

size_t wisp_noise_remote_muxers(const wisp_noise *n, const char **out, size_t max)
{
	if (n->state != NOISE_TRANSPORT)
		return 0;
	for (size_t i = 0; i < n->n_remote_mux && i < max; i++)
		out[i] = n->remote_mux[i];
	return n->n_remote_mux;
}

const char *wisp_noise_muxer(const wisp_noise *n)
{
	if (n->state != NOISE_TRANSPORT || n->muxer < 0)
		return NULL;
	return n->remote_mux[n->muxer];
}

/* ---- transport ------------------------------------------------------------ */

/* True when [a, a + alen) and [b, b + blen) share a byte. */
static bool overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
	return alen && blen && x < y + blen && y < x + alen;
}

ssize_t wisp_noise_seal(wisp_noise *n, uint8_t *out, size_t cap, const uint8_t *in, size_t len)
{
	size_t total = WISP_NOISE_FRAME_HEAD + len + WISP_NOISE_TAG_LEN;
	int rc;

	if (n->state == NOISE_FAILED)
		return n->err;
	if (n->state != NOISE_TRANSPORT)
		return WISP_ERR_STATE;
	if (len > WISP_NOISE_MAX_PLAINTEXT || (len && !in))
		return WISP_ERR_INVALID_ARG;
	if (!out || cap < total)
		return WISP_ERR_NOBUF;
	if (in != out + WISP_NOISE_FRAME_HEAD && overlaps(in, len, out, total))
		return WISP_ERR_INVALID_ARG;
	rc = wisp_noise_xx_seal(&n->xx, out + WISP_NOISE_FRAME_HEAD, in, len);
	if (rc < 0)
		return fail(n, rc);
	store_be16(out, len + WISP_NOISE_TAG_LEN);
	return (ssize_t)total;
}

ssize_t wisp_noise_open(wisp_noise *n, uint8_t *buf, size_t len, uint8_t **plain, size_t *plen)
{
	size_t flen;
	int rc;

	if (n->state == NOISE_FAILED)
		return n->err;
	if (n->state != NOISE_TRANSPORT)
		return WISP_ERR_STATE;
	if (len < WISP_NOISE_FRAME_HEAD)
		return 0;
	flen = load_be16(buf);
	if (flen < WISP_NOISE_TAG_LEN)
		return fail(n, WISP_ERR_TRUNCATED);
	if (len - WISP_NOISE_FRAME_HEAD < flen)
		return 0;
	rc = wisp_noise_xx_open(&n->xx, buf + WISP_NOISE_FRAME_HEAD, flen);
	if (rc < 0)
		return fail(n, rc);
	*plain = buf + WISP_NOISE_FRAME_HEAD;
	*plen = flen - WISP_NOISE_TAG_LEN;
	return (ssize_t)(WISP_NOISE_FRAME_HEAD + flen);
}

void wisp_noise_test_set_nonces(wisp_noise *n, uint64_t send, uint64_t recv)
{
	wisp_noise_xx_set_nonces(&n->xx, send, recv);
}
