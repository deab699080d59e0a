#include "net/conn.h"

#include <string.h>

#include <wisp/error.h>

#include "net/noise.h"
#include "runtime/mem.h"

#define NOISE_ID "/noise"
#define YAMUX_ID "/yamux/1.0.0"

/* Received bytes wait here until they make a whole message or frame: the
 * largest is a Noise frame with its length. */
#define RX_CAP WISP_NOISE_MAX_WIRE
/* Our frames carry at most this much plaintext, so a sealed frame fits the
 * pool's 64 KiB class exactly. */
#define OUT_MAX 65536u
#define PT_MAX (OUT_MAX - WISP_NOISE_FRAME_HEAD - WISP_NOISE_TAG_LEN)
/* A sealed frame this small is copied into a small buffer, so that a
 * connection's queue of small frames does not pin 64 KiB buffers. */
#define SMALL_FRAME 3584u

struct wisp_stream_neg {
	wisp_mss mss;
	const wisp_proto *offered[WISP_MSS_MAX_DIALER_PROTOS]; /* outbound: what we proposed */
	uint32_t acc_len;
	uint8_t acc[WISP_MSS_MAX_MSG + 16];
};

struct wisp_conn {
	const wisp_mem *mem;
	wisp_conn_config cfg;
	wisp_conn_callbacks cb;
	void *ctx;
	void *user;
	bool dialer;
	enum wisp_conn_state state;
	enum wisp_conn_state failed_in;
	int err;
	bool has_expect;
	wisp_peer_id expect;
	wisp_mss mss; /* /noise, then /yamux/1.0.0 when not agreed in Noise */
	wisp_noise *noise;
	bool hs_our_turn; /* Noise: our message is next; the peer must wait for it */
	wisp_yamux *yamux;
	wisp_tstamp deadline;
	uint32_t rx_len;
	uint8_t *rx;
	uint32_t mux_len;
	uint8_t mux_acc[WISP_MSS_MAX_MSG + 16];
	wisp_stream *streams;      /* newest first */
	wisp_stream *streams_tail;
	wisp_stream *dead; /* closed, freed when the outermost call returns */
	uint32_t walk;             /* writable() walks so far */
	uint32_t depth;
	uint32_t proto_count[WISP_PROTO_MAX];
	size_t pending;      /* pulled, not yet taken by the kernel (the owner's count) */
	bool budget_blocked; /* a write was refused: wake the streams when it drains */
	wisp_conn_stats stats;
};

/* ---- protocol table ---------------------------------------------------- */

int wisp_proto_add(wisp_proto_table *t, const char *id, const wisp_stream_ops *ops, void *ctx, uint32_t max_streams)
{
	size_t len = strlen(id);
	if (len == 0 || len + 1 > WISP_MSS_MAX_MSG || !ops->closed || !ops->open || max_streams == 0)
		return WISP_ERR_INVALID_ARG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)id[i] < 0x20)
			return WISP_ERR_INVALID_ARG;
	if (wisp_proto_find(t, id, len))
		return WISP_ERR_EXISTS;
	if (t->n == WISP_PROTO_MAX)
		return WISP_ERR_LIMIT;
	wisp_proto *p = &t->p[t->n];
	p->id = id;
	p->ops = ops;
	p->ctx = ctx;
	p->max_streams = max_streams;
	p->index = t->n++;
	return WISP_OK;
}

const wisp_proto *wisp_proto_find(const wisp_proto_table *t, const char *id, size_t len)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (strlen(t->p[i].id) == len && memcmp(t->p[i].id, id, len) == 0)
			return &t->p[i];
	return NULL;
}

/* ---- config, lifecycle ------------------------------------------------- */

void wisp_conn_config_default(wisp_conn_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = WISP_CONN_CONFIG_VERSION;
	wisp_yamux_config_default(&c->yamux);
	c->handshake_timeout_ns = 10 * WISP_NS_PER_S;
	c->inline_muxer = true;
}

static int match_noise(void *ctx, const char *id, size_t len)
{
	(void)ctx;
	return len == strlen(NOISE_ID) && memcmp(id, NOISE_ID, len) == 0 ? 0 : -1;
}

static int fail(wisp_conn *c, int err)
{
	if (c->state != CONN_FAILED) {
		c->failed_in = c->state;
		c->state = CONN_FAILED;
		c->err = err;
	}
	return c->err;
}

