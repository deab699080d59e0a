#include "actors/gossip/actor.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/scoring/actor.h"
#include "codec/compress.h"
#include "codec/peer_record.h"
#include "net/pubsub.h"
#include "peerset/peers.h"
#include "runtime/mem.h"
#include "runtime/node.h"
#include "runtime/worker.h"

/* What the actor adds to a subscribed topic's router profile. */
typedef struct gtopic {
	bool validate;     /* the application validates every message */
	bool zstd;         /* data is compressed on the wire */
	uint32_t max_size; /* zstd: the largest decompressed data */
} gtopic;

typedef struct gpeer {
	bool used;
	wisp_conn_ref ref;   /* the connection its frames go out on */
	wisp_peer_id id;
	uint64_t add_seq;    /* its PEER_ADD to the scoring actor: older snapshots are not its scores */
} gpeer;

/* A connection's signed peer record from identify, verified by the worker;
 * what our PX says about the peer. Kept per connection slot (identify and
 * gossipsub come up in either order), released with the connection. */
typedef struct crec {
	wisp_conn_ref ref;
	uint64_t seq;
	wisp_buf *buf; /* NULL: none */
} crec;

/* A PX dial in flight: the peer counts towards the target until it comes
 * up as a gossip peer or the dial must have ended. */
typedef struct pxdial {
	wisp_peer_id id;     /* len 0: free */
	wisp_tstamp until;
} pxdial;

struct wisp_gossip {
	wisp_node *node;
	wisp_actor *actor;
	wisp_gs_config cfg;
	wisp_gs_router *router;
	gpeer *peers;             /* cfg.max_peers handles */
	int32_t *by_conn;         /* handle per (worker, slot) of a connection ref, -1 none:
				     found per RPC without a walk over the peers */
	uint32_t conns_per_worker;
	crec *records;            /* per (worker, slot), like by_conn */
	pxdial *px_dials;         /* cfg.px_peers */
	gtopic *topics;           /* per router topic number (set while subscribed) */
	wisp_zstd *zstd;          /* compressed topics: made at the first subscription */
	uint8_t *zbuf;            /* compressed data to publish, or decompressed data */
	size_t zbuf_len;
	double *scores;           /* the latest snapshot from the scoring actor */
	uint32_t n_scores;
	uint64_t adds;            /* PEER_ADDs numbered so far */
	uint32_t n_peers, n_topics;
	uint32_t next_worker;
	/* the router's counters, copied for other threads (each word atomic) */
	_Atomic uint64_t mirror[sizeof(wisp_gs_router_stats) / sizeof(uint64_t)];
	uint8_t *scratch;         /* for signature checks done here (fallback) */
	size_t scratch_len;
	wisp_timer hb;
	wisp_gossip_stats st;
};

static void release_records(wisp_gossip *g)
{
	if (!g->records)
		return;
	for (size_t i = 0; i < (size_t)g->node->n_workers * g->conns_per_worker; i++) {
		wisp_buf_unref(g->records[i].buf);
		g->records[i].buf = NULL;
	}
}

int wisp_gossip_new(wisp_gossip **out, wisp_node *node, const wisp_gs_config *cfg)
{
	wisp_gossip *g = wisp_calloc(node->mem, 1, sizeof(*g));
	if (!g)
		return WISP_ERR_NOMEM;
	g->node = node;
	g->cfg = *cfg;
	g->peers = wisp_calloc(node->mem, cfg->max_peers, sizeof(*g->peers));
	g->topics = wisp_calloc(node->mem, cfg->max_topics + cfg->max_remote_topics, sizeof(*g->topics));
	g->scratch_len = (size_t)cfg->lim.max_message + 4096;
	g->scratch = wisp_malloc(node->mem, g->scratch_len);
	g->scores = wisp_calloc(node->mem, cfg->max_peers, sizeof(*g->scores));
	g->conns_per_worker = node->net.max_conns_per_worker;
	g->by_conn = wisp_malloc(node->mem, (size_t)node->n_workers * g->conns_per_worker * sizeof(*g->by_conn));
	if (g->by_conn)
		for (size_t i = 0; i < (size_t)node->n_workers * g->conns_per_worker; i++)
			g->by_conn[i] = -1;
	g->records = wisp_calloc(node->mem, (size_t)node->n_workers * g->conns_per_worker, sizeof(*g->records));
	g->px_dials = wisp_calloc(node->mem, cfg->px_peers ? cfg->px_peers : 1, sizeof(*g->px_dials));
	if (!g->peers || !g->topics || !g->scratch || !g->scores || !g->by_conn || !g->records || !g->px_dials) {
		wisp_gossip_free(g);
		return WISP_ERR_NOMEM;
	}
	*out = g;
	return WISP_OK;
}

void wisp_gossip_free(wisp_gossip *g)
{
	if (!g)
		return;
	wisp_gs_router_free(g->router);
	release_records(g);
	wisp_free(g->node->mem, g->records);
	wisp_free(g->node->mem, g->px_dials);
	wisp_free(g->node->mem, g->scores);
	wisp_free(g->node->mem, g->by_conn);
	wisp_free(g->node->mem, g->peers);
	wisp_free(g->node->mem, g->topics);
	wisp_zstd_free(g->zstd);
	wisp_free(g->node->mem, g->zbuf);
	wisp_free(g->node->mem, g->scratch);
	wisp_free(g->node->mem, g);
}

