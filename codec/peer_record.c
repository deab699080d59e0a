/* Signed peer records. The contract is in codec/peer_record.h. */
#include "codec/peer_record.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include <wisp/error.h>

#include "codec/multiaddr.h"
#include "codec/pb.h"
#include "codec/varint.h"

enum { ENV_PUBLIC_KEY = 1, ENV_PAYLOAD_TYPE = 2, ENV_PAYLOAD = 3, ENV_SIGNATURE = 5 };
enum { REC_PEER_ID = 1, REC_SEQ = 2, REC_ADDRESSES = 3 };
enum { ADDR_MULTIADDR = 1 };

static const uint8_t payload_type[2] = { WISP_PEER_RECORD_TYPE0, WISP_PEER_RECORD_TYPE1 };

/* The bytes the signature covers, into out[0..cap): three uvarint
 * length-prefixed blocks. Returns the length or WISP_ERR_NOBUF. */
static ssize_t signed_bytes(const uint8_t *type, size_t tlen, const uint8_t *payload, size_t plen, uint8_t *out,
			    size_t cap)
{
	const struct {
		const void *p;
		size_t n;
	} part[] = { { WISP_PEER_RECORD_DOMAIN, WISP_PEER_RECORD_DOMAIN_LEN }, { type, tlen }, { payload, plen } };
	size_t at = 0;
	for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++) {
		/* every part is bounded by the envelope, far below the 9-byte
		 * varint's range */
		if (cap - at < WISP_UVARINT_MAX_LEN + part[i].n)
			return WISP_ERR_NOBUF;
		at += wisp_uvarint_put(out + at, part[i].n);
		if (part[i].n)
			memcpy(out + at, part[i].p, part[i].n);
		at += part[i].n;
	}
	return (ssize_t)at;
}

/* ---- sealing ---------------------------------------------------------- */

ssize_t wisp_peer_record_seal(const wisp_privkey *key, uint64_t seq, const wisp_peer_record_addr *addrs, size_t n,
			      uint8_t *out, size_t cap)
{
	uint8_t payload[WISP_PEER_RECORD_MAX], sb[WISP_PEER_RECORD_MAX + 3 * WISP_UVARINT_MAX_LEN + 32];
	uint8_t kpb[WISP_PUBKEY_PB_LEN], sig[WISP_SIG_MAX];
	wisp_peer_id id;
	wisp_pb_writer w;

	if (n > WISP_PEER_RECORD_MAX_ADDRS || (n && !addrs))
		return WISP_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++)
		if (!addrs[i].data || addrs[i].len == 0 || addrs[i].len > WISP_PEER_RECORD_MAX_ADDR_LEN)
			return WISP_ERR_INVALID_ARG;
	if (wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(key)) != 0)
		return WISP_ERR_INTERNAL;

	/* PeerRecord, proto3: a zero seq is left out, as protobuf writers do */
	wisp_pb_writer_init(&w, payload, sizeof(payload));
	wisp_pb_put_bytes(&w, REC_PEER_ID, id.bytes, id.len);
	if (seq)
		wisp_pb_put_varint(&w, REC_SEQ, seq);
	for (size_t i = 0; i < n; i++) {
		uint8_t ai[WISP_PEER_RECORD_MAX_ADDR_LEN + 8]; /* AddressInfo{multiaddr} */
		wisp_pb_writer aw;
		wisp_pb_writer_init(&aw, ai, sizeof(ai));
		wisp_pb_put_bytes(&aw, ADDR_MULTIADDR, addrs[i].data, addrs[i].len);
		ssize_t alen = wisp_pb_writer_finish(&aw);
		if (alen < 0)
			return WISP_ERR_INTERNAL;
		wisp_pb_put_bytes(&w, REC_ADDRESSES, ai, (size_t)alen);
	}
	ssize_t plen = wisp_pb_writer_finish(&w);
	if (plen < 0)
		return WISP_ERR_INVALID_ARG; /* the addresses do not fit the envelope bound */

	ssize_t slen = signed_bytes(payload_type, sizeof(payload_type), payload, (size_t)plen, sb, sizeof(sb));
	if (slen < 0)
		return WISP_ERR_INTERNAL;
	ssize_t siglen = wisp_privkey_sign(key, sb, (size_t)slen, sig, sizeof(sig));
	if (siglen < 0)
		return siglen;
	ssize_t klen = wisp_pubkey_encode(wisp_privkey_pubkey(key), kpb, sizeof(kpb));
	if (klen < 0)
		return WISP_ERR_INTERNAL;

	size_t total = wisp_pb_bytes_size(ENV_PUBLIC_KEY, (size_t)klen) +
		       wisp_pb_bytes_size(ENV_PAYLOAD_TYPE, sizeof(payload_type)) +
		       wisp_pb_bytes_size(ENV_PAYLOAD, (size_t)plen) + wisp_pb_bytes_size(ENV_SIGNATURE, (size_t)siglen);
	if (total > WISP_PEER_RECORD_MAX)
		return WISP_ERR_INVALID_ARG;
	if (total > cap)
		return WISP_ERR_NOBUF;
	wisp_pb_writer_init(&w, out, cap);
	wisp_pb_put_bytes(&w, ENV_PUBLIC_KEY, kpb, (size_t)klen);
	wisp_pb_put_bytes(&w, ENV_PAYLOAD_TYPE, payload_type, sizeof(payload_type));
	wisp_pb_put_bytes(&w, ENV_PAYLOAD, payload, (size_t)plen);
	wisp_pb_put_bytes(&w, ENV_SIGNATURE, sig, (size_t)siglen);
	return wisp_pb_writer_finish(&w);
}

