/* Signed peer records (libp2p RFC 0002 signed envelopes, RFC 0003 routing
 * records): a peer's listen addresses, signed with its identity key, so
 * that a third party (a gossipsub PRUNE's PX, identify) can pass them on
 * and the reader can trust they came from that peer.
 *
 *   message Envelope {                      (proto3)
 *     bytes public_key = 1;                 a libp2p PublicKey protobuf
 *     bytes payload_type = 2;               0x03 0x01 for a peer record
 *     bytes payload = 3;                    the PeerRecord encoding
 *     bytes signature = 5;                  over the bytes below
 *   }
 *   message PeerRecord {
 *     bytes peer_id = 1;                    binary peer id of the signer
 *     uint64 seq = 2;                       larger = newer
 *     repeated AddressInfo addresses = 3;   AddressInfo { bytes multiaddr = 1; }
 *   }
 *   signed = uvarint(len(domain)) || domain || uvarint(len(payload_type))
 *            || payload_type || uvarint(len(payload)) || payload
 *
 * What the implementations do, which is what wisp follows (js-libp2p
 * @libp2p/peer-record, go-libp2p core/record, rust-libp2p): the domain is
 * "libp2p-peer-record" (RFC 0003 still says "libp2p-routing-state", which
 * no implementation signs with), the payload type is the two bytes 0x03 0x01
 * (multicodec 0x0301 "libp2p-peer-record" written big-endian, not as a
 * varint) and the signature is field 5 (RFC 0002 says 4). The cross-check
 * against js is tests/interop/identity.mjs.
 *
 * Opening a record checks, in this order, the RFC's: the envelope decodes
 * within its bounds; the key is secp256k1 (wisp verifies nothing else); the
 * payload type is a peer record; the signature verifies over the domain
 * separated bytes; only then the payload is decoded, and its peer_id must
 * be the key's peer id. Addresses are returned as signed (binary
 * multiaddrs, not validated: a record may list transports wisp does not
 * speak); wisp_peer_record_tcp() picks the ones wisp can dial.
 *
 * Decoding never allocates: slices point into the caller's input, counts
 * and lengths are checked against the bounds below before use.
 *
 * Pure functions over caller memory; any thread.
 */
#ifndef WISP_CODEC_PEER_RECORD_H
#define WISP_CODEC_PEER_RECORD_H

#include <sys/socket.h>

#include <wisp/common.h>
#include <wisp/identity.h>

#define WISP_PEER_RECORD_DOMAIN "libp2p-peer-record"
#define WISP_PEER_RECORD_DOMAIN_LEN 18
/* Envelope.payload_type of a peer record. */
#define WISP_PEER_RECORD_TYPE0 0x03
#define WISP_PEER_RECORD_TYPE1 0x01

#define WISP_PEER_RECORD_MAX 8192u         /* a whole Envelope: identify's message bound */
#define WISP_PEER_RECORD_MAX_ADDRS 32u     /* addresses in one record */
#define WISP_PEER_RECORD_MAX_ADDR_LEN 512u /* one binary multiaddr */
#define WISP_PEER_RECORD_MAX_TYPE 64u      /* payload_type bytes read */
#define WISP_PEER_RECORD_MAX_SIG 1024u     /* signature bytes read (RSA-4096: 512) */

/* A slice of a binary multiaddr inside someone else's buffer. */
typedef struct wisp_peer_record_addr {
	const uint8_t *data; /* may be NULL when len is 0 */
	size_t len;
} wisp_peer_record_addr;

typedef struct wisp_peer_record {
	wisp_peer_id peer;  /* PeerRecord.peer_id, = the signer's id once opened */
	wisp_pubkey key;    /* the signer (set by wisp_peer_record_open() only) */
	uint64_t seq;
	size_t n_addrs;
	wisp_peer_record_addr addrs[WISP_PEER_RECORD_MAX_ADDRS]; /* as signed; slices of the input */
} wisp_peer_record;

/* Makes our record: PeerRecord{our peer id, seq, addrs[0..n)} in an
 * Envelope signed by key, written to out[0..cap). addrs are binary
 * multiaddrs, written as given (callers pass the addresses they listen on,
 * without /p2p). Deterministic: ECDSA nonces are RFC 6979, so the same
 * inputs give the same bytes (js-libp2p's seal gives these bytes too).
 * Returns the length, or WISP_ERR_INVALID_ARG (n over
 * WISP_PEER_RECORD_MAX_ADDRS, an address empty or over
 * WISP_PEER_RECORD_MAX_ADDR_LEN, the result over WISP_PEER_RECORD_MAX),
 * WISP_ERR_NOBUF, WISP_ERR_CRYPTO. */
ssize_t wisp_peer_record_seal(const wisp_privkey *key, uint64_t seq, const wisp_peer_record_addr *addrs,
			      size_t n, uint8_t *out, size_t cap) WISP_NONNULL(1, 5) WISP_WARN_UNUSED;

/* Opens the Envelope in[0..n) (see the checks above) into rec, whose
 * slices then point into in. Returns 0 or
 *   WISP_ERR_TOO_LARGE     n over WISP_PEER_RECORD_MAX, a field over its
 *                          bound, more than WISP_PEER_RECORD_MAX_ADDRS
 *                          addresses;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_WIRE_TYPE
 *                          not a well-formed protobuf (either message);
 *   WISP_ERR_MALFORMED     public_key, payload_type, payload or signature
 *                          missing, a field number 0;
 *   WISP_ERR_UNSUPPORTED   a well-formed key of a type wisp does not verify
 *                          (Ed25519, RSA, ECDSA): a local limit, not the
 *                          peer's fault;
 *   WISP_ERR_BAD_KEY       a secp256k1 key that is not a curve point;
 *   WISP_ERR_UNKNOWN_CODE  payload_type is not a peer record;
 *   WISP_ERR_BAD_SIGNATURE the signature does not verify;
 *   WISP_ERR_PEER_ID       peer_id missing, not a peer id, or not the key's;
 *   WISP_ERR_CRYPTO        the crypto library failed (local).
 * On error rec must not be used. */
int wisp_peer_record_open(wisp_peer_record *rec, const uint8_t *in, size_t n) WISP_NONNULL(1)
	WISP_WARN_UNUSED;

/* Decodes a PeerRecord payload (no envelope, no signature) into rec's
 * peer, seq and addrs; rec->key is left alone. For the fuzzer and for
 * wisp_peer_record_open(), which calls it only after the signature
 * verified. Errors: WISP_ERR_TOO_LARGE, the protobuf errors above,
 * WISP_ERR_PEER_ID (peer_id missing or not a peer id). */
int wisp_peer_record_decode_payload(wisp_peer_record *rec, const uint8_t *in, size_t n)
	WISP_NONNULL(1) WISP_WARN_UNUSED;

/* The record's addresses wisp can dial: /ip4|ip6/<addr>/tcp/<port>, with
 * nothing after it but, optionally, /p2p/<the record's own peer id>. Up to
 * cap of them into ss[] / sslen[], in record order; returns how many were
 * written. Other addresses (dns, quic, /p2p of another peer, malformed) are
 * skipped. */
size_t wisp_peer_record_tcp(const wisp_peer_record *rec, struct sockaddr_storage *ss, socklen_t *sslen,
			    size_t cap) WISP_NONNULL(1);

#endif
