/* The chunked parallel sync: a 1 GiB state (64 MiB under sanitizers) in
 * 1 MiB chunks, synced from 4 peers over loopback, of which one serves
 * corrupt chunks and one is slow and drops its first request on the floor.
 * The sync must finish with every chunk exactly once and intact, the
 * corrupt peer dropped after its bad chunks and penalized in its
 * reputation, the dropped request asked again of another peer after the
 * chunk timeout. Also: a sync with no usable peer ends, and cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <wisp/error.h>
#include <wisp/wisp.h>

#include <wisp/atlas.h>

#include "tools/atlas-demo.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STATE_CHUNKS 64u
#else
#define STATE_CHUNKS 1024u
#endif
#define CHUNK_SIZE (1u << 20)
#define PART_SIZE (CHUNK_SIZE / 2)
#define PROTO "/atlas/req/checkpoint/1/pb_zstd"
#define N 5 /* node 0 syncs from nodes 1..4 */
#define WAIT_MS 120000
#define SLOW_NS (150 * 1000000ull)

enum { GOOD1 = 1, GOOD2 = 2, SLOW = 3, CORRUPT = 4 };

/* A request a server has yet to answer (in full). */
typedef struct pending {
	uint64_t ref;
	uint32_t chunk;
	uint32_t next_off; /* the next part's offset */
	uint64_t due;      /* not before (the slow server) */
} pending;

#define MAX_PENDING 1024

typedef struct tnode {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected;
	/* servers */
	uint32_t served, dropped_first;
	pending q[MAX_PENDING]; /* FIFO */
	uint32_t q_head, q_count;
	/* the syncer */
	uint8_t *seen;          /* per chunk: SYNC_CHUNK events */
	uint32_t chunks, bad_data;
	int done, done_status;
	wisp_sync_peer_result res[N];
	uint32_t n_res;
	wisp_peer_score_info score;
	int scores;
} tnode;

static tnode nodes[N];
static uint8_t *part; /* a part's content, encoded */

static wisp_node *node_at(int i)
{
	return nodes[i].n;
}

/* Chunk i's bytes: the demo state's stream seeded by i. */
static void chunk_bytes(uint32_t i, uint8_t *out, size_t n)
{
	atlas_demo_bytes(i, out, n);
}

/* The chunk a CheckpointRequest asks for: our chunk ids are "chunk-<i>". */
static int64_t requested_chunk(const uint8_t *p, size_t n)
{
	wisp_atlas_checkpoint_request m;
	assert_int_equal(wisp_atlas_checkpoint_request_decode(p, n, &m), WISP_OK);
	assert_int_equal(m.height, 7); /* the height we sync */
	char num[16] = { 0 };
	if (m.chunk_id.len <= 6 || m.chunk_id.len > 6 + 15 || memcmp(m.chunk_id.p, "chunk-", 6))
		return -1;
	memcpy(num, m.chunk_id.p + 6, m.chunk_id.len - 6);
	return atoll(num);
}

/* Answer with the chunk's parts (two CheckpointParts) from where it left
 * off; the corrupt server flips a byte of the second. False when the node
 * said AGAIN (its pool, or the respond window): try again later. */
static bool serve(int i, pending *p)
{
	static uint8_t data[CHUNK_SIZE];
	chunk_bytes(p->chunk, data, CHUNK_SIZE);
	if (i == CORRUPT)
		data[CHUNK_SIZE - 1] ^= 0x40;
	for (; p->next_off < CHUNK_SIZE; p->next_off += PART_SIZE) {
		wisp_atlas_checkpoint_part m = { p->next_off, { data + p->next_off, PART_SIZE } };
		ssize_t len = wisp_atlas_checkpoint_part_encode(&m, part, PART_SIZE + 64);
		assert_true(len > 0);
		int rc = wisp_respond(nodes[i].n, p->ref, WISP_RR_SUCCESS, part, (size_t)len,
				      p->next_off + PART_SIZE == CHUNK_SIZE);
		if (rc == WISP_ERR_AGAIN)
			return false;
		if (rc == WISP_ERR_NOTFOUND)
			return true; /* the syncer gave up on it (canceled after a bad part, or ended) */
		assert_int_equal(rc, WISP_OK);
	}
	nodes[i].served++;
	return true;
}

/* Every server answers what it can: in order, the slow one only what has
 * waited long enough. */