/* ---- opening ---------------------------------------------------------- */

/* One AddressInfo: its multiaddr field (empty when absent, as proto3 says). */
static int decode_addr(wisp_peer_record_addr *a, const uint8_t *in, size_t n)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	int rc;

	a->data = NULL;
	a->len = 0;
	wisp_pb_reader_init(&r, in, n);
	while ((rc = wisp_pb_next(&r, &f, WISP_PEER_RECORD_MAX_ADDR_LEN)) > 0) {
		if (f.num != ADDR_MULTIADDR)
			continue;
		if (f.wire != WISP_PB_LEN)
			return WISP_ERR_WIRE_TYPE;
		a->data = f.data;
		a->len = f.len;
	}
	return rc;
}

int wisp_peer_record_decode_payload(wisp_peer_record *rec, const uint8_t *in, size_t n)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	const uint8_t *pid = NULL;
	size_t pid_len = 0;
	bool has_pid = false;
	int rc;

	rec->seq = 0;
	rec->n_addrs = 0;
	memset(&rec->peer, 0, sizeof(rec->peer));
	if (n > WISP_PEER_RECORD_MAX)
		return WISP_ERR_TOO_LARGE;
	wisp_pb_reader_init(&r, in, n);
	/* an AddressInfo holds one bounded multiaddr and its own key and length */
	while ((rc = wisp_pb_next(&r, &f, WISP_PEER_RECORD_MAX_ADDR_LEN + 16)) > 0) {
		switch (f.num) {
		case REC_PEER_ID:
			if (f.wire != WISP_PB_LEN)
				return WISP_ERR_WIRE_TYPE;
			pid = f.data;
			pid_len = f.len;
			has_pid = true;
			break;
		case REC_SEQ:
			if (f.wire != WISP_PB_VARINT)
				return WISP_ERR_WIRE_TYPE;
			rec->seq = f.u64;
			break;
		case REC_ADDRESSES:
			if (f.wire != WISP_PB_LEN)
				return WISP_ERR_WIRE_TYPE;
			if (rec->n_addrs == WISP_PEER_RECORD_MAX_ADDRS)
				return WISP_ERR_TOO_LARGE;
			rc = decode_addr(&rec->addrs[rec->n_addrs], f.data, f.len);
			if (rc < 0)
				return rc;
			rec->n_addrs++;
			break;
		default:
			break; /* unknown fields: skipped (proto3) */
		}
	}
	if (rc < 0)
		return rc;
	if (!has_pid || wisp_peer_id_from_bytes(&rec->peer, pid, pid_len) != 0)
		return WISP_ERR_PEER_ID;
	return 0;
}

