/* reqresp-bench: request/response round trips and chunked sync throughput,
 * beside a single secured stream's throughput measured in the same run.
 *
 * Five wisp nodes in this process over 127.0.0.1 (one worker each): node 0
 * asks, nodes 1..4 answer from this thread's event loop. Each round
 * measures, in a rotating order:
 *   stream   one /perf/1.0.0 download of --stream-bytes from node 1 (the
 *            single-stream figure stream-bench's wisp pair measures: the
 *            ceiling for anything carried over one connection);
 *   rtt      --rtt requests one at a time (64 bytes each way): p50 / p99
 *            latency from wisp_request() to the end event, and round trips/s;
 *   rps      --requests requests with --inflight outstanding: requests/s;
 *   sync1    wisp_sync_start() of --sync-bytes in 1 MiB chunks from node 1
 *            (the servers answer from tools/atlas-demo.h's checkpoint);
 *   sync4    the same from nodes 1..4.
 * Rows: bench=reqresp-bench name=<metric> unit=... min= median= max= over
 * --runs, and ratios of the sync rates to the stream rate.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>

#include <wisp/atlas.h>
#include <wisp/error.h>
#include <wisp/wisp.h>

#include "perf/bench.h"
#include "tools/atlas-demo.h"

#define N 5
#define PROTO_SMALL "/atlas/req/bench/1/pb_zstd"
#define CHUNK (1u << 20)
#define SMALL 64

static struct {
	int runs;
	uint32_t rtt, requests, inflight;
	uint64_t stream_bytes, sync_bytes;
} cfg = { 5, 2000, 20000, 64, 256ull << 20, 256ull << 20 };

typedef struct bnode {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	int connected;
	atlas_demo *demo; /* servers: the checkpoint they serve */
} bnode;

static bnode nodes[N];
static char machine[160];

/* what the measurements wait for */
static uint64_t ends, end_failures, sent_at[1 << 16];
static double *lat_ms;
static uint32_t n_lat;
static int sync_done, sync_status, test_done, test_status;
static wisp_test_result test_res;

/* The servers answer what waited for room. */
static void serve_all(void)
{
	for (int i = 1; i < N; i++)
		atlas_demo_pump(nodes[i].demo, nodes[i].n);
}

static void take(int i, const wisp_event *ev)
{
	bnode *b = &nodes[i];
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		snprintf(b->listen, sizeof(b->listen), "%s", ev->u.listen->addr);
		break;
	case WISP_EVENT_CONNECTED:
		b->connected++;
		break;
	case WISP_EVENT_REQUEST:
		if (ev->u.request->protocol_index == 0) {
			static const uint8_t answer[SMALL];
			if (wisp_respond(b->n, ev->u.request->ref, WISP_RR_SUCCESS, answer, sizeof(answer), 1) != WISP_OK)
				(void)wisp_respond_end(b->n, ev->u.request->ref);
		} else if (b->demo) {
			atlas_demo_request(b->demo, b->n, ev->u.request);
		}
		break;
	case WISP_EVENT_RESPOND_READY:
		if (b->demo)
			atlas_demo_pump(b->demo, b->n);
		break;
	case WISP_EVENT_RESPONSE_END:
		ends++;
		if (ev->status != WISP_OK)
			end_failures++;
		if (lat_ms && ev->cookie < (1 << 16))
			lat_ms[n_lat++] = (double)(now_ns() - sent_at[ev->cookie]) / 1e6;
		break;
	case WISP_EVENT_SYNC_DONE:
		sync_done = 1;
		sync_status = ev->status;
		break;
	case WISP_EVENT_TEST:
		test_done = 1;
		test_status = ev->status;
		test_res = *ev->u.test;
		break;
	default:
		break;
	}
}

/* Drain every node, serve, and stop when cond holds or the deadline passes. */
static bool loop_until(bool (*cond)(void), uint64_t deadline)
{
	for (;;) {
		for (int i = 0; i < N; i++) {
			wisp_event ev;
			while (wisp_node_next_event(nodes[i].n, &ev) == 1) {
				take(i, &ev);
				wisp_event_release(nodes[i].n, &ev);
			}
		}
		serve_all();
		if (cond())
			return true;
		if (now_ns() >= deadline)
			return false;
		struct pollfd p[N];
		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){ .fd = wisp_node_event_fd(nodes[i].n), .events = POLLIN };
		poll(p, N, 1);
	}
}

static bool all_listening(void)
{
	for (int i = 0; i < N; i++)
		if (!nodes[i].listen[0])
			return false;
	return true;
}

static bool all_connected(void)
{
	return nodes[0].connected >= N - 1;
}

