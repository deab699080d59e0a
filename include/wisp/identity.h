/* wisp identity: secp256k1 keys, key files, signatures and libp2p peer ids.
 *
 * Wire formats (libp2p specs, peer-ids):
 *   PublicKey  { KeyType Type = 1; bytes Data = 2; }  Secp256k1 = 2, Data is
 *              the 33-byte compressed point;
 *   PrivateKey { KeyType Type = 1; bytes Data = 2; }  Data is the 32-byte raw
 *              secret (the key file format, as js-libp2p and go-libp2p write);
 *   peer id    the identity multihash of the PublicKey encoding when it is at
 *              most 42 bytes (always for secp256k1: 0x00 0x25 || pb), else its
 *              sha2-256 multihash; written as base58btc ("16Uiu2...") or as a
 *              CIDv1 (multibase 'b', base32 of 0x01 0x72 || multihash);
 *   signature  ECDSA over SHA-256(message), DER encoded, low-S; nonces are
 *              RFC 6979 so a signature is a function of (key, message).
 *
 * Argument order follows common.h: the object acted on, inputs, outputs.
 * All memory is the caller's: keys, ids and buffers are plain structs and
 * arrays, nothing here allocates through a wisp_mem.
 *
 * Threads: every function may be called from any thread at once, on distinct
 * output objects. The library keeps one hidden, read-only secp256k1 context,
 * created and randomized on first use (pthread_once); when the OS random
 * source cannot seed it, the functions that need it return WISP_ERR_CRYPTO.
 *
 * Secrets: a wisp_privkey holds the raw secret. Call wisp_privkey_wipe() when
 * done with it; every function here wipes the copies it makes on its stack.
 */
#ifndef WISP_IDENTITY_H
#define WISP_IDENTITY_H

#include <wisp/common.h>
#include <wisp/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libp2p KeyType values. wisp implements Secp256k1 only; the others are
 * recognised so an error can say "unsupported" rather than "garbage". */
enum {
	WISP_KEY_RSA = 0,
	WISP_KEY_ED25519 = 1,
	WISP_KEY_SECP256K1 = 2,
	WISP_KEY_ECDSA = 3,
};

#define WISP_SECRET_LEN 32          /* raw secp256k1 secret */
#define WISP_PUBKEY_LEN 33          /* compressed secp256k1 point */
#define WISP_PUBKEY_PB_LEN 37       /* PublicKey protobuf of a secp256k1 key */
#define WISP_PRIVKEY_PB_LEN 36      /* PrivateKey protobuf (key file) */
#define WISP_PUBKEY_PB_MAX 4096     /* decoders refuse longer input */
#define WISP_KEYFILE_MAX 4096       /* key files longer than this are refused */
#define WISP_SIG_MAX 72             /* longest DER ECDSA signature */
#define WISP_PEER_ID_MAX 44         /* longest binary peer id (identity, 42) */
#define WISP_PEER_ID_TEXT_MAX 96    /* room for either text form and its NUL */
#define WISP_PEER_ID_INLINE_MAX 42  /* PublicKey encodings up to this are inlined */

/* A validated secp256k1 public key. Plain value: copy it freely. The fields
 * are private to the library. */
typedef struct wisp_pubkey {
	uint8_t compressed[WISP_PUBKEY_LEN]; /* SEC1 compressed point */
	uint8_t parsed[64];                  /* the library's parsed form */
} wisp_pubkey;

/* A secp256k1 key pair. Holds the secret: keep it in memory you control and
 * wipe it with wisp_privkey_wipe(). Fields are private to the library. */
typedef struct wisp_privkey {
	uint8_t secret[WISP_SECRET_LEN];
	wisp_pubkey pub;
} wisp_privkey;

/* A peer id in binary form: a multihash of len bytes. Compare ids with
 * wisp_peer_id_equal(); bytes past len are unspecified. */
typedef struct wisp_peer_id {
	uint8_t len;
	uint8_t bytes[WISP_PEER_ID_MAX];
} wisp_peer_id;

/* ---- private keys ---------------------------------------------------- */

