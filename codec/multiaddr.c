#include "codec/multiaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/base32.h"
#include "codec/base58.h"
#include "codec/multihash.h"
#include "codec/varint.h"

/* size: the fixed value size, or 0 for a uvarint length-prefixed value. */
typedef struct proto {
	uint64_t code;
	const char *name;
	size_t size;
	size_t max;
} proto;

static const proto protos[] = {
	{ WISP_MA_IP4, "ip4", 4, 4 },
	{ WISP_MA_TCP, "tcp", 2, 2 },
	{ WISP_MA_UDP, "udp", 2, 2 },
	{ WISP_MA_IP6, "ip6", 16, 16 },
	{ WISP_MA_DNS4, "dns4", 0, WISP_MA_DNS_MAX },
	{ WISP_MA_DNS6, "dns6", 0, WISP_MA_DNS_MAX },
	{ WISP_MA_P2P, "p2p", 0, WISP_MA_P2P_MAX },
};

#define NPROTOS (sizeof(protos) / sizeof(protos[0]))

/* multicodec "libp2p-key", the codec of a peer id written as a CID. */
#define CODEC_LIBP2P_KEY 0x72

static const proto *proto_by_code(uint64_t code)
{
	for (size_t i = 0; i < NPROTOS; i++)
		if (protos[i].code == code)
			return &protos[i];
	return NULL;
}

static const proto *proto_by_name(const char *s, size_t n)
{
	/* "ipfs" is the old name of p2p, still found in configs. */
	if (n == 4 && !memcmp(s, "ipfs", 4))
		return proto_by_code(WISP_MA_P2P);
	for (size_t i = 0; i < NPROTOS; i++)
		if (strlen(protos[i].name) == n && !memcmp(protos[i].name, s, n))
			return &protos[i];
	return NULL;
}

static int dns_char_ok(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '/';
}

/* Checks a value against its protocol; len is within pr->max. */
static int check_value(const proto *pr, const uint8_t *v, size_t len)
{
	switch (pr->code) {
	case WISP_MA_DNS4:
	case WISP_MA_DNS6:
		for (size_t i = 0; i < len; i++)
			if (!dns_char_ok(v[i]))
				return WISP_ERR_BAD_CHAR;
		return 0;
	case WISP_MA_P2P: {
		wisp_multihash mh;
		return wisp_multihash_decode(v, len, &mh);
	}
	default:
		return 0;
	}
}

void wisp_ma_iter_init(wisp_ma_iter *it, const uint8_t *ma, size_t n)
{
	it->p = ma;
	it->end = n ? ma + n : ma;
}

int wisp_ma_next(wisp_ma_iter *it, wisp_ma_component *c)
{
	const uint8_t *p = it->p, *end = it->end;
	if (p == end)
		return 0;
	uint64_t code, len;
	ssize_t r = wisp_uvarint_get(p, end, &code);
	if (r < 0)
		return (int)r;
	p += r;
	const proto *pr = proto_by_code(code);
	if (!pr)
		return WISP_ERR_UNKNOWN_CODE;
	if (pr->size) {
		len = pr->size;
	} else {
		r = wisp_uvarint_get(p, end, &len);
		if (r < 0)
			return (int)r;
		p += r;
		if (len > pr->max)
			return WISP_ERR_TOO_LARGE;
		if (len == 0)
			return WISP_ERR_MALFORMED;
	}
	if (len > (size_t)(end - p))
		return WISP_ERR_TRUNCATED;
	int err = check_value(pr, p, (size_t)len);
	if (err)
		return err;
	c->code = code;
	c->value = p;
	c->len = (size_t)len;
	it->p = p + len;
	return 1;
}

int wisp_multiaddr_validate(const uint8_t *ma, size_t n)
{
	if (n == 0)
		return WISP_ERR_MALFORMED;
	wisp_ma_iter it;
	wisp_ma_component c;
	int r;
	wisp_ma_iter_init(&it, ma, n);
	while ((r = wisp_ma_next(&it, &c)) == 1)
		;
	return r;
}

/* Appends code + (length prefix) + value, already validated. */
static ssize_t put_component(uint8_t *out, size_t cap, size_t used, const proto *pr,
			     const uint8_t *v, size_t len)
{
	size_t need = wisp_uvarint_len(pr->code) + (pr->size ? 0 : wisp_uvarint_len(len)) + len;
	if (used > cap || need > cap - used)
		return WISP_ERR_NOBUF;
	used += wisp_uvarint_put(out + used, pr->code);
	if (!pr->size)
		used += wisp_uvarint_put(out + used, len);
	memcpy(out + used, v, len);
	return (ssize_t)(used + len);
}

ssize_t wisp_multiaddr_append(uint8_t *out, size_t cap, size_t used, uint64_t code,
			      const uint8_t *value, size_t len)
{
	const proto *pr = proto_by_code(code);
	if (!pr)
		return WISP_ERR_UNKNOWN_CODE;
	if ((pr->size && len != pr->size) || len == 0 || len > pr->max ||
	    check_value(pr, value, len))
		return WISP_ERR_INVALID_ARG;
	return put_component(out, cap, used, pr, value, len);
}

