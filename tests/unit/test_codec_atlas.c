/* Atlas request/response messages (wisp/atlas.h): byte-exact encodings
 * against hand-computed protobuf, round trips, every limit on both sides,
 * malformed input, unknown and repeated fields, the manifest cursor, and
 * the registration of the four protocols. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <string.h>

#include <wisp/atlas.h>
#include <wisp/error.h>
#include <wisp/wisp.h>

#include "codec/pb.h"
#include "runtime/node.h"

/* ---- helpers ------------------------------------------------------------- */

static uint8_t fill[WISP_ATLAS_MAX_MESSAGE + 16]; /* 0x5a bytes: ids, hashes, bodies */
static uint8_t out[WISP_ATLAS_MAX_MESSAGE + 64];

static wisp_atlas_bytes B(const void *p, uint32_t n)
{
	wisp_atlas_bytes b = { p, n };
	return b;
}

/* n bytes of fill */
static wisp_atlas_bytes F(uint32_t n)
{
	return B(fill, n);
}

static void assert_bytes(wisp_atlas_bytes b, const void *p, size_t n)
{
	assert_int_equal(b.len, n);
	if (n)
		assert_memory_equal(b.p, p, n);
	else
		assert_null(b.p);
}

static void assert_same(wisp_atlas_bytes a, wisp_atlas_bytes b)
{
	assert_bytes(a, b.p, b.len);
}

static size_t unhex(const char *hex, uint8_t *buf, size_t cap)
{
	long n = wt_unhex(hex, buf, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

/* Checks an encoding against hex, and that *_size() agreed. */
static void assert_encoding(ssize_t n, size_t size, const char *hex)
{
	uint8_t want[256];
	size_t wn = unhex(hex, want, sizeof(want));
	assert_int_equal(n, (ssize_t)wn);
	assert_int_equal(size, wn);
	if (wn)
		assert_memory_equal(out, want, wn);
}

/* Hand-built wire bytes, including ones no encoder would write. */
static uint8_t wire[64 * 1024];
static wisp_pb_writer W;

static void begin(void)
{
	wisp_pb_writer_init(&W, wire, sizeof(wire));
}

static void put_v(uint32_t num, uint64_t v)
{
	wisp_pb_put_varint(&W, num, v);
}

static void put_b(uint32_t num, const void *p, size_t n)
{
	wisp_pb_put_bytes(&W, num, p, n);
}

static void put_raw(const char *hex)
{
	W.len += unhex(hex, W.buf + W.len, W.cap - W.len);
}

static size_t end(void)
{
	ssize_t n = wisp_pb_writer_finish(&W);
	assert_true(n >= 0);
	return (size_t)n;
}

/* A ChunkRef's encoding into buf. */
static size_t ref_wire(uint8_t *buf, size_t cap, uint32_t id_len, uint32_t sha_len, uint64_t size)
{
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, buf, cap);
	wisp_pb_put_bytes(&w, 1, fill, id_len);
	wisp_pb_put_bytes(&w, 2, fill, sha_len);
	wisp_pb_put_varint(&w, 3, size);
	ssize_t n = wisp_pb_writer_finish(&w);
	assert_true(n > 0);
	return (size_t)n;
}

static void setup_fill(void)
{
	memset(fill, 0x5a, sizeof(fill));
}

/* ---- byte-exact encodings ---------------------------------------------------- */

/* What protoc-generated go or js code writes for the same values: fields in
 * number order, proto3 defaults left out. */
static void test_encode_vectors(void **state)
{
	(void)state;
	const uint8_t a[] = { 0x01, 0x02 }, hash[] = { 0xaa, 0xbb }, aa[] = { 0xaa }, bb[] = { 0xbb },
		      cc[] = { 0xcc }, root[] = { 0x11, 0x22 }, one[] = { 0x01 };
	uint8_t sha[32];
	memset(sha, 0xee, sizeof(sha));

	wisp_atlas_tx_request txr = { .n_ids = 2, .ids = { B(a, 2), B("abc", 3) } };
	assert_encoding(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), wisp_atlas_tx_request_size(&txr),
			"0a020102" "0a03616263");

	wisp_atlas_tx tx = { B(one, 1), B(NULL, 0) };
	assert_encoding(wisp_atlas_tx_encode(&tx, out, sizeof(out)), wisp_atlas_tx_size(&tx), "0a0101");

	wisp_atlas_state_request sr = { 300, B(hash, 2), 16 };
	assert_encoding(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), wisp_atlas_state_request_size(&sr),
			"08ac02" "1202aabb" "1810");
	sr = (wisp_atlas_state_request){ 0, B(aa, 1), 1024 };
	assert_encoding(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), wisp_atlas_state_request_size(&sr),
			"1201aa" "188008");

	wisp_atlas_state_block blk = { 1, B(aa, 1), B(bb, 1), B(NULL, 0) };
	assert_encoding(wisp_atlas_state_block_encode(&blk, out, sizeof(out)), wisp_atlas_state_block_size(&blk),
			"0801" "1201aa" "1a01bb");

	wisp_atlas_checkpoint_request cr = { 0 };
	assert_int_equal(wisp_atlas_checkpoint_request_encode(&cr, NULL, 0), 0); /* the manifest at height 0 */
	cr.height = 1;
	assert_encoding(wisp_atlas_checkpoint_request_encode(&cr, out, sizeof(out)),
			wisp_atlas_checkpoint_request_size(&cr), "0801");

	/* size 2^32 is the varint 80 80 80 80 10; the ref is 3 + 34 + 6 = 43 (0x2b) bytes */
	wisp_atlas_checkpoint_manifest man = { .height = 7, .state_root = B(root, 2) };
	wisp_atlas_chunk_ref ref = { B(one, 1), B(sha, 32), UINT64_C(1) << 32 };
	char hex[256] = "0807" "12021122" "1a2b" "0a0101" "1220";
	size_t at = strlen(hex);
	memset(hex + at, 'e', 64);
	strcpy(hex + at + 64, "188080808010");
	assert_encoding(wisp_atlas_checkpoint_manifest_encode(&man, &ref, 1, out, sizeof(out)),
			wisp_atlas_checkpoint_manifest_size(&man, &ref, 1), hex);

	wisp_atlas_checkpoint_part part = { 0, B("xy", 2) };
	assert_encoding(wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out)),
			wisp_atlas_checkpoint_part_size(&part), "12027879");

	wisp_atlas_pending_request pr = { B("s", 1), 0, 5, 1 };
	assert_encoding(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)),
			wisp_atlas_pending_request_size(&pr), "0a0173" "1805" "2001");

	wisp_atlas_pending_tx pt = { B(aa, 1), 0, B(bb, 1), B(cc, 1) };
	assert_encoding(wisp_atlas_pending_tx_encode(&pt, out, sizeof(out)), wisp_atlas_pending_tx_size(&pt),
			"0a01aa" "1a01bb" "2201cc");
}

