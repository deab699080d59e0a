/* uvarint length-prefixed frames (multistream-select messages, identify,
 * gossipsub RPCs, request/response payload sizes).
 *
 * The reader never copies and never waits: it looks at the bytes buffered so
 * far and either returns one complete frame, says how many bytes are still
 * missing, or fails. The declared length is checked against the caller's
 * maximum as soon as the prefix allows, so an oversized frame is refused
 * before its payload arrives and before anyone buffers it.
 *
 * Pure functions and caller-owned state; any thread.
 */
#ifndef WISP_CODEC_FRAME_H
#define WISP_CODEC_FRAME_H

#include <wisp/common.h>

/* Looks for one frame at the start of buf[0..len) whose payload may be at
 * most max bytes. Returns
 *   > 0  a complete frame: *payload / *plen point at its payload inside buf
 *        and the return value is the bytes it occupies (prefix + payload);
 *   0    not enough bytes yet: *need (if not NULL) is the total buffered size
 *        from buf at which another call can make progress (a lower bound
 *        while the prefix itself is incomplete);
 *   WISP_ERR_TOO_LARGE  the declared length is over max, also when only
 *                       part of the prefix has arrived but already implies it;
 *   WISP_ERR_VARINT     bad prefix (over-long or non-minimal).
 * buf may be NULL when len is 0. */
ssize_t wisp_frame_peek(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
			size_t *plen, size_t *need) WISP_NONNULL(4, 5) WISP_WARN_UNUSED;

/* Cursor over a buffer holding zero or more frames. */
typedef struct wisp_frame_reader {
	const uint8_t *p;
	const uint8_t *end;
	size_t max;
} wisp_frame_reader;

/* buf[0..len) is borrowed for the reader's life; max bounds every payload. */
void wisp_frame_reader_init(wisp_frame_reader *r, const uint8_t *buf, size_t len, size_t max)
	WISP_NONNULL(1);

/* Returns 1 with the next frame in *payload / *plen and the cursor moved
 * past it; 0 when the remaining bytes are not a whole frame (the cursor stays
 * at its start: keep wisp_frame_reader_rest() bytes and read again when more
 * arrive); or an error from wisp_frame_peek(), after which the stream is
 * unusable. */
int wisp_frame_next(wisp_frame_reader *r, const uint8_t **payload, size_t *plen)
	WISP_NONNULL(1, 2, 3) WISP_WARN_UNUSED;

/* Bytes not consumed by complete frames. */
size_t wisp_frame_reader_rest(const wisp_frame_reader *r) WISP_NONNULL(1);

/* Size of a frame carrying plen payload bytes. */
size_t wisp_frame_size(size_t plen);

/* Writes prefix + payload into out[0..cap). Returns the bytes written, or
 * WISP_ERR_NOBUF; payload may be NULL when plen is 0 and may not overlap out. */
ssize_t wisp_frame_write(uint8_t *out, size_t cap, const void *payload, size_t plen)
	WISP_WARN_UNUSED;

/* Writes only the prefix for a payload of plen bytes (which the caller writes
 * right after it); returns its length (1..9), or WISP_ERR_NOBUF. */
ssize_t wisp_frame_put_prefix(uint8_t *out, size_t cap, size_t plen) WISP_WARN_UNUSED;

#endif
