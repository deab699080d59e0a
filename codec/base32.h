/* RFC 4648 base32, lower-case alphabet, no padding: the multibase 'b'
 * encoding used for CIDv1 peer ids. Decoding is strict: upper case, '='
 * and anything outside a-z2-7 is refused, as are lengths no encoder
 * produces and non-zero bits after the last whole byte, so each byte string
 * has exactly one accepted text form. Pure functions, any thread.
 */
#ifndef WISP_CODEC_BASE32_H
#define WISP_CODEC_BASE32_H

#include <wisp/common.h>

/* Encoded length of n bytes, NUL excluded. */
#define WISP_BASE32_ENCODED_LEN(n) (((n) * 8 + 4) / 5)

/* Encodes in[0..n) into out[0..cap) and NUL-terminates it. Returns the
 * string length, or WISP_ERR_NOBUF when text plus NUL does not fit. */
ssize_t wisp_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap) WISP_WARN_UNUSED;

/* Decodes in[0..n) into out[0..cap). Returns the byte count, or
 *   WISP_ERR_BAD_CHAR   a character outside a-z2-7;
 *   WISP_ERR_MALFORMED  a length of 1, 3 or 6 mod 8, or non-zero pad bits;
 *   WISP_ERR_NOBUF      out is too small. */
ssize_t wisp_base32_decode(const char *in, size_t n, uint8_t *out, size_t cap) WISP_WARN_UNUSED;

#endif
