#include "net/builtin.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/multiaddr.h"
#include "codec/peer_record.h"
#include "net/identify.h"
#include "net/pubsub.h"
#include "runtime/mem.h"
#include "runtime/node.h"

#define PING_LEN 32
#define PING_MAX_QUEUED 4096     /* a ping peer that does not read its echoes */
#define TEST_QUEUE (1u << 20)    /* bytes a test stream keeps queued */
#define ECHO_QUEUE (1u << 20)    /* echo server: stop crediting the window past this */
#define CHUNK 65536u

struct wisp_builtin_shard {
	wisp_buf *zeros; /* CHUNK zero bytes, shared by every perf sender */
	uint64_t rng;
};

/* ---- echo payload generator -------------------------------------------- */

void wisp_echo_gen_init(wisp_echo_gen *g, uint32_t stream)
{
	g->x = (uint32_t)((stream + 1u) * 0x9E3779B9u);
	g->pos = 4;
}

void wisp_echo_gen_fill(wisp_echo_gen *g, uint8_t *out, size_t n)
{
	size_t i = 0;
	while (i < n && g->pos < 4)
		out[i++] = g->word[g->pos++];
	uint32_t x = g->x;
	while (n - i >= 4) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		out[i] = (uint8_t)x;
		out[i + 1] = (uint8_t)(x >> 8);
		out[i + 2] = (uint8_t)(x >> 16);
		out[i + 3] = (uint8_t)(x >> 24);
		i += 4;
	}
	if (i < n) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		g->word[0] = (uint8_t)x;
		g->word[1] = (uint8_t)(x >> 8);
		g->word[2] = (uint8_t)(x >> 16);
		g->word[3] = (uint8_t)(x >> 24);
		g->pos = 0;
		while (i < n)
			out[i++] = g->word[g->pos++];
	}
	g->x = x;
}

/* ---- helpers ----------------------------------------------------------- */

static wisp_shard_conn *sc_of(wisp_stream *s)
{
	return wisp_conn_user(s->conn);
}

static wisp_shard *shard_of(wisp_stream *s)
{
	return sc_of(s)->shard;
}

static wisp_tstamp now_of(wisp_shard *s)
{
	return wisp_loop_now(s->loop);
}

/* Results travel through the peers actor, behind the connection's
 * CONNECTED. */
static void emit(wisp_shard *s, wisp_event_type type, int status, uint64_t cookie, wisp_buf *b)
{
	wisp_msg m = { .type = WISP_PMSG_EVENT,
		       .src = s->index,
		       .a = (uint64_t)type | (uint64_t)(uint32_t)status << 32,
		       .b = cookie,
		       .buf = b };
	if (wisp_actor_send(&s->node->peers, &m, s->actor) != WISP_OK)
		wisp_buf_unref(b);
}

static void peer_fields(wisp_shard_conn *sc, const wisp_peer_id *fallback, wisp_peer_id *id, char *text, size_t cap)
{
	const wisp_peer_id *r = sc && sc->conn ? wisp_conn_remote_id(sc->conn) : NULL;
	if (!r)
		r = fallback;
	*id = *r;
	wisp_peer_text(r, text, cap);
}

/* ---- identify ---------------------------------------------------------- */

typedef struct id_read {
	bool push;
	bool done;
	uint32_t len;
	uint8_t buf[WISP_IDENTIFY_MAX_MSG + 8];
} id_read;

static size_t put_str(char **pool, char *end, const uint8_t *p, size_t n)
{
	if ((size_t)(end - *pool) < n + 1)
		return 0;
	memcpy(*pool, p, n);
	(*pool)[n] = 0;
	*pool += n + 1;
	return n + 1;
}

/* The peer's signed record: verified here, on the connection's worker (a
 * signature check the gossip actor's thread need not make), and handed to
 * the gossip actor, which passes it on in PX. Returns 1 (taken), 0 (none)
 * or the error it was refused with; a refused record is counted and
 * dropped, but the identify stands: the record is optional, and its
 * addresses are not used for anything else. */
static int take_record(wisp_shard_conn *sc, const wisp_identify *m)
{
	if (!m->has_signed_peer_record)
		return 0;
	wisp_peer_record rec;
	int rc = wisp_peer_record_open(&rec, m->signed_peer_record.data, m->signed_peer_record.len);
	const wisp_peer_id *remote = wisp_conn_remote_id(sc->conn);
	/* a record of another peer, relayed by this one, would let it pass
	 * its own addresses off as someone else's */
	if (!rc && (!remote || !wisp_peer_id_equal(&rec.peer, remote)))
		rc = WISP_ERR_PEER_ID;
	if (rc) {
		wisp_stat_add_shared(&sc->shard->node->net.peer_record_errors, 1);
		return rc;
	}
	wisp_pubsub_peer_record(sc, m->signed_peer_record.data, m->signed_peer_record.len, rec.seq);
	return 1;
}

