/* base58btc (the bitcoin alphabet), as used for peer ids in text and for
 * multibase 'z'. Leading zero bytes map to leading '1's and back.
 *
 * Cost is quadratic in the input length: meant for keys and ids (tens of
 * bytes), not bulk data. Pure functions, any thread.
 */
#ifndef WISP_CODEC_BASE58_H
#define WISP_CODEC_BASE58_H

#include <wisp/common.h>

/* Upper bound of the encoded length of n bytes, NUL excluded. */
#define WISP_BASE58_ENCODED_MAX(n) ((n) * 138 / 100 + 1)

/* Encodes in[0..n) into out[0..cap) and NUL-terminates it. Returns the
 * string length, or WISP_ERR_NOBUF when the text plus its NUL does not fit
 * (the check is exact: cap = strlen + 1 suffices). out's contents are
 * unspecified after an error. */
ssize_t wisp_base58_encode(const uint8_t *in, size_t n, char *out, size_t cap) WISP_WARN_UNUSED;

/* Decodes in[0..n) (not NUL-terminated) into out[0..cap). Returns the byte
 * count, or WISP_ERR_BAD_CHAR (a character outside the alphabet; checked
 * first) or WISP_ERR_NOBUF (exact check). Empty input decodes to 0 bytes. */
ssize_t wisp_base58_decode(const char *in, size_t n, uint8_t *out, size_t cap) WISP_WARN_UNUSED;

#endif
