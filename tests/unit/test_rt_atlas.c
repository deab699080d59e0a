/* Round trips for every Atlas protocol between two nodes over loopback:
 * node 1 serves the demo state (tools/atlas-demo.h) that wisp-node serves
 * with --atlas-demo, node 0 asks and checks every answer against what the
 * demo state must hold: tx fetch by id (known and unknown ids, order),
 * state sync by height and last hash (and a wrong hash), the checkpoint
 * manifest then its chunks through the sync helper, pending transactions
 * by sender and nonce range, and a malformed request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/atlas.h>
#include <wisp/error.h>
#include <wisp/wisp.h>

#include "tools/atlas-demo.h"

#define WAIT_MS 20000
#define MAX_CHUNKS 1100

typedef struct chunk {
	int result;
	uint32_t len;
	uint8_t *data;
} chunk;

typedef struct tnode {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected;
} tnode;

static tnode nodes[2];
static atlas_demo *demo;
/* node 0's view of the current request */
static chunk got[MAX_CHUNKS];
static uint32_t n_got;
static int ended, end_status;
static int synced, sync_status;
static uint32_t sync_chunks;

static wisp_node *node_at(int i)
{
	return nodes[i].n;
}

static void take(int i, const wisp_event *ev)
{
	tnode *t = &nodes[i];
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(t->listen, sizeof(t->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		t->connected++;
		break;
	case WISP_EVENT_REQUEST:
		assert_int_equal(i, 1);
		assert_true(atlas_demo_request(demo, t->n, ev->u.request));
		break;
	case WISP_EVENT_RESPOND_READY:
		atlas_demo_pump(demo, t->n);
		break;
	case WISP_EVENT_RESPONSE: {
		assert_true(n_got < MAX_CHUNKS);
		chunk *c = &got[n_got++];
		c->result = ev->u.response->result;
		c->len = ev->u.response->len;
		c->data = malloc(c->len + 1);
		memcpy(c->data, ev->u.response->data, c->len);
		c->data[c->len] = 0;
		break;
	}
	case WISP_EVENT_RESPONSE_END:
		ended = 1;
		end_status = ev->status;
		break;
	case WISP_EVENT_SYNC_CHUNK: {
		wisp_sync_chunk want;
		atlas_demo_chunk(demo, ev->u.sync->index, &want);
		uint8_t *bytes = malloc(want.size);
		atlas_demo_bytes(0x100000000ull + ev->u.sync->index, bytes, want.size);
		assert_int_equal(ev->u.sync->len, want.size);
		assert_memory_equal(ev->u.sync->data, bytes, want.size);
		free(bytes);
		sync_chunks++;
		break;
	}
	case WISP_EVENT_SYNC_DONE:
		synced = 1;
		sync_status = ev->status;
		break;
	default:
		break;
	}
}

static bool cond_ended(void)
{
	atlas_demo_pump(demo, nodes[1].n);
	return ended;
}

static bool cond_synced(void)
{
	atlas_demo_pump(demo, nodes[1].n);
	return synced;
}

static bool both_listening(void)
{
	return nodes[0].listen[0] && nodes[1].listen[0];
}

static bool connected(void)
{
	return nodes[0].connected && nodes[1].connected;
}

static void forget(void)
{
	for (uint32_t i = 0; i < n_got; i++)
		free(got[i].data);
	n_got = 0;
	ended = 0;
}

/* Ask node 1 on protocol with message m[0..len) and wait for the end. */
static void ask(const char *protocol, const uint8_t *m, size_t len)
{
	forget();
	assert_int_equal(wisp_request(nodes[0].n, wisp_node_peer_id(nodes[1].n), protocol, m, len, 0, 1, NULL),
			 WISP_OK);
	assert_true(wt_wait_nodes(node_at, 2, take, cond_ended, WAIT_MS));
	assert_int_equal(end_status, WISP_OK);
}

static int setup(void **state)
{
	(void)state;
	atlas_demo_cfg cfg;
	atlas_demo_cfg_default(&cfg);
	cfg.txs = 500;
	cfg.height = 100;
	cfg.chunks = 1500; /* the manifest takes two messages (1024 refs each at most) */
	cfg.chunk_size = 1024;
	demo = atlas_demo_new(&cfg);
	assert_non_null(demo);
	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < 2; i++) {
		wisp_options o;
		wt_node_options(&o, true);
		assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
		/* no rate limit: the sync below asks for 1500 chunks at once (the
		 * default 50 a second would take half a minute; test_rt_reqresp
		 * covers the limit) */
		wisp_reqresp_opts base;
		wisp_reqresp_opts_default(&base);
		base.rate_per_peer = 0;
		assert_int_equal(wisp_atlas_register(nodes[i].n, &base), WISP_OK);
		assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	}
	assert_true(wt_wait_nodes(node_at, 2, take, both_listening, WAIT_MS));
	assert_int_equal(wisp_dial(nodes[0].n, nodes[1].listen, 1), WISP_OK);
	assert_true(wt_wait_nodes(node_at, 2, take, connected, WAIT_MS));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	forget();
	for (int i = 0; i < 2; i++) {
		wisp_node_stop(nodes[i].n);
		wt_node_finish(nodes[i].n);
	}
	atlas_demo_free(demo);
	return 0;
}

