#include "peerset/peers.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "net/shard.h"
#include "actors/reqresp/actor.h"
#include "peerset/idtab.h"
#include "runtime/mem.h"
#include "runtime/node.h"
#include "runtime/worker.h"

/* Connections to one peer we keep track of; a peer that dials us while we
 * dial it has two for a moment. More are closed by their workers' owners
 * only if the application asks; the table just stops listing them. */
#define CONNS_PER_PEER 4

typedef struct peer_conn {
	wisp_conn_ref ref;
	bool inbound;
	char addr[WISP_ADDR_TEXT_MAX];
} peer_conn;

typedef struct peer_entry {
	wisp_peer_id id; /* len 0: empty slot */
	uint32_t n;
	peer_conn conns[CONNS_PER_PEER];
} peer_entry;

struct wisp_peers {
	wisp_node *node;
	wisp_idtab tab;
	uint32_t next_worker;
	uint64_t untracked; /* connections beyond CONNS_PER_PEER */
	/* explicit peers (node->xpeers): a dial in flight, and the redial timer */
	bool *x_dialing;
	wisp_timer redial;
	wisp_actor *actor;
};

static peer_entry *lookup(struct wisp_peers *p, const wisp_peer_id *id, bool create)
{
	return wisp_idtab_get(&p->tab, id, create);
}

static void remove_entry(struct wisp_peers *p, peer_entry *e)
{
	wisp_idtab_remove(&p->tab, e);
}

int wisp_peers_new(struct wisp_peers **out, wisp_node *node, uint32_t max_conns)
{
	struct wisp_peers *p = wisp_calloc(node->mem, 1, sizeof(*p));
	if (!p)
		return WISP_ERR_NOMEM;
	p->node = node;
	int err = wisp_idtab_init(&p->tab, node->mem, sizeof(peer_entry), max_conns);
	p->x_dialing = wisp_calloc(node->mem, node->n_xpeers ? node->n_xpeers : 1, sizeof(*p->x_dialing));
	if (err || !p->x_dialing) {
		wisp_idtab_fini(&p->tab, node->mem);
		wisp_free(node->mem, p->x_dialing);
		wisp_free(node->mem, p);
		return WISP_ERR_NOMEM;
	}
	*out = p;
	return WISP_OK;
}

void wisp_peers_free(struct wisp_peers *p)
{
	if (!p)
		return;
	wisp_free(p->node->mem, p->x_dialing);
	wisp_idtab_fini(&p->tab, p->node->mem);
	wisp_free(p->node->mem, p);
}

/* ---- text -------------------------------------------------------------- */

void wisp_peers_addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, cap, "/ip4/%s/tcp/%u", host, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "/ip6/%s/tcp/%u", host, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "?");
	}
}

void wisp_peer_text(const wisp_peer_id *id, char *out, size_t cap)
{
	if (id->len == 0 || wisp_peer_id_to_base58(id, out, cap) < 0)
		snprintf(out, cap, "%s", "");
}

/* ---- events to the application ----------------------------------------- */

static void emit_peer(struct wisp_peers *p, wisp_actor *a, wisp_event_type type, int status, uint64_t cookie,
		      const wisp_peer_id *id, bool inbound, const char *addr, const char *stage, wisp_conn_ref ref)
{
	wisp_buf *b = wisp_buf_alloc(p->node->pool, sizeof(wisp_peer_info));
	if (!b) {
		wisp_node_emit(p->node, a->loop, type, status, cookie, NULL);
		return;
	}
	wisp_peer_info *pi = (wisp_peer_info *)b->data;
	memset(pi, 0, sizeof(*pi));
	if (id) {
		pi->peer = *id;
		wisp_peer_text(id, pi->peer_text, sizeof(pi->peer_text));
	}
	pi->inbound = inbound;
	snprintf(pi->addr, sizeof(pi->addr), "%s", addr ? addr : "");
	snprintf(pi->stage, sizeof(pi->stage), "%s", stage ? stage : "");
	pi->conn = ref;
	b->len = sizeof(*pi);
	wisp_node_emit(p->node, a->loop, type, status, cookie, b);
}