wisp_gs_config *wisp_gossip_config_for_tests(wisp_gossip *g)
{
	return &g->cfg;
}

const wisp_gossip_stats *wisp_gossip_stats_of(const wisp_gossip *g)
{
	return &g->st;
}

void wisp_gossip_router_stats(const wisp_gossip *g, wisp_gs_router_stats *out)
{
	uint64_t w[sizeof(wisp_gs_router_stats) / sizeof(uint64_t)];
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		w[i] = atomic_load_explicit(&g->mirror[i], memory_order_relaxed);
	memcpy(out, w, sizeof(w));
}

_Static_assert(sizeof(wisp_gs_router_stats) % sizeof(uint64_t) == 0, "the mirror copies whole words");

/* Copy the router's counters where other threads read them, after every
 * message and heartbeat (some 60 relaxed stores). */
static void mirror_stats(wisp_gossip *g)
{
	if (!g->router)
		return;
	wisp_gs_router_stats rs;
	memset(&rs, 0, sizeof(rs));
	wisp_gs_router_stats_get(g->router, &rs);
	uint64_t w[sizeof(wisp_gs_router_stats) / sizeof(uint64_t)];
	memcpy(w, &rs, sizeof(w));
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		atomic_store_explicit(&g->mirror[i], w[i], memory_order_relaxed);
}

/* ---- peers ------------------------------------------------------------- */

/* The by_conn entry of a connection ref, or NULL when out of range. */
static int32_t *conn_entry(const wisp_gossip *g, wisp_conn_ref ref)
{
	uint32_t w = wisp_conn_ref_worker(ref), slot = (uint32_t)(ref & 0xffffff);
	if (w >= g->node->n_workers || slot >= g->conns_per_worker)
		return NULL;
	return &g->by_conn[(size_t)w * g->conns_per_worker + slot];
}

static int64_t handle_of_ref(const wisp_gossip *g, wisp_conn_ref ref)
{
	int32_t *e = conn_entry(g, ref);
	if (!e || *e < 0 || !g->peers[*e].used || g->peers[*e].ref != ref)
		return -1; /* a stale ref (the slot's generation moved on) fails here */
	return *e;
}

static int64_t handle_of_id(const wisp_gossip *g, const wisp_peer_id *id)
{
	for (uint32_t i = 0; i < g->cfg.max_peers; i++)
		if (g->peers[i].used && wisp_peer_id_equal(&g->peers[i].id, id))
			return i;
	return -1;
}

static void to_scoring(wisp_gossip *g, uint32_t type, uint64_t a, uint64_t b, wisp_buf *buf)
{
	wisp_msg m = { .type = type, .a = a, .b = b, .buf = buf };
	if (wisp_actor_send(&g->node->scoring, &m, g->actor) != WISP_OK) {
		wisp_buf_unref(buf);
		wisp_stat_add(&g->st.events_dropped, 1);
	}
}

static void px_dial_done(wisp_gossip *g, const wisp_peer_id *id);

static void peer_up(wisp_gossip *g, wisp_msg *m, wisp_tstamp now)
{
	const wisp_pubsub_peer *pp = (const wisp_pubsub_peer *)m->buf->data;
	if (handle_of_id(g, &pp->peer) >= 0)
		return; /* a second connection to the peer: gossip stays on the first */
	int64_t h = -1;
	for (uint32_t i = 0; i < g->cfg.max_peers && h < 0; i++)
		if (!g->peers[i].used)
			h = i;
	uint32_t proto = pp->version == 12 ? WISP_GS_PROTO_V12 : pp->version == 11 ? WISP_GS_PROTO_V11 : WISP_GS_PROTO_V10;
	if (h < 0) {
		wisp_stat_add(&g->st.peers_refused, 1);
		return;
	}
	/* In the table first: adding the peer sends it our subscriptions. A
	 * handle is reused: until the scoring actor has heard of this peer, it
	 * scores 0 (as an unknown peer), not what the handle's last peer scored
	 * (a graylisted peer's successor had its first RPCs ignored). */
	g->peers[h] = (gpeer){ .used = true, .ref = m->a, .id = pp->peer, .add_seq = ++g->adds };
	g->scores[h] = 0;
	bool explicit_peer = wisp_node_explicit_index(g->node, &pp->peer) >= 0;
	if (wisp_gs_router_add_peer(g->router, (uint32_t)h, &pp->peer, pp->outbound, explicit_peer, proto, now)) {
		g->peers[h].used = false;
		wisp_stat_add(&g->st.peers_refused, 1);
		return;
	}
	int32_t *e = conn_entry(g, m->a);
	if (e)
		*e = (int32_t)h;
	g->n_peers++;
	px_dial_done(g, &pp->peer);
	wisp_stat_add(&g->st.peers, 1);
	wisp_buf *b = wisp_buf_alloc(g->node->pool, sizeof(wisp_scoring_peer));
	if (b) {
		wisp_scoring_peer *sp = (wisp_scoring_peer *)b->data;
		memset(sp, 0, sizeof(*sp));
		sp->id = pp->peer;
		sp->has_ip = pp->has_ip;
		memcpy(sp->ip, pp->ip, sizeof(sp->ip));
		b->len = sizeof(*sp);
		to_scoring(g, WISP_SMSG_PEER_ADD, (uint64_t)h, g->peers[h].add_seq, b);
	}
}

