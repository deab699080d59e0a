/* Unsigned varints.
 *
 * Two flavours share one decoder:
 *  - libp2p/multiformats unsigned-varint (wisp_uvarint_*): at most 9 bytes,
 *    so values are <= 2^63-1, and the encoding must be minimal. Used for
 *    multicodec/multiaddr codes and every length prefix on the wire.
 *  - protobuf varints (wisp_pbvarint_*): at most 10 bytes (full uint64),
 *    also required to be minimal, so every accepted encoding is the one our
 *    writer produces.
 *
 * Pure functions, any thread. Decoders read only [p, end).
 */
#ifndef WISP_CODEC_VARINT_H
#define WISP_CODEC_VARINT_H

#include <wisp/common.h>

#define WISP_UVARINT_MAX_LEN 9
#define WISP_UVARINT_MAX ((uint64_t)INT64_MAX)
#define WISP_PBVARINT_MAX_LEN 10

/* Encoded length of v (1..9); 0 when v > WISP_UVARINT_MAX, which cannot be
 * encoded. */
size_t wisp_uvarint_len(uint64_t v);

/* Writes v to out, which has room for WISP_UVARINT_MAX_LEN bytes; returns the
 * bytes written. v > WISP_UVARINT_MAX is a caller bug: nothing is written and
 * 0 is returned. */
size_t wisp_uvarint_put(uint8_t *out, uint64_t v) WISP_NONNULL(1);

/* Reads one unsigned-varint from [p, end) into *out. Returns the bytes
 * consumed (1..9), or
 *   WISP_ERR_TRUNCATED  input ended inside the varint (fewer than 9 bytes seen);
 *   WISP_ERR_VARINT     9 bytes without an end, or a non-minimal encoding.
 * *out is written only on success. */
ssize_t wisp_uvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

/* Protobuf varints: as above with up to 10 bytes and the whole uint64 range;
 * a 10th byte above 1 overflows and is WISP_ERR_VARINT. */
size_t wisp_pbvarint_len(uint64_t v);
size_t wisp_pbvarint_put(uint8_t *out, uint64_t v) WISP_NONNULL(1);
ssize_t wisp_pbvarint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

#endif