int wisp_conn_new(wisp_conn **out, const wisp_mem *mem, const wisp_conn_config *cfg, bool dialer,
		  const wisp_peer_id *expect, const wisp_conn_callbacks *cb, void *ctx, wisp_tstamp now)
{
	if (cfg->version != WISP_CONN_CONFIG_VERSION || !cfg->identity || !cfg->protos || !cfg->pool)
		return WISP_ERR_INVALID_ARG;
	wisp_conn *c = wisp_calloc(mem, 1, sizeof(*c));
	if (!c)
		return WISP_ERR_NOMEM;
	c->rx = wisp_malloc(mem, RX_CAP);
	if (!c->rx) {
		wisp_free(mem, c);
		return WISP_ERR_NOMEM;
	}
	c->mem = mem;
	c->cfg = *cfg;
	if (cb)
		c->cb = *cb;
	c->ctx = ctx;
	c->dialer = dialer;
	if (expect) {
		c->has_expect = true;
		c->expect = *expect;
	}
	c->deadline = now + cfg->handshake_timeout_ns;
	c->state = CONN_EXPECT_SECURITY;
	if (dialer) {
		static const char *const sec[] = { NOISE_ID };
		int err = wisp_mss_dialer_init(&c->mss, sec, 1);
		if (err) {
			wisp_free(mem, c->rx);
			wisp_free(mem, c);
			return err;
		}
	} else {
		wisp_mss_listener_init(&c->mss, match_noise, NULL);
	}
	*out = c;
	return WISP_OK;
}

static void stream_free(wisp_conn *c, wisp_stream *s)
{
	wisp_free(c->mem, s->neg);
	wisp_free(c->mem, s);
}

static void reap_dead(wisp_conn *c)
{
	while (c->dead) {
		wisp_stream *s = c->dead;
		c->dead = s->next;
		stream_free(c, s);
	}
}

static void unlink_stream(wisp_conn *c, wisp_stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		c->streams_tail = s->prev;
	s->prev = s->next = NULL;
}

static void append_stream(wisp_conn *c, wisp_stream *s)
{
	s->next = NULL;
	s->prev = c->streams_tail;
	if (c->streams_tail)
		c->streams_tail->next = s;
	else
		c->streams = s;
	c->streams_tail = s;
}

/* The end of a stream: tell its handler if it has one, release its slot,
 * and park its memory until the outermost call returns. */
static void stream_end(wisp_conn *c, wisp_stream *s, int err)
{
	if (s->state == STREAM_CLOSED)
		return;
	bool visible = s->state == STREAM_OPEN || s->outbound;
	s->state = STREAM_CLOSED;
	if (s->counted) {
		c->proto_count[s->proto->index]--;
		s->counted = false;
	}
	unlink_stream(c, s);
	s->next = c->dead;
	c->dead = s;
	if (visible)
		s->proto->ops->closed(s, s->close_err ? s->close_err : err);
}

void wisp_conn_free(wisp_conn *c)
{
	if (!c)
		return;
	c->depth++;
	int err = c->err ? c->err : WISP_ERR_CLOSED;
	while (c->streams)
		stream_end(c, c->streams, err);
	reap_dead(c);
	wisp_yamux_free(c->yamux);
	wisp_noise_free(c->noise);
	wisp_free(c->mem, c->rx);
	wisp_free(c->mem, c);
}

/* ---- streams: negotiation ---------------------------------------------- */

static int match_proto(void *ctx, const char *id, size_t len)
{
	wisp_stream *s = ctx;
	wisp_conn *c = s->conn;
	const wisp_proto *p = wisp_proto_find(c->cfg.protos, id, len);
	if (!p || p->outbound_only) {
		c->stats.streams_refused++;
		return -1;
	}
	if (c->proto_count[p->index] >= p->max_streams) {
		/* Over the per-connection cap the peer hears "na", as for a
		 * protocol we do not speak: it may retry later. */
		c->stats.streams_capped++;
		return -1;
	}
	return (int)p->index;
}

static int flush_neg(wisp_stream *s)
{
	wisp_conn *c = s->conn;
	uint8_t out[2 * (WISP_MSS_MAX_MSG + 16)];
	size_t n = wisp_mss_write(&s->neg->mss, out, sizeof(out));
	if (n == 0)
		return WISP_OK;
	return wisp_yamux_write_copy(c->yamux, s->id, c->cfg.pool, out, n);
}

