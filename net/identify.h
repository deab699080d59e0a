/* identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0): the
 * message codec. No streams and no policy here, only bytes <-> struct.
 *
 *   message Identify {                    (proto2, every field optional)
 *     optional string protocolVersion = 5;
 *     optional string agentVersion = 6;
 *     optional bytes publicKey = 1;       a libp2p PublicKey protobuf
 *     repeated bytes listenAddrs = 2;     binary multiaddrs
 *     optional bytes observedAddr = 4;    how the sender sees us (binary multiaddr)
 *     repeated string protocols = 3;
 *     optional bytes signedPeerRecord = 8;
 *   }
 *
 * On a stream the message travels as one uvarint length-prefixed frame
 * (codec/frame.h); wisp_identify_read_frame() / _write_frame() do that.
 * go-libp2p and js-libp2p refuse messages over 8 KiB, and so does wisp
 * (WISP_IDENTIFY_MAX_MSG).
 *
 * Decoding is zero-copy and never allocates: the caller's wisp_identify gets
 * slices into the input, in arrays of fixed size, and input over any bound
 * below is refused with a typed error rather than truncated. What is
 * checked and what is left to the caller:
 *   publicKey     decoded (wisp_pubkey_decode()): wisp speaks secp256k1 only,
 *                 so another key type fails the message. The caller still
 *                 compares it with the connection's Noise key.
 *   listenAddrs,  kept as raw bytes, NOT validated: peers routinely announce
 *   observedAddr  transports wisp's multiaddr codec does not know (quic-v1,
 *                 ws, webtransport, p2p-circuit), and such an address must be
 *                 skipped by the user, not fail the message. Run
 *                 wisp_multiaddr_validate() on each before use.
 *   strings       raw bytes: proto2 does not require UTF-8, and the slices
 *                 are not NUL-terminated (print with "%.*s").
 *   signedPeerRecord  kept as raw bytes, not parsed or verified here
 *                 (codec/peer_record.h opens it; net/builtin.c does).
 * Unknown fields are skipped; a repeated singular field keeps its last
 * value. For identify push, a field that is absent (has_* false, count 0)
 * means "unchanged".
 *
 * Pure functions over caller memory; any thread.
 */
#ifndef WISP_NET_IDENTIFY_H
#define WISP_NET_IDENTIFY_H

#include <stdbool.h>

#include <wisp/common.h>
#include <wisp/identity.h>

#define WISP_IDENTIFY_MAX_MSG 8192u         /* whole message, bytes */
#define WISP_IDENTIFY_MAX_ADDRS 32u         /* listenAddrs entries */
#define WISP_IDENTIFY_MAX_ADDR_LEN 512u     /* one listen or observed address */
#define WISP_IDENTIFY_MAX_PROTOCOLS 128u    /* protocols entries */
#define WISP_IDENTIFY_MAX_PROTOCOL_LEN 256u /* one protocol id */
#define WISP_IDENTIFY_MAX_VERSION_LEN 256u  /* protocolVersion, agentVersion */

/* A slice of bytes or text inside someone else's buffer. */
typedef struct wisp_identify_bytes {
	const uint8_t *data; /* may be NULL when len is 0 */
	size_t len;
} wisp_identify_bytes;

typedef struct wisp_identify {
	bool has_public_key;
	bool has_observed_addr;
	bool has_protocol_version;
	bool has_agent_version;
	bool has_signed_peer_record;
	wisp_pubkey public_key;
	size_t n_listen_addrs;
	size_t n_protocols;
	wisp_identify_bytes listen_addrs[WISP_IDENTIFY_MAX_ADDRS];
	wisp_identify_bytes protocols[WISP_IDENTIFY_MAX_PROTOCOLS];
	wisp_identify_bytes observed_addr;
	wisp_identify_bytes protocol_version;
	wisp_identify_bytes agent_version;
	wisp_identify_bytes signed_peer_record;
} wisp_identify;

/* A slice over a C string (NULL gives an empty slice), for filling a
 * wisp_identify to encode. */
static inline wisp_identify_bytes wisp_identify_str(const char *s)
{
	wisp_identify_bytes b = { (const uint8_t *)s, 0 };
	while (s && s[b.len])
		b.len++;
	return b;
}

/* Decodes the Identify protobuf in[0..n) into m, which is overwritten
 * first; every slice in m points into in, which must outlive m. in may be
 * NULL when n is 0 (an empty message is valid: nothing is set). Returns 0 or
 *   WISP_ERR_TOO_LARGE    n > WISP_IDENTIFY_MAX_MSG, or a field or count over
 *                         its bound above;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_MALFORMED
 *                         not a well-formed protobuf;
 *   WISP_ERR_WIRE_TYPE    a known field with another wire type than LEN;
 *   WISP_ERR_UNKNOWN_CODE, WISP_ERR_BAD_KEY, WISP_ERR_MALFORMED
 *                         publicKey is not a valid secp256k1 PublicKey.
 * On error m holds whatever was decoded before the fault: do not use it. */
int wisp_identify_decode(wisp_identify *m, const uint8_t *in, size_t n) WISP_NONNULL(1)
	WISP_WARN_UNUSED;

/* The encoded size of m, or WISP_ERR_INVALID_ARG when m breaks a bound
 * above (counts, field lengths, the message size) or has a NULL slice with
 * a length: wisp sends nothing it would refuse itself. */
ssize_t wisp_identify_encoded_size(const wisp_identify *m) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Writes the Identify protobuf of m into out[0..cap), fields in field-number
 * order, each present one once (has_* false and empty arrays are left out).
 * Returns the length, WISP_ERR_INVALID_ARG (as above; out untouched) or
 * WISP_ERR_NOBUF (out may hold a partial message). */
ssize_t wisp_identify_encode(const wisp_identify *m, uint8_t *out, size_t cap) WISP_NONNULL(1)
	WISP_WARN_UNUSED;

/* The same, as one frame: uvarint length || message. Returns the frame
 * length, or the errors of wisp_identify_encode(). */
ssize_t wisp_identify_write_frame(const wisp_identify *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Looks for one frame at the start of buf[0..len) and decodes it into m
 * (slices into buf). Returns the bytes the frame occupies, 0 when it is not
 * complete yet (m untouched), or WISP_ERR_TOO_LARGE (the length prefix is
 * over WISP_IDENTIFY_MAX_MSG, refused before the payload arrives),
 * WISP_ERR_VARINT (bad prefix) or an error of wisp_identify_decode(). */
ssize_t wisp_identify_read_frame(wisp_identify *m, const uint8_t *buf, size_t len)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

#endif
