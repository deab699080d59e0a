#include "net/yamux.h"

#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"

/* ---- types ------------------------------------------------------------- */

/* Session input, named by what it expects next. */
enum yamux_rstate {
	YAMUX_EXPECT_HEADER,  /* hdr[0..hlen) buffered */
	YAMUX_EXPECT_PAYLOAD, /* rx_left payload bytes of the current data frame */
	YAMUX_EXPECT_NOTHING, /* failed */
};

/* A stream's receive half. */
enum stream_rx {
	RX_EXPECT_DATA, /* the peer may send */
	RX_EXPECT_END,  /* the peer's FIN arrived */
};

/* A stream's send half. */
enum stream_tx {
	TX_EXPECT_WRITES, /* open for writes */
	TX_EXPECT_DRAIN,  /* close() called: queued data, then FIN */
	TX_EXPECT_END,    /* FIN pulled */
	TX_EXPECT_RST,    /* reset: only the RST is left to pull */
};

/* Frames a stream owes the peer (emitted together as one window update). */
enum {
	P_SYN = 1,
	P_ACK = 2,
	P_WU = 4,
	P_FIN = 8,
	P_RST = 16,
};

/* A data frame is not cut shorter than this to fill the end of a pull's
 * buffer (the rest goes in the next pull), unless it would be the pull's
 * first frame: a small cap still makes progress. */
#define MIN_CHUNK 256u
/* Released stream structs kept for reuse. */
#define SPARE_MAX 32u

struct seg {
	wisp_buf *b;
	uint32_t off, len;
};

struct ystream {
	uint32_t id;
	uint8_t pend;     /* P_* */
	uint8_t rx, tx;   /* enum stream_rx, enum stream_tx */
	bool outbound;
	bool acked;       /* inbound, or ACK received (or no longer counted in the backlog) */
	bool detached;    /* stream_closed delivered: invisible to the API */
	bool dead;        /* out of the table; memory released after the outermost call */
	bool in_ctrl, in_data;
	bool above_mark;
	void *user;
	uint32_t send_win;   /* bytes we may send */
	uint32_t recv_avail; /* bytes the peer may send */
	uint32_t recv_win;   /* window size: recv_avail + unconsumed + credit */
	uint32_t unconsumed; /* delivered, not consumed */
	uint32_t credit;     /* consumed (or grown), not yet granted */
	wisp_tstamp epoch;   /* last window update we sent (auto-tune) */
	size_t queued;
	struct seg *segs;    /* ring of seg_cap (power of two) */
	uint32_t seg_cap, seg_head, seg_n;
	struct ystream *cprev, *cnext; /* ctrl list */
	struct ystream *dprev, *dnext; /* data list */
	struct ystream *gnext;         /* graveyard / spares / fail list */
};

struct slist {
	struct ystream *head, *tail;
};

struct wisp_yamux {
	const wisp_mem *mem;
	wisp_yamux_config cfg;
	wisp_yamux_callbacks cb;
	void *ctx;
	bool client;
	int err;
	unsigned depth; /* API calls on the stack (callbacks re-enter) */

	/* input */
	enum yamux_rstate rstate;
	uint8_t hdr[WISP_YAMUX_HEADER_LEN];
	uint8_t hlen;
	bool rx_drop;     /* discard the current payload */
	uint16_t rx_flags;
	uint32_t rx_id;
	uint32_t rx_left;

	/* streams: open addressing, linear probing, backward-shift deletion */
	struct ystream **tab;
	uint32_t tab_bits, tab_max_bits;
	uint32_t nstreams;
	uint64_t next_id;       /* our next stream id */
	uint32_t max_remote_id; /* highest id the peer opened */
	uint32_t unacked;
	uint32_t refused_run;
	struct slist ctrl, data;
	uint32_t nctrl;
	size_t queued_data;
	struct ystream *grave, *spare;
	uint32_t nspare;

	/* session control frames (ping replies, refusal RSTs) */
	uint8_t (*ring)[WISP_YAMUX_HEADER_LEN];
	uint32_t ring_cap, ring_head, ring_n, ring_max;

	/* ping */
	bool ping_queued, ping_out;
	uint32_t ping_id, next_ping_id;
	wisp_tstamp ping_started, ping_sent_at, next_rtt_at;
	uint64_t rtt;

	wisp_tstamp now, last_rx;

	bool local_goaway, remote_goaway, goaway_queued;
	uint32_t goaway_code;

	wisp_yamux_stats st;
};

/* ---- small helpers ----------------------------------------------------- */

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static inline wisp_tstamp sat_add(wisp_tstamp t, uint64_t d)
{
	return t > WISP_YAMUX_NEVER - d ? WISP_YAMUX_NEVER : t + d;
}

static inline bool remote_parity(const wisp_yamux *y, uint32_t id)
{
	/* the client opens odd ids: a client's peer opens even ones */
	return (id & 1) != (uint32_t)y->client;
}

static void enter(wisp_yamux *y)
{
	y->depth++;
}

static void release_stream_mem(wisp_yamux *y, struct ystream *s)
{
	if (y->nspare < SPARE_MAX) {
		s->gnext = y->spare;
		y->spare = s;
		y->nspare++;
		return;
	}
	wisp_free(y->mem, s->segs);
	wisp_free(y->mem, s);
}

static void leave(wisp_yamux *y)
{
	if (--y->depth)
		return;
	while (y->grave) {
		struct ystream *s = y->grave;
		y->grave = s->gnext;
		release_stream_mem(y, s);
	}
}

/* ---- lists ------------------------------------------------------------- */

static void ctrl_add(wisp_yamux *y, struct ystream *s)
{
	if (s->in_ctrl)
		return;
	s->in_ctrl = true;
	s->cnext = NULL;
	s->cprev = y->ctrl.tail;
	if (y->ctrl.tail)
		y->ctrl.tail->cnext = s;
	else
		y->ctrl.head = s;
	y->ctrl.tail = s;
	y->nctrl++;
}