static int parse_port(const char *s, size_t n, uint8_t out[2])
{
	if (n > 5)
		return WISP_ERR_MALFORMED;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return WISP_ERR_BAD_CHAR;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535 || (n > 1 && s[0] == '0'))
		return WISP_ERR_MALFORMED;
	out[0] = (uint8_t)(v >> 8);
	out[1] = (uint8_t)v;
	return 0;
}

static int parse_ip(int af, const char *s, size_t n, uint8_t *out)
{
	char tmp[INET6_ADDRSTRLEN];
	if (n >= sizeof(tmp) || memchr(s, 0, n))
		return WISP_ERR_MALFORMED;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	return inet_pton(af, tmp, out) == 1 ? 0 : WISP_ERR_MALFORMED;
}

/* Peer id text to multihash bytes: base58btc if it starts like a multihash
 * ('1' identity, 'Q' sha2-256), else a base32 CIDv1 (multibase 'b') of
 * <version 1><libp2p-key><multihash>. */
static ssize_t parse_peer_id(const char *s, size_t n, uint8_t *out, size_t cap)
{
	ssize_t len;
	if (s[0] == '1' || s[0] == 'Q') {
		len = wisp_base58_decode(s, n, out, cap);
	} else if (s[0] == 'b') {
		uint8_t cid[WISP_MA_P2P_MAX + 8];
		len = wisp_base32_decode(s + 1, n - 1, cid, sizeof(cid));
		if (len >= 0) {
			const uint8_t *p = cid, *end = cid + len;
			uint64_t version, codec;
			ssize_t r = wisp_uvarint_get(p, end, &version);
			if (r < 0)
				return r;
			p += r;
			r = wisp_uvarint_get(p, end, &codec);
			if (r < 0)
				return r;
			p += r;
			if (version != 1)
				return WISP_ERR_MALFORMED;
			if (codec != CODEC_LIBP2P_KEY)
				return WISP_ERR_UNKNOWN_CODE;
			len = end - p;
			if ((size_t)len > cap)
				return WISP_ERR_TOO_LARGE;
			memcpy(out, p, (size_t)len);
		}
	} else {
		return WISP_ERR_MALFORMED;
	}
	if (len == WISP_ERR_NOBUF)
		return WISP_ERR_TOO_LARGE;
	return len;
}

/* Text value of one component into val[]; returns its length. */
static ssize_t parse_value(const proto *pr, const char *s, size_t n, uint8_t *val)
{
	int err;
	switch (pr->code) {
	case WISP_MA_IP4:
		err = parse_ip(AF_INET, s, n, val);
		return err ? err : 4;
	case WISP_MA_IP6:
		err = parse_ip(AF_INET6, s, n, val);
		return err ? err : 16;
	case WISP_MA_TCP:
	case WISP_MA_UDP:
		err = parse_port(s, n, val);
		return err ? err : 2;
	case WISP_MA_DNS4:
	case WISP_MA_DNS6:
		if (n > WISP_MA_DNS_MAX)
			return WISP_ERR_TOO_LARGE;
		memcpy(val, s, n);
		err = check_value(pr, val, n);
		return err ? err : (ssize_t)n;
	case WISP_MA_P2P: {
		ssize_t len = parse_peer_id(s, n, val, WISP_MA_P2P_MAX);
		if (len < 0)
			return len;
		err = check_value(pr, val, (size_t)len);
		return err ? err : len;
	}
	}
	return WISP_ERR_UNKNOWN_CODE;
}

static size_t span_to_slash(const char *s, size_t from, size_t n)
{
	size_t i = from;
	while (i < n && s[i] != '/')
		i++;
	return i - from;
}

ssize_t wisp_multiaddr_from_text(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n == 0 || s[0] != '/')
		return WISP_ERR_MALFORMED;
	size_t pos = 0, used = 0;
	uint8_t val[WISP_MA_DNS_MAX > WISP_MA_P2P_MAX ? WISP_MA_DNS_MAX : WISP_MA_P2P_MAX];
	while (pos < n) {
		/* s[pos] is the '/' before a protocol name. */
		size_t nlen = span_to_slash(s, pos + 1, n);
		if (nlen == 0)
			return WISP_ERR_MALFORMED;
		const proto *pr = proto_by_name(s + pos + 1, nlen);
		if (!pr)
			return WISP_ERR_UNKNOWN_CODE;
		pos += 1 + nlen;
		if (pos == n)
			return WISP_ERR_MALFORMED;
		size_t vlen = span_to_slash(s, pos + 1, n);
		if (vlen == 0)
			return WISP_ERR_MALFORMED;
		ssize_t len = parse_value(pr, s + pos + 1, vlen, val);
		if (len < 0)
			return len;
		pos += 1 + vlen;
		ssize_t r = put_component(out, cap, used, pr, val, (size_t)len);
		if (r < 0)
			return r;
		used = (size_t)r;
	}
	return (ssize_t)used;
}