/* Deals a dial to the next worker round robin; on success the worker owns
 * buf. The worker's events carry cookie. */
static int deal_dial(struct wisp_peers *p, wisp_actor *a, uint64_t cookie, wisp_buf *buf)
{
	uint32_t to = p->next_worker++ % p->node->n_workers;
	wisp_msg m = { .type = WISP_WMSG_DIAL, .a = cookie, .buf = buf };
	return wisp_actor_send(&p->node->worker_actors[to], &m, a);
}

/* ---- explicit peers ------------------------------------------------------ */

static bool connected(struct wisp_peers *p, const wisp_peer_id *id)
{
	peer_entry *e = lookup(p, id, false);
	return e && e->n;
}

/* Dial explicit peer i through a worker; its events carry
 * WISP_COOKIE_EXPLICIT + i. */
static void dial_explicit(struct wisp_peers *p, wisp_actor *a, uint32_t i)
{
	wisp_buf *b = wisp_buf_alloc(p->node->pool, sizeof(wisp_dial_req));
	if (!b)
		return; /* the redial timer tries again */
	memcpy(b->data, &p->node->xpeers[i], sizeof(wisp_dial_req));
	b->len = sizeof(wisp_dial_req);
	if (deal_dial(p, a, WISP_COOKIE_EXPLICIT + i, b) != WISP_OK) {
		wisp_buf_unref(b);
		return;
	}
	p->x_dialing[i] = true;
}

/* Dial every explicit peer that has no connection and no dial in flight;
 * while one is missing, the timer comes back. */
static void keep_explicit(struct wisp_peers *p, wisp_actor *a, wisp_tstamp now)
{
	bool missing = false;
	for (uint32_t i = 0; i < p->node->n_xpeers; i++) {
		if (connected(p, &p->node->xpeers[i].peer))
			continue;
		missing = true;
		if (!p->x_dialing[i])
			dial_explicit(p, a, i);
	}
	if (missing && !wisp_timer_armed(&p->redial))
		(void)wisp_loop_timer_arm(a->loop, &p->redial, now + p->node->xpeer_redial_ns);
}

/* After a loss: not at once (a peer that refuses us would be dialed in a
 * loop), but when the timer comes. */
static void keep_explicit_later(struct wisp_peers *p, wisp_actor *a, wisp_tstamp now)
{
	if (wisp_timer_armed(&p->redial))
		return;
	for (uint32_t i = 0; i < p->node->n_xpeers; i++)
		if (!connected(p, &p->node->xpeers[i].peer)) {
			(void)wisp_loop_timer_arm(a->loop, &p->redial, now + p->node->xpeer_redial_ns);
			return;
		}
}

static void on_redial(wisp_timer *t, wisp_tstamp now)
{
	struct wisp_peers *p = t->arg;
	keep_explicit(p, p->actor, now);
}

/* A dial of ours ended (connected or failed). */
static void explicit_dial_done(struct wisp_peers *p, uint64_t cookie)
{
	if (cookie >= WISP_COOKIE_EXPLICIT && cookie - WISP_COOKIE_EXPLICIT < p->node->n_xpeers)
		p->x_dialing[cookie - WISP_COOKIE_EXPLICIT] = false;
}

static void on_up(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	const wisp_conn_up *u = (const wisp_conn_up *)m->buf->data;
	explicit_dial_done(p, m->b);
	peer_entry *e = lookup(p, &u->peer, true);
	if (e && e->n < CONNS_PER_PEER) {
		peer_conn *pc = &e->conns[e->n++];
		pc->ref = m->a;
		pc->inbound = !u->dialer;
		snprintf(pc->addr, sizeof(pc->addr), "%s", u->addr);
	} else {
		p->untracked++;
	}
	emit_peer(p, a, WISP_EVENT_CONNECTED, WISP_OK, m->b, &u->peer, !u->dialer, u->addr, NULL, m->a);
}