static void ctrl_del(wisp_yamux *y, struct ystream *s)
{
	if (!s->in_ctrl)
		return;
	s->in_ctrl = false;
	if (s->cprev)
		s->cprev->cnext = s->cnext;
	else
		y->ctrl.head = s->cnext;
	if (s->cnext)
		s->cnext->cprev = s->cprev;
	else
		y->ctrl.tail = s->cprev;
	y->nctrl--;
}

static void data_add(wisp_yamux *y, struct ystream *s)
{
	if (s->in_data)
		return;
	s->in_data = true;
	s->dnext = NULL;
	s->dprev = y->data.tail;
	if (y->data.tail)
		y->data.tail->dnext = s;
	else
		y->data.head = s;
	y->data.tail = s;
}

static void data_del(wisp_yamux *y, struct ystream *s)
{
	if (!s->in_data)
		return;
	s->in_data = false;
	if (s->dprev)
		s->dprev->dnext = s->dnext;
	else
		y->data.head = s->dnext;
	if (s->dnext)
		s->dnext->dprev = s->dprev;
	else
		y->data.tail = s->dprev;
}

/* A stream is on the data list exactly when pull() can send some of its
 * data: queued bytes, send window, SYN already out, not reset. */
static void data_check(wisp_yamux *y, struct ystream *s)
{
	if (s->queued && s->send_win && !(s->pend & (P_SYN | P_RST)))
		data_add(y, s);
	else
		data_del(y, s);
}

/* ---- stream table ------------------------------------------------------ */

static inline uint32_t tab_home(const wisp_yamux *y, uint32_t id)
{
	/* Fibonacci hashing: the high bits of id * 2^32/phi spread sequential
	 * ids of either parity over the whole table. */
	return (uint32_t)(id * UINT32_C(2654435769)) >> (32 - y->tab_bits);
}

static struct ystream *lookup(const wisp_yamux *y, uint32_t id)
{
	uint32_t mask = (UINT32_C(1) << y->tab_bits) - 1;
	for (uint32_t i = tab_home(y, id);; i = (i + 1) & mask) {
		struct ystream *s = y->tab[i];
		if (!s || s->id == id)
			return s;
	}
}

static void tab_put(wisp_yamux *y, struct ystream *s)
{
	uint32_t mask = (UINT32_C(1) << y->tab_bits) - 1;
	uint32_t i = tab_home(y, s->id);
	while (y->tab[i])
		i = (i + 1) & mask;
	y->tab[i] = s;
}

/* Room for one more stream, growing the table to keep it at most half full.
 * Errors: WISP_ERR_NOMEM. */
static int tab_reserve(wisp_yamux *y)
{
	if ((y->nstreams + 1) * 2 <= (UINT32_C(1) << y->tab_bits) || y->tab_bits >= y->tab_max_bits)
		return WISP_OK;
	uint32_t old_n = UINT32_C(1) << y->tab_bits;
	struct ystream **old = y->tab;
	struct ystream **t = wisp_calloc(y->mem, (size_t)old_n * 2, sizeof(*t));
	if (!t)
		return WISP_ERR_NOMEM;
	y->tab = t;
	y->tab_bits++;
	for (uint32_t i = 0; i < old_n; i++)
		if (old[i])
			tab_put(y, old[i]);
	wisp_free(y->mem, old);
	return WISP_OK;
}

static void tab_del(wisp_yamux *y, uint32_t id)
{
	uint32_t mask = (UINT32_C(1) << y->tab_bits) - 1;
	uint32_t i = tab_home(y, id);
	while (y->tab[i]->id != id)
		i = (i + 1) & mask;
	/* Backward shift: pull later entries of the probe run into the hole
	 * unless their home lies cyclically in (hole, j]. */
	for (uint32_t j = i;;) {
		j = (j + 1) & mask;
		if (!y->tab[j])
			break;
		uint32_t k = tab_home(y, y->tab[j]->id);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		y->tab[i] = y->tab[j];
		i = j;
	}
	y->tab[i] = NULL;
}

/* ---- verify build ------------------------------------------------------ */

#ifdef WISP_VERIFY
#include <stdio.h>
#include <stdlib.h>

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "yamux invariant broken: %s\n", what);
		abort();
	}
}

/* Cross-checks the table, the lists and every stream's window accounting. */
static void verify(const wisp_yamux *y)
{
	uint32_t n = UINT32_C(1) << y->tab_bits, count = 0, unacked = 0, nctrl = 0;
	size_t queued = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct ystream *s = y->tab[i];
		if (!s)
			continue;
		count++;
		check(lookup(y, s->id) == s, "lookup finds every entry");
		check(!s->dead, "no dead stream in the table");
		queued += s->queued;
		if (s->outbound && !s->acked)
			unacked++;
		/* a data frame's length is charged at its header; its bytes
		 * count as unconsumed as they are delivered */
		uint64_t in_flight = y->rstate == YAMUX_EXPECT_PAYLOAD && !y->rx_drop &&
						     y->rx_id == s->id ?
					     y->rx_left :
					     0;
		if (s->rx == RX_EXPECT_DATA && s->tx != TX_EXPECT_RST)
			check((uint64_t)s->recv_avail + s->unconsumed + s->credit + in_flight ==
				      s->recv_win,
			      "recv_avail + unconsumed + credit + in flight == recv_win");
		check(s->in_data == (s->queued && s->send_win && !(s->pend & (P_SYN | P_RST))),
		      "data list membership");
		if (s->pend)
			check(s->in_ctrl, "pending control frames are on the ctrl list");
	}
	for (const struct ystream *s = y->ctrl.head; s; s = s->cnext)
		nctrl++;
	check(count == y->nstreams, "stream count");
	check(unacked == y->unacked, "ack backlog count");
	check(nctrl == y->nctrl, "ctrl list length");
	check(queued == y->queued_data, "queued bytes");
}
#else
static inline void verify(const wisp_yamux *y)
{
	(void)y;
}
#endif

/* ---- streams ----------------------------------------------------------- */

