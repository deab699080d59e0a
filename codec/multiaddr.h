/* Multiaddrs, binary and text, for the protocols wisp dials and announces:
 *   /ip4/<a.b.c.d>  /ip6/<inet_ntop form>  /tcp/<port>  /udp/<port>
 *   /dns4/<name>    /dns6/<name>           /p2p/<peer id>
 *
 * Binary: a sequence of components, each uvarint protocol code then the
 * value: 4 bytes (ip4), 16 (ip6), 2 big-endian (tcp, udp), or a uvarint
 * length and that many bytes (dns4, dns6, p2p). Every decoder here checks
 * every component: unknown codes, bad lengths, empty or bad dns names, p2p
 * values that are not one whole multihash, and an empty multiaddr are
 * refused.
 *
 * Text is parsed strictly (no empty components, no trailing '/', ports in
 * plain decimal without leading zeros, ip4 dotted-quad without leading zeros)
 * and printed canonically, so binary -> text -> binary is the identity.
 * p2p text is base58btc ("Qm...", "12D3Koo..."); a CIDv1 with the
 * libp2p-key codec in base32 ("bafz...") is accepted on input; "/ipfs/" is
 * accepted as an alias of "/p2p/". Output is always "/p2p/" base58btc.
 *
 * Pure functions over caller buffers; any thread.
 */
#ifndef WISP_CODEC_MULTIADDR_H
#define WISP_CODEC_MULTIADDR_H

#include <sys/socket.h>

#include <wisp/common.h>

enum {
	WISP_MA_IP4 = 0x04,
	WISP_MA_TCP = 0x06,
	WISP_MA_IP6 = 0x29,
	WISP_MA_DNS4 = 0x36,
	WISP_MA_DNS6 = 0x37,
	WISP_MA_UDP = 0x0111,
	WISP_MA_P2P = 0x01a5,
};

/* Longest dns4/dns6 value accepted (a DNS name is at most 253 characters). */
#define WISP_MA_DNS_MAX 255
/* Longest p2p value (multihash) accepted, binary bytes. */
#define WISP_MA_P2P_MAX 128

/* One component; value points into the multiaddr being read and excludes
 * the length prefix of variable-size values (dns: the name; p2p: the
 * multihash; tcp/udp: 2 big-endian bytes; ip4/ip6: 4/16 bytes). */
typedef struct wisp_ma_component {
	uint64_t code;
	const uint8_t *value;
	size_t len;
} wisp_ma_component;

typedef struct wisp_ma_iter {
	const uint8_t *p;
	const uint8_t *end;
} wisp_ma_iter;

/* Iterates over the binary multiaddr ma[0..n), which it borrows. */
void wisp_ma_iter_init(wisp_ma_iter *it, const uint8_t *ma, size_t n) WISP_NONNULL(1);

/* Returns 1 with the next validated component in *c, 0 at the end, or
 *   WISP_ERR_UNKNOWN_CODE  a protocol code not in the list above;
 *   WISP_ERR_TRUNCATED     input ends inside a component;
 *   WISP_ERR_VARINT        bad code or length varint;
 *   WISP_ERR_TOO_LARGE     dns over WISP_MA_DNS_MAX or p2p over WISP_MA_P2P_MAX;
 *   WISP_ERR_MALFORMED     empty dns/p2p value;
 *   WISP_ERR_BAD_CHAR      a dns byte outside '!'..'~' or a '/';
 *   a wisp_multihash_decode() error for a p2p value.
 * The iterator does not advance on error. */
int wisp_ma_next(wisp_ma_iter *it, wisp_ma_component *c) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* The port of a tcp/udp component. */
static inline uint16_t wisp_ma_port(const wisp_ma_component *c)
{
	return (uint16_t)(c->value[0] << 8 | c->value[1]);
}

/* Checks a whole binary multiaddr: 0, WISP_ERR_MALFORMED when empty, or the
 * first wisp_ma_next() error. */
int wisp_multiaddr_validate(const uint8_t *ma, size_t n) WISP_WARN_UNUSED;

/* Parses text s[0..n) (no NUL needed) into binary in out[0..cap). Returns
 * the binary length, or
 *   WISP_ERR_MALFORMED     no leading '/', empty component or value, missing
 *                          value, bad ip4/ip6/port text, p2p text that is
 *                          neither base58btc nor a base32 CIDv1;
 *   WISP_ERR_UNKNOWN_CODE  unknown protocol name, or a CID whose codec is not
 *                          libp2p-key;
 *   WISP_ERR_BAD_CHAR      bad character in a port, dns name or p2p id;
 *   WISP_ERR_TOO_LARGE     a dns name or p2p id over its maximum;
 *   WISP_ERR_NOBUF         out is too small;
 *   a wisp_multihash_decode() error for the p2p value. */
ssize_t wisp_multiaddr_from_text(const char *s, size_t n, uint8_t *out, size_t cap)
	WISP_WARN_UNUSED;

/* Prints binary ma[0..n) as canonical, NUL-terminated text into
 * out[0..cap). Returns the string length, a wisp_multiaddr_validate() error,
 * or WISP_ERR_NOBUF. */
ssize_t wisp_multiaddr_to_text(const uint8_t *ma, size_t n, char *out, size_t cap)
	WISP_WARN_UNUSED;

/* Appends one component (code + value as in wisp_ma_component) to the
 * binary multiaddr out[0..used), e.g. /p2p/<id> to a listen address.
 * Returns the new total length, WISP_ERR_NOBUF, WISP_ERR_UNKNOWN_CODE, or
 * WISP_ERR_INVALID_ARG when the value is not valid for code. */
ssize_t wisp_multiaddr_append(uint8_t *out, size_t cap, size_t used, uint64_t code,
			      const uint8_t *value, size_t len) WISP_WARN_UNUSED;

/* Reads an /ip4|ip6/<addr>/<transport>/<port> prefix of ma[0..n), where
 * transport is WISP_MA_TCP or WISP_MA_UDP, into *ss / *sslen. Returns the
 * bytes of ma consumed (the rest, such as /p2p/..., is left to the caller),
 * WISP_ERR_UNSUPPORTED when ma does not start that way (a dns address, or
 * the other transport), or a wisp_ma_next() error. */
ssize_t wisp_multiaddr_sockaddr(const uint8_t *ma, size_t n, uint64_t transport,
				struct sockaddr_storage *ss, socklen_t *sslen)
	WISP_NONNULL(4, 5) WISP_WARN_UNUSED;

/* Writes /ip4|ip6/<addr>/<transport>/<port> for sa (AF_INET or AF_INET6; an
 * IPv4-mapped IPv6 address becomes /ip4) into out[0..cap). Returns the
 * length, WISP_ERR_NOBUF, or WISP_ERR_INVALID_ARG (other family or
 * transport). */
ssize_t wisp_multiaddr_from_sockaddr(const struct sockaddr *sa, uint64_t transport, uint8_t *out,
				     size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;

#endif