static void identify_report(wisp_stream *st, const wisp_identify *m, bool push)
{
	wisp_shard_conn *sc = sc_of(st);
	wisp_shard *s = sc->shard;
	const wisp_pubkey *remote = wisp_conn_remote_key(st->conn);
	if (m->has_public_key && remote && !wisp_pubkey_equal(&m->public_key, remote)) {
		/* identify must describe the key Noise authenticated */
		wisp_stat_add_shared(&s->node->net.identify_errors, 1);
		wisp_shard_close(sc, WISP_ERR_PEER_ID, true);
		return;
	}
	int record = take_record(sc, m);
	size_t ptrs = (m->n_protocols + m->n_listen_addrs) * sizeof(char *);
	size_t need = sizeof(wisp_identify_info) + ptrs + WISP_IDENTIFY_MAX_MSG + 4096 + 512;
	wisp_buf *b = wisp_buf_alloc(s->node->pool, need);
	if (!b)
		return;
	memset(b->data, 0, need);
	wisp_identify_info *info = (wisp_identify_info *)b->data;
	const char **prot = (const char **)(info + 1);
	const char **addrs = prot + m->n_protocols;
	char *pool = (char *)(addrs + m->n_listen_addrs), *end = (char *)b->data + need;
	peer_fields(sc, NULL, &info->peer, info->peer_text, sizeof(info->peer_text));
	info->push = push;
	static const char empty[] = "";
	info->agent = pool;
	if (!put_str(&pool, end, m->agent_version.data, m->agent_version.len))
		info->agent = empty;
	info->protocol_version = pool;
	if (!put_str(&pool, end, m->protocol_version.data, m->protocol_version.len))
		info->protocol_version = empty;
	for (size_t i = 0; i < m->n_protocols; i++) {
		prot[info->n_protocols] = pool;
		if (put_str(&pool, end, m->protocols[i].data, m->protocols[i].len))
			info->n_protocols++;
	}
	info->protocols = prot;
	for (size_t i = 0; i < m->n_listen_addrs; i++) {
		if ((size_t)(end - pool) < WISP_ADDR_TEXT_MAX) {
			info->skipped_addrs++;
			continue;
		}
		ssize_t n = wisp_multiaddr_to_text(m->listen_addrs[i].data, m->listen_addrs[i].len, pool,
						   WISP_ADDR_TEXT_MAX);
		if (n < 0) {
			info->skipped_addrs++; /* a transport wisp does not speak */
			continue;
		}
		addrs[info->n_listen_addrs++] = pool;
		pool += n + 1;
	}
	info->listen_addrs = addrs;
	info->observed_addr = empty;
	if (m->has_observed_addr && (size_t)(end - pool) >= WISP_ADDR_TEXT_MAX) {
		ssize_t n = wisp_multiaddr_to_text(m->observed_addr.data, m->observed_addr.len, pool,
						   WISP_ADDR_TEXT_MAX);
		if (n >= 0) {
			info->observed_addr = pool;
			pool += n + 1;
		}
	}
	if (m->has_public_key) {
		ssize_t n = wisp_pubkey_encode(&m->public_key, info->public_key, sizeof(info->public_key));
		info->public_key_len = n > 0 ? (uint32_t)n : 0;
	}
	info->signed_peer_record = record;
	b->len = (uint32_t)need;
	emit(s, WISP_EVENT_IDENTIFY, WISP_OK, 0, b);
}