/* ---- round trips ----------------------------------------------------------- */

static void test_round_trip_requests(void **state)
{
	(void)state;
	static wisp_atlas_tx_request txr, txr2;
	ssize_t n;

	/* the largest TxRequest: 256 ids of 64 bytes */
	txr.n_ids = WISP_ATLAS_MAX_IDS;
	for (uint32_t i = 0; i < txr.n_ids; i++)
		txr.ids[i] = B(fill + i, WISP_ATLAS_MAX_HASH);
	n = wisp_atlas_tx_request_encode(&txr, out, sizeof(out));
	assert_int_equal(n, 256 * 66);
	assert_int_equal(wisp_atlas_tx_request_size(&txr), 256 * 66);
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, (size_t)n - 1), WISP_ERR_NOBUF);
	assert_int_equal(wisp_atlas_tx_request_decode(out, (size_t)n, &txr2), 0);
	assert_int_equal(txr2.n_ids, WISP_ATLAS_MAX_IDS);
	for (uint32_t i = 0; i < txr.n_ids; i++)
		assert_same(txr2.ids[i], txr.ids[i]);
	/* zero copy: slices point into the input */
	assert_ptr_equal(txr2.ids[0].p, out + 2);

	wisp_atlas_state_request sr = { UINT64_MAX, F(64), WISP_ATLAS_MAX_BLOCKS }, sr2;
	n = wisp_atlas_state_request_encode(&sr, out, sizeof(out));
	assert_true(n > 0 && (size_t)n == wisp_atlas_state_request_size(&sr));
	assert_int_equal(wisp_atlas_state_request_decode(out, (size_t)n, &sr2), 0);
	assert_true(sr2.height == UINT64_MAX && sr2.max_blocks == WISP_ATLAS_MAX_BLOCKS);
	assert_same(sr2.last_hash, sr.last_hash);

	wisp_atlas_checkpoint_request cr = { 0 }, cr2;
	assert_int_equal(wisp_atlas_checkpoint_request_decode(NULL, 0, &cr2), 0); /* empty = defaults */
	assert_true(cr2.height == 0 && cr2.chunk_id.len == 0 && cr2.chunk_id.p == NULL);
	cr = (wisp_atlas_checkpoint_request){ 42, F(64) };
	n = wisp_atlas_checkpoint_request_encode(&cr, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(wisp_atlas_checkpoint_request_decode(out, (size_t)n, &cr2), 0);
	assert_true(cr2.height == 42);
	assert_same(cr2.chunk_id, cr.chunk_id);

	/* nonce_from == nonce_to, both 0 (left out on the wire) */
	wisp_atlas_pending_request pr = { F(1), 0, 0, 1 }, pr2;
	n = wisp_atlas_pending_request_encode(&pr, out, sizeof(out));
	assert_int_equal(n, 5);
	assert_int_equal(wisp_atlas_pending_request_decode(out, (size_t)n, &pr2), 0);
	assert_true(pr2.nonce_from == 0 && pr2.nonce_to == 0 && pr2.max == 1);
	pr = (wisp_atlas_pending_request){ F(64), 7, UINT64_MAX, WISP_ATLAS_MAX_PENDING };
	n = wisp_atlas_pending_request_encode(&pr, out, sizeof(out));
	assert_true(n > 0 && (size_t)n == wisp_atlas_pending_request_size(&pr));
	assert_int_equal(wisp_atlas_pending_request_decode(out, (size_t)n, &pr2), 0);
	assert_true(pr2.nonce_from == 7 && pr2.nonce_to == UINT64_MAX && pr2.max == WISP_ATLAS_MAX_PENDING);
	assert_same(pr2.sender, pr.sender);
}

