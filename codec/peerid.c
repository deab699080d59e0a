/* libp2p peer ids: binary multihash, base58btc and CIDv1 text forms.
 * The contract is in include/wisp/identity.h. */
#include <wisp/identity.h>

#include "codec/base32.h"
#include "codec/base58.h"
#include "codec/multihash.h"
#include "codec/varint.h"

#include <string.h>

/* CIDv1 prefix of a peer id: version 1, multicodec libp2p-key. */
enum { CID_V1 = 0x01, CODEC_LIBP2P_KEY = 0x72 };

/* Longest binary form behind a text form: CID prefix + multihash. */
#define PEER_ID_BIN_MAX (2 + WISP_PEER_ID_MAX)

static int peer_id_from_pb(wisp_peer_id *id, const uint8_t *pb, size_t n)
{
	ssize_t len;

	/* peer-ids spec: keys whose encoding is at most 42 bytes are inlined
	 * with the identity multihash, longer ones are hashed. */
	if (n <= WISP_PEER_ID_INLINE_MAX)
		len = wisp_multihash_encode(WISP_MH_IDENTITY, pb, n, id->bytes, sizeof(id->bytes));
	else
		len = wisp_multihash_sha256(pb, n, id->bytes, sizeof(id->bytes));
	if (len <= 0)
		return WISP_ERR_INTERNAL;
	id->len = (uint8_t)len;
	return 0;
}

int wisp_peer_id_from_pubkey(wisp_peer_id *id, const wisp_pubkey *pub)
{
	uint8_t pb[WISP_PUBKEY_PB_LEN];
	ssize_t n = wisp_pubkey_encode(pub, pb, sizeof(pb));

	if (n < 0)
		return WISP_ERR_INTERNAL;
	return peer_id_from_pb(id, pb, (size_t)n);
}

int wisp_peer_id_from_bytes(wisp_peer_id *id, const uint8_t *in, size_t n)
{
	wisp_multihash mh;
	int rc;

	if (n == 0)
		return WISP_ERR_TRUNCATED;
	rc = wisp_multihash_decode(in, n, &mh);
	if (rc < 0)
		return rc;
	/* The multihash must be the whole input. */
	if (mh.digest + mh.len != in + n)
		return WISP_ERR_TRAILING;
	switch (mh.code) {
	case WISP_MH_IDENTITY:
		if (mh.len == 0)
			return WISP_ERR_MALFORMED;
		if (mh.len > WISP_PEER_ID_INLINE_MAX)
			return WISP_ERR_TOO_LARGE;
		break;
	case WISP_MH_SHA2_256:
		if (mh.len != 32)
			return WISP_ERR_MALFORMED;
		break;
	default:
		return WISP_ERR_UNKNOWN_CODE;
	}
	/* Both cases fit: at most 2 + 42 bytes. */
	if (n > sizeof(id->bytes))
		return WISP_ERR_INTERNAL;
	memcpy(id->bytes, in, n);
	id->len = (uint8_t)n;
	return 0;
}

ssize_t wisp_peer_id_to_base58(const wisp_peer_id *id, char *out, size_t cap)
{
	if (id->len == 0 || id->len > sizeof(id->bytes))
		return WISP_ERR_INVALID_ARG;
	return wisp_base58_encode(id->bytes, id->len, out, cap);
}

ssize_t wisp_peer_id_to_cid(const wisp_peer_id *id, char *out, size_t cap)
{
	uint8_t bin[PEER_ID_BIN_MAX];
	ssize_t len;

	if (id->len == 0 || id->len > sizeof(id->bytes))
		return WISP_ERR_INVALID_ARG;
	if (cap < 2)
		return WISP_ERR_NOBUF;
	bin[0] = CID_V1;
	bin[1] = CODEC_LIBP2P_KEY;
	memcpy(bin + 2, id->bytes, id->len);
	out[0] = 'b'; /* multibase: base32, lower case, no padding */
	len = wisp_base32_encode(bin, 2 + (size_t)id->len, out + 1, cap - 1);
	if (len < 0)
		return len;
	return len + 1;
}

/* The decoders report "does not fit" as NOBUF; for text from outside that
 * means the text is too long. */