static int id_open(wisp_stream *st)
{
	wisp_shard_conn *sc = sc_of(st);
	wisp_node *n = sc->shard->node;
	if (st->outbound || strcmp(st->proto->id, WISP_PROTO_IDENTIFY_PUSH) == 0) {
		/* We read one message; we write nothing. */
		id_read *r = wisp_malloc(n->mem, sizeof(*r));
		if (!r)
			return WISP_ERR_NOMEM;
		r->push = !st->outbound;
		r->done = false;
		r->len = 0;
		st->user = r;
		if (st->outbound)
			wisp_stream_close(st);
		return WISP_OK;
	}
	/* The peer asks: answer and close. */
	wisp_identify m;
	memset(&m, 0, sizeof(m));
	m.has_public_key = true;
	m.public_key = *wisp_privkey_pubkey(&n->identity);
	m.has_protocol_version = true;
	m.protocol_version = wisp_identify_str("ipfs/0.1.0");
	m.has_agent_version = true;
	m.agent_version = wisp_identify_str(n->net.agent);
	for (uint32_t i = 0; i < n->protos.n && m.n_protocols < WISP_IDENTIFY_MAX_PROTOCOLS; i++)
		if (!n->protos.p[i].outbound_only)
			m.protocols[m.n_protocols++] = wisp_identify_str(n->protos.p[i].id);
	for (uint32_t i = 0; i < n->net.n_advertise && i < WISP_IDENTIFY_MAX_ADDRS; i++) {
		m.listen_addrs[m.n_listen_addrs].data = n->net.advertise[i];
		m.listen_addrs[m.n_listen_addrs++].len = n->net.advertise_len[i];
	}
	if (n->net.record_len) {
		m.has_signed_peer_record = true;
		m.signed_peer_record.data = n->net.record;
		m.signed_peer_record.len = n->net.record_len;
	}
	uint8_t observed[64];
	ssize_t olen = wisp_multiaddr_from_sockaddr((const struct sockaddr *)&sc->tcp.peer, WISP_MA_TCP, observed,
						    sizeof(observed));
	if (olen > 0) {
		m.has_observed_addr = true;
		m.observed_addr.data = observed;
		m.observed_addr.len = (size_t)olen;
	}
	uint8_t out[WISP_IDENTIFY_MAX_MSG + 16];
	ssize_t len = wisp_identify_write_frame(&m, out, sizeof(out));
	if (len < 0)
		return (int)len;
	int err = wisp_stream_write_copy(st, out, (size_t)len);
	if (err)
		return err;
	wisp_stream_close(st);
	return WISP_OK;
}

static void id_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	id_read *r = st->user;
	wisp_stream_consumed(st, n);
	if (!r || r->done)
		return; /* the asker's bytes on an answer stream: ignored */
	if (n > sizeof(r->buf) - r->len) {
		wisp_stat_add_shared(&shard_of(st)->node->net.identify_errors, 1);
		r->done = true;
		wisp_stream_reset(st);
		return;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += (uint32_t)n;
	wisp_identify m;
	ssize_t got = wisp_identify_read_frame(&m, r->buf, r->len);
	if (got == 0)
		return;
	r->done = true;
	if (got < 0) {
		wisp_stat_add_shared(&shard_of(st)->node->net.identify_errors, 1);
		wisp_stream_reset(st);
		return;
	}
	identify_report(st, &m, r->push);
}

static void id_fin(wisp_stream *st)
{
	id_read *r = st->user;
	if (r && !r->done) {
		/* the stream ended inside the message */
		r->done = true;
		wisp_stat_add_shared(&shard_of(st)->node->net.identify_errors, 1);
	}
	wisp_stream_close(st);
}

static void id_closed(wisp_stream *st, int err)
{
	(void)err;
	wisp_free(shard_of(st)->node->mem, st->user);
	st->user = NULL;
}

static const wisp_stream_ops identify_ops = {
	.open = id_open,
	.data = id_data,
	.fin = id_fin,
	.closed = id_closed,
};

/* ---- ping -------------------------------------------------------------- */

typedef struct ping_client {
	uint64_t cookie;
	wisp_tstamp t0;
	uint32_t got;
	bool reported;
	uint8_t sent[PING_LEN];
} ping_client;

static void ping_report(wisp_stream *st, ping_client *pc, int status, uint64_t rtt)
{
	wisp_shard_conn *sc = sc_of(st);
	wisp_shard *s = sc->shard;
	pc->reported = true;
	if (status)
		wisp_stat_add_shared(&s->node->net.ping_errors, 1);
	wisp_buf *b = wisp_ping_result_buf(s->node->pool, wisp_conn_remote_id(sc->conn));
	if (b)
		((wisp_ping_info *)b->data)->rtt_ns = rtt;
	emit(s, WISP_EVENT_PING, status, pc->cookie, b);
}

static int ping_open(wisp_stream *st)
{
	if (!st->outbound)
		return WISP_OK;
	ping_client *pc = st->user;
	wisp_shard *s = shard_of(st);
	for (int i = 0; i < PING_LEN; i++) {
		s->bi->rng ^= s->bi->rng << 13;
		s->bi->rng ^= s->bi->rng >> 7;
		s->bi->rng ^= s->bi->rng << 17;
		pc->sent[i] = (uint8_t)s->bi->rng;
	}
	pc->t0 = now_of(s);
	return wisp_stream_write_copy(st, pc->sent, PING_LEN);
}