static int setup(uint32_t n_chunks)
{
	atlas_demo_cfg dc;
	atlas_demo_cfg_default(&dc);
	dc.txs = 0;
	dc.height = 1;
	dc.chunks = n_chunks;
	dc.chunk_size = CHUNK;
	for (int i = 0; i < N; i++) {
		if (i && !(nodes[i].demo = atlas_demo_new(&dc)))
			return -1;
		wisp_options o;
		wisp_options_default(&o);
		o.workers = 1;
		o.pin_workers = 0;
		static const char *const listen[] = { "/ip4/127.0.0.1/tcp/0" };
		o.listen = listen;
		o.n_listen = 1;
		o.services = WISP_SERVICE_PERF;
		o.max_requests_out = 4096;
		o.pool_bytes = 512ull << 20;
		if (wisp_node_new(&nodes[i].n, &o) != WISP_OK) {
			printf("# node %d: %s\n", i, wisp_node_new_errmsg());
			return -1;
		}
		wisp_reqresp_opts ro;
		wisp_reqresp_opts_default(&ro);
		ro.rate_per_peer = 0;
		ro.max_concurrent_per_peer = 1024;
		ro.max_concurrent = 4096;
		if (wisp_reqresp_register(nodes[i].n, PROTO_SMALL, &ro) != 0 || wisp_atlas_register(nodes[i].n, &ro) ||
		    wisp_node_start(nodes[i].n) != WISP_OK) {
			printf("# node %d: %s\n", i, wisp_node_errmsg(nodes[i].n));
			return -1;
		}
	}
	if (!loop_until(all_listening, now_ns() + SEC(10)))
		return -1;
	for (int i = 1; i < N; i++)
		if (wisp_dial(nodes[0].n, nodes[i].listen, (uint64_t)i) != WISP_OK)
			return -1;
	return loop_until(all_connected, now_ns() + SEC(10)) ? 0 : -1;
}

/* ---- measurements ----------------------------------------------------- */

static bool test_is_done(void)
{
	return test_done;
}

/* MB/s of one /perf/1.0.0 download from node 1. */
static double run_stream(void)
{
	wisp_test_spec t = { .kind = WISP_TEST_PERF, .upload = 0, .download = cfg.stream_bytes };
	test_done = 0;
	if (wisp_stream_test(nodes[0].n, wisp_node_peer_id(nodes[1].n), &t, 1) != WISP_OK ||
	    !loop_until(test_is_done, now_ns() + SEC(120)) || test_status != WISP_OK || !test_res.download_ns)
		return NAN;
	return (double)cfg.stream_bytes / ((double)test_res.download_ns / 1e9) / 1e6;
}

static uint64_t want_ends;

static bool ends_reached(void)
{
	return ends >= want_ends;
}

/* One at a time: p50 and p99 latency (ms), round trips/s. */
static void run_rtt(double *p50, double *p99, double *rate)
{
	static const uint8_t q[SMALL];
	n_lat = 0;
	uint64_t t0 = now_ns();
	for (uint32_t k = 0; k < cfg.rtt; k++) {
		uint64_t cookie = k % (1 << 16);
		want_ends = ends + 1;
		sent_at[cookie] = now_ns();
		if (wisp_request(nodes[0].n, wisp_node_peer_id(nodes[1].n), PROTO_SMALL, q, sizeof(q), 0, cookie, NULL) !=
			    WISP_OK ||
		    !loop_until(ends_reached, now_ns() + SEC(10))) {
			*p50 = *p99 = *rate = NAN;
			return;
		}
	}
	*rate = cfg.rtt / ((double)(now_ns() - t0) / 1e9);
	qsort(lat_ms, n_lat, sizeof(double), cmp_double);
	*p50 = lat_ms[n_lat / 2];
	*p99 = lat_ms[(size_t)(n_lat * 0.99)];
}

/* --inflight outstanding, spread over the four servers: requests/s. */
static double run_rps(void)
{
	static const uint8_t q[SMALL];
	uint64_t base = ends, issued = 0, t0 = now_ns(), deadline = t0 + SEC(60);
	double *keep = lat_ms;
	lat_ms = NULL;
	while (ends - base < cfg.requests && now_ns() < deadline) {
		while (issued < cfg.requests && issued - (ends - base) < cfg.inflight) {
			const wisp_peer_id *to = wisp_node_peer_id(nodes[1 + issued % (N - 1)].n);
			if (wisp_request(nodes[0].n, to, PROTO_SMALL, q, sizeof(q), 0, UINT64_MAX, NULL) != WISP_OK)
				break;
			issued++;
		}
		want_ends = ends + 1;
		loop_until(ends_reached, now_ns() + SEC(1));
	}
	lat_ms = keep;
	if (ends - base < cfg.requests)
		return NAN;
	return cfg.requests / ((double)(now_ns() - t0) / 1e9);
}