static void test_tx(void **state)
{
	(void)state;
	uint8_t ids[3][32], buf[512];
	atlas_demo_tx_id(7, ids[0]);
	memset(ids[1], 0xee, 32); /* unknown: skipped */
	atlas_demo_tx_id(499, ids[2]);
	wisp_atlas_tx_request m = { .n_ids = 3 };
	for (int i = 0; i < 3; i++)
		m.ids[i] = (wisp_atlas_bytes){ ids[i], 32 };
	ssize_t len = wisp_atlas_tx_request_encode(&m, buf, sizeof(buf));
	assert_true(len > 0);
	ask(WISP_ATLAS_PROTO_TX, buf, (size_t)len);
	assert_int_equal(n_got, 2);
	const uint32_t want[2] = { 7, 499 };
	for (int k = 0; k < 2; k++) {
		wisp_atlas_tx tx;
		assert_int_equal(got[k].result, 0);
		assert_int_equal(wisp_atlas_tx_decode(got[k].data, got[k].len, &tx), WISP_OK);
		uint8_t id[32], body[256];
		atlas_demo_tx_id(want[k], id);
		atlas_demo_bytes(want[k], body, 64 + want[k] % 192);
		assert_int_equal(tx.id.len, 32);
		assert_memory_equal(tx.id.p, id, 32);
		assert_int_equal(tx.body.len, 64 + want[k] % 192);
		assert_memory_equal(tx.body.p, body, tx.body.len);
	}
	/* none known: no chunk at all */
	m.n_ids = 1;
	m.ids[0] = (wisp_atlas_bytes){ ids[1], 32 };
	len = wisp_atlas_tx_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_TX, buf, (size_t)len);
	assert_int_equal(n_got, 0);
}

static void test_state(void **state)
{
	(void)state;
	uint8_t hash[32], buf[128];
	atlas_demo_block_hash(demo, 40, hash);
	wisp_atlas_state_request m = { 40, { hash, 32 }, 25 };
	ssize_t len = wisp_atlas_state_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_STATE, buf, (size_t)len);
	assert_int_equal(n_got, 25);
	uint8_t prev[32];
	memcpy(prev, hash, 32);
	for (uint32_t k = 0; k < n_got; k++) {
		wisp_atlas_state_block b;
		assert_int_equal(wisp_atlas_state_block_decode(got[k].data, got[k].len, &b), WISP_OK);
		assert_int_equal(b.height, 41 + k);
		assert_memory_equal(b.parent_hash.p, prev, 32); /* the chain follows on */
		atlas_demo_block_hash(demo, b.height, hash);
		assert_memory_equal(b.hash.p, hash, 32);
		memcpy(prev, hash, 32);
	}
	/* near the tip: only what exists */
	atlas_demo_block_hash(demo, 95, hash);
	m = (wisp_atlas_state_request){ 95, { hash, 32 }, 1024 };
	len = wisp_atlas_state_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_STATE, buf, (size_t)len);
	assert_int_equal(n_got, 5);
	/* a hash that is not ours at that height (a fork): result 1 */
	hash[0] ^= 1;
	len = wisp_atlas_state_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_STATE, buf, (size_t)len);
	assert_int_equal(n_got, 1);
	assert_int_equal(got[0].result, WISP_RR_INVALID_REQUEST);
	assert_string_equal((char *)got[0].data, "unknown height or hash");
}