static wisp_stream *stream_new(wisp_conn *c, bool outbound)
{
	wisp_stream *s = wisp_calloc(c->mem, 1, sizeof(*s));
	if (!s)
		return NULL;
	s->neg = wisp_malloc(c->mem, sizeof(*s->neg));
	if (!s->neg) {
		wisp_free(c->mem, s);
		return NULL;
	}
	s->neg->acc_len = 0;
	s->conn = c;
	s->outbound = outbound;
	s->state = STREAM_EXPECT_NEGOTIATION;
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	else
		c->streams_tail = s;
	c->streams = s;
	return s;
}

/* Negotiation is over: the handler takes the stream. */
static void stream_opened(wisp_conn *c, wisp_stream *s)
{
	if (!s->outbound) {
		s->proto = &c->cfg.protos->p[wisp_mss_selected(&s->neg->mss)];
		c->proto_count[s->proto->index]++;
		s->counted = true;
		c->stats.streams_in++;
	} else {
		/* The peer took one of our proposals: its slot moves to it. */
		const wisp_proto *got = s->neg->offered[wisp_mss_selected(&s->neg->mss)];
		if (got != s->proto) {
			c->proto_count[s->proto->index]--;
			c->proto_count[got->index]++;
			s->proto = got;
		}
		c->stats.streams_out++;
	}
	s->state = STREAM_OPEN;
	if (s->proto->ops->open(s) < 0) {
		wisp_stream_reset(s);
		return;
	}
}

static void neg_failed(wisp_conn *c, wisp_stream *s, int err)
{
	c->stats.negotiation_errors++;
	if (s->outbound)
		s->close_err = err;
	if (wisp_yamux_reset(c->yamux, s->id) != WISP_OK)
		stream_end(c, s, err);
}

/* Bytes for a stream still negotiating. Whatever follows the end of the
 * negotiation goes to the handler. */
static void neg_data(wisp_conn *c, wisp_stream *s, const uint8_t *p, size_t n)
{
	struct wisp_stream_neg *neg = s->neg;
	while (n && s->state == STREAM_EXPECT_NEGOTIATION) {
		size_t take = sizeof(neg->acc) - neg->acc_len;
		if (take > n)
			take = n;
		memcpy(neg->acc + neg->acc_len, p, take);
		neg->acc_len += (uint32_t)take;
		p += take;
		n -= take;
		/* Negotiation bytes reopen the window at once. */
		(void)wisp_yamux_consumed(c->yamux, s->id, take);
		ssize_t r = wisp_mss_read(&neg->mss, neg->acc, neg->acc_len);
		if (r < 0) {
			neg_failed(c, s, (int)r);
			return;
		}
		memmove(neg->acc, neg->acc + r, neg->acc_len - (size_t)r);
		neg->acc_len -= (uint32_t)r;
		int err = flush_neg(s);
		if (err) {
			neg_failed(c, s, err);
			return;
		}
		if (!wisp_mss_done(&neg->mss)) {
			if (r == 0 && neg->acc_len == sizeof(neg->acc)) {
				neg_failed(c, s, WISP_ERR_PROTOCOL);
				return;
			}
			continue;
		}
		/* Bytes that came with the last negotiation message were
		 * credited already: the handler's consumed() skips them. */
		uint32_t left = neg->acc_len;
		uint8_t early[sizeof(neg->acc)];
		memcpy(early, neg->acc, left);
		s->credit_skip = left;
		stream_opened(c, s);
		if (s->state != STREAM_OPEN)
			return;
		if (left)
			s->proto->ops->data(s, early, left);
		if (s->state == STREAM_OPEN && s->fin_pending && s->proto->ops->fin)
			s->proto->ops->fin(s);
	}
	if (n && s->state == STREAM_OPEN)
		s->proto->ops->data(s, p, n);
}

/* ---- yamux callbacks ---------------------------------------------------- */

static int y_open(void *ctx, uint32_t id)
{
	wisp_conn *c = ctx;
	wisp_stream *s = stream_new(c, false);
	if (!s)
		return WISP_ERR_NOMEM; /* refused: the peer gets an RST */
	s->id = id;
	wisp_mss_listener_init(&s->neg->mss, match_proto, s);
	/* our header goes out with the answer to the first proposal */
	(void)wisp_yamux_set_user(c->yamux, id, s);
	return WISP_OK;
}