static bool sync_is_done(void)
{
	return sync_done;
}

/* MB/s of a sync of --sync-bytes from `peers` servers. */
static double run_sync(const wisp_sync_chunk *ch, uint32_t n, int peers)
{
	wisp_peer_id ids[N - 1];
	for (int i = 0; i < peers; i++)
		ids[i] = *wisp_node_peer_id(nodes[1 + i].n);
	wisp_sync_spec spec;
	wisp_sync_spec_default(&spec);
	spec.protocol = WISP_ATLAS_PROTO_CHECKPOINT;
	spec.height = 1;
	spec.chunks = ch;
	spec.n_chunks = n;
	spec.peers = ids;
	spec.n_peers = (uint32_t)peers;
	spec.per_peer = 8;
	sync_done = 0;
	uint64_t t0 = now_ns();
	if (wisp_sync_start(nodes[0].n, &spec, 7, NULL) != WISP_OK ||
	    !loop_until(sync_is_done, now_ns() + SEC(300)) || sync_status != WISP_OK) {
		printf("# sync from %d peers: %s\n", peers, wisp_strerror(sync_status));
		return NAN;
	}
	return (double)n * CHUNK / ((double)(now_ns() - t0) / 1e9) / 1e6;
}

/* ---- rows --------------------------------------------------------------- */

enum { M_STREAM, M_RTT_P50, M_RTT_P99, M_RTT_RATE, M_RPS, M_SYNC1, M_SYNC4, M_COUNT };

static const struct {
	const char *name, *unit;
} metric[M_COUNT] = {
	{ "stream", "MB/s" },	  { "rtt_p50", "ms" },	     { "rtt_p99", "ms" },    { "rtt_rate", "req/s" },
	{ "requests", "req/s" }, { "sync_1_peer", "MB/s" }, { "sync_4_peers", "MB/s" },
};

static double median_of(double *v, int n)
{
	double tmp[64];
	int k = 0;
	for (int i = 0; i < n && k < 64; i++)
		if (!isnan(v[i]))
			tmp[k++] = v[i];
	if (!k)
		return NAN;
	qsort(tmp, (size_t)k, sizeof(double), cmp_double);
	return tmp[k / 2];
}

