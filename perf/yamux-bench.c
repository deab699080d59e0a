/* yamux-bench: the yamux core's throughput between two sessions in one
 * thread, beside a memcpy of the same bytes in the same pieces (the one copy
 * pull() makes) measured in the same run.
 *
 *   one_stream       --mib MiB through one stream
 *   hundred_streams  the same bytes spread over 100 streams, round robin
 *   hundred_1k       100 streams written 1 KiB at a time (slices of the
 *                    same buffers): per-write and per-segment costs
 *   memcpy_baseline  the same bytes copied in 65507-byte pieces
 *
 * The sender queues references to a few pooled 64 KiB buffers (zero-copy
 * until pull), pulls 65519 bytes at a time (one Noise frame's plaintext) and
 * the receiver consumes every byte in stream_data, so window updates flow
 * back as they would on a connection. Time for the sessions is the real
 * monotonic clock, so auto-tune sees in-process RTTs.
 *
 * Output: one row per figure, `key=value` fields, min/median/max over --runs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wisp/error.h>

#include "net/yamux.h"
#include "runtime/buf.h"

#define CAP 65519          /* one Noise frame's plaintext */
#define CHUNK 65536        /* bytes per queued buffer */
#define QUEUE (4u << 20)   /* keep this much queued per stream */

static struct {
	uint64_t mib;
	int runs;
	const char *only;
} cfg = { .mib = 256, .runs = 5 };

static char machine[128];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double row(const char *name, double *v, int n, const char *unit)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	printf("bench=yamux-bench name=%s unit=%s min=%.1f median=%.1f max=%.1f runs=%d %s\n", name, unit,
	       v[0], v[n / 2], v[n - 1], n, machine);
	return v[n / 2];
}

struct rx {
	wisp_yamux *y;
	uint64_t bytes;
	uint64_t sum;
};

static int rx_data(void *ctx, uint32_t id, void *user, const uint8_t *p, size_t n)
{
	struct rx *r = ctx;
	(void)user;
	r->bytes += n;
	r->sum += p[0] + p[n - 1]; /* touch the bytes */
	return wisp_yamux_consumed(r->y, id, n);
}

static void die(const char *what, long rc)
{
	fprintf(stderr, "yamux-bench: %s: %ld (%s)\n", what, rc, rc < 0 ? wisp_strerror((int)rc) : "");
	exit(1);
}

/* MB/s moving total bytes from a client to a server over `streams`
 * streams. */
static double yamux_run(wisp_buf **bufs, int nbufs, int streams, size_t wsize, uint64_t total)
{
	static uint8_t wire[CAP];
	struct rx rx = { 0 };
	wisp_yamux_callbacks scb = { .stream_data = rx_data };
	wisp_yamux *c, *s;
	uint64_t t = now_ns();
	int rc = wisp_yamux_new(&c, wisp_mem_default(), NULL, true, NULL, NULL, t);
	if (rc)
		die("new", rc);
	rc = wisp_yamux_new(&s, wisp_mem_default(), NULL, false, &scb, &rx, t);
	if (rc)
		die("new", rc);
	rx.y = s;
	uint32_t ids[128];
	uint64_t left[128];
	for (int i = 0; i < streams; i++) {
		if ((rc = wisp_yamux_open(c, NULL, &ids[i])))
			die("open", rc);
		left[i] = total / (uint64_t)streams + (i == 0 ? total % (uint64_t)streams : 0);
	}
	int next_buf = 0;
	size_t woff = 0;
	uint64_t start = now_ns();
	while (rx.bytes < total) {
		/* keep every stream's queue topped up */
		for (int i = 0; i < streams; i++) {
			while (left[i] && wisp_yamux_stream_queued(c, ids[i]) < QUEUE / (uint64_t)streams + CHUNK) {
				size_t k = left[i] < wsize ? (size_t)left[i] : wsize;
				if ((rc = wisp_yamux_write(c, ids[i], bufs[next_buf], woff, k)))
					die("write", rc);
				woff += wsize;
				if (woff + wsize > CHUNK) {
					woff = 0;
					next_buf = (next_buf + 1) % nbufs;
				}
				left[i] -= k;
			}
		}
		t = now_ns();
		if (wisp_yamux_expiry(c) <= t && (rc = wisp_yamux_handle_expiry(c, t)))
			die("expiry", rc);
		if (wisp_yamux_expiry(s) <= t && (rc = wisp_yamux_handle_expiry(s, t)))
			die("expiry", rc);
		ssize_t n;
		bool moved = false;
		for (int k = 0; k < 16 && (n = wisp_yamux_pull(c, wire, CAP, t)) > 0; k++) {
			if ((rc = wisp_yamux_read(s, wire, (size_t)n, t)))
				die("read", rc);
			moved = true;
		}
		while ((n = wisp_yamux_pull(s, wire, CAP, t)) > 0) {
			if ((rc = wisp_yamux_read(c, wire, (size_t)n, t)))
				die("read", rc);
			moved = true;
		}
		if (n < 0)
			die("pull", (long)n);
		if (!moved && rx.bytes < total)
			die("stalled at byte", (long)rx.bytes);
	}
	double secs = (double)(now_ns() - start) / 1e9;
	wisp_yamux_free(c);
	wisp_yamux_free(s);
	if (rx.sum == 1)
		printf("#\n"); /* keeps the sum live */
	return (double)total / secs / 1e6;
}

