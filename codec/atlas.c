/* Atlas request/response messages. The contract is in include/wisp/atlas.h.
 *
 * Every message's scalar fields are described by a table, and one set of
 * functions checks, sizes, writes and reads them, so every message follows
 * the same rules (limits, proto3 defaults, last value wins). The two
 * repeated fields, TxRequest.ids and CheckpointManifest.chunks, have code of
 * their own; both have their message's highest field number, so writing
 * them after the table's fields keeps the encoding in field-number order.
 */
#include <wisp/atlas.h>

#include <stddef.h>
#include <string.h>

#include "codec/pb.h"

enum { TXREQ_IDS = 1 };
enum { TX_ID = 1, TX_BODY = 2 };
enum { SREQ_HEIGHT = 1, SREQ_LAST_HASH = 2, SREQ_MAX_BLOCKS = 3 };
enum { BLOCK_HEIGHT = 1, BLOCK_HASH = 2, BLOCK_PARENT = 3, BLOCK_BODY = 4 };
enum { CREQ_HEIGHT = 1, CREQ_CHUNK_ID = 2 };
enum { MAN_HEIGHT = 1, MAN_STATE_ROOT = 2, MAN_CHUNKS = 3 };
enum { REF_ID = 1, REF_SHA256 = 2, REF_SIZE = 3 };
enum { PART_OFFSET = 1, PART_DATA = 2 };
enum { PREQ_SENDER = 1, PREQ_FROM = 2, PREQ_TO = 3, PREQ_MAX = 4 };
enum { PTX_SENDER = 1, PTX_NONCE = 2, PTX_ID = 3, PTX_BODY = 4 };

/* ---- message tables ------------------------------------------------------ */

enum kind { K_U64, K_U32, K_BYTES };

/* One scalar field: its member in the message struct and the range of its
 * value (of its length, for bytes). */
typedef struct fspec {
	uint32_t num;
	uint8_t kind;
	uint16_t off;
	uint64_t min, max;
} fspec;

typedef struct mspec {
	const fspec *f;
	size_t nf;
	size_t size; /* of the struct, to zero it */
	size_t max;  /* the longest encoding accepted */
	int (*check)(const void *m);                       /* rules across fields, or NULL */
	int (*repeated)(void *m, const wisp_pb_field *f); /* reads fields not in f, or NULL */
} mspec;

#define FIELD(type, num, kind, member, lo, hi) { num, kind, offsetof(type, member), lo, hi }
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ANY UINT64_MAX
#define HASH WISP_ATLAS_MAX_HASH
#define BODY WISP_ATLAS_MAX_MESSAGE
/* The longest ChunkRef: id and sha256 with a 1-byte key and length, size
 * up to 2^32 in a 5-byte varint. */
#define REF_MAX (2 + WISP_ATLAS_MAX_HASH + 2 + WISP_ATLAS_SHA256_LEN + 1 + 5)

static const wisp_atlas_bytes *bytes_at(const fspec *s, const void *m)
{
	return (const wisp_atlas_bytes *)(const void *)((const uint8_t *)m + s->off);
}

/* A scalar's value, or a bytes field's length. */
static uint64_t value_of(const fspec *s, const void *m)
{
	const void *at = (const uint8_t *)m + s->off;
	switch (s->kind) {
	case K_U64:
		return *(const uint64_t *)at;
	case K_U32:
		return *(const uint32_t *)at;
	default:
		return bytes_at(s, m)->len;
	}
}

static int check_field(const fspec *s, const void *m)
{
	if (s->kind == K_BYTES && bytes_at(s, m)->len && !bytes_at(s, m)->p)
		return WISP_ERR_INVALID_ARG;
	uint64_t v = value_of(s, m);
	if (v > s->max)
		return WISP_ERR_TOO_LARGE;
	return v < s->min ? WISP_ERR_MALFORMED : 0;
}

static int check_msg(const mspec *s, const void *m)
{
	for (size_t i = 0; i < s->nf; i++) {
		int rc = check_field(&s->f[i], m);
		if (rc)
			return rc;
	}
	return s->check ? s->check(m) : 0;
}

/* proto3: zero scalars and empty bytes are not written. */
static size_t fields_size(const mspec *s, const void *m)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nf; i++) {
		uint64_t v = value_of(&s->f[i], m);
		if (v == 0)
			continue;
		if (s->f[i].kind == K_BYTES)
			n += wisp_pb_bytes_size(s->f[i].num, (size_t)v);
		else
			n += wisp_pb_varint_size(s->f[i].num, v);
	}
	return n;
}