static void serve_all(void)
{
	uint64_t now = wt_now_ns();
	for (int i = 1; i < N; i++) {
		tnode *t = &nodes[i];
		while (t->q_count) {
			pending *p = &t->q[t->q_head];
			if (p->due > now || !serve(i, p))
				break;
			t->q_head = (t->q_head + 1) % MAX_PENDING;
			t->q_count--;
		}
	}
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
	case WISP_EVENT_REQUEST: {
		int64_t c = requested_chunk(ev->u.request->data, ev->u.request->len);
		assert_true(c >= 0 && c < STATE_CHUNKS);
		if (i == SLOW && !t->dropped_first) {
			t->dropped_first = 1; /* never answered: the chunk timeout requeues it */
			break;
		}
		assert_true(t->q_count < MAX_PENDING);
		t->q[(t->q_head + t->q_count++) % MAX_PENDING] =
			(pending){ ev->u.request->ref, (uint32_t)c, 0, i == SLOW ? wt_now_ns() + SLOW_NS : 0 };
		break;
	}
	case WISP_EVENT_SYNC_CHUNK: {
		const wisp_sync_info *si = ev->u.sync;
		assert_true(si->index < STATE_CHUNKS);
		t->seen[si->index]++;
		t->chunks++;
		static uint8_t want[CHUNK_SIZE];
		chunk_bytes(si->index, want, CHUNK_SIZE);
		if (si->len != CHUNK_SIZE || memcmp(si->data, want, CHUNK_SIZE))
			t->bad_data++;
		assert_false(wisp_peer_id_equal(&si->peer, wisp_node_peer_id(nodes[CORRUPT].n)));
		break;
	}
	case WISP_EVENT_SYNC_DONE:
		t->done++;
		t->done_status = ev->status;
		t->n_res = ev->u.sync->n_peers;
		memcpy(t->res, ev->u.sync->peers, t->n_res * sizeof(t->res[0]));
		break;
	case WISP_EVENT_PEER_SCORE:
		t->score = *ev->u.score;
		t->scores++;
		break;
	default:
		break;
	}
}

static bool all_listening(void)
{
	for (int i = 0; i < N; i++)
		if (!nodes[i].listen[0])
			return false;
	return true;
}

static bool all_connected(void)
{
	return nodes[0].connected >= N - 1;
}

static bool sync_done(void)
{
	serve_all();
	return nodes[0].done > 0;
}

static bool served_all(void)
{
	serve_all();
	for (int i = 1; i < N; i++)
		if (nodes[i].q_count)
			return false;
	return true;
}

static void start(void)
{
	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < N; i++) {
		wisp_options o;
		wt_node_options(&o, true);
		assert_int_equal(wisp_node_new(&nodes[i].n, &o), WISP_OK);
		wisp_reqresp_opts ro;
		wisp_reqresp_opts_default(&ro);
		ro.max_concurrent_per_peer = 16;
		ro.rate_per_peer = 0;
		ro.respond_timeout_ms = 60000;
		assert_int_equal(wisp_reqresp_register(nodes[i].n, PROTO, &ro), 0);
		assert_int_equal(wisp_node_start(nodes[i].n), WISP_OK);
	}
	nodes[0].seen = calloc(STATE_CHUNKS, 1);
	part = malloc(PART_SIZE + 64);
	assert_true(wt_wait_nodes(node_at, N, take, all_listening, 10000));
	for (int i = 1; i < N; i++)
		assert_int_equal(wisp_dial(nodes[0].n, nodes[i].listen, (uint64_t)i), WISP_OK);
	assert_true(wt_wait_nodes(node_at, N, take, all_connected, 10000));
}

static void stop(void)
{
	for (int i = 0; i < N; i++) {
		wisp_node_stop(nodes[i].n);
		wt_node_finish(nodes[i].n);
	}
	free(nodes[0].seen);
	free(part);
}

static wisp_sync_chunk *manifest(void)
{
	wisp_sync_chunk *ch = calloc(STATE_CHUNKS, sizeof(*ch));
	uint8_t *buf = malloc(CHUNK_SIZE);
	for (uint32_t i = 0; i < STATE_CHUNKS; i++) {
		ch[i].id_len = (uint32_t)snprintf((char *)ch[i].id, sizeof(ch[i].id), "chunk-%u", i);
		ch[i].size = CHUNK_SIZE;
		chunk_bytes(i, buf, CHUNK_SIZE);
		unsigned int mdlen;
		assert_true(EVP_Digest(buf, CHUNK_SIZE, ch[i].sha256, &mdlen, EVP_sha256(), NULL));
	}
	free(buf);
	return ch;
}

static bool have_score(void)
{
	return nodes[0].scores > 0;
}

