#include "codec/pb.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/varint.h"

void wisp_pb_reader_init(wisp_pb_reader *r, const uint8_t *buf, size_t len)
{
	r->p = buf;
	r->end = len ? buf + len : buf;
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

int wisp_pb_next(wisp_pb_reader *r, wisp_pb_field *f, size_t max_len)
{
	const uint8_t *p = r->p, *end = r->end;
	if (p == end)
		return 0;

	uint64_t key;
	ssize_t n = wisp_pbvarint_get(p, end, &key);
	if (n < 0)
		return (int)n;
	p += n;
	if (key > UINT32_MAX || key >> 3 == 0)
		return WISP_ERR_MALFORMED;

	uint8_t wire = (uint8_t)(key & 7);
	size_t left = (size_t)(end - p);
	f->num = (uint32_t)(key >> 3);
	f->wire = wire;
	f->u64 = 0;
	f->data = NULL;
	f->len = 0;

	switch (wire) {
	case WISP_PB_VARINT:
		n = wisp_pbvarint_get(p, end, &f->u64);
		if (n < 0)
			return (int)n;
		p += n;
		break;
	case WISP_PB_I64:
	case WISP_PB_I32: {
		size_t w = wire == WISP_PB_I64 ? 8 : 4;
		if (left < w)
			return WISP_ERR_TRUNCATED;
		f->u64 = load_le(p, w);
		f->data = p;
		f->len = w;
		p += w;
		break;
	}
	case WISP_PB_LEN: {
		uint64_t len;
		n = wisp_pbvarint_get(p, end, &len);
		if (n < 0)
			return (int)n;
		p += n;
		left -= (size_t)n;
		if (len > max_len)
			return WISP_ERR_TOO_LARGE;
		if (len > left)
			return WISP_ERR_TRUNCATED;
		f->data = p;
		f->len = (size_t)len;
		p += len;
		break;
	}
	default:
		return WISP_ERR_WIRE_TYPE;
	}
	r->p = p;
	return 1;
}

int wisp_pb_expect(const wisp_pb_field *f, uint8_t wire)
{
	return f->wire == wire ? 0 : WISP_ERR_WIRE_TYPE;
}

void wisp_pb_writer_init(wisp_pb_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
}

static uint64_t make_key(uint32_t num, uint8_t wire)
{
	return (uint64_t)num << 3 | wire;
}

/* Checks the field number and that need more bytes fit; sets the sticky
 * error otherwise. */
static int writer_room(wisp_pb_writer *w, uint32_t num, size_t need)
{
	if (w->err)
		return 0;
	if (num == 0 || num > WISP_PB_MAX_FIELD) {
		w->err = WISP_ERR_INVALID_ARG;
		return 0;
	}
	if (need > w->cap - w->len) {
		w->err = WISP_ERR_NOBUF;
		return 0;
	}
	return 1;
}

void wisp_pb_put_varint(wisp_pb_writer *w, uint32_t num, uint64_t v)
{
	uint64_t key = make_key(num, WISP_PB_VARINT);
	if (!writer_room(w, num, wisp_pbvarint_len(key) + wisp_pbvarint_len(v)))
		return;
	w->len += wisp_pbvarint_put(w->buf + w->len, key);
	w->len += wisp_pbvarint_put(w->buf + w->len, v);
}

void wisp_pb_put_bytes(wisp_pb_writer *w, uint32_t num, const void *data, size_t len)
{
	uint64_t key = make_key(num, WISP_PB_LEN);
	size_t head = wisp_pbvarint_len(key) + wisp_pbvarint_len(len);
	if (len > SIZE_MAX - head) {
		if (!w->err)
			w->err = WISP_ERR_NOBUF;
		return;
	}
	if (!writer_room(w, num, head + len))
		return;
	w->len += wisp_pbvarint_put(w->buf + w->len, key);
	w->len += wisp_pbvarint_put(w->buf + w->len, len);
	if (len)
		memcpy(w->buf + w->len, data, len);
	w->len += len;
}

static void put_fixed(wisp_pb_writer *w, uint32_t num, uint8_t wire, uint64_t v, size_t n)
{
	uint64_t key = make_key(num, wire);
	if (!writer_room(w, num, wisp_pbvarint_len(key) + n))
		return;
	w->len += wisp_pbvarint_put(w->buf + w->len, key);
	for (size_t i = 0; i < n; i++, v >>= 8)
		w->buf[w->len++] = (uint8_t)v;
}

void wisp_pb_put_fixed64(wisp_pb_writer *w, uint32_t num, uint64_t v)
{
	put_fixed(w, num, WISP_PB_I64, v, 8);
}

void wisp_pb_put_fixed32(wisp_pb_writer *w, uint32_t num, uint32_t v)
{
	put_fixed(w, num, WISP_PB_I32, v, 4);
}

ssize_t wisp_pb_writer_finish(const wisp_pb_writer *w)
{
	return w->err ? w->err : (ssize_t)w->len;
}

size_t wisp_pb_varint_size(uint32_t num, uint64_t v)
{
	return wisp_pbvarint_len(make_key(num, WISP_PB_VARINT)) + wisp_pbvarint_len(v);
}

size_t wisp_pb_bytes_size(uint32_t num, size_t len)
{
	return wisp_pbvarint_len(make_key(num, WISP_PB_LEN)) + wisp_pbvarint_len(len) + len;
}
