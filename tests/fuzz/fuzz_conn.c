/* The connection pipeline on arbitrary bytes: a listener (and a dialer) fed
 * the input in pieces, its output pulled after every piece. Whatever
 * arrives, the connection either keeps going or fails with a typed error,
 * and frees everything. */
#include <stdlib.h>
#include <string.h>

#include <wisp/error.h>

#include "net/conn.h"
#include "runtime/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_open(wisp_stream *s)
{
	(void)s;
	return 0;
}

static void s_data(wisp_stream *s, const uint8_t *p, size_t n)
{
	(void)p;
	wisp_stream_consumed(s, n);
}

static void s_closed(wisp_stream *s, int err)
{
	(void)s;
	(void)err;
}

static const wisp_stream_ops ops = { .open = s_open, .data = s_data, .closed = s_closed };

static void run(bool dialer, const uint8_t *data, size_t size, size_t step, wisp_pool *pool,
		const wisp_proto_table *t, const wisp_privkey *key)
{
	wisp_conn_config cfg;
	wisp_conn_config_default(&cfg);
	cfg.identity = key;
	cfg.protos = t;
	cfg.pool = pool;
	wisp_conn *c;
	if (wisp_conn_new(&c, wisp_mem_default(), &cfg, dialer, NULL, NULL, NULL, 1) != WISP_OK)
		abort();
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		int err = wisp_conn_read(c, data + off, n, 2 + off);
		int perr;
		wisp_buf *b;
		while ((b = wisp_conn_pull(c, 2 + off, &perr)))
			wisp_buf_unref(b);
		if (err) {
			if (err != wisp_conn_err(c) || (err >= 0))
				abort();
			break;
		}
	}
	(void)wisp_conn_handle_expiry(c, UINT64_C(1) << 62);
	wisp_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static wisp_pool *pool;
	static wisp_proto_table table;
	static wisp_privkey key;
	if (!pool) {
		uint8_t secret[32];
		memset(secret, 7, sizeof(secret));
		if (wisp_pool_new(&pool, wisp_mem_default(), 64u << 20) || wisp_privkey_from_secret(&key, secret) ||
		    wisp_proto_add(&table, "/ipfs/ping/1.0.0", &ops, NULL, 4))
			abort();
	}
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] % 64) + 1;
	run(false, data + 1, size - 1, step, pool, &table, &key);
	run(true, data + 1, size - 1, step, pool, &table, &key);
	wisp_pool_stats st;
	wisp_pool_stats_get(pool, &st);
	if (st.in_use != 0)
		abort(); /* a buffer leaked */
	return 0;
}
