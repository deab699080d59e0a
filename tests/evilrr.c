#include "tests/evilrr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include <wisp/error.h>

#include "codec/varint.h"
#include "net/yamux.h"
#include "tests/testlib.h"

/* Window given back to the node once this much was read. */
#define GRANT_STEP (64u * 1024)
/* Our data frames carry at most this much (one Noise frame). */
#define CHUNK (WISP_NOISE_MAX_PLAINTEXT - WISP_YAMUX_HEADER_LEN)

static er_peer *of(ev_peer *p)
{
	return (er_peer *)p; /* ev_peer is the first member */
}

/* ---- streams -------------------------------------------------------------- */

static er_stream *stream_find(er_peer *e, uint32_t id)
{
	for (int i = 0; i < ER_MAX_STREAMS; i++)
		if (e->st[i].used && e->st[i].id == id)
			return &e->st[i];
	return NULL;
}

static er_stream *stream_add(er_peer *e, uint32_t id, bool ours)
{
	for (int i = 0; i < ER_MAX_STREAMS; i++) {
		er_stream *s = &e->st[i];
		if (s->used)
			continue;
		free(s->buf);
		memset(s, 0, sizeof(*s));
		s->used = true;
		s->id = id;
		s->ours = ours;
		s->window = WISP_YAMUX_INITIAL_WINDOW;
		return s;
	}
	return NULL;
}

void er_release(er_stream *s)
{
	s->used = false;
	s->len = 0;
}

/* A frame without payload (window updates, FIN, RST); also from inside
 * the pump. */
static int send_header(er_peer *e, uint8_t type, uint16_t flags, uint32_t id, uint32_t len, unsigned timeout_ms)
{
	uint8_t h[WISP_YAMUX_HEADER_LEN];
	ev_ymx(h, type, flags, id, len);
	return ev_send_sealed(&e->p, h, sizeof(h), timeout_ms);
}

/* Negotiation messages, also from inside the pump: they fit in any fresh
 * window. */
static int flush_mss(er_peer *e, er_stream *s)
{
	uint8_t f[WISP_YAMUX_HEADER_LEN + 2 * (WISP_MSS_MAX_MSG + 16)];
	size_t n = wisp_mss_write(&s->mss, f + WISP_YAMUX_HEADER_LEN, sizeof(f) - WISP_YAMUX_HEADER_LEN);
	if (!n)
		return 0;
	ev_ymx(f, WISP_YAMUX_DATA, 0, s->id, (uint32_t)n);
	s->window -= (int64_t)n; /* negotiation bytes count against the window too */
	return ev_send_sealed(&e->p, f, WISP_YAMUX_HEADER_LEN + n, 2000);
}

/* The node proposes a protocol on a stream it opened: only ours. */
static int match_proto(void *ctx, const char *id, size_t len)
{
	er_peer *e = ctx;
	for (uint32_t i = 0; i < e->n_protos; i++)
		if (strlen(e->protos[i]) == len && memcmp(id, e->protos[i], len) == 0)
			return (int)i;
	return -1;
}

/* The node closed or reset s. Before the negotiation was done, that is a
 * refusal; slots of the node's streams we never accepted are free at once. */
static void note_end(er_stream *s)
{
	if (s->open)
		return;
	s->refused = true;
	if (!s->ours)
		s->used = false;
}

static int on_frame(ev_peer *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	er_peer *e = of(p);
	if (type == WISP_YAMUX_PING || type == WISP_YAMUX_GO_AWAY)
		return 0;
	er_stream *s = stream_find(e, id);
	if (!s && (flags & WISP_YAMUX_SYN) && !(id & 1)) {
		/* the node opens a stream: accept it and listen */
		if (!(s = stream_add(e, id, false)))
			return WISP_ERR_LIMIT;
		wisp_mss_listener_init(&s->mss, match_proto, e);
		int err = send_header(e, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_ACK, id, 0, 2000);
		if (err)
			return err;
	}
	if (!s)
		return 0;
	if (type == WISP_YAMUX_WINDOW_UPDATE)
		s->window += len;
	if (flags & WISP_YAMUX_RST) {
		s->rst_in = true;
		note_end(s);
	} else if (flags & WISP_YAMUX_FIN) {
		if (type == WISP_YAMUX_DATA && len > 0) {
			s->fin_pending = true; /* after the payload */
		} else {
			s->fin_in = true;
			note_end(s);
		}
	}
	return 0;
}

static int keep(er_stream *s, const uint8_t *b, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n)
			cap *= 2;
		uint8_t *nb = realloc(s->buf, cap);
		if (!nb)
			return WISP_ERR_NOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, b, n);
	s->len += n;
	return 0;
}