static void test_round_trip_responses(void **state)
{
	(void)state;
	ssize_t n;

	/* a body as large as one message allows: id field 66 bytes, body key
	 * and 3-byte length 4 */
	uint32_t big = WISP_ATLAS_MAX_MESSAGE - 66 - 4;
	wisp_atlas_tx tx = { F(64), F(big) }, tx2;
	n = wisp_atlas_tx_encode(&tx, out, sizeof(out));
	assert_int_equal(n, WISP_ATLAS_MAX_MESSAGE);
	assert_int_equal(wisp_atlas_tx_decode(out, (size_t)n, &tx2), 0);
	assert_same(tx2.id, tx.id);
	assert_same(tx2.body, tx.body);
	tx = (wisp_atlas_tx){ F(1), B(NULL, 0) };
	n = wisp_atlas_tx_encode(&tx, out, sizeof(out));
	assert_int_equal(wisp_atlas_tx_decode(out, (size_t)n, &tx2), 0);
	assert_int_equal(tx2.body.len, 0);
	assert_null(tx2.body.p);

	wisp_atlas_state_block blk = { 0, F(64), F(64), B(NULL, 0) }, blk2;
	n = wisp_atlas_state_block_encode(&blk, out, sizeof(out));
	assert_int_equal(wisp_atlas_state_block_decode(out, (size_t)n, &blk2), 0);
	assert_true(blk2.height == 0);
	assert_same(blk2.hash, blk.hash);
	assert_same(blk2.parent_hash, blk.parent_hash);
	assert_same(blk2.body, blk.body);
	blk = (wisp_atlas_state_block){ 99, F(32), F(20), F(1000) };
	n = wisp_atlas_state_block_encode(&blk, out, sizeof(out));
	assert_int_equal(wisp_atlas_state_block_decode(out, (size_t)n, &blk2), 0);
	assert_true(blk2.height == 99);
	assert_same(blk2.body, blk.body);

	wisp_atlas_checkpoint_part part = { 0 }, part2;
	assert_int_equal(wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out)), 0);
	assert_int_equal(wisp_atlas_checkpoint_part_decode(out, 0, &part2), 0);
	/* the last byte of the largest state chunk */
	part = (wisp_atlas_checkpoint_part){ WISP_ATLAS_MAX_CHUNK_SIZE - 1, F(1) };
	n = wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out));
	assert_int_equal(wisp_atlas_checkpoint_part_decode(out, (size_t)n, &part2), 0);
	assert_true(part2.offset == WISP_ATLAS_MAX_CHUNK_SIZE - 1);
	assert_same(part2.data, part.data);

	wisp_atlas_pending_tx pt = { F(64), UINT64_MAX, F(64), F(500) }, pt2;
	n = wisp_atlas_pending_tx_encode(&pt, out, sizeof(out));
	assert_true(n > 0 && (size_t)n == wisp_atlas_pending_tx_size(&pt));
	assert_int_equal(wisp_atlas_pending_tx_decode(out, (size_t)n, &pt2), 0);
	assert_true(pt2.nonce == UINT64_MAX);
	assert_same(pt2.sender, pt.sender);
	assert_same(pt2.id, pt.id);
	assert_same(pt2.body, pt.body);
	pt = (wisp_atlas_pending_tx){ F(1), 0, F(1), B(NULL, 0) };
	n = wisp_atlas_pending_tx_encode(&pt, out, sizeof(out));
	assert_int_equal(n, 6);
	assert_int_equal(wisp_atlas_pending_tx_decode(out, (size_t)n, &pt2), 0);
	assert_true(pt2.nonce == 0 && pt2.body.len == 0);
}

/* ---- the manifest and its cursor ---------------------------------------------- */

static void test_manifest(void **state)
{
	(void)state;
	enum { NREFS = 1000 };
	static wisp_atlas_chunk_ref refs[NREFS];
	wisp_atlas_checkpoint_manifest man = { .height = 12345, .state_root = F(32) }, man2;
	wisp_atlas_manifest_cursor cur;
	wisp_atlas_chunk_ref r;

	for (uint32_t i = 0; i < NREFS; i++)
		refs[i] = (wisp_atlas_chunk_ref){ B(fill + i % 64, 1 + i % 64), B(fill + i, 32), 1 + (uint64_t)i * 7919 };
	refs[0].size = WISP_ATLAS_MAX_CHUNK_SIZE;
	ssize_t n = wisp_atlas_checkpoint_manifest_encode(&man, refs, NREFS, out, sizeof(out));
	assert_true(n > 0 && (size_t)n == wisp_atlas_checkpoint_manifest_size(&man, refs, NREFS));
	assert_int_equal(wisp_atlas_checkpoint_manifest_encode(&man, refs, NREFS, out, (size_t)n - 1),
			 WISP_ERR_NOBUF);
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(out, (size_t)n, &man2), 0);
	assert_true(man2.height == 12345 && man2.n_chunks == NREFS);
	assert_same(man2.state_root, man.state_root);
	wisp_atlas_manifest_cursor_init(&cur, &man2);
	for (uint32_t i = 0; i < NREFS; i++) {
		assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 1);
		assert_same(r.id, refs[i].id);
		assert_same(r.sha256, refs[i].sha256);
		assert_true(r.size == refs[i].size);
	}
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);

	/* no refs: a manifest piece may carry only the header */
	n = wisp_atlas_checkpoint_manifest_encode(&man, NULL, 0, out, sizeof(out));
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(out, (size_t)n, &man2), 0);
	assert_int_equal(man2.n_chunks, 0);
	wisp_atlas_manifest_cursor_init(&cur, &man2);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);

	/* refs interleaved with the other fields on the wire keep their order */
	uint8_t r1[128], r2[128];
	size_t l1 = ref_wire(r1, sizeof(r1), 3, 32, 10), l2 = ref_wire(r2, sizeof(r2), 4, 32, 20);
	begin();
	put_b(3, r1, l1);
	put_b(2, fill, 8);
	put_b(3, r2, l2);
	put_v(1, 5);
	size_t len = end();
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, len, &man2), 0);
	assert_true(man2.height == 5 && man2.n_chunks == 2 && man2.state_root.len == 8);
	wisp_atlas_manifest_cursor_init(&cur, &man2);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 1);
	assert_true(r.id.len == 3 && r.size == 10);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 1);
	assert_true(r.id.len == 4 && r.size == 20);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);

	/* a zeroed manifest (a failed decode) has no refs */
	memset(&man2, 0, sizeof(man2));
	wisp_atlas_manifest_cursor_init(&cur, &man2);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);
}