typedef struct text_out {
	char *p;
	size_t cap;
	size_t len;
	int err;
} text_out;

static void put_text(text_out *t, const char *s, size_t n)
{
	/* One byte stays free for the NUL. */
	if (t->err || n >= t->cap - t->len) {
		t->err = WISP_ERR_NOBUF;
		return;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void put_cstr(text_out *t, const char *s)
{
	put_text(t, s, strlen(s));
}

ssize_t wisp_multiaddr_to_text(const uint8_t *ma, size_t n, char *out, size_t cap)
{
	int err = wisp_multiaddr_validate(ma, n);
	if (err)
		return err;
	if (cap == 0)
		return WISP_ERR_NOBUF;
	text_out t = { .p = out, .cap = cap };
	wisp_ma_iter it;
	wisp_ma_component c;
	wisp_ma_iter_init(&it, ma, n);
	while (wisp_ma_next(&it, &c) == 1) {
		char buf[WISP_BASE58_ENCODED_MAX(WISP_MA_P2P_MAX) + 1];
		put_cstr(&t, "/");
		put_cstr(&t, proto_by_code(c.code)->name);
		put_cstr(&t, "/");
		switch (c.code) {
		case WISP_MA_IP4:
		case WISP_MA_IP6:
			inet_ntop(c.code == WISP_MA_IP4 ? AF_INET : AF_INET6, c.value, buf,
				  sizeof(buf));
			put_cstr(&t, buf);
			break;
		case WISP_MA_TCP:
		case WISP_MA_UDP: {
			unsigned port = wisp_ma_port(&c);
			size_t i = sizeof(buf);
			do {
				buf[--i] = (char)('0' + port % 10);
				port /= 10;
			} while (port);
			put_text(&t, buf + i, sizeof(buf) - i);
			break;
		}
		case WISP_MA_DNS4:
		case WISP_MA_DNS6:
			put_text(&t, (const char *)c.value, c.len);
			break;
		case WISP_MA_P2P:
			if (wisp_base58_encode(c.value, c.len, buf, sizeof(buf)) < 0)
				t.err = WISP_ERR_INTERNAL;
			put_cstr(&t, buf);
			break;
		}
	}
	if (t.err)
		return t.err;
	out[t.len] = 0;
	return (ssize_t)t.len;
}

ssize_t wisp_multiaddr_sockaddr(const uint8_t *ma, size_t n, uint64_t transport,
				struct sockaddr_storage *ss, socklen_t *sslen)
{
	wisp_ma_iter it;
	wisp_ma_component ip = { 0 }, tp = { 0 }; /* gcc -O2 cannot see wisp_ma_next() fill them */
	wisp_ma_iter_init(&it, ma, n);
	int r = wisp_ma_next(&it, &ip);
	if (r <= 0)
		return r ? r : WISP_ERR_MALFORMED;
	if (ip.code != WISP_MA_IP4 && ip.code != WISP_MA_IP6)
		return WISP_ERR_UNSUPPORTED;
	r = wisp_ma_next(&it, &tp);
	if (r < 0)
		return r;
	if (r == 0 || tp.code != transport)
		return WISP_ERR_UNSUPPORTED;

	memset(ss, 0, sizeof(*ss));
	uint16_t port = htons(wisp_ma_port(&tp));
	if (ip.code == WISP_MA_IP4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		memcpy(&sin->sin_addr, ip.value, 4);
		*sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		memcpy(&sin6->sin6_addr, ip.value, 16);
		*sslen = sizeof(*sin6);
	}
	return it.p - ma;
}

ssize_t wisp_multiaddr_from_sockaddr(const struct sockaddr *sa, uint64_t transport, uint8_t *out,
				     size_t cap)
{
	const proto *tp = proto_by_code(transport);
	if (transport != WISP_MA_TCP && transport != WISP_MA_UDP)
		return WISP_ERR_INVALID_ARG;
	const uint8_t *addr;
	uint16_t port;
	const proto *ip;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		addr = (const uint8_t *)&sin->sin_addr;
		port = ntohs(sin->sin_port);
		ip = proto_by_code(WISP_MA_IP4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		addr = (const uint8_t *)&sin6->sin6_addr;
		port = ntohs(sin6->sin6_port);
		ip = proto_by_code(WISP_MA_IP6);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			addr += 12;
			ip = proto_by_code(WISP_MA_IP4);
		}
	} else {
		return WISP_ERR_INVALID_ARG;
	}
	uint8_t pv[2] = { (uint8_t)(port >> 8), (uint8_t)port };
	ssize_t r = put_component(out, cap, 0, ip, addr, ip->size);
	if (r < 0)
		return r;
	return put_component(out, cap, (size_t)r, tp, pv, 2);
}