/* Fills key with a new key pair from the OS random source (getrandom).
 * Returns 0, WISP_ERR_IO (getrandom failed; errno is set) or WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_privkey_generate(wisp_privkey *key);

/* Fills key from a 32-byte secret (copied; the caller keeps and wipes its own
 * copy). Returns 0, WISP_ERR_BAD_KEY (zero, or not below the group order; key
 * is then wiped) or WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_privkey_from_secret(wisp_privkey *key, const uint8_t secret[WISP_SECRET_LEN]);

/* Overwrites the whole struct with zeros in a way the compiler keeps. */
WISP_API WISP_NONNULL(1)
void wisp_privkey_wipe(wisp_privkey *key);

/* The public half of key (a pointer into key, valid while key is). */
WISP_API WISP_NONNULL(1)
const wisp_pubkey *wisp_privkey_pubkey(const wisp_privkey *key);

/* Writes the PrivateKey protobuf of key (WISP_PRIVKEY_PB_LEN bytes) to out.
 * out then holds the secret: the caller wipes it. Returns the length or
 * WISP_ERR_NOBUF (out untouched). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
ssize_t wisp_privkey_encode(const wisp_privkey *key, uint8_t *out, size_t cap);

/* Parses key file bytes (a PrivateKey protobuf; unknown fields are skipped,
 * a repeated field keeps its last value) into key. On error key is wiped.
 * Returns 0 or:
 *   WISP_ERR_TOO_LARGE      n > WISP_KEYFILE_MAX, or a field over that size;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_WIRE_TYPE
 *                           not a well-formed protobuf, or Type/Data with the
 *                           wrong wire type;
 *   WISP_ERR_MALFORMED      Type or Data missing, or a field number 0;
 *   WISP_ERR_UNKNOWN_CODE   Type is not Secp256k1 (RSA, Ed25519, ... or unknown);
 *   WISP_ERR_BAD_KEY        Data is not 32 bytes, or not a valid secret;
 *   WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_privkey_decode(wisp_privkey *key, const uint8_t *in, size_t n);

/* Creates the key file path with mode 0600 (O_CREAT|O_EXCL: never replaces
 * a file), writes the PrivateKey protobuf, fsyncs the file and its folder.
 * On failure after creating it, the file is removed. Blocking file I/O.
 * Returns 0, WISP_ERR_EXISTS (path exists, even as a symlink),
 * WISP_ERR_NOTFOUND (a folder on the way is missing) or WISP_ERR_IO (errno
 * is set). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_privkey_write_file(const wisp_privkey *key, const char *path);

/* Reads and decodes the key file at path (symlinks are followed; the mode of
 * the file itself is checked). Blocking file I/O. On error key is wiped.
 * When mode_out is not NULL and path is a regular file, *mode_out receives
 * its permission bits (for messages such as "mode 0644: chmod 600").
 * Returns 0, or the codes of wisp_privkey_decode(), or:
 *   WISP_ERR_PERM       the file is readable or writable by group or others
 *                       (mode & 066); nothing was read;
 *   WISP_ERR_NOTFOUND   no such file;
 *   WISP_ERR_INVALID_ARG  not a regular file;
 *   WISP_ERR_TOO_LARGE  longer than WISP_KEYFILE_MAX;
 *   WISP_ERR_IO         open/read failed (errno is set). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_privkey_read_file(wisp_privkey *key, const char *path, unsigned *mode_out);

/* ---- signatures ------------------------------------------------------ */

/* Signs SHA-256(msg) with key: DER, low-S, deterministic (RFC 6979).
 * msg may be NULL when n is 0. Returns the signature length (at most
 * WISP_SIG_MAX), WISP_ERR_NOBUF (cap too small; out untouched) or
 * WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 4)
ssize_t wisp_privkey_sign(const wisp_privkey *key, const uint8_t *msg, size_t n,
			  uint8_t *sig, size_t cap);

/* Verifies sig over SHA-256(msg) with pub. Only strict, minimal DER with
 * low S is accepted. Returns 0, WISP_ERR_BAD_SIGNATURE (not DER, not
 * canonical DER, high S, or does not verify) or WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_pubkey_verify(const wisp_pubkey *pub, const uint8_t *msg, size_t n,
		       const uint8_t *sig, size_t siglen);

/* ---- public keys ----------------------------------------------------- */