/* ---- limits on encode ------------------------------------------------------------ */

static void test_encode_limits(void **state)
{
	(void)state;
	static wisp_atlas_tx_request txr;
	const ssize_t BAD = WISP_ERR_INVALID_ARG;

	txr.n_ids = 0;
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), BAD);
	txr.n_ids = WISP_ATLAS_MAX_IDS + 1;
	for (uint32_t i = 0; i < WISP_ATLAS_MAX_IDS; i++)
		txr.ids[i] = F(1);
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), BAD);
	txr.n_ids = 2;
	assert_true(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)) > 0);
	txr.ids[1] = F(0);
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), BAD);
	txr.ids[1] = F(65);
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), BAD);
	txr.ids[1] = B(NULL, 3);
	assert_int_equal(wisp_atlas_tx_request_encode(&txr, out, sizeof(out)), BAD);

	wisp_atlas_tx tx = { F(0), F(1) };
	assert_int_equal(wisp_atlas_tx_encode(&tx, out, sizeof(out)), BAD);
	tx.id = F(65);
	assert_int_equal(wisp_atlas_tx_encode(&tx, out, sizeof(out)), BAD);
	/* one byte over the message bound */
	tx = (wisp_atlas_tx){ F(64), F(WISP_ATLAS_MAX_MESSAGE - 66 - 4 + 1) };
	assert_int_equal(wisp_atlas_tx_size(&tx), WISP_ATLAS_MAX_MESSAGE + 1);
	assert_int_equal(wisp_atlas_tx_encode(&tx, out, sizeof(out)), BAD);

	wisp_atlas_state_request sr = { 1, F(0), 1 };
	assert_int_equal(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), BAD);
	sr.last_hash = F(65);
	assert_int_equal(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), BAD);
	sr.last_hash = F(64);
	sr.max_blocks = 0;
	assert_int_equal(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), BAD);
	sr.max_blocks = WISP_ATLAS_MAX_BLOCKS + 1;
	assert_int_equal(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), BAD);

	wisp_atlas_state_block blk = { 1, F(0), F(1), F(0) };
	assert_int_equal(wisp_atlas_state_block_encode(&blk, out, sizeof(out)), BAD);
	blk.hash = F(1);
	blk.parent_hash = F(0);
	assert_int_equal(wisp_atlas_state_block_encode(&blk, out, sizeof(out)), BAD);
	blk.parent_hash = F(65);
	assert_int_equal(wisp_atlas_state_block_encode(&blk, out, sizeof(out)), BAD);
	blk.hash = F(65);
	blk.parent_hash = F(1);
	assert_int_equal(wisp_atlas_state_block_encode(&blk, out, sizeof(out)), BAD);

	wisp_atlas_checkpoint_request cr = { 1, F(65) };
	assert_int_equal(wisp_atlas_checkpoint_request_encode(&cr, out, sizeof(out)), BAD);

	wisp_atlas_checkpoint_manifest man = { .height = 1, .state_root = F(0) };
	wisp_atlas_chunk_ref ref = { F(1), F(32), 1 };
	assert_int_equal(wisp_atlas_checkpoint_manifest_encode(&man, &ref, 1, out, sizeof(out)), BAD);
	man.state_root = F(65);
	assert_int_equal(wisp_atlas_checkpoint_manifest_encode(&man, &ref, 1, out, sizeof(out)), BAD);
	man.state_root = F(32);
	assert_true(wisp_atlas_checkpoint_manifest_encode(&man, &ref, 1, out, sizeof(out)) > 0);
	assert_int_equal(wisp_atlas_checkpoint_manifest_encode(&man, NULL, 1, out, sizeof(out)), BAD);
	const wisp_atlas_chunk_ref bad_refs[] = {
		{ F(0), F(32), 1 },  { F(65), F(32), 1 }, { F(1), F(31), 1 }, { F(1), F(33), 1 },
		{ F(1), F(0), 1 },   { F(1), F(32), 0 },  { F(1), F(32), WISP_ATLAS_MAX_CHUNK_SIZE + 1 },
	};
	for (size_t i = 0; i < sizeof(bad_refs) / sizeof(bad_refs[0]); i++) {
		wisp_atlas_chunk_ref two[2] = { ref, bad_refs[i] };
		assert_int_equal(wisp_atlas_checkpoint_manifest_encode(&man, two, 2, out, sizeof(out)), BAD);
	}

	wisp_atlas_checkpoint_part part = { WISP_ATLAS_MAX_CHUNK_SIZE, F(0) };
	assert_int_equal(wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out)), 6);
	part.data = F(1);
	assert_int_equal(wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out)), BAD);
	part = (wisp_atlas_checkpoint_part){ WISP_ATLAS_MAX_CHUNK_SIZE + 1, F(0) };
	assert_int_equal(wisp_atlas_checkpoint_part_encode(&part, out, sizeof(out)), BAD);

	wisp_atlas_pending_request pr = { F(0), 1, 2, 1 };
	assert_int_equal(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)), BAD);
	pr.sender = F(65);
	assert_int_equal(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)), BAD);
	pr.sender = F(64);
	pr.nonce_from = 3;
	assert_int_equal(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)), BAD);
	pr.nonce_from = 2;
	pr.max = 0;
	assert_int_equal(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)), BAD);
	pr.max = WISP_ATLAS_MAX_PENDING + 1;
	assert_int_equal(wisp_atlas_pending_request_encode(&pr, out, sizeof(out)), BAD);

	wisp_atlas_pending_tx pt = { F(0), 1, F(1), F(0) };
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, out, sizeof(out)), BAD);
	pt.sender = F(65);
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, out, sizeof(out)), BAD);
	pt.sender = F(1);
	pt.id = F(0);
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, out, sizeof(out)), BAD);
	pt.id = F(65);
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, out, sizeof(out)), BAD);

	/* a valid message into too small a buffer */
	pt.id = F(1);
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, out, 5), WISP_ERR_NOBUF);
	assert_int_equal(wisp_atlas_pending_tx_encode(&pt, NULL, 0), WISP_ERR_NOBUF);
}