typedef struct field {
	const uint8_t *p;
	size_t n;
	bool has;
} field;

int wisp_peer_record_open(wisp_peer_record *rec, const uint8_t *in, size_t n)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	field key = { 0 }, type = { 0 }, payload = { 0 }, sig = { 0 };
	int rc;

	if (n > WISP_PEER_RECORD_MAX)
		return WISP_ERR_TOO_LARGE;
	wisp_pb_reader_init(&r, in, n);
	while ((rc = wisp_pb_next(&r, &f, WISP_PEER_RECORD_MAX)) > 0) {
		size_t max;
		field *dst;
		switch (f.num) {
		case ENV_PUBLIC_KEY:
			max = WISP_PUBKEY_PB_MAX;
			dst = &key;
			break;
		case ENV_PAYLOAD_TYPE:
			max = WISP_PEER_RECORD_MAX_TYPE;
			dst = &type;
			break;
		case ENV_PAYLOAD:
			max = WISP_PEER_RECORD_MAX;
			dst = &payload;
			break;
		case ENV_SIGNATURE:
			max = WISP_PEER_RECORD_MAX_SIG;
			dst = &sig;
			break;
		default:
			continue;
		}
		if (f.wire != WISP_PB_LEN)
			return WISP_ERR_WIRE_TYPE;
		if (f.len > max)
			return WISP_ERR_TOO_LARGE;
		dst->p = f.data;
		dst->n = f.len;
		dst->has = true;
	}
	if (rc < 0)
		return rc;
	if (!key.has || !type.has || !payload.has || !sig.has)
		return WISP_ERR_MALFORMED;

	rc = wisp_pubkey_decode(&rec->key, key.p, key.n);
	if (rc == WISP_ERR_UNKNOWN_CODE)
		return WISP_ERR_UNSUPPORTED; /* a well-formed key of another type */
	if (rc < 0)
		return rc;
	if (type.n != sizeof(payload_type) || memcmp(type.p, payload_type, sizeof(payload_type)) != 0)
		return WISP_ERR_UNKNOWN_CODE;

	/* RFC 0003: the signature is checked before the payload is decoded */
	uint8_t sb[WISP_PEER_RECORD_MAX + 3 * WISP_UVARINT_MAX_LEN + 32];
	ssize_t slen = signed_bytes(type.p, type.n, payload.p, payload.n, sb, sizeof(sb));
	if (slen < 0)
		return WISP_ERR_INTERNAL; /* the envelope bound keeps it within sb */
	rc = wisp_pubkey_verify(&rec->key, sb, (size_t)slen, sig.p, sig.n);
	if (rc < 0)
		return rc;

	rc = wisp_peer_record_decode_payload(rec, payload.p, payload.n);
	if (rc < 0)
		return rc;
	wisp_peer_id signer;
	if (wisp_peer_id_from_pubkey(&signer, &rec->key) != 0 || !wisp_peer_id_equal(&signer, &rec->peer))
		return WISP_ERR_PEER_ID;
	return 0;
}

/* ---- addresses ---------------------------------------------------------- */

size_t wisp_peer_record_tcp(const wisp_peer_record *rec, struct sockaddr_storage *ss, socklen_t *sslen, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < rec->n_addrs && k < cap; i++) {
		const wisp_peer_record_addr *a = &rec->addrs[i];
		ssize_t used = wisp_multiaddr_sockaddr(a->data, a->len, WISP_MA_TCP, &ss[k], &sslen[k]);
		if (used < 0)
			continue;
		/* what may follow: only /p2p/<the record's peer> */
		wisp_ma_iter it;
		wisp_ma_component c;
		wisp_ma_iter_init(&it, a->data + used, a->len - (size_t)used);
		int r = wisp_ma_next(&it, &c);
		if (r == 1) {
			wisp_peer_id id;
			if (c.code != WISP_MA_P2P || wisp_peer_id_from_bytes(&id, c.value, c.len) != 0 ||
			    !wisp_peer_id_equal(&id, &rec->peer) || wisp_ma_next(&it, &c) != 0)
				continue;
		} else if (r < 0) {
			continue;
		}
		k++;
	}
	return k;
}