static void on_down(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	explicit_dial_done(p, m->b);
	if (!m->buf)
		return; /* the worker's pool was empty: nothing to report with */
	const wisp_conn_down *d = (const wisp_conn_down *)m->buf->data;
	const wisp_peer_id *id = d->has_peer ? &d->peer : NULL;
	if (d->upgraded) {
		peer_entry *e = id ? lookup(p, id, false) : NULL;
		if (e) {
			for (uint32_t i = 0; i < e->n; i++)
				if (e->conns[i].ref == m->a) {
					e->conns[i] = e->conns[--e->n];
					break;
				}
			if (e->n == 0)
				remove_entry(p, e);
		}
		emit_peer(p, a, WISP_EVENT_DISCONNECTED, d->err, 0, id, !d->dialer, d->addr, d->stage, m->a);
	} else if (d->dialer) {
		emit_peer(p, a, WISP_EVENT_DIAL_FAILED, d->err, m->b, id, false, d->addr, d->stage, m->a);
	} else {
		emit_peer(p, a, WISP_EVENT_INBOUND_FAILED, d->err, 0, id, true, d->addr, d->stage, m->a);
	}
}

static void on_dial(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	const wisp_dial_req *r = (const wisp_dial_req *)m->buf->data;
	if (r->has_peer) {
		peer_entry *e = lookup(p, &r->peer, false);
		if (e && e->n) {
			emit_peer(p, a, WISP_EVENT_CONNECTED, WISP_OK, m->b, &r->peer, e->conns[0].inbound,
				  e->conns[0].addr, NULL, e->conns[0].ref);
			return;
		}
	}
	if (deal_dial(p, a, m->b, m->buf) != WISP_OK) {
		emit_peer(p, a, WISP_EVENT_DIAL_FAILED, WISP_ERR_AGAIN, m->b, r->has_peer ? &r->peer : NULL, false, "",
			  "connect", 0);
		return;
	}
	m->buf = NULL; /* the worker has it now */
}

/* A peer named by gossipsub PX: dialed unless a connection to it came up
 * meanwhile (the gossip actor sees gossip peers only). The worker reports
 * the outcome with WISP_COOKIE_PX. */
static void on_px_dial(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	const wisp_dial_req *r = (const wisp_dial_req *)m->buf->data;
	if (m->buf->len < sizeof(*r) || !r->has_peer || connected(p, &r->peer))
		return;
	if (deal_dial(p, a, WISP_COOKIE_PX, m->buf) == WISP_OK)
		m->buf = NULL; /* the worker has it now */
}

wisp_buf *wisp_ping_result_buf(wisp_pool *pool, const wisp_peer_id *peer)
{
	wisp_buf *b = wisp_buf_alloc(pool, sizeof(wisp_ping_info));
	if (b) {
		wisp_ping_info *pi = (wisp_ping_info *)b->data;
		memset(pi, 0, sizeof(*pi));
		pi->peer = *peer;
		wisp_peer_text(peer, pi->peer_text, sizeof(pi->peer_text));
		b->len = sizeof(*pi);
	}
	return b;
}

wisp_buf *wisp_test_result_buf(wisp_pool *pool, const wisp_peer_id *peer, const wisp_test_spec *spec)
{
	wisp_buf *b = wisp_buf_alloc(pool, sizeof(wisp_test_result));
	if (b) {
		wisp_test_result *t = (wisp_test_result *)b->data;
		memset(t, 0, sizeof(*t));
		t->peer = *peer;
		t->test = *spec;
		wisp_peer_text(peer, t->peer_text, sizeof(t->peer_text));
		b->len = sizeof(*t);
	}
	return b;
}

static void cmd_failed(struct wisp_peers *p, wisp_actor *a, const wisp_peer_cmd *c, uint64_t cookie, int err)
{
	switch (c->kind) {
	case WISP_PEER_PING:
		wisp_node_emit(p->node, a->loop, WISP_EVENT_PING, err, cookie, wisp_ping_result_buf(p->node->pool, &c->peer));
		break;
	case WISP_PEER_TEST:
		wisp_node_emit(p->node, a->loop, WISP_EVENT_TEST, err, cookie,
			       wisp_test_result_buf(p->node->pool, &c->peer, &c->test));
		break;
	case WISP_PEER_CLOSE:
		emit_peer(p, a, WISP_EVENT_CLOSED, err, cookie, &c->peer, false, "", NULL, 0);
		break;
	}
}