/* ---- limits on decode ------------------------------------------------------------- */

static void test_decode_tx_limits(void **state)
{
	(void)state;
	static wisp_atlas_tx_request txr;
	wisp_atlas_tx tx;
	size_t n;

	begin();
	assert_int_equal(wisp_atlas_tx_request_decode(wire, end(), &txr), WISP_ERR_MALFORMED); /* no ids */
	begin();
	put_b(1, fill, 1);
	put_b(1, fill, 0);
	assert_int_equal(wisp_atlas_tx_request_decode(wire, end(), &txr), WISP_ERR_MALFORMED);
	begin();
	put_b(1, fill, 65);
	assert_int_equal(wisp_atlas_tx_request_decode(wire, end(), &txr), WISP_ERR_TOO_LARGE);
	begin();
	for (int i = 0; i < 256; i++)
		put_b(1, fill, 1);
	n = end();
	assert_int_equal(wisp_atlas_tx_request_decode(wire, n, &txr), 0);
	assert_int_equal(txr.n_ids, 256);
	put_b(1, fill, 1); /* the 257th */
	assert_int_equal(wisp_atlas_tx_request_decode(wire, end(), &txr), WISP_ERR_TOO_LARGE);
	assert_int_equal(txr.n_ids, 0); /* zeroed on error */

	/* the request bound: 256 ids of 64 bytes plus 512 bytes of unknown field */
	begin();
	for (int i = 0; i < 256; i++)
		put_b(1, fill, 64);
	put_b(2, fill, 509);
	n = end();
	assert_int_equal(n, WISP_ATLAS_TX_REQUEST_MAX);
	assert_int_equal(wisp_atlas_tx_request_decode(wire, n, &txr), 0);
	begin();
	for (int i = 0; i < 256; i++)
		put_b(1, fill, 64);
	put_b(2, fill, 510);
	assert_int_equal(wisp_atlas_tx_request_decode(wire, end(), &txr), WISP_ERR_TOO_LARGE);

	begin();
	put_b(2, fill, 10);
	assert_int_equal(wisp_atlas_tx_decode(wire, end(), &tx), WISP_ERR_MALFORMED); /* no id */
	begin();
	put_b(1, fill, 65);
	assert_int_equal(wisp_atlas_tx_decode(wire, end(), &tx), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_atlas_tx_decode(fill, WISP_ATLAS_MAX_MESSAGE + 1, &tx), WISP_ERR_TOO_LARGE);
}

static void test_decode_state_limits(void **state)
{
	(void)state;
	wisp_atlas_state_request sr;
	wisp_atlas_state_block blk;

	begin();
	put_v(1, 5);
	put_v(3, 10);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_MALFORMED); /* no hash */
	begin();
	put_b(2, fill, 65);
	put_v(3, 10);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, fill, 32);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_MALFORMED); /* no max */
	begin();
	put_b(2, fill, 32);
	put_v(3, 0); /* written out, still 0 */
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_MALFORMED);
	begin();
	put_b(2, fill, 32);
	put_v(3, 1025);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, fill, 32);
	put_v(3, UINT64_C(1) << 32 | 5); /* not truncated to 5 */
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, fill, 32);
	put_v(3, 1024);
	put_b(9, fill, 512 - 34 - 3 - 3); /* padded to the request bound */
	assert_int_equal(end(), WISP_ATLAS_STATE_REQUEST_MAX);
	assert_int_equal(wisp_atlas_state_request_decode(wire, WISP_ATLAS_STATE_REQUEST_MAX, &sr), 0);
	put_v(10, 0);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);

	begin();
	put_v(1, 1);
	put_b(3, fill, 32);
	assert_int_equal(wisp_atlas_state_block_decode(wire, end(), &blk), WISP_ERR_MALFORMED); /* no hash */
	begin();
	put_b(2, fill, 32);
	assert_int_equal(wisp_atlas_state_block_decode(wire, end(), &blk), WISP_ERR_MALFORMED); /* no parent */
	begin();
	put_b(2, fill, 32);
	put_b(3, fill, 65);
	assert_int_equal(wisp_atlas_state_block_decode(wire, end(), &blk), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, fill, 65);
	put_b(3, fill, 32);
	assert_int_equal(wisp_atlas_state_block_decode(wire, end(), &blk), WISP_ERR_TOO_LARGE);
}