static struct ystream *stream_alloc(wisp_yamux *y)
{
	struct ystream *s = y->spare;
	struct seg *segs = NULL;
	uint32_t seg_cap = 0;
	if (s) {
		y->spare = s->gnext;
		y->nspare--;
		segs = s->segs;
		seg_cap = s->seg_cap;
		memset(s, 0, sizeof(*s));
	} else {
		s = wisp_calloc(y->mem, 1, sizeof(*s));
		if (!s)
			return NULL;
	}
	s->segs = segs;
	s->seg_cap = seg_cap;
	return s;
}

static void segs_release(wisp_yamux *y, struct ystream *s)
{
	while (s->seg_n) {
		wisp_buf_unref(s->segs[s->seg_head].b);
		s->seg_head = (s->seg_head + 1) & (s->seg_cap - 1);
		s->seg_n--;
	}
	s->seg_head = 0;
	y->queued_data -= s->queued;
	s->queued = 0;
}

/* Our stream no longer counts in the ACK backlog. */
static void unack_drop(wisp_yamux *y, struct ystream *s)
{
	if (s->outbound && !s->acked) {
		s->acked = true;
		y->unacked--;
	}
}

/* Take s out of the session; its memory goes after the outermost call. */
static void stream_drop(wisp_yamux *y, struct ystream *s)
{
	if (s->dead)
		return;
	tab_del(y, s->id);
	ctrl_del(y, s);
	data_del(y, s);
	segs_release(y, s);
	unack_drop(y, s);
	y->nstreams--;
	s->dead = true;
	s->gnext = y->grave;
	y->grave = s;
}

/* Deliver stream_closed (once) and hide s from the API. */
static void detach(wisp_yamux *y, struct ystream *s, int err)
{
	if (s->detached)
		return;
	s->detached = true;
	unack_drop(y, s);
	if (y->cb.stream_closed)
		y->cb.stream_closed(y->ctx, s->id, s->user, err);
}

/* A live stream of ours or the peer's for the API: NULL when unknown or
 * already closed for the application. */
static struct ystream *api_stream(const wisp_yamux *y, uint32_t id)
{
	if (y->err || id == 0)
		return NULL;
	struct ystream *s = lookup(y, id);
	return s && !s->detached ? s : NULL;
}

static int seg_push(wisp_yamux *y, struct ystream *s, wisp_buf *b, uint32_t off, uint32_t len)
{
	if (s->seg_n == s->seg_cap) {
		uint32_t cap = s->seg_cap ? s->seg_cap * 2 : 4;
		struct seg *n = wisp_malloc(y->mem, (size_t)cap * sizeof(*n));
		if (!n)
			return WISP_ERR_NOMEM;
		for (uint32_t i = 0; i < s->seg_n; i++)
			n[i] = s->segs[(s->seg_head + i) & (s->seg_cap - 1)];
		wisp_free(y->mem, s->segs);
		s->segs = n;
		s->seg_cap = cap;
		s->seg_head = 0;
	}
	s->segs[(s->seg_head + s->seg_n) & (s->seg_cap - 1)] = (struct seg){ b, off, len };
	s->seg_n++;
	return WISP_OK;
}

/* The reset path shared by wisp_yamux_reset() and stream_data's refusal. */
static void do_reset(wisp_yamux *y, struct ystream *s)
{
	segs_release(y, s);
	data_del(y, s);
	y->st.resets_out++;
	if (s->pend & P_SYN) {
		/* the peer never heard of it: nothing to send */
		detach(y, s, WISP_ERR_CLOSED);
		stream_drop(y, s);
		return;
	}
	s->tx = TX_EXPECT_RST;
	s->pend = P_RST;
	ctrl_add(y, s);
	detach(y, s, WISP_ERR_CLOSED);
}

/* ---- session control queue --------------------------------------------- */

/* Errors: WISP_ERR_LIMIT (max_ctrl_bytes), WISP_ERR_NOMEM. */
static int ring_push(wisp_yamux *y, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	if (y->ring_n == y->ring_max)
		return WISP_ERR_LIMIT;
	if (y->ring_n == y->ring_cap) {
		uint32_t cap = y->ring_cap ? y->ring_cap * 2 : 8;
		uint8_t(*n)[WISP_YAMUX_HEADER_LEN] = wisp_malloc(y->mem, (size_t)cap * sizeof(*n));
		if (!n)
			return WISP_ERR_NOMEM;
		for (uint32_t i = 0; i < y->ring_n; i++)
			memcpy(n[i], y->ring[(y->ring_head + i) & (y->ring_cap - 1)], sizeof(*n));
		wisp_free(y->mem, y->ring);
		y->ring = n;
		y->ring_cap = cap;
		y->ring_head = 0;
	}
	wisp_yamux_put_header(y->ring[(y->ring_head + y->ring_n) & (y->ring_cap - 1)], type, flags, id,
			      len);
	y->ring_n++;
	return WISP_OK;
}

/* ---- failure ----------------------------------------------------------- */

/* Fail the session with err: stream_closed(err) for every stream the
 * application still knows, everything queued dropped, GO_AWAY queued when
 * send_goaway. Returns err. */
static int fail(wisp_yamux *y, int err, bool send_goaway)
{
	if (y->err)
		return y->err;
	y->err = err;
	y->st.err = err;
	y->rstate = YAMUX_EXPECT_NOTHING;
	y->ring_n = 0;
	y->ping_queued = y->ping_out = false;
	y->goaway_queued = send_goaway;
	if (send_goaway)
		y->goaway_code = wisp_err_is_peer(err) ? WISP_YAMUX_GOAWAY_PROTOCOL :
							 WISP_YAMUX_GOAWAY_INTERNAL;
	if (err == WISP_ERR_FLOW_CONTROL)
		y->st.window_violations++;

	/* Empty the table first, then call back: callbacks see a session with
	 * no streams, where every call fails cleanly. */
	struct ystream *list = NULL;
	uint32_t n = UINT32_C(1) << y->tab_bits;
	for (uint32_t i = 0; i < n; i++) {
		struct ystream *s = y->tab[i];
		if (!s)
			continue;
		y->tab[i] = NULL;
		segs_release(y, s);
		s->in_ctrl = s->in_data = false;
		s->dead = true;
		s->gnext = list;
		list = s;
	}
	y->ctrl.head = y->ctrl.tail = y->data.head = y->data.tail = NULL;
	y->nctrl = 0;
	y->nstreams = 0;
	y->unacked = 0;
	while (list) {
		struct ystream *s = list;
		list = s->gnext;
		s->gnext = y->grave;
		y->grave = s;
		s->acked = true;
		if (!s->detached) {
			s->detached = true;
			if (y->cb.stream_closed)
				y->cb.stream_closed(y->ctx, s->id, s->user, err);
		}
	}
	return err;
}

