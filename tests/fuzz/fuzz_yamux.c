/* yamux session on arbitrary input. The first two bytes choose the side
 * (client or server), a configuration and the seed of the callbacks'
 * choices; the rest arrives in pieces of varying size. Between pieces the
 * session's output is pulled with varying caps, its timers run, and the
 * application opens, writes, closes and resets streams. Callbacks consume,
 * defer, reply, close and reset. Checks: no crash, no leak (every pooled
 * buffer returns), stream_closed exactly once per stream, bounded output,
 * and the documented error space. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "net/yamux.h"
#include "runtime/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRACK 64 /* streams whose open/closed pairing is checked */

struct app {
	wisp_yamux *y;
	uint64_t rng;
	uint32_t ids[TRACK];
	uint8_t state[TRACK]; /* 0 free, 1 live, 2 closed */
	unsigned n;
	uint32_t deferred_id;
	uint32_t deferred;
};

static wisp_pool *pool;

static uint32_t rnd(struct app *a)
{
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 7;
	a->rng ^= a->rng << 17;
	return (uint32_t)a->rng;
}

static int slot(struct app *a, uint32_t id)
{
	for (unsigned i = 0; i < a->n; i++)
		if (a->ids[i] == id)
			return (int)i;
	return -1;
}

static void track(struct app *a, uint32_t id)
{
	int i = slot(a, id);
	if (i >= 0) {
		/* an id may come back only after its stream_closed (a peer reusing it) */
		if (a->state[i] == 1)
			abort();
		a->state[i] = 1;
		return;
	}
	if (a->n < TRACK) {
		a->ids[a->n] = id;
		a->state[a->n++] = 1;
	}
}

static bool known_error(int rc)
{
	switch (rc) {
	case WISP_ERR_MALFORMED:
	case WISP_ERR_PROTOCOL:
	case WISP_ERR_FLOW_CONTROL:
	case WISP_ERR_STREAM_LIMIT:
	case WISP_ERR_LIMIT:
	case WISP_ERR_TIMEOUT:
	case WISP_ERR_RESET:
	case WISP_ERR_NOMEM:
		return true;
	default:
		return false;
	}
}

static int on_open(void *ctx, uint32_t id)
{
	struct app *a = ctx;
	if (rnd(a) % 8 == 0)
		return -1;
	track(a, id);
	if (rnd(a) % 4 == 0) {
		static const char hi[] = "hello";
		int rc = wisp_yamux_write_copy(a->y, id, pool, hi, sizeof(hi));
		if (rc && rc != WISP_ERR_NOMEM)
			abort();
	}
	return 0;
}

static int on_data(void *ctx, uint32_t id, void *user, const uint8_t *p, size_t n)
{
	struct app *a = ctx;
	(void)user;
	if (!n || !p)
		abort();
	uint32_t r = rnd(a);
	if (r % 16 == 0)
		return -1;
	if (r % 16 == 1 && !a->deferred) {
		/* keep it for later */
		a->deferred_id = id;
		a->deferred = (uint32_t)n;
		return 0;
	}
	if (wisp_yamux_consumed(a->y, id, n))
		abort();
	if (r % 16 == 2) {
		int rc = wisp_yamux_write_copy(a->y, id, pool, p, n > 300 ? 300 : n);
		if (rc && rc != WISP_ERR_CLOSED && rc != WISP_ERR_NOMEM)
			abort();
	}
	if (r % 16 == 3 && wisp_yamux_reset(a->y, id))
		abort();
	return 0;
}

static void on_fin(void *ctx, uint32_t id, void *user)
{
	struct app *a = ctx;
	(void)user;
	if (rnd(a) % 2 && wisp_yamux_close(a->y, id))
		abort();
}

static void on_closed(void *ctx, uint32_t id, void *user, int err)
{
	struct app *a = ctx;
	(void)user;
	int i = slot(a, id);
	if (i >= 0) {
		if (a->state[i] != 1)
			abort(); /* closed twice, or never opened */
		a->state[i] = 2;
	}
	if (a->deferred_id == id)
		a->deferred = 0;
	if (err > 0 || (err && err != WISP_ERR_CLOSED && !known_error(err)))
		abort();
	if (wisp_yamux_consumed(a->y, id, 0) != WISP_ERR_NOTFOUND)
		abort();
	if (wisp_yamux_write_copy(a->y, id, pool, "x", 1) >= 0)
		abort();
}

static void on_acked(void *ctx, uint32_t id, void *user)
{
	(void)ctx;
	(void)id;
	(void)user;
}

static const wisp_yamux_callbacks cbs = {
	.stream_open = on_open,
	.stream_data = on_data,
	.stream_fin = on_fin,
	.stream_acked = on_acked,
	.stream_closed = on_closed,
};

static uint8_t out[70000];

