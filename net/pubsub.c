#include "net/pubsub.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/varint.h"
#include "runtime/bufring.h"
#include "runtime/mem.h"
#include "runtime/node.h"

/* Bytes our stream may hold before we stop feeding it: yamux sends them as
 * the window allows, and what waits beyond stays in the class queues where
 * priorities still apply. */
#define FEED_MARK (256u * 1024)
struct wisp_pubsub_conn {
	wisp_stream *out;    /* our stream, once the peer took a protocol */
	bool opening;
	bool up_sent;
	bool record_sent;    /* the actor holds a record for this connection */
	wisp_bufring r[WISP_PUBSUB_LEVELS];
	size_t queued;       /* bytes waiting in the rings */
	uint64_t dropped[WISP_PUBSUB_LEVELS];
};

/* An inbound stream's frame being cut out: between frames (the length
 * prefix is read) while have == need. */
typedef struct reader {
	uint8_t prefix[10];
	uint8_t plen;
	wisp_buf *cur; /* the payload; NULL while a frame is skipped (no buffer for it) */
	uint32_t need, have;
} reader;

/* ---- helpers ----------------------------------------------------------- */

static wisp_shard_conn *sc_of(wisp_stream *s)
{
	return wisp_conn_user(s->conn);
}

static wisp_node *node_of(wisp_shard_conn *sc)
{
	return sc->shard->node;
}

static wisp_pubsub_stats *stats_of(wisp_shard_conn *sc)
{
	return &sc->shard->pubsub;
}

static struct wisp_pubsub_conn *ps_get(wisp_shard_conn *sc)
{
	if (!sc->ps)
		sc->ps = wisp_calloc(node_of(sc)->mem, 1, sizeof(*sc->ps));
	return sc->ps;
}

static uint32_t version_of(const wisp_proto *p)
{
	if (!strcmp(p->id, WISP_PROTO_MESHSUB_12))
		return 12;
	return !strcmp(p->id, WISP_PROTO_MESHSUB_11) ? 11 : 10;
}

static void to_actor(wisp_shard_conn *sc, uint32_t type, uint64_t b, wisp_buf *buf)
{
	wisp_shard *s = sc->shard;
	wisp_msg m = { .type = type, .src = s->index, .a = wisp_shard_ref(sc), .b = b, .buf = buf };
	if (wisp_actor_send(&s->node->gossip, &m, s->actor) != WISP_OK) {
		wisp_stat_add(&stats_of(sc)->actor_full, 1);
		wisp_buf_unref(buf);
	}
}