/* ---- input ------------------------------------------------------------- */

static void remote_fin(wisp_yamux *y, struct ystream *s)
{
	if (s->rx == RX_EXPECT_END)
		return; /* a second FIN says nothing new */
	s->rx = RX_EXPECT_END;
	/* nothing more will come: no window to give back */
	s->pend &= (uint8_t)~P_WU;
	s->credit = 0;
	if (!s->detached && y->cb.stream_fin)
		y->cb.stream_fin(y->ctx, s->id, s->user);
	if (s->dead)
		return;
	if (!s->detached && (s->tx == TX_EXPECT_DRAIN || s->tx == TX_EXPECT_END))
		detach(y, s, 0);
	if (s->detached && s->tx == TX_EXPECT_END && !s->pend)
		stream_drop(y, s);
	else if (!s->pend)
		ctrl_del(y, s);
}

static void remote_reset(wisp_yamux *y, struct ystream *s)
{
	if (!s->detached)
		y->st.resets_in++;
	detach(y, s, WISP_ERR_RESET);
	stream_drop(y, s);
}

/* Refuse an inbound SYN with an RST from the control queue. */
static int refuse(wisp_yamux *y, uint32_t id)
{
	return ring_push(y, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_RST, id, 0);
}

/* An inbound SYN for a new id. *out is the stream, or NULL when refused.
 * Errors: WISP_ERR_STREAM_LIMIT, and ring_push()'s. */
static int accept_inbound(wisp_yamux *y, uint32_t id, struct ystream **out)
{
	*out = NULL;
	if (id > y->max_remote_id)
		y->max_remote_id = id;
	if (y->local_goaway || y->remote_goaway) {
		y->st.streams_refused++;
		return refuse(y, id);
	}
	if (y->nstreams >= y->cfg.max_streams) {
		y->st.streams_refused++;
		if (y->cfg.max_refused && ++y->refused_run > y->cfg.max_refused)
			return WISP_ERR_STREAM_LIMIT;
		return refuse(y, id);
	}
	struct ystream *s = NULL;
	if (tab_reserve(y) || !(s = stream_alloc(y))) {
		y->st.streams_refused_app++;
		return refuse(y, id);
	}
	s->id = id;
	s->acked = true;
	s->send_win = WISP_YAMUX_INITIAL_WINDOW;
	s->recv_win = y->cfg.window;
	s->recv_avail = WISP_YAMUX_INITIAL_WINDOW;
	s->credit = y->cfg.window - WISP_YAMUX_INITIAL_WINDOW; /* granted with the ACK */
	s->epoch = y->now;
	s->pend = P_ACK;
	tab_put(y, s);
	y->nstreams++;
	ctrl_add(y, s);
	if (y->cb.stream_open) {
		int rc = y->cb.stream_open(y->ctx, id);
		if (s->detached) /* reset inside the callback: that was the answer */
			return WISP_OK;
		if (rc < 0) {
			y->st.streams_refused_app++;
			s->detached = true; /* never accepted: no stream_closed */
			stream_drop(y, s);
			return refuse(y, id);
		}
	}
	y->refused_run = 0;
	y->st.streams_accepted++;
	*out = s;
	return WISP_OK;
}

static int on_ping(wisp_yamux *y, uint16_t flags, uint32_t id, uint32_t value)
{
	if (id != 0)
		return WISP_ERR_PROTOCOL;
	if (flags == WISP_YAMUX_SYN) {
		y->st.pings_in++;
		return ring_push(y, WISP_YAMUX_PING, WISP_YAMUX_ACK, 0, value);
	}
	if (flags != WISP_YAMUX_ACK)
		return WISP_ERR_PROTOCOL;
	if (!y->ping_out || value != y->ping_id) {
		y->st.frames_ignored++;
		return WISP_OK;
	}
	y->ping_out = false;
	uint64_t sample = y->now > y->ping_sent_at ? y->now - y->ping_sent_at : 0;
	y->rtt = y->rtt ? (y->rtt + sample) / 2 : sample;
	if (y->rtt == 0)
		y->rtt = 1; /* a sample was taken, even if the clock did not move */
	y->st.rtt_ns = y->rtt;
	if (y->cb.ping_rtt)
		y->cb.ping_rtt(y->ctx, sample);
	return WISP_OK;
}

static int on_go_away(wisp_yamux *y, uint32_t id, uint32_t code)
{
	if (id != 0)
		return WISP_ERR_PROTOCOL;
	if (y->remote_goaway) {
		y->st.frames_ignored++;
		return WISP_OK;
	}
	y->remote_goaway = true;
	if (y->cb.go_away)
		y->cb.go_away(y->ctx, code);
	if (code != WISP_YAMUX_GOAWAY_NORMAL)
		return fail(y, WISP_ERR_RESET, false);
	return WISP_OK;
}

/* Start the payload of the frame in hand: delivered unless drop. */
static void expect_payload(wisp_yamux *y, uint32_t id, uint32_t len, uint16_t flags, bool drop)
{
	y->rstate = YAMUX_EXPECT_PAYLOAD;
	y->rx_id = id;
	y->rx_left = len;
	y->rx_flags = flags;
	y->rx_drop = drop;
}

