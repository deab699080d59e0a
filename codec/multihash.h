/* Multihash: uvarint hash code || uvarint digest length || digest.
 * wisp knows the two codes libp2p peer ids use. Pure functions, any thread.
 */
#ifndef WISP_CODEC_MULTIHASH_H
#define WISP_CODEC_MULTIHASH_H

#include <wisp/common.h>

enum { WISP_MH_IDENTITY = 0x00, WISP_MH_SHA2_256 = 0x12 };

#define WISP_MH_SHA2_256_LEN 32
/* Encoded size of a sha2-256 multihash. */
#define WISP_MH_SHA2_256_SIZE 34

/* A decoded multihash; digest points into the decoded buffer. */
typedef struct wisp_multihash {
	uint64_t code;
	const uint8_t *digest;
	size_t len;
} wisp_multihash;

/* Writes the multihash of an existing digest into out[0..cap). Returns the
 * bytes written, or WISP_ERR_NOBUF, or WISP_ERR_INVALID_ARG (code not
 * identity or sha2-256, or a sha2-256 digest that is not 32 bytes). */
ssize_t wisp_multihash_encode(uint64_t code, const uint8_t *digest, size_t n, uint8_t *out,
			      size_t cap) WISP_WARN_UNUSED;

/* SHA-256 of data[0..n) (OpenSSL EVP) written as a 34-byte multihash.
 * Returns 34, WISP_ERR_NOBUF, or WISP_ERR_CRYPTO if OpenSSL fails. */
ssize_t wisp_multihash_sha256(const uint8_t *data, size_t n, uint8_t *out, size_t cap)
	WISP_WARN_UNUSED;

/* Decodes in[0..n), which must hold exactly one multihash. Returns 0, or
 *   WISP_ERR_TRUNCATED     input ends inside the header or digest;
 *   WISP_ERR_VARINT        bad code or length varint;
 *   WISP_ERR_TRAILING      bytes after the digest;
 *   WISP_ERR_UNKNOWN_CODE  a code other than identity and sha2-256;
 *   WISP_ERR_MALFORMED     a sha2-256 digest that is not 32 bytes.
 * *mh borrows in. */
int wisp_multihash_decode(const uint8_t *in, size_t n, wisp_multihash *mh)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

#endif
