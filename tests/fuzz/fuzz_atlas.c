/* libFuzzer target: every Atlas message decoder (wisp/atlas.h).
 *
 * The first byte picks the message, the rest is decoded. An error must be
 * a peer error. A message that decodes must have its slices inside the
 * input, re-encode (its values are within the limits and its canonical
 * form is never longer than the input) to exactly *_size() bytes, decode
 * again to the same fields, and re-encode to the same bytes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/atlas.h>
#include <wisp/error.h>

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message's fields as lists, to compare and bound-check them the same way
 * for every message. */
typedef struct view {
	wisp_atlas_bytes b[WISP_ATLAS_MAX_IDS];
	size_t nb;
	uint64_t u[4];
	size_t nu;
} view;

static void add_b(view *v, wisp_atlas_bytes b)
{
	v->b[v->nb++] = b;
}

static void add_u(view *v, uint64_t u)
{
	v->u[v->nu++] = u;
}

static bool same_bytes(wisp_atlas_bytes a, wisp_atlas_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool same_view(const view *a, const view *b)
{
	if (a->nb != b->nb || a->nu != b->nu)
		return false;
	for (size_t i = 0; i < a->nb; i++)
		if (!same_bytes(a->b[i], b->b[i]))
			return false;
	return a->nu == 0 || memcmp(a->u, b->u, a->nu * sizeof(a->u[0])) == 0;
}

static void check_inside(wisp_atlas_bytes b, const uint8_t *in, size_t n)
{
	CHECK(b.len == 0 ? b.p == NULL : (b.p >= in && b.p + b.len <= in + n));
}

/* One message type: typed calls wrapped for a void pointer. */
typedef struct codec {
	int (*dec)(const uint8_t *in, size_t n, void *m);
	ssize_t (*enc)(const void *m, uint8_t *out, size_t cap);
	size_t (*size)(const void *m);
	void (*view)(const void *m, view *v);
} codec;

#define WRAP(M)                                                                                  \
	static int dec_##M(const uint8_t *in, size_t n, void *m)                                 \
	{                                                                                        \
		return wisp_atlas_##M##_decode(in, n, m);                                        \
	}                                                                                        \
	static ssize_t enc_##M(const void *m, uint8_t *out, size_t cap)                          \
	{                                                                                        \
		return wisp_atlas_##M##_encode(m, out, cap);                                     \
	}                                                                                        \
	static size_t size_##M(const void *m)                                                    \
	{                                                                                        \
		return wisp_atlas_##M##_size(m);                                                 \
	}

WRAP(tx_request)
WRAP(tx)
WRAP(state_request)
WRAP(state_block)
WRAP(checkpoint_request)
WRAP(checkpoint_part)
WRAP(pending_request)
WRAP(pending_tx)

static void view_tx_request(const void *p, view *v)
{
	const wisp_atlas_tx_request *m = p;
	CHECK(m->n_ids >= 1 && m->n_ids <= WISP_ATLAS_MAX_IDS);
	for (uint32_t i = 0; i < m->n_ids; i++)
		add_b(v, m->ids[i]);
}

static void view_tx(const void *p, view *v)
{
	const wisp_atlas_tx *m = p;
	add_b(v, m->id);
	add_b(v, m->body);
}

static void view_state_request(const void *p, view *v)
{
	const wisp_atlas_state_request *m = p;
	add_u(v, m->height);
	add_b(v, m->last_hash);
	add_u(v, m->max_blocks);
}

static void view_state_block(const void *p, view *v)
{
	const wisp_atlas_state_block *m = p;
	add_u(v, m->height);
	add_b(v, m->hash);
	add_b(v, m->parent_hash);
	add_b(v, m->body);
}

static void view_checkpoint_request(const void *p, view *v)
{
	const wisp_atlas_checkpoint_request *m = p;
	add_u(v, m->height);
	add_b(v, m->chunk_id);
}

static void view_checkpoint_part(const void *p, view *v)
{
	const wisp_atlas_checkpoint_part *m = p;
	CHECK(m->offset + m->data.len <= WISP_ATLAS_MAX_CHUNK_SIZE);
	add_u(v, m->offset);
	add_b(v, m->data);
}

static void view_pending_request(const void *p, view *v)
{
	const wisp_atlas_pending_request *m = p;
	CHECK(m->nonce_from <= m->nonce_to);
	add_b(v, m->sender);
	add_u(v, m->nonce_from);
	add_u(v, m->nonce_to);
	add_u(v, m->max);
}

static void view_pending_tx(const void *p, view *v)
{
	const wisp_atlas_pending_tx *m = p;
	add_b(v, m->sender);
	add_u(v, m->nonce);
	add_b(v, m->id);
	add_b(v, m->body);
}

#define CODEC(M) { dec_##M, enc_##M, size_##M, view_##M }
static const codec codecs[] = {
	CODEC(tx_request),      CODEC(tx),         CODEC(state_request),   CODEC(state_block),
	CODEC(checkpoint_request), CODEC(checkpoint_part), CODEC(pending_request), CODEC(pending_tx),
};
#define N_CODECS (sizeof(codecs) / sizeof(codecs[0]))

static uint8_t out1[WISP_ATLAS_MAX_MESSAGE], out2[WISP_ATLAS_MAX_MESSAGE];

/* Large enough for any message type. */
static union {
	wisp_atlas_tx_request a;
	wisp_atlas_pending_tx b;
	wisp_atlas_state_block c;
} msg1, msg2;

static void fuzz_codec(const codec *c, const uint8_t *in, size_t n)
{
	static view v1, v2;
	int rc = c->dec(in, n, &msg1);
	if (rc) {
		CHECK(wisp_err_is_peer(rc));
		return;
	}
	v1.nb = v1.nu = v2.nb = v2.nu = 0;
	c->view(&msg1, &v1);
	for (size_t i = 0; i < v1.nb; i++)
		check_inside(v1.b[i], in, n);

	ssize_t k1 = c->enc(&msg1, out1, sizeof(out1));
	CHECK(k1 >= 0 && (size_t)k1 <= n && (size_t)k1 == c->size(&msg1));
	CHECK(c->dec(out1, (size_t)k1, &msg2) == 0);
	c->view(&msg2, &v2);
	CHECK(same_view(&v1, &v2));
	ssize_t k2 = c->enc(&msg2, out2, sizeof(out2));
	CHECK(k2 == k1 && memcmp(out1, out2, (size_t)k1) == 0);
	if (k1 > 0) /* one byte short never fits */
		CHECK(c->enc(&msg1, out2, (size_t)k1 - 1) == WISP_ERR_NOBUF);
}

/* ---- the manifest: refs through the cursor -------------------------------- */

/* The smallest ref in a manifest: key and length, then id (3 bytes), sha256
 * (34) and size (2). */
#define MAX_REFS (WISP_ATLAS_MAX_MESSAGE / 41 + 1)
static wisp_atlas_chunk_ref refs[MAX_REFS];

static bool same_ref(const wisp_atlas_chunk_ref *a, const wisp_atlas_chunk_ref *b)
{
	return same_bytes(a->id, b->id) && same_bytes(a->sha256, b->sha256) && a->size == b->size;
}

/* Reads every ref of m into refs[], checking each; returns the count. */
static size_t collect_refs(const wisp_atlas_checkpoint_manifest *m, const uint8_t *in, size_t n)
{
	wisp_atlas_manifest_cursor cur;
	size_t k = 0;
	int rc;
	wisp_atlas_manifest_cursor_init(&cur, m);
	while ((rc = wisp_atlas_manifest_next(&cur, &refs[k])) == 1) {
		const wisp_atlas_chunk_ref *r = &refs[k];
		check_inside(r->id, in, n);
		check_inside(r->sha256, in, n);
		CHECK(r->id.len >= 1 && r->id.len <= WISP_ATLAS_MAX_HASH);
		CHECK(r->sha256.len == WISP_ATLAS_SHA256_LEN);
		CHECK(r->size >= 1 && r->size <= WISP_ATLAS_MAX_CHUNK_SIZE);
		CHECK(++k < MAX_REFS);
	}
	CHECK(rc == 0 && k == m->n_chunks);
	return k;
}

static void fuzz_manifest(const uint8_t *in, size_t n)
{
	wisp_atlas_checkpoint_manifest a, b;
	int rc = wisp_atlas_checkpoint_manifest_decode(in, n, &a);
	if (rc) {
		CHECK(wisp_err_is_peer(rc));
		return;
	}
	check_inside(a.state_root, in, n);
	size_t nr = collect_refs(&a, in, n);

	ssize_t k1 = wisp_atlas_checkpoint_manifest_encode(&a, refs, nr, out1, sizeof(out1));
	CHECK(k1 >= 0 && (size_t)k1 <= n && (size_t)k1 == wisp_atlas_checkpoint_manifest_size(&a, refs, nr));
	CHECK(wisp_atlas_checkpoint_manifest_decode(out1, (size_t)k1, &b) == 0);
	CHECK(a.height == b.height && same_bytes(a.state_root, b.state_root) && a.n_chunks == b.n_chunks);

	wisp_atlas_manifest_cursor cur;
	wisp_atlas_chunk_ref r;
	wisp_atlas_manifest_cursor_init(&cur, &b);
	for (size_t i = 0; i < nr; i++) {
		CHECK(wisp_atlas_manifest_next(&cur, &r) == 1);
		CHECK(same_ref(&r, &refs[i]));
	}
	CHECK(wisp_atlas_manifest_next(&cur, &r) == 0);

	/* the re-encoding is canonical: decoding it and encoding again gives it back */
	size_t nb = collect_refs(&b, out1, (size_t)k1);
	ssize_t k2 = wisp_atlas_checkpoint_manifest_encode(&b, refs, nb, out2, sizeof(out2));
	CHECK(k2 == k1 && memcmp(out1, out2, (size_t)k1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0] % (N_CODECS + 1);
	if (sel == N_CODECS)
		fuzz_manifest(data + 1, size - 1);
	else
		fuzz_codec(&codecs[sel], data + 1, size - 1);
	return 0;
}