/* A data or window-update header. */
static int on_stream_frame(wisp_yamux *y, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	uint32_t plen = type == WISP_YAMUX_DATA ? len : 0;
	if (id == 0)
		return WISP_ERR_PROTOCOL;
	struct ystream *s = lookup(y, id);

	if (flags & WISP_YAMUX_SYN) {
		if (s || !remote_parity(y, id))
			return WISP_ERR_PROTOCOL;
		if (flags & WISP_YAMUX_RST) {
			if (id > y->max_remote_id)
				y->max_remote_id = id;
			y->st.frames_ignored++;
			if (plen)
				expect_payload(y, id, plen, flags, true);
			return WISP_OK;
		}
		int rc = accept_inbound(y, id, &s);
		if (rc)
			return rc;
		if (!s || s->dead || s->detached) {
			if (plen)
				expect_payload(y, id, plen, flags, true);
			return WISP_OK;
		}
	} else if (!s) {
		bool known = remote_parity(y, id) ? id <= y->max_remote_id : id < y->next_id;
		if (!known && !(flags & WISP_YAMUX_RST))
			return WISP_ERR_PROTOCOL;
		y->st.frames_ignored++; /* closed or reset earlier */
		if (plen)
			expect_payload(y, id, plen, flags, true);
		return WISP_OK;
	}

	if (s->tx == TX_EXPECT_RST) {
		/* we reset it; the peer has not seen our RST yet */
		y->st.frames_ignored++;
		if (plen)
			expect_payload(y, id, plen, flags, true);
		return WISP_OK;
	}

	if (flags & WISP_YAMUX_RST) {
		/* before any window arithmetic: go-yamux puts an error code in the
		 * length of an RST window update */
		if (plen)
			expect_payload(y, id, plen, flags, true);
		remote_reset(y, s);
		return WISP_OK;
	}

	if ((flags & WISP_YAMUX_ACK) && s->outbound && !s->acked) {
		unack_drop(y, s);
		if (!s->detached && y->cb.stream_acked)
			y->cb.stream_acked(y->ctx, id, s->user);
		if (s->dead || s->tx == TX_EXPECT_RST) { /* reset inside the callback */
			if (plen)
				expect_payload(y, id, plen, flags, true);
			return WISP_OK;
		}
	}

	if (type == WISP_YAMUX_WINDOW_UPDATE) {
		if ((uint64_t)s->send_win + len > UINT32_MAX) {
			y->st.window_violations++;
			return WISP_ERR_PROTOCOL;
		}
		s->send_win += len;
		data_check(y, s);
	} else if (plen) {
		if (s->rx == RX_EXPECT_END)
			return WISP_ERR_PROTOCOL;
		if (plen > s->recv_avail)
			return WISP_ERR_FLOW_CONTROL;
		s->recv_avail -= plen;
		/* the FIN, if any, applies after the payload */
		expect_payload(y, id, plen, flags, false);
		return WISP_OK;
	}

	if (flags & WISP_YAMUX_FIN)
		remote_fin(y, s);
	return WISP_OK;
}

static int on_header(wisp_yamux *y)
{
	const uint8_t *h = y->hdr;
	uint8_t type = h[1];
	uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
	uint32_t id = be32(h + 4), len = be32(h + 8);
	y->st.frames_in++;
	if (h[0] != 0 || type > WISP_YAMUX_GO_AWAY)
		return WISP_ERR_MALFORMED;
	switch (type) {
	case WISP_YAMUX_PING:
		return on_ping(y, flags, id, len);
	case WISP_YAMUX_GO_AWAY:
		return on_go_away(y, id, len);
	default:
		return on_stream_frame(y, type, flags, id, len);
	}
}

static void consume(wisp_yamux *y, struct ystream *s, uint32_t n)
{
	s->unconsumed -= n;
	if (s->rx == RX_EXPECT_END || s->tx == TX_EXPECT_RST)
		return;
	s->credit += n;
	/* yamux: send a window update once half the window is used */
	if (s->credit >= s->recv_win / 2 && !(s->pend & P_WU)) {
		s->pend |= P_WU;
		ctrl_add(y, s);
	}
}

/* Payload piece p[0..n) of the frame in hand. */
static void deliver(wisp_yamux *y, const uint8_t *p, uint32_t n)
{
	if (y->rx_drop)
		return;
	struct ystream *s = lookup(y, y->rx_id);
	if (!s || s->detached) {
		/* reset (by a callback, or between two reads) */
		y->rx_drop = true;
		return;
	}
	y->st.data_in += n;
	s->unconsumed += n;
	if (!y->cb.stream_data) {
		consume(y, s, n);
		return;
	}
	int rc = y->cb.stream_data(y->ctx, s->id, s->user, p, n);
	if (rc < 0 && !s->detached)
		do_reset(y, s);
}

static void end_payload(wisp_yamux *y)
{
	y->rstate = YAMUX_EXPECT_HEADER;
	if (y->rx_drop || !(y->rx_flags & WISP_YAMUX_FIN))
		return;
	struct ystream *s = lookup(y, y->rx_id);
	if (s && s->tx != TX_EXPECT_RST)
		remote_fin(y, s);
}

int wisp_yamux_read(wisp_yamux *y, const uint8_t *in, size_t len, wisp_tstamp now)
{
	if (y->depth)
		return WISP_ERR_STATE;
	if (y->err)
		return y->err;
	y->now = now;
	if (!len)
		return WISP_OK;
	y->last_rx = now;
	enter(y);
	while (len && !y->err) {
		if (y->rstate == YAMUX_EXPECT_HEADER) {
			size_t take = WISP_YAMUX_HEADER_LEN - y->hlen;
			if (take > len)
				take = len;
			memcpy(y->hdr + y->hlen, in, take);
			y->hlen = (uint8_t)(y->hlen + take);
			in += take;
			len -= take;
			if (y->hlen < WISP_YAMUX_HEADER_LEN)
				break;
			y->hlen = 0;
			int rc = on_header(y);
			if (rc)
				fail(y, rc, true);
		} else {
			uint32_t n = len < y->rx_left ? (uint32_t)len : y->rx_left;
			deliver(y, in, n);
			in += n;
			len -= n;
			y->rx_left -= n;
			if (!y->rx_left)
				end_payload(y);
		}
	}
	leave(y);
	verify(y);
	return y->err;
}