static void test_decode_checkpoint_limits(void **state)
{
	(void)state;
	wisp_atlas_checkpoint_request cr;
	wisp_atlas_checkpoint_manifest man;
	wisp_atlas_checkpoint_part part;
	uint8_t ref[256];
	size_t rl;

	begin();
	put_b(2, fill, 65);
	assert_int_equal(wisp_atlas_checkpoint_request_decode(wire, end(), &cr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, fill, 0); /* an empty chunk_id written out: the manifest */
	assert_int_equal(wisp_atlas_checkpoint_request_decode(wire, end(), &cr), 0);
	assert_true(cr.chunk_id.len == 0 && cr.chunk_id.p == NULL);

	rl = ref_wire(ref, sizeof(ref), 1, 32, 1);
	begin();
	put_v(1, 3);
	put_b(3, ref, rl);
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), WISP_ERR_MALFORMED); /* no root */
	begin();
	put_b(2, fill, 65);
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), WISP_ERR_TOO_LARGE);

	/* every bad ref, after a good one */
	const struct {
		uint32_t id, sha;
		uint64_t size;
		int err;
	} bad[] = {
		{ 0, 32, 1, WISP_ERR_MALFORMED },  { 65, 32, 1, WISP_ERR_TOO_LARGE },
		{ 1, 31, 1, WISP_ERR_MALFORMED },  { 1, 33, 1, WISP_ERR_TOO_LARGE },
		{ 1, 0, 1, WISP_ERR_MALFORMED },   { 1, 32, 0, WISP_ERR_MALFORMED },
		{ 1, 32, WISP_ATLAS_MAX_CHUNK_SIZE + 1, WISP_ERR_TOO_LARGE },
	};
	uint8_t good[128];
	size_t gl = ref_wire(good, sizeof(good), 1, 32, WISP_ATLAS_MAX_CHUNK_SIZE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wisp_pb_writer w;
		wisp_pb_writer_init(&w, ref, sizeof(ref));
		wisp_pb_put_bytes(&w, 1, fill, bad[i].id);
		wisp_pb_put_bytes(&w, 2, fill, bad[i].sha);
		wisp_pb_put_varint(&w, 3, bad[i].size);
		ssize_t k = wisp_pb_writer_finish(&w);
		assert_true(k > 0);
		begin();
		put_b(2, fill, 32);
		put_b(3, good, gl);
		put_b(3, ref, (size_t)k);
		assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), bad[i].err);
		assert_int_equal(man.n_chunks, 0);
		assert_null(man.wire.p);
	}
	/* a ref that is not a message: chunks as a varint, a ref cut short */
	begin();
	put_b(2, fill, 32);
	put_v(3, 1);
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), WISP_ERR_WIRE_TYPE);
	begin();
	put_b(2, fill, 32);
	put_raw("1a03" "0a0501");
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), WISP_ERR_TRUNCATED);

	begin();
	put_v(1, WISP_ATLAS_MAX_CHUNK_SIZE);
	put_b(2, fill, 1);
	assert_int_equal(wisp_atlas_checkpoint_part_decode(wire, end(), &part), WISP_ERR_TOO_LARGE);
	begin();
	put_v(1, WISP_ATLAS_MAX_CHUNK_SIZE + 1);
	assert_int_equal(wisp_atlas_checkpoint_part_decode(wire, end(), &part), WISP_ERR_TOO_LARGE);
	begin();
	put_v(1, WISP_ATLAS_MAX_CHUNK_SIZE - 2);
	put_b(2, fill, 2);
	assert_int_equal(wisp_atlas_checkpoint_part_decode(wire, end(), &part), 0);
}

static void test_decode_pending_limits(void **state)
{
	(void)state;
	wisp_atlas_pending_request pr;
	wisp_atlas_pending_tx pt;

	begin();
	put_b(1, fill, 20);
	put_v(2, 6);
	put_v(3, 5);
	put_v(4, 10);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_MALFORMED); /* from > to */
	begin();
	put_b(1, fill, 20);
	put_v(2, 5); /* to absent: 0 */
	put_v(4, 10);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_MALFORMED);
	begin();
	put_v(3, 5);
	put_v(4, 10);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_MALFORMED); /* no sender */
	begin();
	put_b(1, fill, 65);
	put_v(4, 10);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(1, fill, 20);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_MALFORMED); /* no max */
	begin();
	put_b(1, fill, 20);
	put_v(4, 1025);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(1, fill, 20);
	put_v(2, 5);
	put_v(3, 5);
	put_v(4, 1024);
	assert_int_equal(wisp_atlas_pending_request_decode(wire, end(), &pr), 0);
	assert_true(pr.nonce_from == 5 && pr.nonce_to == 5 && pr.max == 1024);

	begin();
	put_b(1, fill, 20);
	put_v(2, 1);
	assert_int_equal(wisp_atlas_pending_tx_decode(wire, end(), &pt), WISP_ERR_MALFORMED); /* no id */
	begin();
	put_b(3, fill, 20);
	assert_int_equal(wisp_atlas_pending_tx_decode(wire, end(), &pt), WISP_ERR_MALFORMED); /* no sender */
	begin();
	put_b(1, fill, 65);
	put_b(3, fill, 20);
	assert_int_equal(wisp_atlas_pending_tx_decode(wire, end(), &pt), WISP_ERR_TOO_LARGE);
	begin();
	put_b(1, fill, 20);
	put_b(3, fill, 65);
	assert_int_equal(wisp_atlas_pending_tx_decode(wire, end(), &pt), WISP_ERR_TOO_LARGE);
}