static int y_data(void *ctx, uint32_t id, void *user, const uint8_t *p, size_t n)
{
	wisp_conn *c = ctx;
	wisp_stream *s = user;
	(void)id;
	if (!s || s->state == STREAM_CLOSED) {
		(void)wisp_yamux_consumed(c->yamux, id, n);
		return WISP_OK;
	}
	if (s->state == STREAM_EXPECT_NEGOTIATION)
		neg_data(c, s, p, n);
	else
		s->proto->ops->data(s, p, n);
	return WISP_OK;
}

static void y_fin(void *ctx, uint32_t id, void *user)
{
	(void)ctx;
	(void)id;
	wisp_stream *s = user;
	if (!s)
		return;
	if (s->state == STREAM_EXPECT_NEGOTIATION)
		s->fin_pending = true;
	else if (s->state == STREAM_OPEN && s->proto->ops->fin)
		s->proto->ops->fin(s);
}

static void y_writable(void *ctx, uint32_t id, void *user)
{
	(void)ctx;
	(void)id;
	wisp_stream *s = user;
	if (s && s->state == STREAM_OPEN && s->proto->ops->writable)
		s->proto->ops->writable(s);
}

static void y_closed(void *ctx, uint32_t id, void *user, int err)
{
	wisp_conn *c = ctx;
	(void)id;
	wisp_stream *s = user;
	if (!s)
		return;
	if (s->state == STREAM_EXPECT_NEGOTIATION && s->outbound && !s->close_err)
		s->close_err = err ? err : WISP_ERR_REFUSED;
	stream_end(c, s, err);
}

static const wisp_yamux_callbacks ycb = {
	.stream_open = y_open,
	.stream_data = y_data,
	.stream_fin = y_fin,
	.stream_writable = y_writable,
	.stream_closed = y_closed,
};

/* ---- upgrade ----------------------------------------------------------- */

static int match_yamux(void *ctx, const char *id, size_t len)
{
	(void)ctx;
	return len == strlen(YAMUX_ID) && memcmp(id, YAMUX_ID, len) == 0 ? 0 : -1;
}

static int start_noise(wisp_conn *c)
{
	static const char *const muxers[] = { YAMUX_ID };
	wisp_noise_config nc = {
		.identity = c->cfg.identity,
		.expect_remote = c->has_expect ? &c->expect : NULL,
		.muxers = c->cfg.inline_muxer ? muxers : NULL,
		.n_muxers = c->cfg.inline_muxer ? 1 : 0,
	};
	int err = wisp_noise_new(&c->noise, c->mem, c->dialer, &nc);
	if (err)
		return err;
	c->state = CONN_EXPECT_HANDSHAKE;
	c->hs_our_turn = c->dialer; /* the initiator sends message 1 */
	return WISP_OK;
}

static int start_yamux(wisp_conn *c, wisp_tstamp now)
{
	int err = wisp_yamux_new(&c->yamux, c->mem, &c->cfg.yamux, c->dialer, &ycb, c, now);
	if (err)
		return err;
	c->state = CONN_OPEN;
	if (c->cb.upgraded)
		c->cb.upgraded(c->ctx, c);
	return WISP_OK;
}

/* The Noise handshake is complete. */
static int secured(wisp_conn *c, wisp_tstamp now)
{
	const char *mux = wisp_noise_muxer(c->noise);
	if (mux)
		return strcmp(mux, YAMUX_ID) == 0 ? start_yamux(c, now) : WISP_ERR_HANDSHAKE;
	/* No muxer agreed inside Noise: multistream-select over the secure
	 * channel. The security negotiation's output was sent long ago. */
	c->state = CONN_EXPECT_MUXER;
	c->mux_len = 0;
	if (c->dialer) {
		static const char *const mux_ids[] = { YAMUX_ID };
		return wisp_mss_dialer_init(&c->mss, mux_ids, 1);
	}
	wisp_mss_listener_init(&c->mss, match_yamux, NULL);
	return WISP_OK;
}