static int text_err(ssize_t rc)
{
	return rc == WISP_ERR_NOBUF ? WISP_ERR_TOO_LARGE : (int)rc;
}

static int parse_cid(wisp_peer_id *id, const uint8_t *bin, size_t n)
{
	const uint8_t *p = bin, *end = bin + n;
	uint64_t version, codec;
	ssize_t used;

	used = wisp_uvarint_get(p, end, &version);
	if (used < 0)
		return (int)used;
	p += used;
	/* CIDv0 is the bare base58 multihash, handled by the caller. */
	if (version != CID_V1)
		return WISP_ERR_UNKNOWN_CODE;
	used = wisp_uvarint_get(p, end, &codec);
	if (used < 0)
		return (int)used;
	p += used;
	if (codec != CODEC_LIBP2P_KEY)
		return WISP_ERR_UNKNOWN_CODE;
	return wisp_peer_id_from_bytes(id, p, (size_t)(end - p));
}

int wisp_peer_id_parse(wisp_peer_id *id, const char *text, size_t n)
{
	uint8_t bin[PEER_ID_BIN_MAX];
	char again[WISP_PEER_ID_TEXT_MAX];
	wisp_peer_id tmp;
	ssize_t len;
	int rc, cid;

	if (n == 0 || !text)
		return WISP_ERR_MALFORMED;
	if (n >= WISP_PEER_ID_TEXT_MAX)
		return WISP_ERR_TOO_LARGE;
	/* peer-ids spec: '1...' (identity) and 'Qm...' (sha2-256) are bare
	 * base58btc multihashes; anything else is a multibase CID. */
	cid = !(text[0] == '1' || (n >= 2 && text[0] == 'Q' && text[1] == 'm'));
	if (!cid) {
		len = wisp_base58_decode(text, n, bin, sizeof(bin));
		if (len < 0)
			return text_err(len);
		rc = wisp_peer_id_from_bytes(&tmp, bin, (size_t)len);
		if (rc < 0)
			return rc;
		len = wisp_peer_id_to_base58(&tmp, again, sizeof(again));
	} else {
		if (text[0] != 'b')
			return WISP_ERR_UNKNOWN_CODE;
		len = wisp_base32_decode(text + 1, n - 1, bin, sizeof(bin));
		if (len < 0)
			return text_err(len);
		rc = parse_cid(&tmp, bin, (size_t)len);
		if (rc < 0)
			return rc;
		len = wisp_peer_id_to_cid(&tmp, again, sizeof(again));
	}
	/* One spelling per id: rejects non-zero padding bits in base32 and
	 * anything else a lenient decoder let through. */
	if (len < 0 || (size_t)len != n || memcmp(again, text, n) != 0)
		return WISP_ERR_MALFORMED;
	*id = tmp;
	return 0;
}

int wisp_peer_id_pubkey(const wisp_peer_id *id, wisp_pubkey *pub)
{
	uint8_t pb[WISP_PUBKEY_PB_LEN];
	wisp_pubkey tmp;
	wisp_multihash mh;
	int rc;

	if (id->len == 0 || id->len > sizeof(id->bytes))
		return WISP_ERR_INVALID_ARG;
	rc = wisp_multihash_decode(id->bytes, id->len, &mh);
	if (rc < 0)
		return rc;
	if (mh.code != WISP_MH_IDENTITY)
		return WISP_ERR_NOTFOUND;
	rc = wisp_pubkey_decode(&tmp, mh.digest, mh.len);
	if (rc < 0)
		return rc;
	/* The id must be the one this key derives: a reordered or padded
	 * encoding of the same key would otherwise give one key many ids. */
	if (wisp_pubkey_encode(&tmp, pb, sizeof(pb)) != (ssize_t)mh.len ||
	    memcmp(pb, mh.digest, mh.len) != 0)
		return WISP_ERR_MALFORMED;
	*pub = tmp;
	return 0;
}

int wisp_peer_id_equal(const wisp_peer_id *a, const wisp_peer_id *b)
{
	return a->len == b->len && a->len <= sizeof(a->bytes) &&
	       memcmp(a->bytes, b->bytes, a->len) == 0;
}