/* The actor hears of the peer with its first gossipsub stream. */
static void peer_up(wisp_shard_conn *sc, const wisp_proto *p)
{
	struct wisp_pubsub_conn *ps = ps_get(sc);
	if (!ps || ps->up_sent)
		return;
	wisp_buf *b = wisp_buf_alloc(node_of(sc)->pool, sizeof(wisp_pubsub_peer));
	if (!b)
		return; /* the next stream tries again */
	wisp_pubsub_peer *pp = (wisp_pubsub_peer *)b->data;
	memset(pp, 0, sizeof(*pp));
	pp->peer = *wisp_conn_remote_id(sc->conn);
	pp->version = version_of(p);
	pp->outbound = sc->dialer;
	const struct sockaddr_storage *ss = &sc->tcp.peer;
	if (ss->ss_family == AF_INET) {
		memset(pp->ip + 10, 0xff, 2);
		memcpy(pp->ip + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		pp->has_ip = true;
	} else if (ss->ss_family == AF_INET6) {
		memcpy(pp->ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		pp->has_ip = true;
	}
	b->len = sizeof(*pp);
	ps->up_sent = true;
	to_actor(sc, WISP_GMSG_PEER_UP, 0, b);
}

/* ---- outbound queue ---------------------------------------------------- */

/* Move queued frames into our stream while it drains, control first. */
static void feed(wisp_shard_conn *sc)
{
	struct wisp_pubsub_conn *ps = sc->ps;
	if (!ps || !ps->out)
		return;
	wisp_tstamp now = 0; /* read once, at the first frame with an expiry */
	for (int c = 0; c < WISP_PUBSUB_LEVELS; c++) {
		wisp_bufring_entry *q;
		while ((q = wisp_bufring_front(&ps->r[c])) && wisp_stream_queued(ps->out) < FEED_MARK) {
			if (q->expires && !now)
				now = wisp_loop_now(sc->shard->loop);
			if (q->expires && q->expires < now) {
				/* a forward that waited too long: nobody wants it now */
				wisp_stat_add(&stats_of(sc)->expired, 1);
				ps->dropped[c]++;
			} else {
				int err = wisp_stream_write(ps->out, q->buf, 0, q->buf->len);
				if (err == WISP_ERR_LIMIT)
					return; /* the connection's budget: writable() resumes */
				if (err) {
					wisp_stat_add(&stats_of(sc)->no_stream, 1);
					ps->dropped[c]++;
				} else {
					wisp_stat_add(&stats_of(sc)->frames_out, 1);
					wisp_stat_add(&stats_of(sc)->frame_bytes_out, q->buf->len);
				}
			}
			ps->queued -= q->buf->len;
			wisp_buf_unref(q->buf);
			wisp_bufring_pop(&ps->r[c]);
		}
	}
}

/* A frame dropped from (or refused at) level: counted, and the actor hears. */
static void dropped(wisp_shard_conn *sc, int level)
{
	wisp_stat_add(&stats_of(sc)->over_budget, 1);
	sc->ps->dropped[level]++;
	to_actor(sc, WISP_GMSG_DROPPED, (uint64_t)1 << 8 | (uint64_t)level, NULL);
}

/* Make room for need more bytes under budget by dropping the newest frames
 * of levels below `level`, lowest level first. True when it fits. Nothing is
 * evicted unless the whole need can be met. */
static bool make_room(wisp_shard_conn *sc, int level, size_t need, size_t budget)
{
	struct wisp_pubsub_conn *ps = sc->ps;
	if (ps->queued + need <= budget)
		return true;
	size_t over = ps->queued + need - budget, lower = 0;
	for (int c = level + 1; c < WISP_PUBSUB_LEVELS && lower < over; c++)
		for (uint32_t i = 0; i < ps->r[c].count && lower < over; i++)
			lower += wisp_bufring_at(&ps->r[c], i)->buf->len;
	if (lower < over)
		return false;
	for (int c = WISP_PUBSUB_LEVELS - 1; c > level && ps->queued + need > budget; c--) {
		while (ps->r[c].count && ps->queued + need > budget) {
			wisp_bufring_entry q = wisp_bufring_take_back(&ps->r[c]);
			ps->queued -= q.buf->len;
			wisp_buf_unref(q.buf);
			wisp_stat_add(&stats_of(sc)->evicted, 1);
			dropped(sc, c);
		}
	}
	return true;
}

void wisp_pubsub_send(wisp_shard *s, wisp_conn_ref ref, wisp_buf *frame, int level, wisp_tstamp expires)
{
	wisp_shard_conn *sc = wisp_shard_find(s, ref);
	if (!sc) {
		wisp_stat_add(&s->pubsub.no_stream, 1);
		return;
	}
	struct wisp_pubsub_conn *ps = ps_get(sc);
	if (!ps)
		return;
	if (level < 0 || level >= WISP_PUBSUB_LEVELS)
		level = WISP_PUBSUB_FORWARD;
	/* Past the budget a frame takes the room of lower levels' newest frames,
	 * or is refused. A control frame (small, and it steers the mesh) may
	 * push a queue that is under the budget over it by that one frame; a
	 * queue already over holds no more control than any other level does
	 * (an IHAVE every heartbeat to a peer that reads nothing piled up
	 * without bound). */
	size_t budget = s->node->net.pubsub_budget;
	bool fits = (level == WISP_PUBSUB_CONTROL && ps->queued < budget) || make_room(sc, level, frame->len, budget);
	if (!fits || wisp_bufring_push(s->node->mem, &ps->r[level], frame, expires, s->node->net.pubsub_max_frames) != WISP_OK) {
		dropped(sc, level);
		return;
	}
	ps->queued += frame->len;
	feed(sc);
	wisp_shard_mark(sc);
}

/* ---- stream handlers ---------------------------------------------------- */

static int ps_open(wisp_stream *st)
{
	wisp_shard_conn *sc = sc_of(st);
	if (st->outbound) {
		struct wisp_pubsub_conn *ps = ps_get(sc);
		if (!ps)
			return WISP_ERR_NOMEM;
		ps->out = st;
		ps->opening = false;
		peer_up(sc, st->proto);
		feed(sc);
		return WISP_OK;
	}
	reader *r = wisp_calloc(node_of(sc)->mem, 1, sizeof(*r));
	if (!r)
		return WISP_ERR_NOMEM;
	st->user = r;
	peer_up(sc, st->proto);
	return WISP_OK;
}

/* Cut RPC frames out of the peer's stream. */
static void ps_data(wisp_stream *st, const uint8_t *p, size_t n)
{
	reader *r = st->user;
	wisp_shard_conn *sc = sc_of(st);
	wisp_node *node = node_of(sc);
	wisp_stream_consumed(st, n);
	if (!r)
		return; /* bytes on our write-only stream: ignored */
	while (n) {
		if (r->have == r->need) {
			r->prefix[r->plen++] = *p++;
			n--;
			uint64_t len;
			ssize_t k = wisp_uvarint_get(r->prefix, r->prefix + r->plen, &len);
			if (k == WISP_ERR_TRUNCATED && r->plen < sizeof(r->prefix))
				continue;
			if (k < 0 || len > node->net.pubsub_max_rpc) {
				/* checked from the prefix, before any payload is kept */
				wisp_stat_add(&stats_of(sc)->oversized, 1);
				wisp_stat_add(&sc->shard->stats.peer_errors, 1);
				wisp_stream_reset(st);
				return;
			}
			r->plen = 0;
			if (len == 0) {
				/* An empty RPC: valid protobuf that asks nothing (go has
				 * sent them). It used to reset the stream, which a peer
				 * like js never reopens. */
				wisp_stat_add(&stats_of(sc)->rpcs_in, 1);
				continue;
			}
			r->cur = wisp_buf_alloc(node->pool, (size_t)len);
			r->need = (uint32_t)len;
			r->have = 0;
			if (!r->cur) {
				/* The pool is exhausted: skip this frame (counted; gossip
				 * recovers its messages) and keep the stream. Resetting it
				 * would cut the link for good: js keeps writing to a reset
				 * gossip stream without reopening it. */
				wisp_stat_add(&stats_of(sc)->nomem_skipped, 1);
			}
			continue;
		}
		size_t k = r->need - r->have;
		if (k > n)
			k = n;
		if (r->cur)
			memcpy(r->cur->data + r->have, p, k);
		r->have += (uint32_t)k;
		p += k;
		n -= k;
		if (r->have == r->need && r->cur) {
			r->cur->len = r->need;
			wisp_stat_add(&stats_of(sc)->rpcs_in, 1);
			wisp_stat_add(&stats_of(sc)->rpc_bytes_in, r->need);
			wisp_buf *b = r->cur;
			r->cur = NULL;
			to_actor(sc, WISP_GMSG_RPC, 0, b);
		}
	}
}

static void ps_fin(wisp_stream *st)
{
	wisp_stream_close(st);
}

static void ps_writable(wisp_stream *st)
{
	if (st->outbound)
		feed(sc_of(st));
}

static void ps_closed(wisp_stream *st, int err)
{
	(void)err;
	wisp_shard_conn *sc = sc_of(st);
	if (st->outbound) {
		if (sc->ps && sc->ps->out == st) {
			sc->ps->out = NULL;
		} else if (sc->ps) {
			/* refused or reset before it opened: the peer speaks no
			 * meshsub we offered, or the connection is going */
			sc->ps->opening = false;
			wisp_stat_add(&stats_of(sc)->open_failed, 1);
		}
		return;
	}
	reader *r = st->user;
	if (r) {
		wisp_buf_unref(r->cur);
		wisp_free(node_of(sc)->mem, r);
		st->user = NULL;
	}
}

static const wisp_stream_ops pubsub_ops = {
	.open = ps_open,
	.data = ps_data,
	.fin = ps_fin,
	.writable = ps_writable,
	.closed = ps_closed,
};

int wisp_pubsub_register(wisp_node *n)
{
	/* one stream each way per peer; a little room for a peer that
	 * replaces its stream */
	int err = wisp_proto_add(&n->protos, WISP_PROTO_MESHSUB_12, &pubsub_ops, n, 4);
	if (!err)
		err = wisp_proto_add(&n->protos, WISP_PROTO_MESHSUB_11, &pubsub_ops, n, 4);
	if (!err)
		err = wisp_proto_add(&n->protos, WISP_PROTO_MESHSUB_10, &pubsub_ops, n, 4);
	return err;
}

void wisp_pubsub_upgraded(wisp_shard_conn *sc)
{
	wisp_node *n = node_of(sc);
	static const char *const ids[] = { WISP_PROTO_MESHSUB_12, WISP_PROTO_MESHSUB_11, WISP_PROTO_MESHSUB_10 };
	const wisp_proto *protos[3];
	for (int i = 0; i < 3; i++)
		if (!(protos[i] = wisp_proto_find(&n->protos, ids[i], strlen(ids[i]))))
			return;
	struct wisp_pubsub_conn *ps = ps_get(sc);
	if (!ps || ps->out || ps->opening)
		return;
	wisp_stream *st;
	if (wisp_conn_open_stream_any(sc->conn, protos, 3, 0, &st) == WISP_OK)
		ps->opening = true;
}

void wisp_pubsub_peer_record(wisp_shard_conn *sc, const uint8_t *record, size_t len, uint64_t seq)
{
	struct wisp_pubsub_conn *ps = ps_get(sc);
	if (!ps)
		return;
	wisp_buf *b = wisp_buf_alloc(node_of(sc)->pool, len);
	if (!b)
		return; /* PX goes on without it: entries then carry the peer id only */
	memcpy(b->data, record, len);
	b->len = (uint32_t)len;
	ps->record_sent = true;
	to_actor(sc, WISP_GMSG_RECORD, seq, b);
}

void wisp_pubsub_closed(wisp_shard_conn *sc)
{
	struct wisp_pubsub_conn *ps = sc->ps;
	if (!ps)
		return;
	if (ps->up_sent || ps->record_sent)
		to_actor(sc, WISP_GMSG_PEER_DOWN, 0, NULL);
	for (int c = 0; c < WISP_PUBSUB_LEVELS; c++)
		wisp_bufring_clear(node_of(sc)->mem, &ps->r[c]);
	/* our stream (ps->out) is closed by the connection's teardown right after */
	wisp_free(node_of(sc)->mem, ps);
	sc->ps = NULL;
}