static void ping_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	if (!st->outbound) {
		/* Echo whatever comes; a peer that sends without reading loses
		 * the stream. */
		if (wisp_stream_queued(st) > PING_MAX_QUEUED || wisp_stream_answer_copy(st, p, n) != WISP_OK) {
			wisp_stream_reset(st);
			return;
		}
		wisp_stream_consumed(st, n);
		return;
	}
	ping_client *pc = st->user;
	wisp_stream_consumed(st, n);
	if (pc->reported)
		return;
	if (pc->got + n > PING_LEN || memcmp(p, pc->sent + pc->got, n) != 0) {
		ping_report(st, pc, WISP_ERR_PROTOCOL, 0);
		wisp_stream_reset(st);
		return;
	}
	pc->got += (uint32_t)n;
	if (pc->got == PING_LEN) {
		ping_report(st, pc, WISP_OK, now_of(shard_of(st)) - pc->t0);
		wisp_stream_close(st);
	}
}

static void ping_fin(wisp_stream *st)
{
	wisp_stream_close(st);
}

static void ping_closed(wisp_stream *st, int err)
{
	if (!st->outbound)
		return;
	ping_client *pc = st->user;
	if (!pc)
		return;
	if (!pc->reported)
		ping_report(st, pc, err ? err : WISP_ERR_RESET, 0);
	wisp_free(shard_of(st)->node->mem, pc);
	st->user = NULL;
}

static const wisp_stream_ops ping_ops = {
	.open = ping_open,
	.data = ping_data,
	.fin = ping_fin,
	.closed = ping_closed,
};

void wisp_builtin_ping(wisp_shard *s, wisp_shard_conn *sc, const wisp_peer_cmd *c, uint64_t cookie)
{
	int err = WISP_ERR_NOTFOUND;
	if (sc) {
		ping_client *pc = wisp_calloc(s->node->mem, 1, sizeof(*pc));
		err = WISP_ERR_NOMEM;
		if (pc) {
			pc->cookie = cookie;
			const wisp_proto *p = wisp_proto_find(&s->node->protos, WISP_PROTO_PING, strlen(WISP_PROTO_PING));
			wisp_stream *st;
			err = wisp_conn_open_stream(sc->conn, p, cookie, &st);
			if (err == WISP_OK) {
				st->user = pc;
				wisp_shard_mark(sc);
				return;
			}
			wisp_free(s->node->mem, pc);
		}
	}
	wisp_stat_add_shared(&s->node->net.ping_errors, 1);
	emit(s, WISP_EVENT_PING, err, cookie, wisp_ping_result_buf(s->node->pool, &c->peer));
}

/* ---- perf server ------------------------------------------------------- */

typedef struct perf_server {
	uint8_t hdr[8];
	uint32_t hdr_got;
	uint64_t to_send;
	bool sending;
} perf_server;

static void perf_pump(wisp_stream *st, uint64_t *left, wisp_buf *zeros)
{
	while (*left && wisp_stream_queued(st) < TEST_QUEUE) {
		size_t n = *left < CHUNK ? (size_t)*left : CHUNK;
		if (wisp_stream_write(st, zeros, 0, n) != WISP_OK)
			return;
		*left -= n;
	}
}

static void perf_client_data(wisp_stream *st, const uint8_t *p, size_t n);
static void perf_client_writable(wisp_stream *st);
static void perf_client_fin(wisp_stream *st);
static int perf_client_open(wisp_stream *st);
static void test_stream_closed(wisp_stream *st, int err);

static int perf_open(wisp_stream *st)
{
	if (st->outbound)
		return perf_client_open(st);
	perf_server *ps = wisp_calloc(shard_of(st)->node->mem, 1, sizeof(*ps));
	if (!ps)
		return WISP_ERR_NOMEM;
	st->user = ps;
	return WISP_OK;
}

static void perf_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	if (st->outbound) {
		perf_client_data(st, p, n);
		return;
	}
	perf_server *ps = st->user;
	size_t used = 0;
	while (ps->hdr_got < 8 && used < n)
		ps->hdr[ps->hdr_got++] = p[used++];
	if (ps->hdr_got == 8 && !ps->sending && ps->to_send == 0) {
		for (int i = 0; i < 8; i++)
			ps->to_send = ps->to_send << 8 | ps->hdr[i];
	}
	/* the upload is counted by the client; we only discard it */
	wisp_stream_consumed(st, n);
}

static void perf_fin(wisp_stream *st)
{
	if (st->outbound) {
		perf_client_fin(st);
		return;
	}
	perf_server *ps = st->user;
	if (ps->hdr_got < 8) {
		wisp_stream_reset(st); /* half-closed before saying what it wants */
		return;
	}
	ps->sending = true;
	perf_pump(st, &ps->to_send, shard_of(st)->bi->zeros);
	if (ps->to_send == 0)
		wisp_stream_close(st);
}

static void perf_writable(wisp_stream *st)
{
	if (st->outbound) {
		perf_client_writable(st);
		return;
	}
	perf_server *ps = st->user;
	if (!ps->sending)
		return;
	perf_pump(st, &ps->to_send, shard_of(st)->bi->zeros);
	if (ps->to_send == 0)
		wisp_stream_close(st);
}