static void put_fields(const mspec *s, const void *m, wisp_pb_writer *w)
{
	for (size_t i = 0; i < s->nf; i++) {
		const fspec *f = &s->f[i];
		uint64_t v = value_of(f, m);
		if (v == 0)
			continue;
		if (f->kind == K_BYTES)
			wisp_pb_put_bytes(w, f->num, bytes_at(f, m)->p, (size_t)v);
		else
			wisp_pb_put_varint(w, f->num, v);
	}
}

/* The first half of every encoder: m within its limits, and its length
 * (table fields plus tail bytes of repeated fields) within the message
 * bound and cap. Returns that length or the error. */
static ssize_t prepare(const mspec *s, const void *m, size_t tail, size_t cap)
{
	if (check_msg(s, m) != 0)
		return WISP_ERR_INVALID_ARG;
	size_t n = fields_size(s, m) + tail;
	if (n > s->max)
		return WISP_ERR_INVALID_ARG;
	return n > cap ? WISP_ERR_NOBUF : (ssize_t)n;
}

static ssize_t encode_msg(const mspec *s, const void *m, uint8_t *out, size_t cap)
{
	ssize_t n = prepare(s, m, 0, cap);
	if (n < 0)
		return n;
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	put_fields(s, m, &w);
	return wisp_pb_writer_finish(&w);
}

static wisp_atlas_bytes slice(const uint8_t *p, size_t n)
{
	wisp_atlas_bytes b = { n ? p : NULL, (uint32_t)n };
	return b;
}

/* Stores one field read from the wire; the last occurrence wins, and each
 * must be within the maximum (minimums are checked once, at the end). */
static int read_field(const fspec *s, const wisp_pb_field *f, void *m)
{
	void *at = (uint8_t *)m + s->off;
	if (f->wire != (s->kind == K_BYTES ? WISP_PB_LEN : WISP_PB_VARINT))
		return WISP_ERR_WIRE_TYPE;
	uint64_t v = s->kind == K_BYTES ? f->len : f->u64;
	if (v > s->max)
		return WISP_ERR_TOO_LARGE;
	if (s->kind == K_BYTES)
		*(wisp_atlas_bytes *)at = slice(f->data, f->len);
	else if (s->kind == K_U64)
		*(uint64_t *)at = v;
	else
		*(uint32_t *)at = (uint32_t)v; /* every uint32 field's max is far below 2^32 */
	return 0;
}

static const fspec *find_field(const mspec *s, uint32_t num)
{
	for (size_t i = 0; i < s->nf; i++)
		if (s->f[i].num == num)
			return &s->f[i];
	return NULL;
}

static int decode_msg(const mspec *s, const uint8_t *in, size_t n, void *out)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	int rc;

	memset(out, 0, s->size);
	if (n > s->max)
		return WISP_ERR_TOO_LARGE;
	wisp_pb_reader_init(&r, in, n);
	while ((rc = wisp_pb_next(&r, &f, s->max)) == 1) {
		const fspec *fs = find_field(s, f.num);
		if (fs)
			rc = read_field(fs, &f, out);
		else if (s->repeated)
			rc = s->repeated(out, &f);
		else
			rc = 0; /* unknown field: skipped */
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	return check_msg(s, out);
}

/* The public decoders' contract: *out is zeroed on error. */
static int decode(const mspec *s, const uint8_t *in, size_t n, void *out)
{
	int rc = decode_msg(s, in, n, out);
	if (rc)
		memset(out, 0, s->size);
	return rc;
}

/* ---- TxRequest ----------------------------------------------------------- */

/* One of TxRequest.ids, read into a wisp_atlas_bytes (at offset 0). */
static const fspec tx_id = { TXREQ_IDS, K_BYTES, 0, 1, HASH };