static void test_checkpoint(void **state)
{
	(void)state;
	const atlas_demo_cfg *cfg = atlas_demo_config(demo);
	uint8_t buf[128];
	wisp_atlas_checkpoint_request m = { cfg->height, { NULL, 0 } };
	ssize_t len = wisp_atlas_checkpoint_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_CHECKPOINT, buf, (size_t)len);
	assert_int_equal(n_got, 2); /* 1024 + 476 refs */
	wisp_sync_chunk *ch = calloc(cfg->chunks, sizeof(*ch));
	uint32_t n = 0;
	for (uint32_t k = 0; k < n_got; k++) {
		wisp_atlas_checkpoint_manifest man;
		assert_int_equal(wisp_atlas_checkpoint_manifest_decode(got[k].data, got[k].len, &man), WISP_OK);
		assert_int_equal(man.height, cfg->height);
		wisp_atlas_manifest_cursor cur;
		wisp_atlas_manifest_cursor_init(&cur, &man);
		wisp_atlas_chunk_ref ref;
		while (wisp_atlas_manifest_next(&cur, &ref) == 1) {
			assert_true(n < cfg->chunks);
			wisp_sync_chunk *c = &ch[n];
			memcpy(c->id, ref.id.p, ref.id.len);
			c->id_len = ref.id.len;
			memcpy(c->sha256, ref.sha256.p, 32);
			c->size = (uint32_t)ref.size;
			wisp_sync_chunk want;
			atlas_demo_chunk(demo, n, &want);
			assert_memory_equal(c, &want, sizeof(want));
			n++;
		}
	}
	assert_int_equal(n, cfg->chunks);
	/* the state itself, through the sync helper */
	wisp_peer_id peer = *wisp_node_peer_id(nodes[1].n);
	wisp_sync_spec spec;
	wisp_sync_spec_default(&spec);
	spec.height = cfg->height;
	spec.chunks = ch;
	spec.n_chunks = n;
	spec.peers = &peer;
	spec.n_peers = 1;
	spec.per_peer = 8;
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 5, NULL), WISP_OK);
	free(ch);
	assert_true(wt_wait_nodes(node_at, 2, take, cond_synced, WAIT_MS));
	assert_int_equal(sync_status, WISP_OK);
	assert_int_equal(sync_chunks, cfg->chunks);
	/* no checkpoint at another height; no such chunk */
	m.height = cfg->height + 1;
	len = wisp_atlas_checkpoint_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_CHECKPOINT, buf, (size_t)len);
	assert_int_equal(got[0].result, WISP_RR_UNAVAILABLE);
	m = (wisp_atlas_checkpoint_request){ cfg->height, { (const uint8_t *)"chunk-99999", 11 } };
	len = wisp_atlas_checkpoint_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_CHECKPOINT, buf, (size_t)len);
	assert_int_equal(got[0].result, WISP_RR_INVALID_REQUEST);
}

static void test_pending(void **state)
{
	(void)state;
	uint8_t buf[128];
	wisp_atlas_pending_request m = { { (const uint8_t *)"sender-3", 8 }, 10, 19, 1024 };
	ssize_t len = wisp_atlas_pending_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_PENDING, buf, (size_t)len);
	assert_int_equal(n_got, 10);
	for (uint32_t k = 0; k < n_got; k++) {
		wisp_atlas_pending_tx tx;
		assert_int_equal(wisp_atlas_pending_tx_decode(got[k].data, got[k].len, &tx), WISP_OK);
		assert_int_equal(tx.nonce, 10 + k);
		assert_int_equal(tx.sender.len, 8);
		assert_memory_equal(tx.sender.p, "sender-3", 8);
		assert_int_equal(tx.body.len, 100);
	}
	/* max caps the count; an unknown sender has nothing pending */
	m.max = 3;
	len = wisp_atlas_pending_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_PENDING, buf, (size_t)len);
	assert_int_equal(n_got, 3);
	m.sender = (wisp_atlas_bytes){ (const uint8_t *)"nobody", 6 };
	len = wisp_atlas_pending_request_encode(&m, buf, sizeof(buf));
	ask(WISP_ATLAS_PROTO_PENDING, buf, (size_t)len);
	assert_int_equal(n_got, 0);
	/* not a PendingRequest at all: result 1 */
	static const uint8_t junk[] = { 0x0a, 0x00, 0x10, 0x05, 0x18, 0x01 }; /* empty sender, from > to */
	ask(WISP_ATLAS_PROTO_PENDING, junk, sizeof(junk));
	assert_int_equal(n_got, 1);
	assert_int_equal(got[0].result, WISP_RR_INVALID_REQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_checkpoint),
		cmocka_unit_test(test_pending),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