static void perf_closed(wisp_stream *st, int err)
{
	if (st->outbound) {
		test_stream_closed(st, err);
		return;
	}
	wisp_free(shard_of(st)->node->mem, st->user);
	st->user = NULL;
}

static const wisp_stream_ops perf_ops = {
	.open = perf_open,
	.data = perf_data,
	.fin = perf_fin,
	.writable = perf_writable,
	.closed = perf_closed,
};

/* ---- echo server ------------------------------------------------------- */

typedef struct echo_server {
	size_t uncredited; /* echoed but not yet credited back to the peer's window */
	wisp_buf *cur;     /* echoes are packed into this buffer until it is full */
} echo_server;

/* Queue p[0..n) back on the stream, packed into 64 KiB pool buffers: bytes
 * arrive in pieces of any size, and a buffer per piece would hold up to four
 * times the bytes in pool memory. Bytes already queued from cur are never
 * touched again; new ones go after them. */
static int echo_queue(wisp_stream *st, echo_server *es, const uint8_t *p, size_t n)
{
	while (n) {
		if (!es->cur || es->cur->len == es->cur->cap) {
			wisp_buf_unref(es->cur);
			es->cur = wisp_buf_alloc(shard_of(st)->node->pool, CHUNK);
			if (!es->cur)
				return WISP_ERR_NOMEM;
			es->cur->len = 0;
		}
		size_t k = es->cur->cap - es->cur->len;
		if (k > n)
			k = n;
		memcpy(es->cur->data + es->cur->len, p, k);
		size_t off = es->cur->len;
		es->cur->len += (uint32_t)k;
		int err = wisp_stream_answer(st, es->cur, off, k);
		if (err)
			return err;
		p += k;
		n -= k;
	}
	return WISP_OK;
}

static void echo_client_data(wisp_stream *st, const uint8_t *p, size_t n);
static void echo_client_writable(wisp_stream *st);
static void echo_client_fin(wisp_stream *st);
static int echo_client_open(wisp_stream *st);

static int echo_open(wisp_stream *st)
{
	if (st->outbound)
		return echo_client_open(st);
	echo_server *es = wisp_calloc(shard_of(st)->node->mem, 1, sizeof(*es));
	if (!es)
		return WISP_ERR_NOMEM;
	st->user = es;
	return WISP_OK;
}

static void echo_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	if (st->outbound) {
		echo_client_data(st, p, n);
		return;
	}
	echo_server *es = st->user;
	if (echo_queue(st, es, p, n) != WISP_OK) {
		wisp_stream_reset(st);
		return;
	}
	/* Credit the peer's window only while our echoes drain: a peer that
	 * does not read stops being able to send (yamux backpressure), so
	 * what we hold is bounded by the windows we granted. */
	if (!es->uncredited && wisp_stream_queued(st) <= ECHO_QUEUE && wisp_stream_conn_room(st))
		wisp_stream_consumed(st, n);
	else
		es->uncredited += n;
}

static void echo_writable(wisp_stream *st)
{
	if (st->outbound) {
		echo_client_writable(st);
		return;
	}
	echo_server *es = st->user;
	if (es->uncredited && wisp_stream_queued(st) <= ECHO_QUEUE && wisp_stream_conn_room(st)) {
		wisp_stream_consumed(st, es->uncredited);
		es->uncredited = 0;
	}
}

static void echo_fin(wisp_stream *st)
{
	if (st->outbound) {
		echo_client_fin(st);
		return;
	}
	wisp_stream_close(st);
}

static void echo_closed(wisp_stream *st, int err)
{
	if (st->outbound) {
		test_stream_closed(st, err);
		return;
	}
	echo_server *es = st->user;
	if (es)
		wisp_buf_unref(es->cur);
	wisp_free(shard_of(st)->node->mem, es);
	st->user = NULL;
}

static const wisp_stream_ops echo_ops = {
	.open = echo_open,
	.data = echo_data,
	.fin = echo_fin,
	.writable = echo_writable,
	.closed = echo_closed,
};

/* ---- diagnostic transfers (client side) -------------------------------- */

typedef struct test_run {
	wisp_shard *shard;
	wisp_peer_cmd cmd;
	uint64_t cookie;
	uint32_t live;        /* streams not closed yet */
	bool ok;
	int err;
	wisp_tstamp t0, t_first, t_end;
	uint64_t bytes;
	EVP_MD_CTX *sha;
	uint64_t *lat;
	uint32_t n_lat;
} test_run;