/* Fills pub from a 33-byte compressed point. Returns 0, WISP_ERR_BAD_KEY
 * (not 33 bytes, not compressed, not on the curve) or WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_pubkey_from_bytes(wisp_pubkey *pub, const uint8_t *data, size_t n);

/* Writes the PublicKey protobuf of pub (WISP_PUBKEY_PB_LEN bytes).
 * Returns the length or WISP_ERR_NOBUF (out untouched). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
ssize_t wisp_pubkey_encode(const wisp_pubkey *pub, uint8_t *out, size_t cap);

/* Parses a PublicKey protobuf (unknown fields skipped; a repeated field
 * keeps its last value). Returns 0 or:
 *   WISP_ERR_TOO_LARGE      n > WISP_PUBKEY_PB_MAX, or a field declaring more;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_WIRE_TYPE  bad protobuf;
 *   WISP_ERR_MALFORMED      Type or Data missing, or a field number 0;
 *   WISP_ERR_UNKNOWN_CODE   Type is not Secp256k1;
 *   WISP_ERR_BAD_KEY        Data is not a 33-byte compressed point on the curve;
 *   WISP_ERR_CRYPTO. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_pubkey_decode(wisp_pubkey *pub, const uint8_t *in, size_t n);

/* 1 when a and b are the same key, else 0. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_pubkey_equal(const wisp_pubkey *a, const wisp_pubkey *b);

/* ---- peer ids -------------------------------------------------------- */

/* The peer id of pub (identity multihash of its PublicKey protobuf).
 * Returns 0 (cannot fail for a valid pub; WISP_ERR_INTERNAL otherwise). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_peer_id_from_pubkey(wisp_peer_id *id, const wisp_pubkey *pub);

/* Parses a binary peer id (a multihash, consumed exactly). Accepted: the
 * identity multihash of 1..42 bytes (any key type: peers with Ed25519 keys
 * have ids too) and the sha2-256 multihash of 32 bytes. Returns 0 or
 * WISP_ERR_TRUNCATED, WISP_ERR_VARINT, WISP_ERR_TRAILING (bytes after the
 * digest), WISP_ERR_UNKNOWN_CODE (another hash function), WISP_ERR_TOO_LARGE
 * (identity digest over 42 bytes), WISP_ERR_MALFORMED (empty identity digest,
 * sha2-256 digest not 32 bytes). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_peer_id_from_bytes(wisp_peer_id *id, const uint8_t *in, size_t n);

/* Parses the text form of a peer id, n characters (no NUL needed): base58btc
 * when it starts with '1' or "Qm", else a CIDv1 in multibase 'b' (lower-case
 * base32, no padding) with codec libp2p-key (0x72). Only the canonical
 * spelling is accepted (re-encoding gives the same text). Returns 0, the
 * codes of wisp_peer_id_from_bytes(), or WISP_ERR_TOO_LARGE (over
 * WISP_PEER_ID_TEXT_MAX), WISP_ERR_BAD_CHAR (outside the alphabet),
 * WISP_ERR_UNKNOWN_CODE (another multibase, CID version or codec),
 * WISP_ERR_MALFORMED (empty, or a non-canonical spelling). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1)
int wisp_peer_id_parse(wisp_peer_id *id, const char *text, size_t n);

/* Writes id as base58btc text with a NUL into out. Returns the length
 * without the NUL, WISP_ERR_NOBUF (WISP_PEER_ID_TEXT_MAX always fits) or
 * WISP_ERR_INVALID_ARG (an empty id). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
ssize_t wisp_peer_id_to_base58(const wisp_peer_id *id, char *out, size_t cap);

/* Writes id as CIDv1 text ("bafz...") with a NUL into out. Returns the
 * length without the NUL, WISP_ERR_NOBUF or WISP_ERR_INVALID_ARG (an empty
 * id). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
ssize_t wisp_peer_id_to_cid(const wisp_peer_id *id, char *out, size_t cap);

/* Extracts the public key embedded in an identity-multihash peer id; pub is
 * written only on success. Returns 0, WISP_ERR_NOTFOUND (a sha2-256 id: the
 * key is not inside), the codes of wisp_pubkey_decode()
 * (WISP_ERR_UNKNOWN_CODE for an Ed25519 id), WISP_ERR_MALFORMED (the embedded
 * encoding is not the canonical one, so the id is not the key's id) or
 * WISP_ERR_INVALID_ARG (an empty id). */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_peer_id_pubkey(const wisp_peer_id *id, wisp_pubkey *pub);

/* 1 when a and b are the same peer id, else 0. */
WISP_API WISP_WARN_UNUSED WISP_NONNULL(1, 2)
int wisp_peer_id_equal(const wisp_peer_id *a, const wisp_peer_id *b);

#ifdef __cplusplus
}
#endif

#endif