static void on_cmd(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	const wisp_peer_cmd *c = (const wisp_peer_cmd *)m->buf->data;
	peer_entry *e = lookup(p, &c->peer, false);
	if (!e || e->n == 0) {
		cmd_failed(p, a, c, m->b, WISP_ERR_NOTFOUND);
		return;
	}
	uint32_t targets = c->kind == WISP_PEER_CLOSE ? e->n : 1;
	for (uint32_t i = 0; i < targets; i++) {
		wisp_conn_ref ref = e->conns[i].ref;
		wisp_msg fw = { .type = WISP_WMSG_PEER_CMD, .a = ref, .b = m->b, .buf = wisp_buf_ref(m->buf) };
		if (wisp_actor_send(&p->node->worker_actors[wisp_conn_ref_worker(ref)], &fw, a) != WISP_OK) {
			wisp_buf_unref(fw.buf);
			if (c->kind != WISP_PEER_CLOSE) {
				cmd_failed(p, a, c, m->b, WISP_ERR_AGAIN);
				return;
			}
		}
	}
	if (c->kind == WISP_PEER_CLOSE)
		cmd_failed(p, a, c, m->b, WISP_OK); /* CLOSED: the disconnects follow */
}

/* A request/response request: on to the reqresp actor with the peer's
 * connection. */
static void on_rr_request(struct wisp_peers *p, wisp_actor *a, wisp_msg *m)
{
	const wisp_peer_id *id = (const wisp_peer_id *)(const void *)(m->buf->data + WISP_RR_REQ_PEER_OFFSET);
	peer_entry *e = lookup(p, id, false);
	wisp_msg fw = { .type = WISP_RMSG_REQUEST, .a = e && e->n ? e->conns[0].ref : 0, .b = m->b, .buf = m->buf };
	if (wisp_actor_send(&p->node->reqresp, &fw, a) == WISP_OK)
		m->buf = NULL;
}

static int peers_start(wisp_actor *a, wisp_tstamp now)
{
	struct wisp_peers *p = a->state;
	p->actor = a;
	wisp_timer_init(&p->redial, on_redial, p);
	keep_explicit(p, a, now);
	return WISP_OK;
}

static void peers_stop(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	struct wisp_peers *p = a->state;
	wisp_loop_timer_disarm(a->loop, &p->redial);
}

static void peers_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	struct wisp_peers *p = a->state;
	switch (m->type) {
	case WISP_PMSG_CONN_UP:
		if (m->buf)
			on_up(p, a, m);
		break;
	case WISP_PMSG_CONN_DOWN:
		on_down(p, a, m);
		/* an explicit peer lost (or not reached) is dialed again later */
		if (p->node->n_xpeers)
			keep_explicit_later(p, a, now);
		break;
	case WISP_PMSG_EVENT:
		/* in order behind the connection's CONNECTED */
		wisp_node_emit(p->node, a->loop, (wisp_event_type)(m->a & 0xffffffffu), (int)(int32_t)(m->a >> 32),
			       m->b, m->buf);
		m->buf = NULL;
		break;
	case WISP_PMSG_DIAL:
		if (m->buf)
			on_dial(p, a, m);
		break;
	case WISP_PMSG_PEER_CMD:
		if (m->buf)
			on_cmd(p, a, m);
		break;
	case WISP_PMSG_PX_DIAL:
		if (m->buf)
			on_px_dial(p, a, m);
		break;
	case WISP_PMSG_RR_REQUEST:
		if (m->buf)
			on_rr_request(p, a, m);
		break;
	default:
		break;
	}
}

const wisp_actor_ops wisp_peers_ops = {
	.name = "peers",
	.start = peers_start,
	.msg = peers_msg,
	.stop = peers_stop,
};