static void usage(FILE *f)
{
	fprintf(f, "usage: reqresp-bench [--runs N] [--rtt N] [--requests N] [--inflight N] [--stream-bytes SIZE]\n"
		   "                     [--sync-bytes SIZE]\n"
		   "Request/response round trips and chunked sync throughput between wisp nodes in this process\n"
		   "(127.0.0.1), beside one secured stream's throughput from the same run. Defaults: --runs 5\n"
		   "--rtt 2000 --requests 20000 --inflight 64 --stream-bytes 256M --sync-bytes 256M.\n"
		   "Rows: bench=reqresp-bench name=<metric> unit=.. min= median= max= runs=; see perf/README.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' },	  { "rtt", required_argument, NULL, 't' },
		{ "requests", required_argument, NULL, 'q' },	  { "inflight", required_argument, NULL, 'i' },
		{ "stream-bytes", required_argument, NULL, 's' }, { "sync-bytes", required_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },		  { NULL, 0, NULL, 0 },
	};
	int c;
	bool bad = false;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': bad |= (cfg.runs = atoi(optarg)) < 1 || cfg.runs > 64; break;
		case 't': bad |= (cfg.rtt = (uint32_t)atoi(optarg)) < 10; break;
		case 'q': bad |= (cfg.requests = (uint32_t)atoi(optarg)) < 10; break;
		case 'i': bad |= (cfg.inflight = (uint32_t)atoi(optarg)) < 1 || cfg.inflight > 4096; break;
		case 's': bad |= (cfg.stream_bytes = parse_size(optarg)) < CHUNK; break;
		case 'y': bad |= (cfg.sync_bytes = parse_size(optarg)) < CHUNK; break;
		case 'h': usage(stdout); return 0;
		default: bad = true;
		}
	}
	if (bad || optind != argc) {
		usage(stderr);
		return 2;
	}
	bench_host h;
	bench_host_get(&h);
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", h.name, h.cpus);
	printf("bench=reqresp-bench name=machine arch=%s cpu=\"%s\" nproc=%ld kernel=%s loadavg=%.2f %s\n",
	       h.u.machine, h.cpu, h.cpus, h.u.release, h.load, machine);
	printf("bench=reqresp-bench name=config runs=%d rtt=%u requests=%u inflight=%u stream_bytes=%llu "
	       "sync_bytes=%llu chunk=%u nodes=%d %s\n",
	       cfg.runs, cfg.rtt, cfg.requests, cfg.inflight, (unsigned long long)cfg.stream_bytes,
	       (unsigned long long)cfg.sync_bytes, CHUNK, N, machine);
	lat_ms = calloc(cfg.rtt, sizeof(double));
	uint32_t n_chunks = (uint32_t)(cfg.sync_bytes / CHUNK);
	int status = 0;
	if (setup(n_chunks) != 0) {
		printf("# setup failed\n");
		return 1;
	}
	wisp_sync_chunk *ch = calloc(n_chunks, sizeof(*ch));
	for (uint32_t i = 0; i < n_chunks; i++)
		atlas_demo_chunk(nodes[1].demo, i, &ch[i]);
	double v[M_COUNT][64];
	uint64_t t_all = now_ns();
	for (int r = 0; r < cfg.runs; r++) {
		/* rotate the order so drift on a shared machine spreads evenly */
		for (int k = 0; k < 5; k++) {
			switch ((k + r) % 5) {
			case 0: v[M_STREAM][r] = run_stream(); break;
			case 1: run_rtt(&v[M_RTT_P50][r], &v[M_RTT_P99][r], &v[M_RTT_RATE][r]); break;
			case 2: v[M_RPS][r] = run_rps(); break;
			case 3: v[M_SYNC1][r] = run_sync(ch, n_chunks, 1); break;
			case 4: v[M_SYNC4][r] = run_sync(ch, n_chunks, 4); break;
			}
		}
		printf("# run %d: stream %.0f MB/s, rtt p50 %.3f ms p99 %.3f ms (%.0f/s), %.0f req/s, sync %.0f / %.0f "
		       "MB/s\n",
		       r + 1, v[M_STREAM][r], v[M_RTT_P50][r], v[M_RTT_P99][r], v[M_RTT_RATE][r], v[M_RPS][r],
		       v[M_SYNC1][r], v[M_SYNC4][r]);
	}
	double med[M_COUNT];
	for (int m = 0; m < M_COUNT; m++) {
		double lo = INFINITY, hi = -INFINITY;
		int ok = 0;
		for (int r = 0; r < cfg.runs; r++) {
			if (isnan(v[m][r]))
				continue;
			ok++;
			lo = fmin(lo, v[m][r]);
			hi = fmax(hi, v[m][r]);
		}
		med[m] = median_of(v[m], cfg.runs);
		if (ok < cfg.runs)
			status = 1;
		printf("bench=reqresp-bench name=%s unit=%s min=%.4g median=%.4g max=%.4g runs=%d failed=%d %s\n",
		       metric[m].name, metric[m].unit, ok ? lo : NAN, med[m], ok ? hi : NAN, cfg.runs, cfg.runs - ok,
		       machine);
	}
	printf("bench=reqresp-bench name=ratio metric=sync_1_peer_vs_stream value=%.3f %s\n", med[M_SYNC1] / med[M_STREAM],
	       machine);
	printf("bench=reqresp-bench name=ratio metric=sync_4_peers_vs_stream value=%.3f %s\n",
	       med[M_SYNC4] / med[M_STREAM], machine);
	printf("#\n# reqresp-bench: medians of %d runs in %.0f s: one stream %.0f MB/s; small requests p50 %.3f ms, "
	       "p99 %.3f ms, %.0f/s one at a time, %.0f/s with %u in flight; sync %.0f MB/s from 1 peer (%.2fx the "
	       "stream), %.0f MB/s from 4 (%.2fx)\n",
	       cfg.runs, (double)(now_ns() - t_all) / 1e9, med[M_STREAM], med[M_RTT_P50], med[M_RTT_P99],
	       med[M_RTT_RATE], med[M_RPS], cfg.inflight, med[M_SYNC1], med[M_SYNC1] / med[M_STREAM], med[M_SYNC4],
	       med[M_SYNC4] / med[M_STREAM]);
	wisp_stats st;
	wisp_node_stats(nodes[0].n, &st);
	printf("bench=reqresp-bench name=stats requests_out=%llu failed=%llu end_failures=%llu dropped=%llu %s\n",
	       (unsigned long long)st.reqresp.requests_out, (unsigned long long)st.reqresp.failed,
	       (unsigned long long)end_failures, (unsigned long long)st.reqresp.dropped, machine);
	if (end_failures)
		status = 1;
	for (int i = 0; i < N; i++) {
		wisp_node_free(nodes[i].n);
		atlas_demo_free(nodes[i].demo);
	}
	free(ch);
	free(lat_ms);
	return status;
}