static double memcpy_run(const wisp_buf *src, uint64_t total)
{
	static uint8_t wire[CAP];
	uint64_t sum = 0, start = now_ns();
	size_t off = 0;
	for (uint64_t done = 0; done < total;) {
		size_t k = CAP - WISP_YAMUX_HEADER_LEN;
		if (k > total - done)
			k = (size_t)(total - done);
		/* the payload may straddle two queued buffers, as in pull() */
		size_t first = CHUNK - off < k ? CHUNK - off : k;
		memcpy(wire + WISP_YAMUX_HEADER_LEN, src->data + off, first);
		memcpy(wire + WISP_YAMUX_HEADER_LEN + first, src->data, k - first);
		off = (off + k) % CHUNK;
		__asm__ volatile("" : : "r"(wire) : "memory");
		sum += wire[WISP_YAMUX_HEADER_LEN] + wire[WISP_YAMUX_HEADER_LEN + k - 1];
		done += k;
	}
	double secs = (double)(now_ns() - start) / 1e9;
	if (sum == 1)
		printf("#\n");
	return (double)total / secs / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: yamux-bench [--mib N (256)] [--runs N (5)] [--only one|hundred|hundred_1k|memcpy]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' }, { "runs", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': cfg.mib = strtoull(optarg, NULL, 10); break;
		case 'r': cfg.runs = atoi(optarg); break;
		case 'o': cfg.only = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.mib < 1 || cfg.runs < 1 || cfg.runs > 64) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	char host[64] = "?";
	gethostname(host, sizeof(host));
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", host, sysconf(_SC_NPROCESSORS_ONLN));
	uint64_t total = cfg.mib << 20;
	printf("# yamux-bench: %llu MiB x %d runs, pull cap %d, %d-byte buffers\n",
	       (unsigned long long)cfg.mib, cfg.runs, CAP, CHUNK);

	wisp_pool *pool;
	if (wisp_pool_new(&pool, wisp_mem_default(), 256u << 20))
		die("pool", WISP_ERR_NOMEM);
	enum { NBUF = 8 };
	wisp_buf *bufs[NBUF];
	for (int i = 0; i < NBUF; i++) {
		bufs[i] = wisp_buf_alloc(pool, CHUNK);
		if (!bufs[i])
			die("buffer", WISP_ERR_NOMEM);
		for (int k = 0; k < CHUNK; k++)
			bufs[i]->data[k] = (uint8_t)(k * 31 + i);
	}

	double one[64], hundred[64], small[64], base[64];
	bool all = !cfg.only;
	/* interleave so machine noise hits every figure alike */
	for (int i = 0; i < cfg.runs; i++) {
		if (all || !strcmp(cfg.only, "memcpy"))
			base[i] = memcpy_run(bufs[0], total);
		if (all || !strcmp(cfg.only, "one"))
			one[i] = yamux_run(bufs, NBUF, 1, CHUNK, total);
		if (all || !strcmp(cfg.only, "hundred"))
			hundred[i] = yamux_run(bufs, NBUF, 100, CHUNK, total);
		if (all || !strcmp(cfg.only, "hundred_1k"))
			small[i] = yamux_run(bufs, NBUF, 100, 1024, total);
	}
	double b = 0, o = 0, h = 0, k = 0;
	if (all || !strcmp(cfg.only, "memcpy"))
		b = row("memcpy_baseline", base, cfg.runs, "MB/s");
	if (all || !strcmp(cfg.only, "one"))
		o = row("one_stream", one, cfg.runs, "MB/s");
	if (all || !strcmp(cfg.only, "hundred"))
		h = row("hundred_streams", hundred, cfg.runs, "MB/s");
	if (all || !strcmp(cfg.only, "hundred_1k"))
		k = row("hundred_streams_1k_writes", small, cfg.runs, "MB/s");
	if (b > 0 && o > 0)
		printf("bench=yamux-bench name=one_stream_over_memcpy unit=ratio value=%.2f %s\n", o / b, machine);
	if (b > 0 && h > 0)
		printf("bench=yamux-bench name=hundred_streams_over_memcpy unit=ratio value=%.2f %s\n", h / b,
		       machine);
	if (b > 0 && k > 0)
		printf("bench=yamux-bench name=hundred_streams_1k_writes_over_memcpy unit=ratio value=%.2f %s\n",
		       k / b, machine);
	for (int i = 0; i < NBUF; i++)
		wisp_buf_unref(bufs[i]);
	wisp_pool_stats st;
	wisp_pool_stats_get(pool, &st);
	wisp_pool_free(pool);
	if (st.in_use) {
		fprintf(stderr, "yamux-bench: %llu buffers not returned\n", (unsigned long long)st.in_use);
		return 1;
	}
	return 0;
}