/* ---- malformed protobuf ------------------------------------------------------------- */

static int decode_sr_hex(const char *hex, wisp_atlas_state_request *sr)
{
	uint8_t b[128];
	size_t n = unhex(hex, b, sizeof(b));
	return wisp_atlas_state_request_decode(b, n, sr);
}

static void test_malformed(void **state)
{
	(void)state;
	wisp_atlas_state_request sr;
	wisp_atlas_tx tx;

	/* the valid message 08ac02 1202aabb 1810, then broken variants */
	assert_int_equal(decode_sr_hex("08ac02" "1202aabb" "1810", &sr), 0);
	assert_int_equal(decode_sr_hex("08ac02" "1205aabb", &sr), WISP_ERR_TRUNCATED);   /* length past the end */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "08", &sr), WISP_ERR_TRUNCATED); /* key, no value */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "08ac", &sr), WISP_ERR_TRUNCATED);
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "12", &sr), WISP_ERR_TRUNCATED); /* no length */
	assert_int_equal(decode_sr_hex("0880001202aabb1810", &sr), WISP_ERR_VARINT);      /* non-minimal */
	assert_int_equal(decode_sr_hex("0a01aa" "1202aabb" "1810", &sr), WISP_ERR_WIRE_TYPE); /* height as bytes */
	assert_int_equal(decode_sr_hex("1001" "1810", &sr), WISP_ERR_WIRE_TYPE);           /* hash as varint */
	assert_int_equal(decode_sr_hex("1202aabb" "1d10000000", &sr), WISP_ERR_WIRE_TYPE); /* max as fixed32 */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "0b", &sr), WISP_ERR_WIRE_TYPE);  /* a group */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "0f00", &sr), WISP_ERR_WIRE_TYPE); /* wire type 7 */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "0000", &sr), WISP_ERR_MALFORMED); /* field 0 */
	/* a declared length over the message bound, before the bytes are there */
	assert_int_equal(decode_sr_hex("1202aabb" "1810" "2a8180808001", &sr), WISP_ERR_TOO_LARGE);
	assert_int_equal(sr.height, 0);
	assert_int_equal(sr.max_blocks, 0);
	assert_null(sr.last_hash.p);

	/* a prefix of a valid message is a shorter valid one, a missing field or a cut one */
	wisp_atlas_pending_tx pt = { F(20), 77, F(30), F(300) }, pt2;
	ssize_t n = wisp_atlas_pending_tx_encode(&pt, out, sizeof(out));
	assert_true(n > 0);
	for (size_t cut = 0; cut < (size_t)n; cut++) {
		int rc = wisp_atlas_pending_tx_decode(out, cut, &pt2);
		assert_true(rc == 0 || rc == WISP_ERR_TRUNCATED || rc == WISP_ERR_MALFORMED);
	}
	assert_int_equal(wisp_atlas_pending_tx_decode(out, (size_t)n - 1, &pt2), WISP_ERR_TRUNCATED);

	begin();
	put_b(1, fill, 4);
	put_v(2, 1); /* body as a varint */
	assert_int_equal(wisp_atlas_tx_decode(wire, end(), &tx), WISP_ERR_WIRE_TYPE);
}

/* ---- unknown and repeated fields ------------------------------------------------------ */

static void test_unknown_fields(void **state)
{
	(void)state;
	wisp_atlas_state_request sr;
	wisp_atlas_checkpoint_manifest man;
	wisp_atlas_manifest_cursor cur;
	wisp_atlas_chunk_ref r;
	const uint8_t hash[] = { 0xaa, 0xbb };

	/* every wire type, small and large field numbers, between the known fields */
	begin();
	put_v(5, 7);
	put_v(1, 300);
	put_raw("31" "0102030405060708"); /* field 6, fixed64 */
	put_b(2, hash, 2);
	put_b(7, fill, 100);
	put_raw("45" "01020304"); /* field 8, fixed32 */
	put_v(3, 16);
	put_v(100000, 1);
	size_t n = end();
	assert_int_equal(wisp_atlas_state_request_decode(wire, n, &sr), 0);
	assert_true(sr.height == 300 && sr.max_blocks == 16);
	assert_bytes(sr.last_hash, hash, 2);
	/* re-encoded without them: the canonical bytes */
	assert_encoding(wisp_atlas_state_request_encode(&sr, out, sizeof(out)), wisp_atlas_state_request_size(&sr),
			"08ac02" "1202aabb" "1810");

	/* inside a ChunkRef too */
	begin();
	put_b(1, fill, 2);
	put_b(4, fill, 10);
	put_b(2, fill, 32);
	put_raw("2d" "00000000");
	put_v(3, 9);
	put_v(99, 1);
	size_t rl = end();
	uint8_t ref[128];
	memcpy(ref, wire, rl);
	begin();
	put_b(2, fill, 32);
	put_b(3, ref, rl);
	put_b(4, ref, rl); /* an unknown field holding a ref is not a ref */
	assert_int_equal(wisp_atlas_checkpoint_manifest_decode(wire, end(), &man), 0);
	assert_int_equal(man.n_chunks, 1);
	wisp_atlas_manifest_cursor_init(&cur, &man);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 1);
	assert_true(r.id.len == 2 && r.sha256.len == 32 && r.size == 9);
	assert_int_equal(wisp_atlas_manifest_next(&cur, &r), 0);
}