static int txreq_check(const void *m)
{
	const wisp_atlas_tx_request *r = m;
	if (r->n_ids > WISP_ATLAS_MAX_IDS)
		return WISP_ERR_TOO_LARGE;
	if (r->n_ids == 0)
		return WISP_ERR_MALFORMED;
	for (uint32_t i = 0; i < r->n_ids; i++) {
		int rc = check_field(&tx_id, &r->ids[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int txreq_read(void *m, const wisp_pb_field *f)
{
	wisp_atlas_tx_request *r = m;
	wisp_atlas_bytes id;
	if (f->num != TXREQ_IDS)
		return 0;
	int rc = read_field(&tx_id, f, &id);
	if (rc)
		return rc;
	if (r->n_ids == WISP_ATLAS_MAX_IDS)
		return WISP_ERR_TOO_LARGE;
	r->ids[r->n_ids++] = id;
	return 0;
}

static const mspec txreq_spec = { NULL, 0, sizeof(wisp_atlas_tx_request), WISP_ATLAS_TX_REQUEST_MAX,
				  txreq_check, txreq_read };

size_t wisp_atlas_tx_request_size(const wisp_atlas_tx_request *m)
{
	size_t n = 0;
	/* bounded by the array, so an over-full request is sized safely (and
	 * then refused by the encoder) */
	for (uint32_t i = 0; i < m->n_ids && i < WISP_ATLAS_MAX_IDS; i++)
		n += wisp_pb_bytes_size(TXREQ_IDS, m->ids[i].len);
	return n;
}

ssize_t wisp_atlas_tx_request_encode(const wisp_atlas_tx_request *m, uint8_t *out, size_t cap)
{
	ssize_t n = prepare(&txreq_spec, m, wisp_atlas_tx_request_size(m), cap);
	if (n < 0)
		return n;
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	for (uint32_t i = 0; i < m->n_ids; i++)
		wisp_pb_put_bytes(&w, TXREQ_IDS, m->ids[i].p, m->ids[i].len);
	return wisp_pb_writer_finish(&w);
}

int wisp_atlas_tx_request_decode(const uint8_t *in, size_t n, wisp_atlas_tx_request *out)
{
	return decode(&txreq_spec, in, n, out);
}

/* ---- Tx ------------------------------------------------------------------- */

static const fspec tx_f[] = {
	FIELD(wisp_atlas_tx, TX_ID, K_BYTES, id, 1, HASH),
	FIELD(wisp_atlas_tx, TX_BODY, K_BYTES, body, 0, BODY),
};
static const mspec tx_spec = { tx_f, N(tx_f), sizeof(wisp_atlas_tx), WISP_ATLAS_MAX_MESSAGE, NULL, NULL };

size_t wisp_atlas_tx_size(const wisp_atlas_tx *m)
{
	return fields_size(&tx_spec, m);
}

ssize_t wisp_atlas_tx_encode(const wisp_atlas_tx *m, uint8_t *out, size_t cap)
{
	return encode_msg(&tx_spec, m, out, cap);
}

int wisp_atlas_tx_decode(const uint8_t *in, size_t n, wisp_atlas_tx *out)
{
	return decode(&tx_spec, in, n, out);
}

/* ---- StateRequest, StateBlock ---------------------------------------------- */

static const fspec sreq_f[] = {
	FIELD(wisp_atlas_state_request, SREQ_HEIGHT, K_U64, height, 0, ANY),
	FIELD(wisp_atlas_state_request, SREQ_LAST_HASH, K_BYTES, last_hash, 1, HASH),
	FIELD(wisp_atlas_state_request, SREQ_MAX_BLOCKS, K_U32, max_blocks, 1, WISP_ATLAS_MAX_BLOCKS),
};
static const mspec sreq_spec = { sreq_f, N(sreq_f), sizeof(wisp_atlas_state_request), WISP_ATLAS_STATE_REQUEST_MAX,
				 NULL, NULL };

size_t wisp_atlas_state_request_size(const wisp_atlas_state_request *m)
{
	return fields_size(&sreq_spec, m);
}

ssize_t wisp_atlas_state_request_encode(const wisp_atlas_state_request *m, uint8_t *out, size_t cap)
{
	return encode_msg(&sreq_spec, m, out, cap);
}

int wisp_atlas_state_request_decode(const uint8_t *in, size_t n, wisp_atlas_state_request *out)
{
	return decode(&sreq_spec, in, n, out);
}

static const fspec block_f[] = {
	FIELD(wisp_atlas_state_block, BLOCK_HEIGHT, K_U64, height, 0, ANY),
	FIELD(wisp_atlas_state_block, BLOCK_HASH, K_BYTES, hash, 1, HASH),
	FIELD(wisp_atlas_state_block, BLOCK_PARENT, K_BYTES, parent_hash, 1, HASH),
	FIELD(wisp_atlas_state_block, BLOCK_BODY, K_BYTES, body, 0, BODY),
};
static const mspec block_spec = { block_f, N(block_f), sizeof(wisp_atlas_state_block), WISP_ATLAS_MAX_MESSAGE, NULL,
				  NULL };

size_t wisp_atlas_state_block_size(const wisp_atlas_state_block *m)
{
	return fields_size(&block_spec, m);
}

ssize_t wisp_atlas_state_block_encode(const wisp_atlas_state_block *m, uint8_t *out, size_t cap)
{
	return encode_msg(&block_spec, m, out, cap);
}

int wisp_atlas_state_block_decode(const uint8_t *in, size_t n, wisp_atlas_state_block *out)
{
	return decode(&block_spec, in, n, out);
}

/* ---- CheckpointRequest ------------------------------------------------------ */

static const fspec creq_f[] = {
	FIELD(wisp_atlas_checkpoint_request, CREQ_HEIGHT, K_U64, height, 0, ANY),
	FIELD(wisp_atlas_checkpoint_request, CREQ_CHUNK_ID, K_BYTES, chunk_id, 0, HASH),
};
static const mspec creq_spec = { creq_f, N(creq_f), sizeof(wisp_atlas_checkpoint_request),
				 WISP_ATLAS_CHECKPOINT_REQUEST_MAX, NULL, NULL };

size_t wisp_atlas_checkpoint_request_size(const wisp_atlas_checkpoint_request *m)
{
	return fields_size(&creq_spec, m);
}

ssize_t wisp_atlas_checkpoint_request_encode(const wisp_atlas_checkpoint_request *m, uint8_t *out, size_t cap)
{
	return encode_msg(&creq_spec, m, out, cap);
}

int wisp_atlas_checkpoint_request_decode(const uint8_t *in, size_t n, wisp_atlas_checkpoint_request *out)
{
	return decode(&creq_spec, in, n, out);
}

/* ---- CheckpointManifest, ChunkRef -------------------------------------------- */

static const fspec ref_f[] = {
	FIELD(wisp_atlas_chunk_ref, REF_ID, K_BYTES, id, 1, HASH),
	FIELD(wisp_atlas_chunk_ref, REF_SHA256, K_BYTES, sha256, WISP_ATLAS_SHA256_LEN, WISP_ATLAS_SHA256_LEN),
	FIELD(wisp_atlas_chunk_ref, REF_SIZE, K_U64, size, 1, WISP_ATLAS_MAX_CHUNK_SIZE),
};
/* A ChunkRef may carry unknown fields too: bounded by the manifest only. */
static const mspec ref_spec = { ref_f, N(ref_f), sizeof(wisp_atlas_chunk_ref), WISP_ATLAS_MAX_MESSAGE, NULL, NULL };

/* Decodes and checks one ref; the manifest keeps only the count (the
 * cursor decodes them again). */
static int manifest_read(void *m, const wisp_pb_field *f)
{
	wisp_atlas_checkpoint_manifest *man = m;
	wisp_atlas_chunk_ref ref;
	if (f->num != MAN_CHUNKS)
		return 0;
	if (f->wire != WISP_PB_LEN)
		return WISP_ERR_WIRE_TYPE;
	int rc = decode_msg(&ref_spec, f->data, f->len, &ref);
	if (rc)
		return rc;
	man->n_chunks++; /* bounded by the message: a ref takes at least 41 bytes */
	return 0;
}

static const fspec man_f[] = {
	FIELD(wisp_atlas_checkpoint_manifest, MAN_HEIGHT, K_U64, height, 0, ANY),
	FIELD(wisp_atlas_checkpoint_manifest, MAN_STATE_ROOT, K_BYTES, state_root, 1, HASH),
};
static const mspec man_spec = { man_f, N(man_f), sizeof(wisp_atlas_checkpoint_manifest), WISP_ATLAS_MAX_MESSAGE, NULL,
				manifest_read };

static size_t refs_size(const wisp_atlas_chunk_ref *refs, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += wisp_pb_bytes_size(MAN_CHUNKS, fields_size(&ref_spec, &refs[i]));
	return total;
}

size_t wisp_atlas_checkpoint_manifest_size(const wisp_atlas_checkpoint_manifest *m, const wisp_atlas_chunk_ref *refs,
					   size_t n_refs)
{
	return fields_size(&man_spec, m) + (refs ? refs_size(refs, n_refs) : 0);
}

ssize_t wisp_atlas_checkpoint_manifest_encode(const wisp_atlas_checkpoint_manifest *m,
					      const wisp_atlas_chunk_ref *refs, size_t n_refs, uint8_t *out,
					      size_t cap)
{
	if (n_refs && !refs)
		return WISP_ERR_INVALID_ARG;
	for (size_t i = 0; i < n_refs; i++)
		if (check_msg(&ref_spec, &refs[i]) != 0)
			return WISP_ERR_INVALID_ARG;
	ssize_t n = prepare(&man_spec, m, refs_size(refs, n_refs), cap);
	if (n < 0)
		return n;
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	put_fields(&man_spec, m, &w);
	for (size_t i = 0; i < n_refs; i++) {
		uint8_t ref[REF_MAX];
		ssize_t k = encode_msg(&ref_spec, &refs[i], ref, sizeof(ref));
		if (k < 0)
			return WISP_ERR_INTERNAL; /* checked above, and REF_MAX fits any valid ref */
		wisp_pb_put_bytes(&w, MAN_CHUNKS, ref, (size_t)k);
	}
	return wisp_pb_writer_finish(&w);
}

int wisp_atlas_checkpoint_manifest_decode(const uint8_t *in, size_t n, wisp_atlas_checkpoint_manifest *out)
{
	int rc = decode(&man_spec, in, n, out);
	if (rc == 0)
		out->wire = slice(in, n);
	return rc;
}

void wisp_atlas_manifest_cursor_init(wisp_atlas_manifest_cursor *c, const wisp_atlas_checkpoint_manifest *m)
{
	c->p = m->wire.p;
	c->end = m->wire.p ? m->wire.p + m->wire.len : NULL;
}

int wisp_atlas_manifest_next(wisp_atlas_manifest_cursor *c, wisp_atlas_chunk_ref *ref)
{
	wisp_pb_reader r = { c->p, c->end };
	wisp_pb_field f;
	int rc;

	while ((rc = wisp_pb_next(&r, &f, WISP_ATLAS_MAX_MESSAGE)) == 1) {
		if (f.num != MAN_CHUNKS)
			continue;
		rc = f.wire == WISP_PB_LEN ? decode_msg(&ref_spec, f.data, f.len, ref) : WISP_ERR_WIRE_TYPE;
		if (rc)
			break;
		c->p = r.p;
		return 1;
	}
	/* the end, or bytes changed since they were decoded: stay at the end */
	c->p = c->end;
	return rc;
}

/* ---- CheckpointPart ---------------------------------------------------------- */

/* A part lies inside one state chunk, and chunks are at most 2^32 bytes. */
static int part_check(const void *m)
{
	const wisp_atlas_checkpoint_part *p = m;
	if (p->offset > WISP_ATLAS_MAX_CHUNK_SIZE || p->data.len > WISP_ATLAS_MAX_CHUNK_SIZE - p->offset)
		return WISP_ERR_TOO_LARGE;
	return 0;
}

static const fspec part_f[] = {
	FIELD(wisp_atlas_checkpoint_part, PART_OFFSET, K_U64, offset, 0, WISP_ATLAS_MAX_CHUNK_SIZE),
	FIELD(wisp_atlas_checkpoint_part, PART_DATA, K_BYTES, data, 0, BODY),
};
static const mspec part_spec = { part_f, N(part_f), sizeof(wisp_atlas_checkpoint_part), WISP_ATLAS_MAX_MESSAGE,
				 part_check, NULL };

size_t wisp_atlas_checkpoint_part_size(const wisp_atlas_checkpoint_part *m)
{
	return fields_size(&part_spec, m);
}

ssize_t wisp_atlas_checkpoint_part_encode(const wisp_atlas_checkpoint_part *m, uint8_t *out, size_t cap)
{
	return encode_msg(&part_spec, m, out, cap);
}

int wisp_atlas_checkpoint_part_decode(const uint8_t *in, size_t n, wisp_atlas_checkpoint_part *out)
{
	return decode(&part_spec, in, n, out);
}

/* ---- PendingRequest, PendingTx ----------------------------------------------- */

static int preq_check(const void *m)
{
	const wisp_atlas_pending_request *r = m;
	return r->nonce_from <= r->nonce_to ? 0 : WISP_ERR_MALFORMED;
}

static const fspec preq_f[] = {
	FIELD(wisp_atlas_pending_request, PREQ_SENDER, K_BYTES, sender, 1, HASH),
	FIELD(wisp_atlas_pending_request, PREQ_FROM, K_U64, nonce_from, 0, ANY),
	FIELD(wisp_atlas_pending_request, PREQ_TO, K_U64, nonce_to, 0, ANY),
	FIELD(wisp_atlas_pending_request, PREQ_MAX, K_U32, max, 1, WISP_ATLAS_MAX_PENDING),
};
static const mspec preq_spec = { preq_f, N(preq_f), sizeof(wisp_atlas_pending_request), WISP_ATLAS_PENDING_REQUEST_MAX,
				 preq_check, NULL };

size_t wisp_atlas_pending_request_size(const wisp_atlas_pending_request *m)
{
	return fields_size(&preq_spec, m);
}

ssize_t wisp_atlas_pending_request_encode(const wisp_atlas_pending_request *m, uint8_t *out, size_t cap)
{
	return encode_msg(&preq_spec, m, out, cap);
}

int wisp_atlas_pending_request_decode(const uint8_t *in, size_t n, wisp_atlas_pending_request *out)
{
	return decode(&preq_spec, in, n, out);
}

static const fspec ptx_f[] = {
	FIELD(wisp_atlas_pending_tx, PTX_SENDER, K_BYTES, sender, 1, HASH),
	FIELD(wisp_atlas_pending_tx, PTX_NONCE, K_U64, nonce, 0, ANY),
	FIELD(wisp_atlas_pending_tx, PTX_ID, K_BYTES, id, 1, HASH),
	FIELD(wisp_atlas_pending_tx, PTX_BODY, K_BYTES, body, 0, BODY),
};
static const mspec ptx_spec = { ptx_f, N(ptx_f), sizeof(wisp_atlas_pending_tx), WISP_ATLAS_MAX_MESSAGE, NULL, NULL };

size_t wisp_atlas_pending_tx_size(const wisp_atlas_pending_tx *m)
{
	return fields_size(&ptx_spec, m);
}

ssize_t wisp_atlas_pending_tx_encode(const wisp_atlas_pending_tx *m, uint8_t *out, size_t cap)
{
	return encode_msg(&ptx_spec, m, out, cap);
}

int wisp_atlas_pending_tx_decode(const uint8_t *in, size_t n, wisp_atlas_pending_tx *out)
{
	return decode(&ptx_spec, in, n, out);
}

/* ---- registration ------------------------------------------------------------- */

static const struct {
	const char *id;
	uint32_t max_request, max_chunks;
} protos[WISP_ATLAS_PROTOCOLS] = {
	[WISP_ATLAS_TX] = { WISP_ATLAS_PROTO_TX, WISP_ATLAS_TX_REQUEST_MAX, WISP_ATLAS_TX_MAX_CHUNKS },
	[WISP_ATLAS_STATE] = { WISP_ATLAS_PROTO_STATE, WISP_ATLAS_STATE_REQUEST_MAX, WISP_ATLAS_STATE_MAX_CHUNKS },
	[WISP_ATLAS_CHECKPOINT] = { WISP_ATLAS_PROTO_CHECKPOINT, WISP_ATLAS_CHECKPOINT_REQUEST_MAX,
				    WISP_ATLAS_CHECKPOINT_MAX_CHUNKS },
	[WISP_ATLAS_PENDING] = { WISP_ATLAS_PROTO_PENDING, WISP_ATLAS_PENDING_REQUEST_MAX,
				 WISP_ATLAS_PENDING_MAX_CHUNKS },
};

int wisp_atlas_opts(wisp_atlas_proto p, const wisp_reqresp_opts *base, wisp_reqresp_opts *out)
{
	if ((unsigned)p >= WISP_ATLAS_PROTOCOLS || (base && base->version != WISP_REQRESP_OPTS_VERSION))
		return WISP_ERR_INVALID_ARG;
	if (base)
		*out = *base;
	else
		wisp_reqresp_opts_default(out);
	out->max_request = protos[p].max_request;
	out->max_chunks = protos[p].max_chunks;
	return 0;
}

int wisp_atlas_register(wisp_node *n, const wisp_reqresp_opts *base)
{
	for (unsigned p = 0; p < WISP_ATLAS_PROTOCOLS; p++) {
		wisp_reqresp_opts o;
		int rc = wisp_atlas_opts((wisp_atlas_proto)p, base, &o);
		if (rc == 0)
			rc = wisp_reqresp_register(n, protos[p].id, &o);
		if (rc < 0)
			return rc;
	}
	return WISP_OK;
}