/* ---- output ------------------------------------------------------------ */

static bool ctrl_section_empty(const wisp_yamux *y)
{
	return !y->ping_queued && !y->ring_n && !y->ctrl.head && !y->goaway_queued;
}

bool wisp_yamux_wants_write(const wisp_yamux *y)
{
	return !ctrl_section_empty(y) || (!y->err && y->data.head);
}

static void put(wisp_yamux *y, uint8_t *out, size_t *n, uint8_t type, uint16_t flags, uint32_t id,
		uint32_t len)
{
	wisp_yamux_put_header(out + *n, type, flags, id, len);
	*n += WISP_YAMUX_HEADER_LEN;
	y->st.frames_out++;
}

/* One window update carrying everything s owes the peer. */
static void emit_ctrl(wisp_yamux *y, struct ystream *s, uint8_t *out, size_t *n)
{
	ctrl_del(y, s);
	if (s->pend & P_RST) {
		put(y, out, n, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_RST, s->id, 0);
		s->pend = 0;
		stream_drop(y, s);
		return;
	}
	uint16_t flags = 0;
	uint32_t delta = 0;
	if (s->pend & P_SYN)
		flags |= WISP_YAMUX_SYN;
	if (s->pend & P_ACK)
		flags |= WISP_YAMUX_ACK;
	if ((s->pend & P_FIN) && !s->queued)
		flags |= WISP_YAMUX_FIN;
	if ((s->pend & (P_SYN | P_ACK | P_WU)) && s->rx == RX_EXPECT_DATA) {
		wisp_tstamp now = y->now;
		/* auto-tune: half a window used in under two round trips means
		 * the window, not the reader, limits the peer: double it */
		uint64_t rtt = y->rtt > y->cfg.tune_min_rtt_ns ? y->rtt : y->cfg.tune_min_rtt_ns;
		if (!(s->pend & (P_SYN | P_ACK)) && y->rtt && s->recv_win < y->cfg.max_window &&
		    now - s->epoch < 2 * rtt) {
			uint32_t grow = min_u32(s->recv_win, y->cfg.max_window - s->recv_win);
			s->recv_win += grow;
			s->credit += grow;
			y->st.window_grows++;
		}
		delta = s->credit;
		s->recv_avail += delta;
		s->credit = 0;
		s->epoch = now;
		if (delta)
			y->st.window_updates_out++;
	}
	s->pend &= (uint8_t)~(P_SYN | P_ACK | P_WU);
	if (flags & WISP_YAMUX_FIN)
		s->pend &= (uint8_t)~P_FIN;
	if (flags || delta)
		put(y, out, n, WISP_YAMUX_WINDOW_UPDATE, flags, s->id, delta);
	if (flags & WISP_YAMUX_SYN)
		data_check(y, s);
	if (flags & WISP_YAMUX_FIN) {
		s->tx = TX_EXPECT_END;
		if (s->detached)
			stream_drop(y, s);
	}
}

/* One data frame from the stream at the head of the data list. Returns
 * false when it does not fit. */
static bool emit_data(wisp_yamux *y, uint8_t *out, size_t cap, size_t *n)
{
	struct ystream *s = y->data.head;
	size_t sendable = s->queued < s->send_win ? s->queued : s->send_win;
	size_t room = cap - *n >= WISP_YAMUX_HEADER_LEN ? cap - *n - WISP_YAMUX_HEADER_LEN : 0;
	size_t chunk = sendable < room ? sendable : room;
	if (chunk == 0 || (chunk < sendable && chunk < MIN_CHUNK && *n))
		return false;
	put(y, out, n, WISP_YAMUX_DATA, 0, s->id, (uint32_t)chunk);
	uint8_t *dst = out + *n;
	size_t left = chunk;
	while (left) {
		struct seg *g = &s->segs[s->seg_head];
		size_t k = g->len < left ? g->len : left;
		memcpy(dst, g->b->data + g->off, k);
		dst += k;
		left -= k;
		g->off += (uint32_t)k;
		g->len -= (uint32_t)k;
		if (!g->len) {
			wisp_buf_unref(g->b);
			s->seg_head = (s->seg_head + 1) & (s->seg_cap - 1);
			s->seg_n--;
		}
	}
	*n += chunk;
	s->queued -= chunk;
	y->queued_data -= chunk;
	s->send_win -= (uint32_t)chunk;
	y->st.data_out += chunk;
	/* round robin: to the back of the list, or off it */
	data_del(y, s);
	data_check(y, s);
	if (!s->queued && s->tx == TX_EXPECT_DRAIN) {
		s->pend |= P_FIN;
		ctrl_add(y, s);
	}
	if (s->above_mark && s->queued <= y->cfg.writable_mark) {
		s->above_mark = false;
		if (!s->detached && y->cb.stream_writable)
			y->cb.stream_writable(y->ctx, s->id, s->user);
	}
	return true;
}