static void test_sync_state(void **state)
{
	(void)state;
	start();
	wisp_sync_chunk *ch = manifest();
	wisp_peer_id peers[N - 1];
	for (int i = 1; i < N; i++)
		peers[i - 1] = *wisp_node_peer_id(nodes[i].n);
	wisp_sync_spec spec;
	wisp_sync_spec_default(&spec);
	spec.height = 7;
	spec.chunks = ch;
	spec.n_chunks = STATE_CHUNKS;
	spec.peers = peers;
	spec.n_peers = N - 1;
	spec.chunk_timeout_ms = 2000;
	uint64_t id = 0;
	uint64_t t0 = wt_now_ns();
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 99, &id), WISP_OK);
	assert_true(id != 0);
	free(ch); /* copied */
	assert_true(wt_wait_nodes(node_at, N, take, sync_done, WAIT_MS));
	double secs = (double)(wt_now_ns() - t0) / 1e9;
	tnode *s = &nodes[0];
	assert_int_equal(s->done_status, WISP_OK);
	assert_int_equal(s->chunks, STATE_CHUNKS);
	assert_int_equal(s->bad_data, 0);
	for (uint32_t i = 0; i < STATE_CHUNKS; i++)
		assert_int_equal(s->seen[i], 1);
	assert_int_equal(s->n_res, N - 1);
	uint32_t total = 0;
	for (int i = 0; i < N - 1; i++) {
		const wisp_sync_peer_result *r = &s->res[i];
		assert_true(wisp_peer_id_equal(&r->peer, &peers[i]));
		total += r->chunks;
		printf("# peer %d: %u chunks, %u bad, %u failed%s\n", i + 1, r->chunks, r->bad, r->failed,
		       r->dropped ? ", dropped" : "");
	}
	assert_int_equal(total, STATE_CHUNKS);
	const wisp_sync_peer_result *bad = &s->res[CORRUPT - 1], *slow = &s->res[SLOW - 1];
	assert_int_equal(bad->chunks, 0);
	/* dropped at bad_limit; what it had in flight by then came back bad too */
	assert_true(bad->bad >= spec.bad_limit && bad->bad < spec.bad_limit + spec.per_peer);
	assert_true(bad->dropped);
	assert_true(slow->failed >= 1); /* the request it never answered timed out */
	assert_true(nodes[SLOW].dropped_first);
	printf("# %u MiB from %d peers in %.2f s: %.0f MB/s\n", STATE_CHUNKS * (CHUNK_SIZE >> 20), N - 1, secs,
	       (double)STATE_CHUNKS * CHUNK_SIZE / secs / 1e6);
	/* the corrupt peer's reputation carries its bad chunks */
	assert_int_equal(wisp_peer_score(nodes[0].n, &peers[CORRUPT - 1], 1), WISP_OK);
	assert_true(wt_wait_nodes(node_at, N, take, have_score, 10000));
	assert_true(s->score.bad >= 1.9);
	assert_true(s->score.reqresp_penalty <= -36);
	stop();
}

/* Nobody to ask, and a sync canceled halfway. */
static void test_sync_ends(void **state)
{
	(void)state;
	start();
	wisp_sync_chunk *ch = manifest();
	wisp_sync_spec spec;
	wisp_sync_spec_default(&spec);
	spec.height = 7;
	spec.chunks = ch;
	spec.n_chunks = STATE_CHUNKS;
	wisp_peer_id nobody = *wisp_node_peer_id(nodes[0].n); /* ourselves: never connected */
	spec.peers = &nobody;
	spec.n_peers = 1;
	spec.chunk_timeout_ms = 300; /* how long it waits for a peer to connect */
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 1, NULL), WISP_OK);
	assert_true(wt_wait_nodes(node_at, N, take, sync_done, 10000));
	assert_int_equal(nodes[0].done_status, WISP_ERR_NOTFOUND);
	assert_int_equal(nodes[0].chunks, 0);
	/* bad specs are refused at the call */
	spec.n_peers = 0;
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 1, NULL), WISP_ERR_INVALID_ARG);
	spec.n_peers = 1;
	spec.protocol = "/not/registered";
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 1, NULL), WISP_ERR_NOTFOUND);
	/* cancel: the slow peer alone, then cancel right away */
	nodes[0].done = 0;
	nodes[SLOW].dropped_first = 1;
	wisp_peer_id slow = *wisp_node_peer_id(nodes[SLOW].n);
	spec.protocol = NULL;
	spec.peers = &slow;
	uint64_t id;
	assert_int_equal(wisp_sync_start(nodes[0].n, &spec, 2, &id), WISP_OK);
	assert_int_equal(wisp_sync_cancel(nodes[0].n, id), WISP_OK);
	assert_true(wt_wait_nodes(node_at, N, take, sync_done, 10000));
	assert_int_equal(nodes[0].done_status, WISP_ERR_CANCELED);
	free(ch);
	/* the slow server's held requests are answered (or found gone) */
	assert_true(wt_wait_nodes(node_at, N, take, served_all, 10000));
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_state),
		cmocka_unit_test(test_sync_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