typedef struct test_stream {
	test_run *run;
	uint32_t index;
	wisp_echo_gen tx, rx;
	uint64_t sent, recv;
	wisp_buf *held;  /* a chunk the send budget refused, sent first */
	bool fin_recv;
	bool ok;
	/* rtt */
	uint32_t round;
	uint32_t round_got;
	wisp_tstamp round_t0;
} test_stream;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_report(test_run *r)
{
	wisp_shard *s = r->shard;
	wisp_buf *b = wisp_test_result_buf(s->node->pool, &r->cmd.peer, &r->cmd.test);
	if (b) {
		wisp_test_result *t = (wisp_test_result *)b->data;
		t->ok = r->ok && !r->err;
		t->elapsed_ns = r->t_end > r->t0 ? r->t_end - r->t0 : 0;
		t->bytes = r->bytes;
		if (r->sha) {
			unsigned len = 0;
			EVP_DigestFinal_ex(r->sha, t->sha256, &len);
		}
		if (r->n_lat) {
			qsort(r->lat, r->n_lat, sizeof(*r->lat), cmp_u64);
			t->p50_ns = r->lat[(r->n_lat - 1) * 50 / 100];
			t->p90_ns = r->lat[(r->n_lat - 1) * 90 / 100];
			t->p99_ns = r->lat[(r->n_lat - 1) * 99 / 100];
			t->max_ns = r->lat[r->n_lat - 1];
		}
		if (r->t_first) {
			t->upload_ns = r->t_first - r->t0;
			t->download_ns = r->t_end > r->t_first ? r->t_end - r->t_first : 0;
		}
	}
	emit(s, WISP_EVENT_TEST, r->err, r->cookie, b);
	EVP_MD_CTX_free(r->sha);
	wisp_free(s->node->mem, r->lat);
	wisp_free(s->node->mem, r);
}

static void test_stream_closed(wisp_stream *st, int err)
{
	test_stream *ts = st->user;
	if (!ts)
		return;
	test_run *r = ts->run;
	wisp_shard *s = r->shard;
	bool complete;
	switch (r->cmd.test.kind) {
	case WISP_TEST_ECHO:
		complete = ts->recv == r->cmd.test.bytes && ts->fin_recv;
		break;
	case WISP_TEST_RTT:
		complete = ts->round == r->cmd.test.count;
		break;
	default:
		complete = ts->recv == r->cmd.test.download && ts->fin_recv;
		break;
	}
	if (!ts->ok || !complete)
		r->ok = false;
	if (err && !r->err)
		r->err = err;
	if (!complete && !r->err)
		r->err = WISP_ERR_RESET;
	wisp_tstamp now = now_of(s);
	if (now > r->t_end)
		r->t_end = now;
	wisp_buf_unref(ts->held);
	wisp_free(s->node->mem, ts);
	st->user = NULL;
	if (--r->live == 0)
		test_report(r);
}

/* echo */

static void echo_pump(wisp_stream *st, test_stream *ts)
{
	test_run *r = ts->run;
	uint64_t total = r->cmd.test.bytes;
	while ((ts->held || ts->sent < total) && wisp_stream_queued(st) < TEST_QUEUE) {
		wisp_buf *b = ts->held;
		ts->held = NULL;
		if (!b) {
			size_t n = total - ts->sent < CHUNK ? (size_t)(total - ts->sent) : CHUNK;
			b = wisp_buf_alloc(r->shard->node->pool, n);
			if (!b) {
				if (wisp_stream_queued(st) == 0) {
					r->err = WISP_ERR_NOMEM;
					wisp_stream_reset(st);
				}
				return; /* the next writable retries */
			}
			wisp_echo_gen_fill(&ts->tx, b->data, n);
			b->len = (uint32_t)n;
			ts->sent += n;
		}
		int err = wisp_stream_write(st, b, 0, b->len);
		if (err == WISP_ERR_LIMIT) {
			/* over the connection's send budget: keep the chunk;
			 * writable() runs once the connection has drained */
			ts->held = b;
			return;
		}
		wisp_buf_unref(b);
		if (err) {
			r->err = err;
			wisp_stream_reset(st);
			return;
		}
	}
	if (ts->sent == total && total && !ts->held)
		wisp_stream_close(st);
}

static int echo_client_open(wisp_stream *st)
{
	test_stream *ts = st->user;
	if (ts->run->cmd.test.kind == WISP_TEST_RTT) {
		uint8_t msg[CHUNK];
		uint32_t size = ts->run->cmd.test.size;
		wisp_echo_gen_fill(&ts->tx, msg, size);
		ts->round_t0 = now_of(ts->run->shard);
		return wisp_stream_write_copy(st, msg, size);
	}
	echo_pump(st, ts);
	return WISP_OK;
}