ssize_t wisp_yamux_pull(wisp_yamux *y, uint8_t *out, size_t cap, wisp_tstamp now)
{
	if (y->depth)
		return WISP_ERR_STATE;
	y->now = now;
	if (!wisp_yamux_wants_write(y))
		return 0;
	if (cap < WISP_YAMUX_HEADER_LEN)
		return WISP_ERR_NOBUF;
	size_t n = 0;
	enter(y);
	for (;;) {
		if (y->ping_queued && cap - n >= WISP_YAMUX_HEADER_LEN) {
			put(y, out, &n, WISP_YAMUX_PING, WISP_YAMUX_SYN, 0, y->ping_id);
			y->ping_queued = false;
			y->ping_out = true;
			y->ping_sent_at = now;
			y->st.pings_out++;
		}
		while (y->ring_n && cap - n >= WISP_YAMUX_HEADER_LEN) {
			memcpy(out + n, y->ring[y->ring_head], WISP_YAMUX_HEADER_LEN);
			n += WISP_YAMUX_HEADER_LEN;
			y->st.frames_out++;
			y->ring_head = (y->ring_head + 1) & (y->ring_cap - 1);
			y->ring_n--;
		}
		while (y->ctrl.head && cap - n >= WISP_YAMUX_HEADER_LEN)
			emit_ctrl(y, y->ctrl.head, out, &n);
		if (y->goaway_queued && !y->ring_n && !y->ctrl.head &&
		    cap - n >= WISP_YAMUX_HEADER_LEN) {
			put(y, out, &n, WISP_YAMUX_GO_AWAY, 0, 0, y->goaway_code);
			y->goaway_queued = false;
		}
		/* data only once every control frame is out: a SYN precedes its
		 * stream's data, window updates are never stuck behind data */
		if (y->err || !ctrl_section_empty(y) || !y->data.head || !emit_data(y, out, cap, &n))
			break;
	}
	leave(y);
	verify(y);
	return (ssize_t)n;
}

/* ---- streams: API ------------------------------------------------------ */

int wisp_yamux_open(wisp_yamux *y, void *user, uint32_t *id)
{
	if (y->err || y->local_goaway || y->remote_goaway)
		return WISP_ERR_CLOSED;
	if (y->nstreams >= y->cfg.max_streams || y->next_id > UINT32_MAX)
		return WISP_ERR_LIMIT;
	/* yamux: at most ack_backlog (spec: 256) streams opened and not ACKed */
	if (y->unacked >= y->cfg.ack_backlog)
		return WISP_ERR_AGAIN;
	if (tab_reserve(y))
		return WISP_ERR_NOMEM;
	struct ystream *s = stream_alloc(y);
	if (!s)
		return WISP_ERR_NOMEM;
	s->id = (uint32_t)y->next_id;
	y->next_id += 2;
	s->outbound = true;
	s->user = user;
	s->send_win = WISP_YAMUX_INITIAL_WINDOW;
	s->recv_win = y->cfg.window;
	s->recv_avail = WISP_YAMUX_INITIAL_WINDOW;
	s->credit = y->cfg.window - WISP_YAMUX_INITIAL_WINDOW; /* granted with the SYN */
	s->epoch = y->now;
	s->pend = P_SYN;
	tab_put(y, s);
	y->nstreams++;
	y->unacked++;
	ctrl_add(y, s);
	y->st.streams_opened++;
	*id = s->id;
	return WISP_OK;
}

int wisp_yamux_set_user(wisp_yamux *y, uint32_t id, void *user)
{
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	s->user = user;
	return WISP_OK;
}

int wisp_yamux_write(wisp_yamux *y, uint32_t id, wisp_buf *b, size_t off, size_t len)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	if (s->tx != TX_EXPECT_WRITES)
		return WISP_ERR_CLOSED;
	if (off > b->len || len > b->len - off)
		return WISP_ERR_INVALID_ARG;
	if (!len)
		return WISP_OK;
	int rc = seg_push(y, s, b, (uint32_t)off, (uint32_t)len);
	if (rc)
		return rc;
	wisp_buf_ref(b);
	s->queued += len;
	y->queued_data += len;
	if (s->queued > y->cfg.writable_mark)
		s->above_mark = true;
	data_check(y, s);
	return WISP_OK;
}

int wisp_yamux_write_copy(wisp_yamux *y, uint32_t id, wisp_pool *pool, const void *p, size_t n)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	if (!api_stream(y, id))
		return WISP_ERR_NOTFOUND;
	if (n > wisp_pool_max_len(pool))
		return WISP_ERR_INVALID_ARG;
	if (!n)
		return WISP_OK;
	wisp_buf *b = wisp_buf_alloc(pool, n);
	if (!b)
		return WISP_ERR_NOMEM;
	memcpy(b->data, p, n);
	int rc = wisp_yamux_write(y, id, b, 0, n);
	wisp_buf_unref(b);
	return rc;
}

int wisp_yamux_consumed(wisp_yamux *y, uint32_t id, size_t n)
{
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	if (n > s->unconsumed)
		return WISP_ERR_INVALID_ARG;
	if (n)
		consume(y, s, (uint32_t)n);
	return WISP_OK;
}

int wisp_yamux_close(wisp_yamux *y, uint32_t id)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	if (s->tx != TX_EXPECT_WRITES)
		return WISP_OK;
	s->tx = TX_EXPECT_DRAIN;
	if (!s->queued) {
		s->pend |= P_FIN;
		ctrl_add(y, s);
	}
	if (s->rx == RX_EXPECT_END) {
		enter(y);
		detach(y, s, 0);
		leave(y);
	}
	return WISP_OK;
}

int wisp_yamux_reset(wisp_yamux *y, uint32_t id)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	enter(y);
	do_reset(y, s);
	leave(y);
	return WISP_OK;
}

size_t wisp_yamux_stream_queued(const wisp_yamux *y, uint32_t id)
{
	struct ystream *s = api_stream(y, id);
	return s ? s->queued : 0;
}

size_t wisp_yamux_queued_bytes(const wisp_yamux *y)
{
	size_t frames = y->ring_n + y->nctrl + (y->ping_queued ? 1 : 0) + (y->goaway_queued ? 1 : 0);
	return y->queued_data + frames * WISP_YAMUX_HEADER_LEN;
}

int wisp_yamux_stream_info_get(const wisp_yamux *y, uint32_t id, wisp_yamux_stream_info *out)
{
	struct ystream *s = api_stream(y, id);
	if (!s)
		return WISP_ERR_NOTFOUND;
	out->send_window = s->send_win;
	out->recv_window = s->recv_win;
	out->recv_credit = s->recv_avail;
	out->unconsumed = s->unconsumed;
	out->queued = s->queued;
	out->acked = s->acked;
	out->local_closed = s->tx != TX_EXPECT_WRITES;
	out->remote_closed = s->rx == RX_EXPECT_END;
	return WISP_OK;
}

/* ---- session ----------------------------------------------------------- */