static int negotiate(er_peer *e, er_stream *s)
{
	while (!wisp_mss_done(&s->mss)) {
		ssize_t r = wisp_mss_read(&s->mss, s->buf, s->len);
		if (r < 0) {
			/* "na" to our proposal, or a listener of ours that refused
			 * everything the node proposed: the stream is dead */
			s->refused = true;
			s->len = 0;
			return flush_mss(e, s);
		}
		memmove(s->buf, s->buf + r, s->len - (size_t)r);
		s->len -= (size_t)r;
		int err = flush_mss(e, s);
		if (err)
			return err;
		if (r == 0)
			return 0;
	}
	s->open = true;
	if (!s->ours)
		e->accepted++;
	return 0;
}

static int on_data(ev_peer *p, uint32_t id, const uint8_t *b, size_t n)
{
	er_peer *e = of(p);
	er_stream *s = stream_find(e, id);
	if (!s)
		return 0;
	int err = n && !s->refused ? keep(s, b, n) : 0;
	if (err)
		return err;
	s->credit += (uint32_t)n;
	if (s->credit >= GRANT_STEP) {
		if ((err = send_header(e, WISP_YAMUX_WINDOW_UPDATE, 0, id, s->credit, 2000)))
			return err;
		s->credit = 0;
	}
	if (!s->open && !s->refused && (err = negotiate(e, s)))
		return err;
	if (s->fin_pending && p->yskip == 0) {
		s->fin_pending = false;
		s->fin_in = true;
		note_end(s);
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

er_peer *er_new(void)
{
	er_peer *e = calloc(1, sizeof(*e));
	if (e)
		e->p.fd = -1;
	return e;
}

void er_free(er_peer *e)
{
	if (!e)
		return;
	ev_close(&e->p);
	for (int i = 0; i < ER_MAX_STREAMS; i++)
		free(e->st[i].buf);
	free(e);
}

int er_connect(er_peer *e, uint16_t port, const char *const *protos, uint32_t n, unsigned timeout_ms)
{
	if (n > ER_MAX_PROTOS)
		return WISP_ERR_INVALID_ARG;
	int err = ev_connect(&e->p, port, 0);
	if (err)
		return err;
	memcpy(e->protos, protos, n * sizeof(*protos));
	e->n_protos = n;
	e->p.on_frame = on_frame;
	e->p.on_data = on_data;
	if ((err = wisp_peer_id_from_pubkey(&e->id, wisp_privkey_pubkey(&e->p.key))))
		return err;
	return ev_handshake(&e->p, timeout_ms);
}

/* ---- the pump --------------------------------------------------------------- */

struct cond_arg {
	bool (*cond)(er_peer *e, void *arg);
	void *arg;
};

static bool cond_adapter(ev_peer *p, void *arg)
{
	struct cond_arg *c = arg;
	return c->cond(of(p), c->arg);
}

int er_pump(er_peer *e, bool (*cond)(er_peer *e, void *arg), void *arg, unsigned timeout_ms)
{
	struct cond_arg c = { cond, arg };
	int err = ev_pump(&e->p, cond ? cond_adapter : NULL, &c, timeout_ms);
	if (err && !e->err && err != -ETIMEDOUT)
		e->err = err;
	return err;
}

static bool never(er_peer *e, void *arg)
{
	(void)e;
	(void)arg;
	return false;
}

int er_poll(er_peer *e)
{
	int err = er_pump(e, never, NULL, 0);
	return err == -ETIMEDOUT ? 0 : err;
}

/* ---- streams: opening, sending -------------------------------------------- */

static bool negotiated(er_peer *e, void *arg)
{
	er_stream *s = arg;
	return e->err || s->open || s->refused;
}

int er_open(er_peer *e, const char *proto, er_stream **out, unsigned timeout_ms)
{
	er_stream *s = stream_add(e, e->p.next_id, true);
	if (!s)
		return WISP_ERR_LIMIT;
	e->p.next_id += 2;
	/* the proposal goes pipelined with the header, right after the SYN */
	const char *protos[] = { proto };
	int err = wisp_mss_dialer_init(&s->mss, protos, 1);
	if (!err && !(err = send_header(e, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_SYN, s->id, 0, timeout_ms)) &&
	    !(err = flush_mss(e, s)) && !(err = er_pump(e, negotiated, s, timeout_ms)))
		err = e->err ? e->err : s->open ? 0 : WISP_ERR_REFUSED;
	if (err) {
		er_release(s);
		return err;
	}
	*out = s;
	return 0;
}

er_stream *er_next_accepted(er_peer *e)
{
	/* the oldest accepted stream not handed out yet: the lowest id */
	er_stream *best = NULL;
	for (int i = 0; i < ER_MAX_STREAMS; i++) {
		er_stream *s = &e->st[i];
		if (s->used && !s->ours && s->open && !s->taken && (!best || s->id < best->id))
			best = s;
	}
	if (best)
		best->taken = true;
	return best;
}

static bool has_window(er_peer *e, void *arg)
{
	er_stream *s = arg;
	return e->err || s->window > 0 || s->rst_in;
}

int er_send(er_peer *e, er_stream *s, const void *b, size_t n, unsigned timeout_ms)
{
	static uint8_t frame[WISP_YAMUX_HEADER_LEN + CHUNK];
	uint64_t deadline = wt_deadline(timeout_ms);
	const uint8_t *p = b;
	if (!s->open)
		return WISP_ERR_STATE;
	while (n) {
		if (s->window <= 0) {
			int err = er_pump(e, has_window, s, wt_ms_left(deadline));
			if (err)
				return err;
		}
		if (s->rst_in)
			return -ECONNRESET;
		size_t k = n < CHUNK ? n : CHUNK;
		if ((int64_t)k > s->window)
			k = (size_t)s->window;
		ev_ymx(frame, WISP_YAMUX_DATA, 0, s->id, (uint32_t)k);
		memcpy(frame + WISP_YAMUX_HEADER_LEN, p, k);
		int err = ev_send_sealed(&e->p, frame, WISP_YAMUX_HEADER_LEN + k, wt_ms_left(deadline));
		if (err)
			return err;
		s->window -= (int64_t)k;
		p += k;
		n -= k;
	}
	return 0;
}

int er_fin(er_peer *e, er_stream *s, unsigned timeout_ms)
{
	s->fin_out = true;
	return send_header(e, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_FIN, s->id, 0, timeout_ms);
}

int er_rst(er_peer *e, er_stream *s, unsigned timeout_ms)
{
	s->rst_out = true;
	return send_header(e, WISP_YAMUX_WINDOW_UPDATE, WISP_YAMUX_RST, s->id, 0, timeout_ms);
}

/* ---- framing -------------------------------------------------------------- */

int er_take(er_stream *s, bool response, uint8_t *result, uint8_t *out, size_t cap, size_t *len)
{
	const uint8_t *p = s->buf, *end = s->buf + s->len;
	*result = 0;
	if (response) {
		if (p == end)
			return 0;
		*result = *p++;
	}
	uint64_t n;
	ssize_t k = wisp_uvarint_get(p, end, &n);
	if (k == WISP_ERR_TRUNCATED)
		return 0;
	if (k < 0 || n > cap)
		return WISP_ERR_MALFORMED;
	p += k;
	size_t f = ZSTD_findFrameCompressedSize(p, (size_t)(end - p));
	if (ZSTD_isError(f))
		return ZSTD_getErrorCode(f) == ZSTD_error_srcSize_wrong ? 0 : WISP_ERR_MALFORMED;
	size_t got = ZSTD_decompress(out, cap, p, f);
	if (ZSTD_isError(got) || got != n)
		return WISP_ERR_MALFORMED;
	*len = got;
	p += f;
	size_t used = (size_t)(p - s->buf);
	memmove(s->buf, p, s->len - used);
	s->len -= used;
	return 1;
}

ssize_t er_zstd(uint8_t *out, size_t cap, const void *in, size_t n, unsigned flags, int windowlog)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	if (!c)
		return WISP_ERR_NOMEM;
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, !!(flags & ER_Z_SIZE));
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, !!(flags & ER_Z_CHECKSUM));
	if (windowlog)
		ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, windowlog);
	size_t r = ZSTD_compress2(c, out, cap, in, n);
	ZSTD_freeCCtx(c);
	return ZSTD_isError(r) ? WISP_ERR_NOBUF : (ssize_t)r;
}

ssize_t er_encode(uint8_t *out, size_t cap, int result, const void *in, size_t n)
{
	size_t off = 0;
	if (cap < 1 + WISP_UVARINT_MAX_LEN)
		return WISP_ERR_NOBUF;
	if (result >= 0)
		out[off++] = (uint8_t)result;
	off += wisp_uvarint_put(out + off, n);
	ssize_t z = er_zstd(out + off, cap - off, in, n, ER_Z_SIZE, 0);
	return z < 0 ? z : (ssize_t)off + z;
}
