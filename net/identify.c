/* identify message codec. The contract is in net/identify.h. */
#include "net/identify.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/frame.h"
#include "codec/pb.h"

enum {
	ID_PUBLIC_KEY = 1,
	ID_LISTEN_ADDRS = 2,
	ID_PROTOCOLS = 3,
	ID_OBSERVED_ADDR = 4,
	ID_PROTOCOL_VERSION = 5,
	ID_AGENT_VERSION = 6,
	ID_SIGNED_PEER_RECORD = 8,
};

/* The bound of one value of field num (0 for fields we do not know). */
static size_t field_max(uint32_t num)
{
	switch (num) {
	case ID_PUBLIC_KEY:
		return WISP_PUBKEY_PB_MAX;
	case ID_LISTEN_ADDRS:
	case ID_OBSERVED_ADDR:
		return WISP_IDENTIFY_MAX_ADDR_LEN;
	case ID_PROTOCOLS:
		return WISP_IDENTIFY_MAX_PROTOCOL_LEN;
	case ID_PROTOCOL_VERSION:
	case ID_AGENT_VERSION:
		return WISP_IDENTIFY_MAX_VERSION_LEN;
	case ID_SIGNED_PEER_RECORD:
		return WISP_IDENTIFY_MAX_MSG;
	default:
		return 0;
	}
}

static wisp_identify_bytes slice(const wisp_pb_field *f)
{
	wisp_identify_bytes b = { f->data, f->len };
	return b;
}

int wisp_identify_decode(wisp_identify *m, const uint8_t *in, size_t n)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	int rc;

	memset(m, 0, sizeof(*m));
	if (n > WISP_IDENTIFY_MAX_MSG)
		return WISP_ERR_TOO_LARGE;
	wisp_pb_reader_init(&r, in, n);
	/* The message bound caps every LEN field here; the per-field bounds
	 * are checked below, before anything is stored. */
	while ((rc = wisp_pb_next(&r, &f, WISP_IDENTIFY_MAX_MSG)) > 0) {
		size_t max = field_max(f.num);
		if (max == 0)
			continue; /* unknown field (7 included): skipped */
		if (f.wire != WISP_PB_LEN)
			return WISP_ERR_WIRE_TYPE;
		if (f.len > max)
			return WISP_ERR_TOO_LARGE;
		switch (f.num) {
		case ID_PUBLIC_KEY:
			rc = wisp_pubkey_decode(&m->public_key, f.data, f.len);
			if (rc < 0)
				return rc;
			m->has_public_key = true;
			break;
		case ID_LISTEN_ADDRS:
			if (m->n_listen_addrs == WISP_IDENTIFY_MAX_ADDRS)
				return WISP_ERR_TOO_LARGE;
			m->listen_addrs[m->n_listen_addrs++] = slice(&f);
			break;
		case ID_PROTOCOLS:
			if (m->n_protocols == WISP_IDENTIFY_MAX_PROTOCOLS)
				return WISP_ERR_TOO_LARGE;
			m->protocols[m->n_protocols++] = slice(&f);
			break;
		case ID_OBSERVED_ADDR:
			m->observed_addr = slice(&f);
			m->has_observed_addr = true;
			break;
		case ID_PROTOCOL_VERSION:
			m->protocol_version = slice(&f);
			m->has_protocol_version = true;
			break;
		case ID_AGENT_VERSION:
			m->agent_version = slice(&f);
			m->has_agent_version = true;
			break;
		default: /* ID_SIGNED_PEER_RECORD */
			m->signed_peer_record = slice(&f);
			m->has_signed_peer_record = true;
			break;
		}
	}
	return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static bool slice_ok(const wisp_identify_bytes *b, size_t max)
{
	return b->len <= max && (b->data || b->len == 0);
}