static int on_plaintext(wisp_conn *c, const uint8_t *p, size_t n, wisp_tstamp now)
{
	while (n && c->state == CONN_EXPECT_MUXER) {
		size_t take = sizeof(c->mux_acc) - c->mux_len;
		if (take > n)
			take = n;
		memcpy(c->mux_acc + c->mux_len, p, take);
		c->mux_len += (uint32_t)take;
		p += take;
		n -= take;
		ssize_t r = wisp_mss_read(&c->mss, c->mux_acc, c->mux_len);
		if (r < 0)
			return (int)r;
		memmove(c->mux_acc, c->mux_acc + r, c->mux_len - (size_t)r);
		c->mux_len -= (uint32_t)r;
		if (wisp_mss_done(&c->mss)) {
			int err = start_yamux(c, now);
			if (err)
				return err;
			if (c->mux_len) {
				err = wisp_yamux_read(c->yamux, c->mux_acc, c->mux_len, now);
				c->mux_len = 0;
				if (err)
					return err;
			}
		} else if (r == 0 && c->mux_len == sizeof(c->mux_acc)) {
			return WISP_ERR_PROTOCOL;
		}
	}
	if (n && c->state == CONN_OPEN)
		return wisp_yamux_read(c->yamux, p, n, now);
	return WISP_OK;
}

/* Consume whole messages and frames from rx. */
static int process(wisp_conn *c, wisp_tstamp now)
{
	size_t off = 0;
	int err = WISP_OK;
	while (off < c->rx_len && c->state != CONN_FAILED) {
		ssize_t r;
		if (c->state == CONN_EXPECT_SECURITY) {
			r = wisp_mss_read(&c->mss, c->rx + off, c->rx_len - off);
			if (r < 0) {
				err = (int)r;
				break;
			}
			off += (size_t)r;
			if (wisp_mss_done(&c->mss)) {
				err = start_noise(c);
				if (err)
					break;
				continue;
			}
			if (r == 0)
				break;
		} else if (c->state == CONN_EXPECT_HANDSHAKE) {
			r = wisp_noise_handshake_read(c->noise, c->rx + off, c->rx_len - off);
			if (r < 0) {
				err = (int)r;
				break;
			}
			off += (size_t)r;
			if (wisp_noise_done(c->noise)) {
				err = secured(c, now);
				if (err)
					break;
				continue;
			}
			if (r > 0) {
				c->hs_our_turn = true; /* XX alternates */
				continue;
			}
			/* Until our next message is out, the peer has nothing it
			 * may send (XX carries no early data before message 3):
			 * bytes now are out of turn, and left alone they would
			 * pile up in rx. */
			if (c->hs_our_turn && off < c->rx_len)
				err = WISP_ERR_HANDSHAKE;
			break;
		} else {
			uint8_t *pt;
			size_t pl;
			r = wisp_noise_open(c->noise, c->rx + off, c->rx_len - off, &pt, &pl);
			if (r < 0) {
				err = (int)r;
				break;
			}
			if (r == 0)
				break;
			off += (size_t)r;
			c->stats.frames_in++;
			err = on_plaintext(c, pt, pl, now);
			if (err)
				break;
		}
	}
	if (off) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= (uint32_t)off;
	}
	return err;
}

int wisp_conn_read(wisp_conn *c, const uint8_t *in, size_t n, wisp_tstamp now)
{
	if (c->state == CONN_FAILED)
		return c->err;
	c->depth++;
	int err = WISP_OK;
	while (n) {
		size_t take = RX_CAP - c->rx_len;
		if (take > n)
			take = n;
		memcpy(c->rx + c->rx_len, in, take);
		c->rx_len += (uint32_t)take;
		in += take;
		n -= take;
		err = process(c, now);
		if (err)
			break;
		if (c->rx_len == RX_CAP) {
			/* a full buffer always holds a whole message or frame */
			err = WISP_ERR_INTERNAL;
			break;
		}
	}
	if (err)
		fail(c, err);
	if (--c->depth == 0)
		reap_dead(c);
	return err;
}

/* ---- output ------------------------------------------------------------ */