static bool check_echo(test_stream *ts, const uint8_t *p, size_t n)
{
	uint8_t want[4096];
	bool ok = true;
	while (n) {
		size_t k = n < sizeof(want) ? n : sizeof(want);
		wisp_echo_gen_fill(&ts->rx, want, k);
		if (memcmp(want, p, k) != 0)
			ok = false;
		if (ts->index == 0 && ts->run->sha)
			EVP_DigestUpdate(ts->run->sha, p, k);
		p += k;
		n -= k;
	}
	return ok;
}

static void echo_client_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	test_stream *ts = st->user;
	test_run *r = ts->run;
	wisp_stream_consumed(st, n);
	if (r->cmd.test.kind == WISP_TEST_RTT) {
		uint32_t size = r->cmd.test.size;
		while (n) {
			size_t k = size - ts->round_got;
			if (k > n)
				k = n;
			if (!check_echo(ts, p, k))
				ts->ok = false;
			ts->round_got += (uint32_t)k;
			p += k;
			n -= k;
			if (ts->round_got < size)
				continue;
			wisp_tstamp now = now_of(r->shard);
			r->lat[r->n_lat++] = now - ts->round_t0;
			r->bytes += size;
			ts->round++;
			ts->round_got = 0;
			if (ts->round == r->cmd.test.count) {
				r->t_end = now;
				wisp_stream_close(st);
				return;
			}
			uint8_t msg[CHUNK];
			wisp_echo_gen_fill(&ts->tx, msg, size);
			ts->round_t0 = now;
			if (wisp_stream_write_copy(st, msg, size) != WISP_OK) {
				wisp_stream_reset(st);
				return;
			}
		}
		return;
	}
	if (ts->recv + n > r->cmd.test.bytes) {
		ts->ok = false;
		wisp_stream_reset(st);
		return;
	}
	if (!check_echo(ts, p, n))
		ts->ok = false;
	ts->recv += n;
	r->bytes += n;
}

static void echo_client_writable(wisp_stream *st)
{
	test_stream *ts = st->user;
	if (ts->run->cmd.test.kind == WISP_TEST_ECHO)
		echo_pump(st, ts);
}

static void echo_client_fin(wisp_stream *st)
{
	test_stream *ts = st->user;
	ts->fin_recv = true;
	wisp_stream_close(st);
}

/* perf client */

static void perf_client_pump(wisp_stream *st, test_stream *ts)
{
	test_run *r = ts->run;
	uint64_t left = r->cmd.test.upload - ts->sent;
	uint64_t before = left;
	perf_pump(st, &left, r->shard->bi->zeros);
	ts->sent += before - left;
	if (ts->sent == r->cmd.test.upload)
		wisp_stream_close(st);
}

static int perf_client_open(wisp_stream *st)
{
	test_stream *ts = st->user;
	uint8_t hdr[8];
	uint64_t want = ts->run->cmd.test.download;
	for (int i = 7; i >= 0; i--) {
		hdr[i] = (uint8_t)want;
		want >>= 8;
	}
	int err = wisp_stream_write_copy(st, hdr, sizeof(hdr));
	if (err)
		return err;
	perf_client_pump(st, ts);
	return WISP_OK;
}

static void perf_client_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	(void)p;
	test_stream *ts = st->user;
	wisp_stream_consumed(st, n);
	if (!ts->run->t_first)
		ts->run->t_first = now_of(ts->run->shard);
	ts->recv += n;
	ts->run->bytes += n;
	if (ts->recv > ts->run->cmd.test.download)
		ts->ok = false;
}

static void perf_client_writable(wisp_stream *st)
{
	test_stream *ts = st->user;
	if (ts->sent < ts->run->cmd.test.upload)
		perf_client_pump(st, ts);
}

static void perf_client_fin(wisp_stream *st)
{
	test_stream *ts = st->user;
	ts->fin_recv = true;
	ts->run->t_end = now_of(ts->run->shard);
	wisp_stream_close(st);
}

static int test_check(const wisp_test_spec *t)
{
	switch (t->kind) {
	case WISP_TEST_ECHO:
		return t->streams >= 1 && t->streams <= 256 && t->bytes > 0 ? WISP_OK : WISP_ERR_INVALID_ARG;
	case WISP_TEST_RTT:
		return t->size >= 1 && t->size <= CHUNK && t->count >= 1 && t->count <= 1000000 ? WISP_OK
												      : WISP_ERR_INVALID_ARG;
	case WISP_TEST_PERF:
		return WISP_OK;
	default:
		return WISP_ERR_INVALID_ARG;
	}
}