static void peer_down(wisp_gossip *g, wisp_conn_ref ref, wisp_tstamp now)
{
	int32_t *e = conn_entry(g, ref);
	if (e) {
		crec *cr = &g->records[e - g->by_conn];
		if (cr->buf && cr->ref == ref) {
			wisp_buf_unref(cr->buf);
			cr->buf = NULL;
		}
	}
	int64_t h = handle_of_ref(g, ref);
	if (h < 0)
		return;
	*conn_entry(g, ref) = -1;
	wisp_gs_router_remove_peer(g->router, (uint32_t)h, now);
	g->peers[h].used = false;
	g->n_peers--;
	to_scoring(g, WISP_SMSG_PEER_REMOVE, (uint64_t)h, 0, NULL);
}

/* identify brought the connection's signed record (the worker verified
 * it names the connection's peer). A newer one (identify push) replaces
 * it; an older one is dropped. */
static void on_record(wisp_gossip *g, wisp_msg *m)
{
	int32_t *e = conn_entry(g, m->a);
	if (!e)
		return;
	crec *cr = &g->records[e - g->by_conn];
	if (cr->buf && cr->ref == m->a && m->b < cr->seq)
		return;
	/* a record left from an earlier connection in this slot goes too */
	wisp_buf_unref(cr->buf);
	*cr = (crec){ .ref = m->a, .seq = m->b, .buf = m->buf };
	m->buf = NULL;
}

/* ---- peer exchange ------------------------------------------------------ */

wisp_px_verdict wisp_gossip_px_record(const wisp_peer_id *entry, const uint8_t *record, size_t len,
				      wisp_dial_req *out)
{
	if (!record || !len)
		return WISP_PX_NO_RECORD;
	wisp_peer_record rec;
	int rc = wisp_peer_record_open(&rec, record, len);
	if (rc == WISP_ERR_UNSUPPORTED)
		return WISP_PX_UNSUPPORTED_KEY;
	/* a record of another peer than the entry names: whoever relays it
	 * would send us to an address the entry's peer never certified */
	if (rc || !wisp_peer_id_equal(&rec.peer, entry))
		return WISP_PX_BAD_RECORD;
	struct sockaddr_storage ss[WISP_PEER_RECORD_MAX_ADDRS];
	socklen_t sl[WISP_PEER_RECORD_MAX_ADDRS];
	size_t n = wisp_peer_record_tcp(&rec, ss, sl, WISP_PEER_RECORD_MAX_ADDRS);
	if (!n)
		return WISP_PX_NO_ADDR;
	/* One address is dialed. A record lists every interface of the host,
	 * loopback too, which reaches the peer only from its own host: take
	 * the first other one, else the first. */
	size_t pick = 0;
	for (size_t i = 0; i < n; i++) {
		bool loop = ss[i].ss_family == AF_INET
				    ? (ntohl(((const struct sockaddr_in *)&ss[i])->sin_addr.s_addr) >> 24) == 127
				    : IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&ss[i])->sin6_addr);
		if (!loop) {
			pick = i;
			break;
		}
	}
	memset(out, 0, sizeof(*out));
	out->addr = ss[pick];
	out->addr_len = sl[pick];
	out->has_peer = true;
	out->peer = rec.peer;
	return WISP_PX_DIAL;
}

/* PX dials in flight that still count; expired entries are freed. */
static uint32_t px_dials_live(wisp_gossip *g, wisp_tstamp now)
{
	uint32_t live = 0;
	for (uint32_t i = 0; i < g->cfg.px_peers; i++) {
		if (g->px_dials[i].id.len && g->px_dials[i].until <= now)
			g->px_dials[i].id.len = 0;
		live += g->px_dials[i].id.len != 0;
	}
	return live;
}

static pxdial *px_dial_find(wisp_gossip *g, const wisp_peer_id *id)
{
	for (uint32_t i = 0; i < g->cfg.px_peers; i++)
		if (g->px_dials[i].id.len && wisp_peer_id_equal(&g->px_dials[i].id, id))
			return &g->px_dials[i];
	return NULL;
}

/* The peer came up: it is one of n_peers now. */
static void px_dial_done(wisp_gossip *g, const wisp_peer_id *id)
{
	pxdial *d = px_dial_find(g, id);
	if (d)
		d->id.len = 0;
}

/* A peer suggested in a PRUNE of a peer we trust (the router checked its
 * score). Dialed when its record verifies for the entry's peer id, it is
 * not already a gossip peer or being dialed, and the node has fewer gossip
 * peers (dials in flight included) than D_hi: a node with D_hi peers can
 * fill a mesh to D_hi on any topic they share without new connections,
 * and below that PX is how a pruned node finds more. The bound also keeps
 * a trusted peer from making us open connections without end. The cheap
 * checks come first, so the signature check (on this thread: at most
 * px_peers per PRUNE, from well-scored peers only) runs only for a peer we
 * would dial. */