/* Before Noise's transport phase: multistream and handshake messages, raw. */
static wisp_buf *pull_raw(wisp_conn *c, wisp_tstamp now, int *err)
{
	wisp_buf *b = wisp_buf_alloc(c->cfg.pool, 4096);
	if (!b) {
		*err = WISP_ERR_NOMEM;
		return NULL;
	}
	size_t n = wisp_mss_write(&c->mss, b->data, b->cap);
	if (c->noise) {
		ssize_t r = wisp_noise_handshake_write(c->noise, b->data + n, b->cap - n);
		if (r < 0) {
			wisp_buf_unref(b);
			*err = fail(c, (int)r);
			return NULL;
		}
		n += (size_t)r;
		if (r > 0)
			c->hs_our_turn = false;
		if (wisp_noise_done(c->noise)) {
			int e = secured(c, now);
			if (e) {
				wisp_buf_unref(b);
				*err = fail(c, e);
				return NULL;
			}
		}
	}
	if (n == 0) {
		wisp_buf_unref(b);
		return NULL;
	}
	b->len = (uint32_t)n;
	return b;
}

static bool transport(const wisp_conn *c)
{
	return c->state == CONN_EXPECT_MUXER || c->state == CONN_OPEN;
}

bool wisp_conn_wants_write(const wisp_conn *c)
{
	if (c->state == CONN_FAILED)
		return false;
	if (wisp_mss_pending(&c->mss))
		return true;
	if (c->yamux && wisp_yamux_wants_write(c->yamux))
		return true;
	/* a handshake message may be due: pull finds out cheaply */
	return !transport(c) && c->noise;
}

size_t wisp_conn_queued(const wisp_conn *c)
{
	return wisp_mss_pending(&c->mss) + (c->yamux ? wisp_yamux_queued_bytes(c->yamux) : 0);
}