void wisp_yamux_config_default(wisp_yamux_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = WISP_YAMUX_CONFIG_VERSION;
	c->window = WISP_YAMUX_INITIAL_WINDOW;
	c->max_window = 16u << 20;
	c->max_streams = 512;
	c->max_refused = 32;
	c->ack_backlog = 256;
	c->writable_mark = 64u << 10;
	c->keepalive_ns = 30 * WISP_NS_PER_S;
	c->ping_timeout_ns = 10 * WISP_NS_PER_S;
	c->rtt_interval_ns = 30 * WISP_NS_PER_S;
	c->tune_min_rtt_ns = WISP_NS_PER_MS;
	c->max_ctrl_bytes = 16u << 10;
}

int wisp_yamux_new(wisp_yamux **out, const wisp_mem *mem, const wisp_yamux_config *cfg, bool client,
		   const wisp_yamux_callbacks *cb, void *ctx, wisp_tstamp now)
{
	*out = NULL;
	wisp_yamux_config def;
	if (!cfg) {
		wisp_yamux_config_default(&def);
		cfg = &def;
	}
	if (cfg->version != WISP_YAMUX_CONFIG_VERSION || cfg->window < WISP_YAMUX_INITIAL_WINDOW ||
	    cfg->max_window < cfg->window || cfg->max_streams == 0 || cfg->max_streams > (1u << 20) ||
	    cfg->ack_backlog == 0 || cfg->max_ctrl_bytes < WISP_YAMUX_HEADER_LEN)
		return WISP_ERR_INVALID_ARG;
	wisp_yamux *y = wisp_calloc(mem, 1, sizeof(*y));
	if (!y)
		return WISP_ERR_NOMEM;
	y->mem = mem;
	y->cfg = *cfg;
	if (cb)
		y->cb = *cb;
	y->ctx = ctx;
	y->client = client;
	y->next_id = client ? 1 : 2;
	y->now = y->last_rx = now;
	y->next_rtt_at = now;
	size_t ring_max = cfg->max_ctrl_bytes / WISP_YAMUX_HEADER_LEN;
	y->ring_max = ring_max > (1u << 24) ? (1u << 24) : (uint32_t)ring_max;
	/* the table stays at most half full at max_streams */
	y->tab_bits = 4;
	y->tab_max_bits = 4;
	while ((UINT32_C(1) << y->tab_max_bits) < 2 * cfg->max_streams)
		y->tab_max_bits++;
	y->tab = wisp_calloc(mem, UINT32_C(1) << y->tab_bits, sizeof(*y->tab));
	if (!y->tab) {
		wisp_free(mem, y);
		return WISP_ERR_NOMEM;
	}
	*out = y;
	return WISP_OK;
}

void wisp_yamux_free(wisp_yamux *y)
{
	if (!y)
		return;
	uint32_t n = UINT32_C(1) << y->tab_bits;
	for (uint32_t i = 0; i < n; i++) {
		struct ystream *s = y->tab[i];
		if (!s)
			continue;
		segs_release(y, s);
		wisp_free(y->mem, s->segs);
		wisp_free(y->mem, s);
	}
	struct ystream *lists[2] = { y->grave, y->spare };
	for (int i = 0; i < 2; i++) {
		while (lists[i]) {
			struct ystream *s = lists[i];
			lists[i] = s->gnext;
			wisp_free(y->mem, s->segs);
			wisp_free(y->mem, s);
		}
	}
	wisp_free(y->mem, y->tab);
	wisp_free(y->mem, y->ring);
	wisp_free(y->mem, y);
}

static void start_ping(wisp_yamux *y, wisp_tstamp now)
{
	y->ping_queued = true;
	y->ping_id = y->next_ping_id++;
	y->ping_started = now;
	if (y->cfg.rtt_interval_ns)
		y->next_rtt_at = sat_add(now, y->cfg.rtt_interval_ns);
}

int wisp_yamux_ping(wisp_yamux *y, wisp_tstamp now)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	y->now = now;
	if (!y->ping_queued && !y->ping_out)
		start_ping(y, now);
	return WISP_OK;
}

int wisp_yamux_go_away(wisp_yamux *y, uint32_t code)
{
	if (y->err)
		return WISP_ERR_CLOSED;
	if (y->local_goaway)
		return WISP_OK;
	y->local_goaway = true;
	y->goaway_queued = true;
	y->goaway_code = code;
	return WISP_OK;
}

wisp_tstamp wisp_yamux_expiry(const wisp_yamux *y)
{
	if (y->err)
		return WISP_YAMUX_NEVER;
	if (y->ping_queued || y->ping_out)
		return y->cfg.ping_timeout_ns ? sat_add(y->ping_started, y->cfg.ping_timeout_ns) :
						WISP_YAMUX_NEVER;
	wisp_tstamp t = WISP_YAMUX_NEVER;
	if (y->cfg.keepalive_ns)
		t = sat_add(y->last_rx, y->cfg.keepalive_ns);
	if (y->cfg.rtt_interval_ns && y->next_rtt_at < t)
		t = y->next_rtt_at;
	return t;
}

int wisp_yamux_handle_expiry(wisp_yamux *y, wisp_tstamp now)
{
	if (y->depth)
		return WISP_ERR_STATE;
	if (y->err)
		return y->err;
	y->now = now;
	wisp_tstamp t = wisp_yamux_expiry(y);
	if (now < t || t == WISP_YAMUX_NEVER)
		return WISP_OK;
	if (y->ping_queued || y->ping_out) {
		enter(y);
		fail(y, WISP_ERR_TIMEOUT, true);
		leave(y);
		return y->err;
	}
	start_ping(y, now);
	return WISP_OK;
}

void wisp_yamux_stats_get(const wisp_yamux *y, wisp_yamux_stats *out)
{
	*out = y->st;
	out->streams = y->nstreams;
	out->unacked = y->unacked;
	out->ctrl_queued = (size_t)y->ring_n * WISP_YAMUX_HEADER_LEN;
	out->err = y->err;
}