static void drain(struct app *a, wisp_tstamp now, size_t cap)
{
	for (int i = 0; i < 64; i++) {
		ssize_t n = wisp_yamux_pull(a->y, out, cap, now);
		if (n < 0 && n != WISP_ERR_NOBUF)
			abort();
		if (n <= 0)
			return;
		if ((size_t)n > cap)
			abort();
		/* whole frames only, each with a valid header */
		size_t off = 0;
		while (off < (size_t)n) {
			if ((size_t)n - off < WISP_YAMUX_HEADER_LEN || out[off] != 0 ||
			    out[off + 1] > WISP_YAMUX_GO_AWAY)
				abort();
			uint32_t len = (uint32_t)out[off + 8] << 24 | (uint32_t)out[off + 9] << 16 |
				       (uint32_t)out[off + 10] << 8 | out[off + 11];
			bool is_data = out[off + 1] == WISP_YAMUX_DATA;
			off += WISP_YAMUX_HEADER_LEN;
			if (is_data) {
				if (len > (size_t)n - off || len == 0)
					abort();
				off += len;
			}
		}
	}
}

static void app_step(struct app *a, wisp_tstamp now)
{
	uint32_t r = rnd(a);
	uint32_t id;
	switch (r % 8) {
	case 0: {
		int rc = wisp_yamux_open(a->y, NULL, &id);
		if (rc == 0) {
			track(a, id);
			if (wisp_yamux_write_copy(a->y, id, pool, out, 1 + (r >> 8) % 2000) == WISP_ERR_INVALID_ARG)
				abort();
		} else if (rc != WISP_ERR_AGAIN && rc != WISP_ERR_LIMIT && rc != WISP_ERR_CLOSED &&
			   rc != WISP_ERR_NOMEM) {
			abort();
		}
		break;
	}
	case 1:
		if (a->n) {
			id = a->ids[(r >> 8) % a->n];
			int rc = wisp_yamux_close(a->y, id);
			if (rc && rc != WISP_ERR_NOTFOUND && rc != WISP_ERR_CLOSED)
				abort();
		}
		break;
	case 2:
		if (a->n) {
			id = a->ids[(r >> 8) % a->n];
			int rc = wisp_yamux_reset(a->y, id);
			if (rc && rc != WISP_ERR_NOTFOUND && rc != WISP_ERR_CLOSED)
				abort();
		}
		break;
	case 3:
		if (a->deferred) {
			if (wisp_yamux_consumed(a->y, a->deferred_id, a->deferred))
				abort();
			a->deferred = 0;
		}
		break;
	case 4:
		(void)wisp_yamux_ping(a->y, now);
		break;
	case 5:
		if (r % 64 == 5)
			(void)wisp_yamux_go_away(a->y, (r >> 8) % 3);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	if (!pool && wisp_pool_new(&pool, wisp_mem_default(), 64u << 20))
		abort();
	bool client = data[0] & 1;
	unsigned split = (data[0] >> 1) & 7;
	wisp_yamux_config cfg;
	wisp_yamux_config_default(&cfg);
	switch (data[1] & 3) {
	case 0:
		break;
	case 1: /* tight limits */
		cfg.max_streams = 3;
		cfg.max_refused = 2;
		cfg.ack_backlog = 2;
		cfg.max_ctrl_bytes = 48;
		break;
	case 2: /* big windows, no timers */
		cfg.window = 1u << 20;
		cfg.max_window = 4u << 20;
		cfg.keepalive_ns = 0;
		cfg.rtt_interval_ns = 0;
		break;
	default: /* short timers */
		cfg.keepalive_ns = 1000;
		cfg.ping_timeout_ns = 3000;
		cfg.rtt_interval_ns = 500;
		cfg.max_window = cfg.window;
		break;
	}
	struct app a = { .rng = (uint64_t)data[2] * 0x9E3779B97F4A7C15u | 1 };
	wisp_tstamp now = 1000;
	if (wisp_yamux_new(&a.y, wisp_mem_default(), &cfg, client, &cbs, &a, now))
		abort();
	data += 3;
	size -= 3;
	int err = 0;
	while (size) {
		size_t piece;
		switch (split) {
		case 0:
			piece = size;
			break;
		case 1:
			piece = 1;
			break;
		default:
			piece = 1 + rnd(&a) % (split == 2 ? 13 : split * 97);
		}
		if (piece > size)
			piece = size;
		int rc = wisp_yamux_read(a.y, data, piece, now);
		if (rc && !known_error(rc))
			abort();
		if (err && rc != err)
			abort(); /* a failed session keeps its error */
		err = rc;
		data += piece;
		size -= piece;
		now += rnd(&a) % 700;
		app_step(&a, now);
		if (rnd(&a) % 2)
			drain(&a, now, 11 + rnd(&a) % (sizeof(out) - 11));
		wisp_tstamp t = wisp_yamux_expiry(a.y);
		if (t <= now) {
			rc = wisp_yamux_handle_expiry(a.y, now);
			if (rc && !known_error(rc))
				abort();
			if (rc)
				err = rc;
		}
	}
	drain(&a, now, sizeof(out));
	wisp_yamux_stats st;
	wisp_yamux_stats_get(a.y, &st);
	if (st.err != err)
		abort();
	wisp_yamux_free(a.y);
	wisp_pool_stats ps;
	wisp_pool_stats_get(pool, &ps);
	if (ps.in_use)
		abort();
	return 0;
}
