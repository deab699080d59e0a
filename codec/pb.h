/* Protobuf wire format: a zero-copy field reader and a writer into a caller
 * buffer. No schema, no allocation: message decoders loop over
 * wisp_pb_next() and switch on the field number.
 *
 * Varints (keys, VARINT values, lengths) are protobuf varints of at most 10
 * bytes and must be minimally encoded (see codec/varint.h), so any message
 * this reader accepts re-encodes to the same bytes.
 *
 * Single-threaded objects; callers own every buffer.
 */
#ifndef WISP_CODEC_PB_H
#define WISP_CODEC_PB_H

#include <wisp/common.h>

enum { WISP_PB_VARINT = 0, WISP_PB_I64 = 1, WISP_PB_LEN = 2, WISP_PB_I32 = 5 };

/* Largest field number protobuf allows (2^29 - 1). */
#define WISP_PB_MAX_FIELD 536870911u

typedef struct wisp_pb_reader {
	const uint8_t *p;
	const uint8_t *end;
} wisp_pb_reader;

/* One field. VARINT: u64 holds the value. I64 / I32: u64 holds the
 * little-endian value and data/len point at its 8 / 4 bytes. LEN: data/len
 * point into the reader's buffer (valid as long as that buffer is). */
typedef struct wisp_pb_field {
	uint32_t num;
	uint8_t wire;
	uint64_t u64;
	const uint8_t *data;
	size_t len;
} wisp_pb_field;

/* Reads buf[0..len); the buffer is borrowed and must outlive the reader and
 * every field taken from it. A nested message is read with a second reader
 * over the LEN field's data, which bounds it exactly. */
void wisp_pb_reader_init(wisp_pb_reader *r, const uint8_t *buf, size_t len) WISP_NONNULL(1);

/* Reads the next field into *f. Returns 1 when a field was read, 0 at the
 * clean end of input, or
 *   WISP_ERR_TRUNCATED   input ends inside a key, value or LEN payload;
 *   WISP_ERR_VARINT      over-long, overflowing or non-minimal varint;
 *   WISP_ERR_TOO_LARGE   a LEN field declares more than max_len bytes
 *                        (checked before the remaining-bytes check);
 *   WISP_ERR_WIRE_TYPE   wire type 3, 4 (groups), 6 or 7;
 *   WISP_ERR_MALFORMED   field number 0, or a key above 32 bits.
 * On error the reader does not advance. Callers skip unknown fields by
 * ignoring them. */
int wisp_pb_next(wisp_pb_reader *r, wisp_pb_field *f, size_t max_len)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* 0 when f->wire == wire, else WISP_ERR_WIRE_TYPE: for decoders that know a
 * field number and must refuse it with another wire type. */
int wisp_pb_expect(const wisp_pb_field *f, uint8_t wire) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* The writer appends fields to buf[0..cap). The first failure is sticky in
 * err (later puts do nothing) and len stays at the last complete field:
 *   WISP_ERR_NOBUF        the field does not fit;
 *   WISP_ERR_INVALID_ARG  field number 0 or above WISP_PB_MAX_FIELD. */
typedef struct wisp_pb_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;
} wisp_pb_writer;

void wisp_pb_writer_init(wisp_pb_writer *w, uint8_t *buf, size_t cap) WISP_NONNULL(1);
void wisp_pb_put_varint(wisp_pb_writer *w, uint32_t num, uint64_t v) WISP_NONNULL(1);
/* data may be NULL when len is 0. Nested messages are encoded into their
 * own buffer first and put as bytes (wisp_pb_bytes_size() sizes them). */
void wisp_pb_put_bytes(wisp_pb_writer *w, uint32_t num, const void *data, size_t len)
	WISP_NONNULL(1);
void wisp_pb_put_fixed64(wisp_pb_writer *w, uint32_t num, uint64_t v) WISP_NONNULL(1);
void wisp_pb_put_fixed32(wisp_pb_writer *w, uint32_t num, uint32_t v) WISP_NONNULL(1);

/* Bytes written so far, or the first error. */
ssize_t wisp_pb_writer_finish(const wisp_pb_writer *w) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Encoded size of one VARINT / LEN field (key included), for sizing
 * buffers and nested messages before writing. */
size_t wisp_pb_varint_size(uint32_t num, uint64_t v);
size_t wisp_pb_bytes_size(uint32_t num, size_t len);

#endif