static void r_px(void *ctx, const uint8_t *peer_id, size_t len, const uint8_t *record, size_t record_len)
{
	wisp_gossip *g = ctx;
	wisp_tstamp now = wisp_loop_now(g->actor->loop);
	wisp_peer_id id;
	if (!record) {
		/* nothing we can dial: addresses come only in signed records */
		wisp_stat_add(&g->st.px_ignored, 1);
		return;
	}
	if (wisp_peer_id_from_bytes(&id, peer_id, len) != WISP_OK) {
		wisp_stat_add(&g->st.px_bad_record, 1);
		return;
	}
	if (wisp_peer_id_equal(&id, &g->node->peer_id) || handle_of_id(g, &id) >= 0 || px_dial_find(g, &id) ||
	    g->n_peers + px_dials_live(g, now) >= g->cfg.d_hi) {
		wisp_stat_add(&g->st.px_ignored, 1);
		return;
	}
	wisp_buf *b = wisp_buf_alloc(g->node->pool, sizeof(wisp_dial_req));
	if (!b) {
		wisp_stat_add(&g->st.px_ignored, 1);
		return;
	}
	wisp_dial_req *req = (wisp_dial_req *)b->data;
	switch (wisp_gossip_px_record(&id, record, record_len, req)) {
	case WISP_PX_DIAL:
		break;
	case WISP_PX_BAD_RECORD:
		wisp_stat_add(&g->st.px_bad_record, 1);
		wisp_buf_unref(b);
		return;
	case WISP_PX_UNSUPPORTED_KEY:
		wisp_stat_add(&g->st.px_unsupported_key, 1);
		wisp_buf_unref(b);
		return;
	default:
		wisp_stat_add(&g->st.px_ignored, 1);
		wisp_buf_unref(b);
		return;
	}
	b->len = sizeof(*req);
	wisp_msg m = { .type = WISP_PMSG_PX_DIAL, .buf = b };
	if (wisp_actor_send(&g->node->peers, &m, g->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_stat_add(&g->st.px_ignored, 1);
		return;
	}
	wisp_stat_add(&g->st.px_dialed, 1);
	for (uint32_t i = 0; i < g->cfg.px_peers; i++)
		if (!g->px_dials[i].id.len) {
			/* the dial and the handshake each have their timeout;
			 * past both the peer is up or the dial failed */
			g->px_dials[i] = (pxdial){ .id = id,
						   .until = now + g->node->net.dial_timeout_ns +
							    g->node->net.handshake_timeout_ns };
			break;
		}
}

/* ---- router callbacks -------------------------------------------------- */

static void r_send(void *ctx, uint32_t peer, wisp_buf *frame, int prio, wisp_tstamp expires)
{
	wisp_gossip *g = ctx;
	if (peer >= g->cfg.max_peers || !g->peers[peer].used)
		return;
	wisp_conn_ref ref = g->peers[peer].ref;
	/* the queue level: control, then a high-priority topic's publishes and
	 * forwards, then the rest's */
	bool high = WISP_GS_PRIO_TOPIC(prio) > 0;
	int level;
	switch (WISP_GS_PRIO_CLASS(prio)) {
	case WISP_GS_PRIO_CONTROL:
		level = WISP_PUBSUB_CONTROL;
		break;
	case WISP_GS_PRIO_PUBLISH:
		level = high ? WISP_PUBSUB_PUBLISH_HIGH : WISP_PUBSUB_PUBLISH;
		break;
	default:
		level = high ? WISP_PUBSUB_FORWARD_HIGH : WISP_PUBSUB_FORWARD;
		break;
	}
	wisp_msg m = { .type = WISP_WMSG_GS_SEND + (uint32_t)level, .a = ref, .b = expires, .buf = wisp_buf_ref(frame) };
	if (wisp_actor_send(&g->node->worker_actors[wisp_conn_ref_worker(ref)], &m, g->actor) != WISP_OK) {
		wisp_buf_unref(frame);
		wisp_stat_add(&g->st.send_failed, 1);
	}
}

static void r_verify(void *ctx, uint64_t ref, wisp_buf *frame, const wisp_gs_message *msg)
{
	wisp_gossip *g = ctx;
	/* Signature checks go to the workers in turn: they do not serialize on
	 * this thread. The worker decodes the message again from its place. */
	uint64_t off = (uint64_t)(msg->raw.data - frame->data), len = msg->raw.len;
	uint32_t to = g->next_worker++ % g->node->n_workers;
	wisp_msg m = { .type = WISP_WMSG_GS_VERIFY, .a = ref, .b = off << 32 | len, .buf = wisp_buf_ref(frame) };
	if (msg->raw.data && wisp_actor_send(&g->node->worker_actors[to], &m, g->actor) == WISP_OK) {
		wisp_stat_add(&g->st.verify_dealt, 1);
		return;
	}
	wisp_buf_unref(frame);
	wisp_stat_add(&g->st.verify_inline, 1);
	int err = wisp_gs_verify(msg, g->scratch, g->scratch_len);
	wisp_gs_router_verified(g->router, ref, err == WISP_OK, wisp_loop_now(g->actor->loop));
}

/* The entry of router topic number t, or NULL when t is none (< 0) or out
 * of the table's range. */
static gtopic *gtopic_at(const wisp_gossip *g, int64_t t)
{
	if (t < 0 || (uint64_t)t >= (uint64_t)g->cfg.max_topics + g->cfg.max_remote_topics)
		return NULL;
	return &g->topics[t];
}

/* The topic's entry when it is subscribed with zstd, else NULL. */
static const gtopic *zstd_topic(const wisp_gossip *g, int64_t topic)
{
	const gtopic *gt = gtopic_at(g, topic);
	return gt && gt->zstd ? gt : NULL;
}

/* A compressed topic's data, decompressed into zbuf: its length, or an
 * error (not zstd, corrupt, over the topic's max_size), counted. */
static ssize_t decompress(wisp_gossip *g, const gtopic *t, const wisp_gs_message *m)
{
	size_t cap = t->max_size < g->zbuf_len ? t->max_size : g->zbuf_len;
	ssize_t n = wisp_zstd_decompress(g->zstd, m->data.data, m->data.len, g->zbuf, cap);
	if (n < 0)
		wisp_stat_add(&g->st.decompress_failed, 1);
	return n;
}

/* An event for the application carrying a message: info, topic, and data
 * (data[0..dlen): the message's, or its decompressed data). */
static wisp_buf *message_event(wisp_gossip *g, uint64_t ref, const wisp_gs_message *m, const uint8_t *data,
			       size_t dlen, const uint8_t *id, size_t id_len, uint32_t from_peer)
{
	size_t tlen = m->topic.len;
	size_t need = sizeof(wisp_message_info) + tlen + 1 + dlen;
	wisp_buf *b = wisp_buf_alloc(g->node->pool, need);
	if (!b) {
		/* counted with every other event the application lost */
		wisp_stat_add(&g->st.events_dropped, 1);
		wisp_stat_add_shared(&g->node->events_dropped, 1);
		return NULL;
	}
	wisp_message_info *mi = (wisp_message_info *)b->data;
	memset(mi, 0, sizeof(*mi));
	char *t = (char *)(mi + 1);
	memcpy(t, m->topic.data, tlen);
	t[tlen] = 0;
	uint8_t *d = (uint8_t *)t + tlen + 1;
	if (dlen)
		memcpy(d, data, dlen);
	mi->ref = ref;
	mi->topic = t;
	mi->data = d;
	mi->len = (uint32_t)dlen;
	if (m->has_from && wisp_peer_id_from_bytes(&mi->from, m->from.data, m->from.len) != WISP_OK)
		mi->from.len = 0;
	if (from_peer < g->cfg.max_peers && g->peers[from_peer].used)
		mi->source = g->peers[from_peer].id;
	mi->id_len = (uint32_t)(id_len < sizeof(mi->id) ? id_len : sizeof(mi->id));
	memcpy(mi->id, id, mi->id_len);
	b->len = (uint32_t)need;
	return b;
}

static void r_validate(void *ctx, uint64_t ref, uint32_t topic, wisp_buf *frame, const wisp_gs_message *m,
		       const uint8_t *id, size_t id_len, uint32_t from_peer)
{
	wisp_gossip *g = ctx;
	(void)frame;
	wisp_tstamp now = wisp_loop_now(g->actor->loop);
	const uint8_t *data = m->data.data;
	size_t dlen = m->data.len;
	const gtopic *zt = zstd_topic(g, topic);
	if (zt) {
		/* a frame that does not decompress within the topic's bound is
		 * invalid: the sender forwarded garbage or a bomb */
		ssize_t n = decompress(g, zt, m);
		if (n < 0) {
			wisp_gs_router_validated(g->router, ref, WISP_GS_REJECT, now);
			return;
		}
		data = g->zbuf;
		dlen = (size_t)n;
	}
	const gtopic *gt = gtopic_at(g, topic);
	if (!gt || !gt->validate) {
		wisp_gs_router_validated(g->router, ref, WISP_GS_ACCEPT, now);
		return;
	}
	wisp_buf *b = message_event(g, ref, m, data, dlen, id, id_len, from_peer);
	if (!b || wisp_node_emit(g->node, g->actor->loop, WISP_EVENT_VALIDATE, WISP_OK, 0, b) != WISP_OK)
		/* the application cannot hear of it: not its fault, nor the peer's */
		wisp_gs_router_validated(g->router, ref, WISP_GS_IGNORE_RETRY, now);
}

static void r_deliver(void *ctx, uint32_t topic, wisp_buf *frame, const wisp_gs_message *m, const uint8_t *id,
		      size_t id_len, uint32_t from_peer)
{
	wisp_gossip *g = ctx;
	(void)frame;
	const uint8_t *data = m->data.data;
	size_t dlen = m->data.len;
	const gtopic *zt = zstd_topic(g, topic);
	if (zt) {
		/* validation decompressed it once already; it decodes again here
		 * (zbuf is shared, and verdicts can come much later) */
		ssize_t n = decompress(g, zt, m);
		if (n < 0)
			return;
		data = g->zbuf;
		dlen = (size_t)n;
	}
	wisp_buf *b = message_event(g, 0, m, data, dlen, id, id_len, from_peer);
	if (b && wisp_node_emit(g->node, g->actor->loop, WISP_EVENT_MESSAGE, WISP_OK, 0, b) == WISP_OK)
		wisp_stat_add(&g->st.delivered, 1);
}

static void r_score_event(void *ctx, const wisp_gs_score_event *ev)
{
	wisp_gossip *g = ctx;
	wisp_score_event e = { .peer = ev->peer, .topic = ev->topic == WISP_GS_NO_TOPIC ? 0 : ev->topic };
	switch (ev->type) {
	case WISP_GS_EV_GRAFT:
		e.kind = WISP_SCORE_EV_GRAFT;
		break;
	case WISP_GS_EV_PRUNE:
		e.kind = WISP_SCORE_EV_PRUNE;
		break;
	case WISP_GS_EV_FIRST_DELIVERY:
		e.kind = WISP_SCORE_EV_FIRST_DELIVERY;
		break;
	case WISP_GS_EV_DUPLICATE:
		/* aux: ms after our first copy arrived, which is when the clock
		 * of the mesh-delivery window starts here */
		e.kind = WISP_SCORE_EV_DUPLICATE;
		e.u.validated_at = ev->aux == UINT32_MAX ? ev->now : ev->now - (wisp_tstamp)ev->aux * WISP_NS_PER_MS;
		break;
	case WISP_GS_EV_INVALID:
		e.kind = WISP_SCORE_EV_INVALID;
		break;
	case WISP_GS_EV_BROKEN_PROMISE:
		e.kind = WISP_SCORE_EV_BEHAVIOUR_PENALTY;
		e.u.value = 1;
		break;
	case WISP_GS_EV_BEHAVIOUR:
		e.kind = WISP_SCORE_EV_BEHAVIOUR_PENALTY;
		e.u.value = ev->aux;
		break;
	default:
		return;
	}
	uint64_t a, b;
	if (wisp_score_event_pack(&e, &a, &b) == WISP_OK)
		to_scoring(g, WISP_SMSG_EVENT, a, b, NULL);
}

/* Our record of peer's connection, for the PX we send about it. */
static const uint8_t *r_peer_record(void *ctx, uint32_t peer, size_t *len)
{
	wisp_gossip *g = ctx;
	*len = 0;
	if (peer >= g->cfg.max_peers || !g->peers[peer].used)
		return NULL;
	int32_t *e = conn_entry(g, g->peers[peer].ref);
	const crec *cr = e ? &g->records[e - g->by_conn] : NULL;
	if (!cr || !cr->buf || cr->ref != g->peers[peer].ref)
		return NULL;
	*len = cr->buf->len;
	return cr->buf->data;
}

static double r_score(void *ctx, uint32_t peer)
{
	wisp_gossip *g = ctx;
	if (peer >= g->n_scores)
		return 0;
	double v = g->scores[peer];
	return isnan(v) ? 0 : v;
}

static const wisp_gs_ops router_ops = {
	.send = r_send,
	.verify = r_verify,
	.validate = r_validate,
	.deliver = r_deliver,
	.score_event = r_score_event,
	.px = r_px,
	.peer_record = r_peer_record,
	.score = r_score,
};

/* ---- the handle's commands --------------------------------------------- */

static void profile_of(const wisp_gossip *g, const wisp_topic_opts *o, wisp_gs_topic_profile *p)
{
	wisp_gs_topic_profile_default(p);
	p->sign = o->sign == WISP_SIGN_NONE ? WISP_GS_SIGN_NONE : WISP_GS_SIGN_STRICT;
	switch (o->msgid) {
	case WISP_MSGID_CONTENT:
		p->msgid = WISP_GS_MSGID_CONTENT;
		break;
	case WISP_MSGID_KEY_SEQNO:
		p->msgid = WISP_GS_MSGID_KEY_SEQNO;
		break;
	default:
		p->msgid = o->sign == WISP_SIGN_NONE ? WISP_GS_MSGID_CONTENT : WISP_GS_MSGID_DEFAULT;
		break;
	}
	p->max_size = o->max_size;
	if (o->compress == WISP_COMPRESS_ZSTD) {
		/* on the wire: the largest frame max_size bytes can compress to */
		size_t bound = wisp_zstd_bound(o->max_size ? o->max_size : g->cfg.lim.max_message);
		p->max_size = bound && bound < g->cfg.lim.max_message ? (uint32_t)bound : 0;
	}
	p->idontwant_threshold = o->idontwant_min ? o->idontwant_min - 1 : 0;
	p->flood_publish = o->flood_publish != 0;
	p->priority = o->priority == WISP_PRIORITY_HIGH ? 1 : 0;
}

/* The zstd context and buffer, made when the first compressed topic is
 * subscribed: a node without one spends nothing on them. */
static int zstd_ready(wisp_gossip *g)
{
	if (g->zstd)
		return WISP_OK;
	size_t bound = wisp_zstd_bound(g->cfg.lim.max_message);
	g->zbuf_len = bound > g->cfg.lim.max_message ? bound : g->cfg.lim.max_message;
	g->zbuf = wisp_malloc(g->node->mem, g->zbuf_len);
	g->zstd = wisp_zstd_new(g->node->mem, 0);
	if (g->zbuf && g->zstd)
		return WISP_OK;
	wisp_zstd_free(g->zstd);
	wisp_free(g->node->mem, g->zbuf);
	g->zstd = NULL;
	g->zbuf = NULL;
	return WISP_ERR_NOMEM;
}

static void emit_topic(wisp_gossip *g, int status, uint64_t cookie, const char *topic, bool subscribed)
{
	wisp_buf *b = wisp_buf_alloc(g->node->pool, sizeof(wisp_topic_info));
	if (b) {
		wisp_topic_info *ti = (wisp_topic_info *)b->data;
		memset(ti, 0, sizeof(*ti));
		snprintf(ti->topic, sizeof(ti->topic), "%s", topic);
		ti->subscribed = subscribed;
		b->len = sizeof(*ti);
	}
	wisp_node_emit(g->node, g->actor->loop, WISP_EVENT_SUBSCRIBED, status, cookie, b);
}

static void subscribe(wisp_gossip *g, wisp_msg *m, bool sub, wisp_tstamp now)
{
	const wisp_gossip_sub *s = (const wisp_gossip_sub *)m->buf->data;
	int err;
	if (sub) {
		wisp_gs_topic_profile p;
		profile_of(g, &s->opts, &p);
		bool zstd = s->opts.compress == WISP_COMPRESS_ZSTD;
		err = zstd ? zstd_ready(g) : WISP_OK;
		if (!err)
			err = wisp_gs_router_subscribe(g->router, (const uint8_t *)s->topic, s->len, &p, now);
		int64_t t = wisp_gs_router_topic_index(g->router, (const uint8_t *)s->topic, s->len);
		gtopic *gt = err ? NULL : gtopic_at(g, t);
		if (!err)
			g->n_topics++;
		if (gt) {
			uint32_t max = s->opts.max_size ? s->opts.max_size : g->cfg.lim.max_message;
			*gt = (gtopic){ .validate = s->opts.validate != 0, .zstd = zstd, .max_size = max };
			/* the scoring actor scores the topic with its defaults */
			wisp_buf *b = wisp_buf_alloc(g->node->pool, sizeof(wisp_score_topic_params));
			if (b) {
				wisp_score_params sp;
				wisp_score_params_default(&sp);
				wisp_score_topic_default((wisp_score_topic_params *)(void *)b->data, &sp);
				b->len = sizeof(wisp_score_topic_params);
				to_scoring(g, WISP_SMSG_TOPIC, (uint64_t)t, 0, b);
			}
		}
	} else {
		gtopic *gt = gtopic_at(g, wisp_gs_router_topic_index(g->router, (const uint8_t *)s->topic, s->len));
		err = wisp_gs_router_unsubscribe(g->router, (const uint8_t *)s->topic, s->len, now);
		if (!err && g->n_topics)
			g->n_topics--;
		/* the number may go to another topic once this one is forgotten */
		if (!err && gt)
			*gt = (gtopic){ 0 };
	}
	emit_topic(g, err, m->b, s->topic, sub && !err);
}

static void publish(wisp_gossip *g, wisp_msg *m, wisp_tstamp now)
{
	const wisp_gossip_pub *p = (const wisp_gossip_pub *)m->buf->data;
	const uint8_t *topic = (const uint8_t *)(p + 1), *data = topic + p->topic_len;
	size_t len = p->data_len;
	wisp_gs_publish_result r;
	memset(&r, 0, sizeof(r));
	int err = WISP_OK;
	int64_t t = wisp_gs_router_topic_index(g->router, topic, p->topic_len);
	const gtopic *zt = zstd_topic(g, t);
	if (zt) {
		ssize_t n = len > zt->max_size ? WISP_ERR_TOO_LARGE : wisp_zstd_compress(g->zstd, data, len, g->zbuf, g->zbuf_len);
		if (n < 0)
			err = n == WISP_ERR_NOMEM ? WISP_ERR_NOMEM : WISP_ERR_TOO_LARGE;
		data = g->zbuf;
		len = n < 0 ? 0 : (size_t)n;
	}
	if (!err)
		err = wisp_gs_router_publish(g->router, topic, p->topic_len, data, len, now, &r);
	int status = err;
	if (!err) {
		switch (r.status) {
		case WISP_GS_PUB_OK:
			status = WISP_OK;
			break;
		case WISP_GS_PUB_NO_PEERS:
			status = WISP_ERR_NOTFOUND;
			break;
		case WISP_GS_PUB_TOO_LARGE:
			status = WISP_ERR_TOO_LARGE;
			break;
		case WISP_GS_PUB_DUPLICATE:
			status = WISP_ERR_EXISTS;
			break;
		case WISP_GS_PUB_NO_MEMORY:
			status = WISP_ERR_NOMEM;
			break;
		case WISP_GS_PUB_NO_KEY:
			status = WISP_ERR_STATE;
			break;
		default:
			status = WISP_ERR_LIMIT;
			break;
		}
	}
	wisp_buf *b = wisp_buf_alloc(g->node->pool, sizeof(wisp_published_info));
	if (b) {
		wisp_published_info *pi = (wisp_published_info *)b->data;
		memset(pi, 0, sizeof(*pi));
		size_t tl = p->topic_len < sizeof(pi->topic) - 1 ? p->topic_len : sizeof(pi->topic) - 1;
		memcpy(pi->topic, topic, tl);
		pi->id_len = r.id_len < sizeof(pi->id) ? r.id_len : (uint32_t)sizeof(pi->id);
		memcpy(pi->id, r.id, pi->id_len);
		pi->peers = r.peers;
		b->len = sizeof(*pi);
	}
	wisp_node_emit(g->node, g->actor->loop, WISP_EVENT_PUBLISHED, status, m->b, b);
}

/* ---- the actor ---------------------------------------------------------- */

static void arm_heartbeat(wisp_gossip *g)
{
	wisp_tstamp at = wisp_gs_router_expiry(g->router);
	/* Without peers and topics a heartbeat has nothing to do: an idle node
	 * sleeps. Fanout and caches wait for the next one. */
	if (at == WISP_GS_NEVER || (g->n_peers == 0 && g->n_topics == 0))
		wisp_loop_timer_disarm(g->actor->loop, &g->hb);
	else
		(void)wisp_loop_timer_arm(g->actor->loop, &g->hb, at);
}

static void on_timer(wisp_timer *t, wisp_tstamp now)
{
	wisp_gossip *g = t->arg;
	(void)wisp_gs_router_handle_expiry(g->router, now);
	mirror_stats(g);
	arm_heartbeat(g);
}

static int gossip_start(wisp_actor *a, wisp_tstamp now)
{
	wisp_gossip *g = a->state;
	g->actor = a;
	int err = wisp_gs_router_new(&g->router, g->node->mem, &g->cfg, &router_ops, g, &g->node->identity,
				     g->node->pool, now);
	if (err)
		return err;
	wisp_timer_init(&g->hb, on_timer, g);
	arm_heartbeat(g);
	return WISP_OK;
}

static void gossip_stop(wisp_actor *a, wisp_tstamp now)
{
	wisp_gossip *g = a->state;
	(void)now;
	wisp_loop_timer_disarm(a->loop, &g->hb);
	mirror_stats(g);
	/* the message cache and messages in validation hold pooled frames:
	 * give them back with the actor, so a stopped node holds nothing */
	wisp_gs_router_free(g->router);
	g->router = NULL;
	release_records(g);
}

static void gossip_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	wisp_gossip *g = a->state;
	if (!g->router)
		return;
	switch (m->type) {
	case WISP_GMSG_PEER_UP:
		if (m->buf)
			peer_up(g, m, now);
		break;
	case WISP_GMSG_PEER_DOWN:
		peer_down(g, m->a, now);
		break;
	case WISP_GMSG_RPC: {
		int64_t h = handle_of_ref(g, m->a);
		if (h < 0 || !m->buf) {
			wisp_stat_add(&g->st.unknown_conn, 1);
			break;
		}
		if (wisp_gs_router_handle_rpc(g->router, (uint32_t)h, m->buf, m->buf->data, m->buf->len, now))
			wisp_stat_add(&g->st.rpc_errors, 1);
		break;
	}
	case WISP_GMSG_RECORD:
		if (m->buf)
			on_record(g, m);
		break;
	case WISP_GMSG_DROPPED:
		wisp_stat_add(&g->st.frames_dropped, m->b >> 8);
		break;
	case WISP_GMSG_VERIFIED:
		if (m->b == 0)
			wisp_stat_add(&g->st.verify_failed, 1);
		wisp_gs_router_verified(g->router, m->a, m->b != 0, now);
		break;
	case WISP_GMSG_SCORES:
		if (m->buf) {
			uint32_t n = (uint32_t)m->a < g->cfg.max_peers ? (uint32_t)m->a : g->cfg.max_peers;
			if ((size_t)n * sizeof(double) > m->buf->len)
				n = (uint32_t)(m->buf->len / sizeof(double));
			const double *v = (const double *)(const void *)m->buf->data;
			/* m->b: the last PEER_ADD the snapshot reflects. A handle
			 * given to a new peer after that still holds its last
			 * peer's score there: keep the new peer's 0. */
			for (uint32_t i = 0; i < n; i++)
				if (!g->peers[i].used || g->peers[i].add_seq <= m->b)
					g->scores[i] = v[i];
			g->n_scores = n;
		}
		break;
	case WISP_GMSG_SUBSCRIBE:
	case WISP_GMSG_UNSUBSCRIBE:
		if (m->buf)
			subscribe(g, m, m->type == WISP_GMSG_SUBSCRIBE, now);
		break;
	case WISP_GMSG_PUBLISH:
		if (m->buf)
			publish(g, m, now);
		break;
	case WISP_GMSG_VALIDATE:
		wisp_gs_router_validated(g->router, m->a, (wisp_gs_verdict)m->b, now);
		break;
	default:
		break;
	}
	mirror_stats(g);
	arm_heartbeat(g);
}

const wisp_actor_ops wisp_gossip_ops = {
	.name = "gossip",
	.start = gossip_start,
	.msg = gossip_msg,
	.stop = gossip_stop,
};