static void test_repeated_singular(void **state)
{
	(void)state;
	wisp_atlas_state_request sr;
	const uint8_t h1[] = { 1 }, h2[] = { 2, 2 };

	begin();
	put_v(1, 1);
	put_b(2, h1, 1);
	put_v(3, 5);
	put_v(1, 300);
	put_b(2, h2, 2);
	put_v(3, 7);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), 0);
	assert_true(sr.height == 300 && sr.max_blocks == 7);
	assert_bytes(sr.last_hash, h2, 2);

	/* an earlier occurrence must be within the limits too */
	begin();
	put_b(2, fill, 65);
	put_b(2, h1, 1);
	put_v(3, 5);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);
	begin();
	put_b(2, h1, 1);
	put_v(3, 2000);
	put_v(3, 5);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_TOO_LARGE);
	/* and a later zero counts: the value is 0 */
	begin();
	put_b(2, h1, 1);
	put_v(3, 5);
	put_v(3, 0);
	assert_int_equal(wisp_atlas_state_request_decode(wire, end(), &sr), WISP_ERR_MALFORMED);
}

/* ---- registration ---------------------------------------------------------------------- */

static void test_register(void **state)
{
	(void)state;
	static const char *const ids[WISP_ATLAS_PROTOCOLS] = { WISP_ATLAS_PROTO_TX, WISP_ATLAS_PROTO_STATE,
							       WISP_ATLAS_PROTO_CHECKPOINT,
							       WISP_ATLAS_PROTO_PENDING };
	const uint32_t max_req[] = { WISP_ATLAS_TX_REQUEST_MAX, 512, 512, 512 };
	const uint32_t max_chunks[] = { 256, 1024, 4096, 1024 };
	wisp_options o;
	wisp_node *n;

	wt_node_options(&o, false);
	assert_int_equal(wisp_node_new(&n, &o), WISP_OK);
	assert_int_equal(wisp_atlas_register(n, NULL), WISP_OK);
	wisp_reqresp_opts def;
	wisp_reqresp_opts_default(&def);
	for (int i = 0; i < WISP_ATLAS_PROTOCOLS; i++) {
		assert_string_equal(n->rr[i].id, ids[i]);
		assert_int_equal(n->rr[i].o.max_request, max_req[i]);
		assert_int_equal(n->rr[i].o.max_chunks, max_chunks[i]);
		assert_int_equal(n->rr[i].o.max_chunk, def.max_chunk);
		assert_int_equal(n->rr[i].o.serve, 1);
		assert_int_equal(wisp_reqresp_register(n, ids[i], NULL), WISP_ERR_EXISTS);
	}
	assert_int_equal(wisp_atlas_register(n, NULL), WISP_ERR_EXISTS);
	assert_int_equal(wisp_reqresp_register(n, "/atlas/req/other/1/pb_zstd", NULL), WISP_ATLAS_PROTOCOLS);
	wisp_node_free(n);

	/* base's other fields are kept; a base of another version registers nothing */
	assert_int_equal(wisp_node_new(&n, &o), WISP_OK);
	wisp_reqresp_opts base = def;
	base.version = WISP_REQRESP_OPTS_VERSION + 1;
	assert_int_equal(wisp_atlas_register(n, &base), WISP_ERR_INVALID_ARG);
	assert_int_equal(n->n_rr, 0);
	base = def;
	base.serve = 0;
	base.max_chunk = 4096;
	base.max_request = 1; /* replaced by the schema's */
	assert_int_equal(wisp_atlas_register(n, &base), WISP_OK);
	assert_int_equal(n->n_rr, WISP_ATLAS_PROTOCOLS);
	for (int i = 0; i < WISP_ATLAS_PROTOCOLS; i++) {
		assert_int_equal(n->rr[i].o.serve, 0);
		assert_int_equal(n->rr[i].o.max_chunk, 4096);
		assert_int_equal(n->rr[i].o.max_request, max_req[i]);
	}
	wisp_node_free(n);

	wisp_reqresp_opts one;
	assert_int_equal(wisp_atlas_opts(WISP_ATLAS_PROTOCOLS, NULL, &one), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_atlas_opts(WISP_ATLAS_CHECKPOINT, NULL, &one), 0);
	assert_int_equal(one.max_chunks, WISP_ATLAS_CHECKPOINT_MAX_CHUNKS);
	assert_int_equal(one.max_request, WISP_ATLAS_CHECKPOINT_REQUEST_MAX);
}

int main(void)
{
	setup_fill();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_vectors),
		cmocka_unit_test(test_round_trip_requests),
		cmocka_unit_test(test_round_trip_responses),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_decode_tx_limits),
		cmocka_unit_test(test_decode_state_limits),
		cmocka_unit_test(test_decode_checkpoint_limits),
		cmocka_unit_test(test_decode_pending_limits),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_repeated_singular),
		cmocka_unit_test(test_register),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