wisp_buf *wisp_conn_pull(wisp_conn *c, wisp_tstamp now, int *err)
{
	*err = WISP_OK;
	if (c->state == CONN_FAILED) {
		*err = c->err;
		return NULL;
	}
	c->depth++;
	wisp_buf *b = NULL;
	if (!transport(c)) {
		b = pull_raw(c, now, err);
		goto out;
	}
	if (!wisp_mss_pending(&c->mss) && !(c->yamux && wisp_yamux_wants_write(c->yamux)))
		goto out;
	/* Plaintext goes straight into the buffer, after room for the frame
	 * length, and is sealed in place. */
	b = wisp_buf_alloc(c->cfg.pool, OUT_MAX);
	if (!b) {
		*err = WISP_ERR_NOMEM;
		goto out;
	}
	uint8_t *pt = b->data + WISP_NOISE_FRAME_HEAD;
	size_t n = wisp_mss_write(&c->mss, pt, PT_MAX);
	while (c->yamux && n < PT_MAX) {
		ssize_t r = wisp_yamux_pull(c->yamux, pt + n, PT_MAX - n, now);
		if (r < 0) {
			if (r == WISP_ERR_NOBUF)
				break; /* less than a header's room left */
			*err = fail(c, (int)r);
			wisp_buf_unref(b);
			b = NULL;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n == 0) {
		wisp_buf_unref(b);
		b = NULL;
		goto out;
	}
	ssize_t sealed = wisp_noise_seal(c->noise, b->data, b->cap, pt, n);
	if (sealed < 0) {
		*err = fail(c, (int)sealed);
		wisp_buf_unref(b);
		b = NULL;
		goto out;
	}
	b->len = (uint32_t)sealed;
	c->stats.frames_out++;
	if (b->len <= SMALL_FRAME) {
		wisp_buf *small = wisp_buf_alloc(c->cfg.pool, b->len);
		if (small) {
			memcpy(small->data, b->data, b->len);
			small->len = b->len;
			wisp_buf_unref(b);
			b = small;
		}
	}
out:
	if (--c->depth == 0)
		reap_dead(c);
	return b;
}

/* ---- timers ------------------------------------------------------------ */

wisp_tstamp wisp_conn_expiry(const wisp_conn *c)
{
	if (c->state == CONN_FAILED)
		return UINT64_MAX;
	if (c->state != CONN_OPEN)
		return c->deadline;
	return wisp_yamux_expiry(c->yamux);
}

int wisp_conn_handle_expiry(wisp_conn *c, wisp_tstamp now)
{
	if (c->state == CONN_FAILED)
		return c->err;
	if (c->state != CONN_OPEN) {
		if (now >= c->deadline)
			return fail(c, WISP_ERR_TIMEOUT);
		return WISP_OK;
	}
	c->depth++;
	int err = wisp_yamux_handle_expiry(c->yamux, now);
	if (err)
		fail(c, err);
	if (--c->depth == 0)
		reap_dead(c);
	return err;
}

/* ---- streams: API ------------------------------------------------------ */

int wisp_conn_open_stream(wisp_conn *c, const wisp_proto *proto, uint64_t cookie, wisp_stream **out)
{
	return wisp_conn_open_stream_any(c, &proto, 1, cookie, out);
}

int wisp_conn_open_stream_any(wisp_conn *c, const wisp_proto *const *protos, size_t n, uint64_t cookie,
			      wisp_stream **out)
{
	if (c->state == CONN_FAILED)
		return WISP_ERR_CLOSED;
	if (c->state != CONN_OPEN)
		return WISP_ERR_STATE;
	if (n == 0 || n > WISP_MSS_MAX_DIALER_PROTOS)
		return WISP_ERR_INVALID_ARG;
	const wisp_proto *proto = protos[0];
	if (c->proto_count[proto->index] >= proto->max_streams)
		return WISP_ERR_LIMIT;
	wisp_stream *s = stream_new(c, true);
	if (!s)
		return WISP_ERR_NOMEM;
	s->proto = proto;
	s->cookie = cookie;
	const char *ids[WISP_MSS_MAX_DIALER_PROTOS];
	for (size_t i = 0; i < n; i++) {
		ids[i] = protos[i]->id;
		s->neg->offered[i] = protos[i];
	}
	int err = wisp_mss_dialer_init(&s->neg->mss, ids, n);
	if (!err)
		err = wisp_yamux_open(c->yamux, s, &s->id);
	if (err) {
		unlink_stream(c, s);
		stream_free(c, s);
		return err;
	}
	c->proto_count[proto->index]++;
	s->counted = true;
	err = flush_neg(s);
	if (err) {
		/* the stream exists in yamux now: reset it, closed() follows */
		s->close_err = err;
		(void)wisp_yamux_reset(c->yamux, s->id);
		return WISP_OK;
	}
	if (out)
		*out = s;
	return WISP_OK;
}

static bool over_budget(wisp_conn *c, size_t more)
{
	if (!c->cfg.send_budget || wisp_conn_queued(c) + c->pending + more <= c->cfg.send_budget)
		return false;
	c->stats.budget_refused++;
	c->budget_blocked = true;
	return true;
}

int wisp_stream_write(wisp_stream *s, wisp_buf *b, size_t off, size_t len)
{
	if (s->state != STREAM_OPEN)
		return WISP_ERR_STATE;
	if (over_budget(s->conn, len))
		return WISP_ERR_LIMIT;
	return wisp_yamux_write(s->conn->yamux, s->id, b, off, len);
}

int wisp_stream_write_copy(wisp_stream *s, const void *p, size_t n)
{
	if (s->state != STREAM_OPEN)
		return WISP_ERR_STATE;
	if (over_budget(s->conn, n))
		return WISP_ERR_LIMIT;
	return wisp_yamux_write_copy(s->conn->yamux, s->id, s->conn->cfg.pool, p, n);
}

int wisp_stream_answer_copy(wisp_stream *s, const void *p, size_t n)
{
	if (s->state != STREAM_OPEN)
		return WISP_ERR_STATE;
	return wisp_yamux_write_copy(s->conn->yamux, s->id, s->conn->cfg.pool, p, n);
}

int wisp_stream_answer(wisp_stream *s, wisp_buf *b, size_t off, size_t len)
{
	if (s->state != STREAM_OPEN)
		return WISP_ERR_STATE;
	return wisp_yamux_write(s->conn->yamux, s->id, b, off, len);
}

bool wisp_stream_conn_room(const wisp_stream *s)
{
	wisp_conn *c = s->conn;
	if (!c->cfg.send_budget || wisp_conn_queued(c) + c->pending <= c->cfg.send_budget / 2)
		return true;
	c->budget_blocked = true; /* the caller waits for writable() */
	return false;
}

bool wisp_conn_budget_blocked(const wisp_conn *c)
{
	return c->budget_blocked;
}

void wisp_conn_set_pending(wisp_conn *c, size_t bytes)
{
	c->pending = bytes;
	if (!c->budget_blocked || c->state != CONN_OPEN || wisp_conn_queued(c) + c->pending > c->cfg.send_budget / 2)
		return;
	/* Drained to half the budget: every stream may write again. A
	 * handler that writes here may block the budget again; the walk
	 * still reaches every stream once. Each stream visited moves to the
	 * back of the list, so the next walk begins with those that found
	 * the budget full in this one: with the newest first every time, a
	 * few busy new streams kept older ones from writing for seconds (the
	 * request/response sync found it). Handlers may close or open
	 * streams meanwhile: the walk goes by its mark, from the head. */
	c->budget_blocked = false;
	c->depth++;
	uint32_t walk = ++c->walk;
	for (;;) {
		wisp_stream *s = c->streams;
		while (s && s->walk == walk)
			s = s->next;
		if (!s)
			break;
		s->walk = walk;
		unlink_stream(c, s);
		append_stream(c, s);
		if (s->state == STREAM_OPEN && s->proto->ops->writable)
			s->proto->ops->writable(s);
	}
	if (--c->depth == 0)
		reap_dead(c);
}

void wisp_stream_consumed(wisp_stream *s, size_t n)
{
	if (s->state == STREAM_CLOSED)
		return;
	size_t skip = n < s->credit_skip ? n : s->credit_skip;
	s->credit_skip -= (uint32_t)skip;
	n -= skip;
	if (n)
		(void)wisp_yamux_consumed(s->conn->yamux, s->id, n);
}

void wisp_stream_close(wisp_stream *s)
{
	if (s->state != STREAM_CLOSED)
		(void)wisp_yamux_close(s->conn->yamux, s->id);
}

void wisp_stream_reset(wisp_stream *s)
{
	if (s->state == STREAM_CLOSED)
		return;
	wisp_conn *c = s->conn;
	if (wisp_yamux_reset(c->yamux, s->id) != WISP_OK)
		stream_end(c, s, WISP_ERR_CLOSED);
	if (c->depth == 0)
		reap_dead(c);
}

size_t wisp_stream_queued(const wisp_stream *s)
{
	return s->state == STREAM_CLOSED ? 0 : wisp_yamux_stream_queued(s->conn->yamux, s->id);
}

/* ---- accessors --------------------------------------------------------- */

void wisp_conn_go_away(wisp_conn *c)
{
	if (c->yamux && c->state == CONN_OPEN)
		(void)wisp_yamux_go_away(c->yamux, 0);
}

bool wisp_conn_is_open(const wisp_conn *c)
{
	return c->state == CONN_OPEN;
}

bool wisp_conn_is_dialer(const wisp_conn *c)
{
	return c->dialer;
}

const wisp_peer_id *wisp_conn_remote_id(const wisp_conn *c)
{
	return c->noise ? wisp_noise_remote_id(c->noise) : NULL;
}

const wisp_pubkey *wisp_conn_remote_key(const wisp_conn *c)
{
	return c->noise ? wisp_noise_remote_key(c->noise) : NULL;
}

const char *wisp_conn_stage(const wisp_conn *c)
{
	enum wisp_conn_state st = c->state == CONN_FAILED ? c->failed_in : c->state;
	switch (st) {
	case CONN_EXPECT_SECURITY:
		return "security";
	case CONN_EXPECT_HANDSHAKE:
		return "handshake";
	case CONN_EXPECT_MUXER:
		return "muxer";
	default:
		return "session";
	}
}

int wisp_conn_err(const wisp_conn *c)
{
	return c->state == CONN_FAILED ? c->err : WISP_OK;
}

bool wisp_conn_input_partial(const wisp_conn *c)
{
	return c->rx_len != 0 || (c->state == CONN_EXPECT_MUXER && c->mux_len != 0);
}

uint32_t wisp_conn_proto_streams(const wisp_conn *c, const wisp_proto *proto)
{
	return c->proto_count[proto->index];
}

void wisp_conn_stats_get(const wisp_conn *c, wisp_conn_stats *out, wisp_yamux_stats *ymx)
{
	*out = c->stats;
	if (ymx) {
		if (c->yamux)
			wisp_yamux_stats_get(c->yamux, ymx);
		else
			memset(ymx, 0, sizeof(*ymx));
	}
}

void *wisp_conn_user(const wisp_conn *c)
{
	return c->user;
}

void wisp_conn_set_user(wisp_conn *c, void *user)
{
	c->user = user;
}