void wisp_builtin_test(wisp_shard *s, wisp_shard_conn *sc, const wisp_peer_cmd *c, uint64_t cookie)
{
	wisp_node *n = s->node;
	test_run *r = wisp_calloc(n->mem, 1, sizeof(*r));
	if (!r) {
		emit(s, WISP_EVENT_TEST, WISP_ERR_NOMEM, cookie, NULL);
		return;
	}
	r->shard = s;
	r->cmd = *c;
	r->cookie = cookie;
	r->ok = true;
	r->t0 = now_of(s);
	int err = test_check(&c->test);
	if (!err && !sc)
		err = WISP_ERR_NOTFOUND;
	const char *pid = c->test.kind == WISP_TEST_PERF ? WISP_PROTO_PERF : WISP_PROTO_ECHO;
	const wisp_proto *proto = wisp_proto_find(&n->protos, pid, strlen(pid));
	if (!err && !proto)
		err = WISP_ERR_UNSUPPORTED;
	uint32_t streams = c->test.kind == WISP_TEST_ECHO ? c->test.streams : 1;
	if (!err && c->test.kind == WISP_TEST_ECHO) {
		r->sha = EVP_MD_CTX_new();
		if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
			err = WISP_ERR_CRYPTO;
	}
	if (!err && c->test.kind == WISP_TEST_RTT) {
		r->lat = wisp_calloc(n->mem, c->test.count, sizeof(*r->lat));
		if (!r->lat)
			err = WISP_ERR_NOMEM;
	}
	/* Count the run as one live stream while opening, so a stream that
	 * fails at once cannot report the run before the rest are open. */
	r->live = 1;
	for (uint32_t i = 0; !err && i < streams; i++) {
		test_stream *ts = wisp_calloc(n->mem, 1, sizeof(*ts));
		if (!ts) {
			err = WISP_ERR_NOMEM;
			break;
		}
		ts->run = r;
		ts->index = i;
		ts->ok = true;
		wisp_echo_gen_init(&ts->tx, i);
		wisp_echo_gen_init(&ts->rx, i);
		wisp_stream *st;
		err = wisp_conn_open_stream(sc->conn, proto, cookie, &st);
		if (err) {
			wisp_free(n->mem, ts);
			break;
		}
		st->user = ts;
		r->live++;
	}
	if (err) {
		r->err = err;
		r->ok = false;
	}
	if (sc)
		wisp_shard_mark(sc);
	if (--r->live == 0)
		test_report(r);
}

/* ---- registration, per-shard and per-connection state ------------------- */

int wisp_builtin_register(wisp_node *n)
{
	int err = wisp_proto_add(&n->protos, WISP_PROTO_IDENTIFY, &identify_ops, n, 4);
	if (!err)
		err = wisp_proto_add(&n->protos, WISP_PROTO_IDENTIFY_PUSH, &identify_ops, n, 4);
	if (!err)
		err = wisp_proto_add(&n->protos, WISP_PROTO_PING, &ping_ops, n, 4);
	/* perf and echo are always there to open (wisp_stream_test()), and
	 * served only when the options ask for them. */
	if (!err)
		err = wisp_proto_add(&n->protos, WISP_PROTO_PERF, &perf_ops, n, 16);
	if (!err) {
		n->protos.p[n->protos.n - 1].outbound_only = !(n->opt.services & WISP_SERVICE_PERF);
		err = wisp_proto_add(&n->protos, WISP_PROTO_ECHO, &echo_ops, n, 512);
	}
	if (!err)
		n->protos.p[n->protos.n - 1].outbound_only = !(n->opt.services & WISP_SERVICE_ECHO);
	return err;
}

int wisp_builtin_shard_start(wisp_shard *s)
{
	s->bi = wisp_calloc(s->node->mem, 1, sizeof(*s->bi));
	if (!s->bi)
		return WISP_ERR_NOMEM;
	s->bi->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)s->index << 32) ^ wisp_loop_now(s->loop);
	s->bi->zeros = wisp_buf_alloc(s->node->pool, CHUNK);
	if (!s->bi->zeros)
		return WISP_ERR_NOMEM;
	memset(s->bi->zeros->data, 0, CHUNK);
	s->bi->zeros->len = CHUNK;
	return WISP_OK;
}

void wisp_builtin_shard_stop(wisp_shard *s)
{
	if (!s->bi)
		return;
	wisp_buf_unref(s->bi->zeros);
	wisp_free(s->node->mem, s->bi);
	s->bi = NULL;
}

void wisp_builtin_upgraded(wisp_shard_conn *sc)
{
	wisp_node *n = sc->shard->node;
	const wisp_proto *p = wisp_proto_find(&n->protos, WISP_PROTO_IDENTIFY, strlen(WISP_PROTO_IDENTIFY));
	wisp_stream *st;
	if (p && wisp_conn_open_stream(sc->conn, p, 0, &st) != WISP_OK)
		wisp_stat_add_shared(&n->net.identify_errors, 1);
}

void wisp_builtin_closed(wisp_shard_conn *sc)
{
	(void)sc; /* every built-in keeps its state on its streams */
}