ssize_t wisp_identify_encoded_size(const wisp_identify *m)
{
	size_t size = 0;

	if (m->n_listen_addrs > WISP_IDENTIFY_MAX_ADDRS || m->n_protocols > WISP_IDENTIFY_MAX_PROTOCOLS)
		return WISP_ERR_INVALID_ARG;
	if (m->has_public_key)
		size += wisp_pb_bytes_size(ID_PUBLIC_KEY, WISP_PUBKEY_PB_LEN);
	for (size_t i = 0; i < m->n_listen_addrs; i++) {
		if (!slice_ok(&m->listen_addrs[i], WISP_IDENTIFY_MAX_ADDR_LEN))
			return WISP_ERR_INVALID_ARG;
		size += wisp_pb_bytes_size(ID_LISTEN_ADDRS, m->listen_addrs[i].len);
	}
	for (size_t i = 0; i < m->n_protocols; i++) {
		if (!slice_ok(&m->protocols[i], WISP_IDENTIFY_MAX_PROTOCOL_LEN))
			return WISP_ERR_INVALID_ARG;
		size += wisp_pb_bytes_size(ID_PROTOCOLS, m->protocols[i].len);
	}
	const struct {
		bool has;
		uint32_t num;
		const wisp_identify_bytes *b;
	} one[] = {
		{ m->has_observed_addr, ID_OBSERVED_ADDR, &m->observed_addr },
		{ m->has_protocol_version, ID_PROTOCOL_VERSION, &m->protocol_version },
		{ m->has_agent_version, ID_AGENT_VERSION, &m->agent_version },
		{ m->has_signed_peer_record, ID_SIGNED_PEER_RECORD, &m->signed_peer_record },
	};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		if (!one[i].has)
			continue;
		if (!slice_ok(one[i].b, field_max(one[i].num)))
			return WISP_ERR_INVALID_ARG;
		size += wisp_pb_bytes_size(one[i].num, one[i].b->len);
	}
	/* Every term is bounded, so the sum cannot wrap; the message bound
	 * applies to the total. */
	if (size > WISP_IDENTIFY_MAX_MSG)
		return WISP_ERR_INVALID_ARG;
	return (ssize_t)size;
}

ssize_t wisp_identify_encode(const wisp_identify *m, uint8_t *out, size_t cap)
{
	uint8_t key[WISP_PUBKEY_PB_LEN];
	wisp_pb_writer w;
	ssize_t size = wisp_identify_encoded_size(m);

	if (size < 0)
		return size;
	if ((size_t)size > cap)
		return WISP_ERR_NOBUF;
	wisp_pb_writer_init(&w, out, cap);
	if (m->has_public_key) {
		ssize_t kl = wisp_pubkey_encode(&m->public_key, key, sizeof(key));
		if (kl < 0)
			return kl;
		wisp_pb_put_bytes(&w, ID_PUBLIC_KEY, key, (size_t)kl);
	}
	for (size_t i = 0; i < m->n_listen_addrs; i++)
		wisp_pb_put_bytes(&w, ID_LISTEN_ADDRS, m->listen_addrs[i].data, m->listen_addrs[i].len);
	for (size_t i = 0; i < m->n_protocols; i++)
		wisp_pb_put_bytes(&w, ID_PROTOCOLS, m->protocols[i].data, m->protocols[i].len);
	if (m->has_observed_addr)
		wisp_pb_put_bytes(&w, ID_OBSERVED_ADDR, m->observed_addr.data, m->observed_addr.len);
	if (m->has_protocol_version)
		wisp_pb_put_bytes(&w, ID_PROTOCOL_VERSION, m->protocol_version.data,
				  m->protocol_version.len);
	if (m->has_agent_version)
		wisp_pb_put_bytes(&w, ID_AGENT_VERSION, m->agent_version.data, m->agent_version.len);
	if (m->has_signed_peer_record)
		wisp_pb_put_bytes(&w, ID_SIGNED_PEER_RECORD, m->signed_peer_record.data,
				  m->signed_peer_record.len);
	return wisp_pb_writer_finish(&w);
}

ssize_t wisp_identify_write_frame(const wisp_identify *m, uint8_t *out, size_t cap)
{
	ssize_t size = wisp_identify_encoded_size(m), hl, n;

	if (size < 0)
		return size;
	hl = wisp_frame_put_prefix(out, cap, (size_t)size);
	if (hl < 0)
		return hl;
	n = wisp_identify_encode(m, out + hl, cap - (size_t)hl);
	if (n < 0)
		return n;
	return hl + n;
}

ssize_t wisp_identify_read_frame(wisp_identify *m, const uint8_t *buf, size_t len)
{
	const uint8_t *payload;
	size_t plen;
	ssize_t n = wisp_frame_peek(buf, len, WISP_IDENTIFY_MAX_MSG, &payload, &plen, NULL);
	int rc;

	if (n <= 0)
		return n;
	rc = wisp_identify_decode(m, payload, plen);
	return rc < 0 ? rc : n;
}
