/* gossip-bench: gossipsub delivery rate, publish-to-delivery latency, CPU
 * per delivered message, duplicates per delivered message and memory per
 * node, for N wisp nodes and for N js-libp2p gossipsub nodes on loopback,
 * in one run.
 *
 *   wisp  N nodes in one process (a child forked per run, so every run
 *         starts from a fresh heap, like the js process): one worker and
 *         one actor thread each, unpinned, as tools/wisp-devnet runs them;
 *   js    N js-libp2p nodes in one node.js process
 *         (tests/interop/gossip-bench-js.mjs), started per run.
 *
 * Both sides build the same graph (node i dials i+1 .. i+degree mod N), join
 * one topic with the same mesh degrees (wisp's D 8, Dlo 6, Dhi 12), and run
 * the same scenario: messages of --size bytes published round robin across
 * the nodes, at a rate per second (a timer, no spinning) or, with rate
 * "max/K", closed loop with at most K messages not yet delivered to every
 * other node. A warm-up (not counted), the measured window, then a drain.
 * Every payload starts with the publish time (CLOCK_MONOTONIC), so each
 * delivery's latency is measured in the process that published it.
 *
 * Runs interleave wisp and js (the order alternating) so machine noise falls
 * on both alike. Output: `key=value` rows starting with bench=gossip-bench,
 * min/median/max over --runs, wisp/js ratio rows, and a summary (lines
 * starting with '#'). perf/README.md describes every row. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wisp/wisp.h>

#include "perf/bench.h"

#ifndef WISP_SOURCE_DIR
#error "perf/CMakeLists.txt defines WISP_SOURCE_DIR (the source tree, for gossip-bench-js.mjs)"
#endif

#define MAX_NODES 64
#define MAX_RUNS 64
#define MAX_SCENARIOS 16
#define MAX_EDGES (MAX_NODES * 16)
#define TOPIC "gossip-bench"
#define MAGIC 0x67626e68u /* "gbnh": the payload header, as gossip-bench-js.mjs writes it */
#define HDR 24            /* magic u32, seq u32, publish time u64 ns, publisher u16, pad (little endian) */

typedef struct scenario {
	char name[64]; /* "1K-strict-10" */
	uint32_t size;
	bool strict;
	double rate; /* messages per second, all publishers; 0 = closed loop ("max") */
	uint32_t inflight; /* closed loop: messages not yet delivered everywhere; 0 = --inflight */
} scenario;

static struct {
	uint32_t nodes, degree, inflight, workers, cpus, pool_mib;
	double warmup, duration, drain, quiet;
	int runs;
	bool skip_js, js_stock, timeline;
	uint32_t max_msgs;
	const char *node, *js_script;
	scenario sc[MAX_SCENARIOS];
	int n_sc;
} cfg = {
	.nodes = 8,
	.degree = 3,
	.inflight = 16,
	.workers = 1,
	.pool_mib = 256,
	.warmup = 2,
	.duration = 5,
	.drain = 20,
	.quiet = 2,
	.runs = 3,
	.max_msgs = 2000000,
	.node = "node",
};

static uint32_t edges[MAX_EDGES][2], n_edges, deg[MAX_NODES];
static char machine[160];
static int failures;

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- topology ----------------------------------------------------------------- */

/* Node i dials i+1 .. i+degree (mod N), each pair once: the same list is
 * given to the js side (--edges). */
static void make_edges(void)
{
	n_edges = 0;
	memset(deg, 0, sizeof(deg));
	for (uint32_t i = 0; i < cfg.nodes; i++)
		for (uint32_t k = 1; k <= cfg.degree; k++) {
			uint32_t j = (i + k) % cfg.nodes;
			bool dup = j == i;
			for (uint32_t e = 0; e < n_edges && !dup; e++)
				dup = (edges[e][0] == i && edges[e][1] == j) || (edges[e][0] == j && edges[e][1] == i);
			if (dup || n_edges == MAX_EDGES)
				continue;
			edges[n_edges][0] = i;
			edges[n_edges][1] = j;
			n_edges++;
			deg[i]++;
			deg[j]++;
		}
}

/* ---- latency histogram ------------------------------------------------------------ */

/* 64 sub-buckets per power of two (under 1.6% error), values in ns; the same
 * bucketing as gossip-bench-js.mjs. Fixed memory: no allocation per sample. */
#define SUB 64
typedef struct hist {
	uint64_t c[64 * SUB];
	uint64_t n;
} hist;

static void hist_add(hist *h, uint64_t v)
{
	uint32_t e = 0;
	while (v >= 2 * SUB) {
		v >>= 1;
		e++;
	}
	h->c[e * SUB + v]++;
	h->n++;
}

static double hist_value(uint32_t i)
{
	if (i < 2 * SUB)
		return i + 0.5;
	uint32_t e = i / SUB - 1;
	return (i - e * SUB + 0.5) * ldexp(1, (int)e);
}

/* Nearest rank; the bucket's midpoint. NAN when empty. */
static double hist_quantile(const hist *h, double q)
{
	if (!h->n)
		return NAN;
	uint64_t rank = (uint64_t)ceil(q * (double)h->n), c = 0;
	if (rank < 1)
		rank = 1;
	for (uint32_t i = 0; i < 64 * SUB; i++)
		if ((c += h->c[i]) >= rank)
			return hist_value(i);
	return NAN;
}

static double hist_max(const hist *h)
{
	for (uint32_t i = 64 * SUB; i-- > 0;)
		if (h->c[i])
			return hist_value(i);
	return NAN;
}

/* ---- process memory ----------------------------------------------------------------- */

static double rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return NAN;
	int k = fscanf(f, "%ld %ld", &pages, &resident);
	fclose(f);
	return k == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : NAN;
}

static double hwm_bytes(void)
{
	char line[256];
	double v = NAN;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			v = strtod(line + 6, NULL) * 1024;
	if (f)
		fclose(f);
	return v;
}

/* ---- the wisp side (runs in a forked child) ---------------------------------------- */

enum { PH_WARM, PH_WINDOW, PH_DRAIN, PH_DONE };

typedef struct wnode {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	bool subscribed;
	uint32_t dialed; /* CONNECTED events for our own dials */
} wnode;

typedef struct wrun {
	const scenario *sc;
	uint32_t n;
	wnode node[MAX_NODES];
	uint8_t *bits;  /* bit seq * N + node: that node got that message */
	uint8_t *count; /* per seq: nodes that got it (closed loop: complete at N - 1) */
	uint32_t cap;   /* messages the bit map holds: publishing stops there */
	uint8_t *buf;   /* the payload, rewritten per publish (wisp_publish copies it) */
	hist lat;
	int phase;
	uint32_t seq, win_first, win_end, rr;
	uint64_t deliv_total, got, app_dups, pub_failed, pub_failed_win, pub_again, dial_failed, stalls;
	uint64_t complete, written_off, last_delivery, last_writeoff;
	uint64_t hold_until; /* closed loop: no publishing until then (a publish failed) */
} wrun;

static void w_message(wrun *w, uint32_t me, const wisp_message_info *m, uint64_t now)
{
	w->deliv_total++;
	w->last_delivery = now;
	if (m->len < HDR)
		return;
	uint32_t magic, seq;
	uint64_t sent;
	memcpy(&magic, m->data, 4);
	memcpy(&seq, m->data + 4, 4);
	memcpy(&sent, m->data + 8, 8);
	if (magic != MAGIC || seq >= w->cap)
		return;
	uint64_t bit = (uint64_t)seq * w->n + me;
	uint8_t mask = (uint8_t)(1u << (bit & 7));
	if (w->bits[bit >> 3] & mask) {
		w->app_dups++;
		return;
	}
	w->bits[bit >> 3] |= mask;
	if (++w->count[seq] == w->n - 1)
		w->complete++;
	if (w->phase != PH_WARM && seq >= w->win_first) {
		w->got++;
		hist_add(&w->lat, now > sent ? now - sent : 0);
	}
}

/* Takes every waiting event of every node. */
static void w_drain(wrun *w)
{
	for (uint32_t i = 0; i < w->n; i++) {
		wisp_event ev;
		while (wisp_node_next_event(w->node[i].n, &ev) == 1) {
			switch (ev.type) {
			case WISP_EVENT_MESSAGE:
				w_message(w, i, ev.u.message, now_ns());
				break;
			case WISP_EVENT_PUBLISHED:
				if (ev.status) {
					w->pub_failed++;
					/* cookie = seq + 1: not expected anywhere */
					if (w->phase != PH_WARM && ev.cookie > w->win_first)
						w->pub_failed_win++;
					w->hold_until = now_ns() + SEC(0.01);
					w->written_off++; /* it will never complete */
					if (w->pub_failed <= 3)
						printf("# wisp: publish %llu failed: %s\n",
						       (unsigned long long)ev.cookie - 1, wisp_strerror(ev.status));
				}
				break;
			case WISP_EVENT_LISTENING:
				if (!w->node[i].listen[0])
					snprintf(w->node[i].listen, sizeof(w->node[i].listen), "%s", ev.u.listen->addr);
				break;
			case WISP_EVENT_SUBSCRIBED:
				w->node[i].subscribed = ev.status == WISP_OK;
				break;
			case WISP_EVENT_CONNECTED:
				if (ev.cookie)
					w->node[i].dialed++;
				break;
			case WISP_EVENT_DIAL_FAILED:
				w->dial_failed++;
				printf("# wisp: node %u dial failed: %s (%s)\n", i, wisp_strerror(ev.status),
				       ev.u.peer->stage);
				break;
			default:
				break;
			}
			wisp_event_release(w->node[i].n, &ev);
		}
	}
}

/* Waits up to timeout_ns for an event on any node, then drains. */
static void w_wait(wrun *w, uint64_t timeout_ns)
{
	struct pollfd p[MAX_NODES];
	for (uint32_t i = 0; i < w->n; i++)
		p[i] = (struct pollfd){ .fd = wisp_node_event_fd(w->node[i].n), .events = POLLIN };
	struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
	(void)ppoll(p, w->n, &ts, NULL);
	w_drain(w);
}

static void w_publish(wrun *w)
{
	uint32_t from = w->rr;
	uint16_t from16 = (uint16_t)from;
	uint32_t magic = MAGIC;
	uint64_t t = now_ns();
	memcpy(w->buf, &magic, 4);
	memcpy(w->buf + 4, &w->seq, 4);
	memcpy(w->buf + 8, &t, 8);
	memcpy(w->buf + 16, &from16, 2);
	int rc = wisp_publish(w->node[from].n, TOPIC, w->buf, w->sc->size, (uint64_t)w->seq + 1);
	w->rr = (w->rr + 1) % w->n;
	if (rc) { /* not queued (a full command queue): this seq is used again */
		w->pub_again++;
		w->hold_until = t + SEC(0.001);
		return;
	}
	w->seq++;
}

/* Closed loop: messages published and not yet delivered to every other
 * node. A window of messages, not of deliveries: one slow node holds it. */
static uint64_t w_outstanding(const wrun *w)
{
	uint64_t done = w->complete + w->written_off;
	return w->seq > done ? w->seq - done : 0;
}

typedef struct gsum {
	uint64_t dup, delivered, events_dropped, frames_dropped, pool_exhausted, peer_errors, slow_closes;
	uint64_t budget_stalls, pool_stalls, idontwant_out;
} gsum;

/* The gossip counters of all nodes; *ready (when asked) tells whether every
 * node has each of its neighbours as a gossip peer. */
static gsum w_stats(const wrun *w, bool *ready)
{
	gsum g;
	memset(&g, 0, sizeof(g));
	static wisp_stats st; /* 4 KB+: not on the stack per call */
	if (ready)
		*ready = true;
	for (uint32_t i = 0; i < w->n; i++) {
		wisp_node_stats(w->node[i].n, &st);
		g.dup += st.gossip.msg_duplicate;
		g.delivered += st.gossip.msg_delivered;
		g.events_dropped += st.events_dropped;
		g.frames_dropped += st.gossip.frames_dropped;
		g.pool_exhausted += st.pool_exhausted;
		g.peer_errors += st.net.peer_errors;
		g.slow_closes += st.net.slow_closes;
		g.budget_stalls += st.net.budget_stalls;
		g.pool_stalls += st.net.pool_stalls;
		g.idontwant_out += st.gossip.idontwant_out;
		if (ready && st.gossip.peers < deg[i])
			*ready = false;
	}
	return g;
}

static int w_fail(const char *what)
{
	printf("# wisp: %s\n", what);
	fflush(stdout);
	return 1;
}

/* One wisp run of sc; prints "result key=value ..." on stdout. The exit
 * status of the child. */
static int wisp_run(const scenario *sc)
{
	wrun *w = calloc(1, sizeof(*w));
	if (!w)
		return w_fail("out of memory");
	w->sc = sc;
	w->n = cfg.nodes;
	w->cap = sc->rate > 0 ? (uint32_t)fmin(cfg.max_msgs, ceil(sc->rate * (cfg.warmup + cfg.duration) * 1.05) + 64)
			      : cfg.max_msgs;
	size_t bits_len = ((size_t)w->cap * w->n + 7) / 8;
	w->bits = malloc(bits_len);
	w->count = malloc(w->cap);
	w->buf = malloc(sc->size);
	if (!w->bits || !w->count || !w->buf)
		return w_fail("out of memory");
	memset(w->bits, 0, bits_len); /* touched now, so it is in the baseline */
	memset(w->count, 0, w->cap);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (uint32_t i = 0; i < sc->size; i++) { /* incompressible filler */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w->buf[i] = (uint8_t)x;
	}
	double rss_base = rss_bytes();

	wisp_topic_opts to;
	wisp_topic_opts_default(&to);
	to.sign = sc->strict ? WISP_SIGN_STRICT : WISP_SIGN_NONE;
	to.msgid = sc->strict ? WISP_MSGID_DEFAULT : WISP_MSGID_CONTENT;
	if (to.max_size < sc->size)
		to.max_size = sc->size;
	for (uint32_t i = 0; i < w->n; i++) {
		wisp_options o;
		wisp_options_default(&o);
		o.workers = cfg.workers;
		o.pin_workers = 0; /* N nodes share the CPUs */
		o.event_slots = 16384;
		o.pool_bytes = (size_t)cfg.pool_mib << 20;
		static const char *const addrs[] = { "/ip4/127.0.0.1/tcp/0" };
		o.listen = addrs;
		o.n_listen = 1;
		int err = wisp_node_new(&w->node[i].n, &o);
		if (!err)
			err = wisp_node_start(w->node[i].n);
		if (!err)
			err = wisp_subscribe(w->node[i].n, TOPIC, &to, 0);
		if (err) {
			printf("# wisp: node %u: %s: %s\n", i, wisp_strerror(err),
			       w->node[i].n ? wisp_node_errmsg(w->node[i].n) : "");
			return 1;
		}
	}
	uint64_t t_setup = now_ns(), deadline = t_setup + SEC(20);
	for (bool up = false; !up;) {
		if (now_ns() > deadline)
			return w_fail("nodes not listening and subscribed after 20 s");
		w_wait(w, SEC(0.05));
		up = true;
		for (uint32_t i = 0; i < w->n; i++)
			up &= w->node[i].listen[0] && w->node[i].subscribed;
	}
	for (uint32_t e = 0; e < n_edges; e++)
		if (wisp_dial(w->node[edges[e][0]].n, w->node[edges[e][1]].listen, e + 1))
			return w_fail("wisp_dial refused");
	deadline = now_ns() + SEC(30);
	for (bool up = false; !up;) {
		if (now_ns() > deadline || w->dial_failed)
			return w_fail("connections or topic peers not up after 30 s");
		w_wait(w, SEC(0.02));
		uint32_t dialed = 0;
		bool ready;
		for (uint32_t i = 0; i < w->n; i++)
			dialed += w->node[i].dialed;
		w_stats(w, &ready);
		up = dialed == n_edges && ready;
	}
	printf("# wisp: %u nodes, %u connections up in %.0f ms\n", w->n, n_edges, (now_ns() - t_setup) / 1e6);

	uint64_t t_warm = now_ns(), t_start = t_warm + SEC(cfg.warmup), t_end = t_start + SEC(cfg.duration);
	uint64_t period = sc->rate > 0 ? (uint64_t)(1e9 / sc->rate) : 0, next_pub = t_warm, skipped = 0;
	uint32_t inflight = sc->inflight ? sc->inflight : cfg.inflight;
	uint64_t next_line = t_warm;
	uint64_t cpu0 = 0, bench0 = 0, deliv0 = 0, deliv_end = 0, now = t_warm;
	gsum g0;
	memset(&g0, 0, sizeof(g0));
	w->phase = PH_WARM;
	while (w->phase != PH_DONE) {
		now = now_ns();
		if (w->phase == PH_WARM && now >= t_start) {
			w->phase = PH_WINDOW;
			w->win_first = w->seq;
			cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
			bench0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
			deliv0 = w->deliv_total;
			g0 = w_stats(w, NULL);
		}
		if (w->phase == PH_WINDOW && now >= t_end) {
			w->phase = PH_DRAIN;
			w->win_end = w->seq;
			deliv_end = w->deliv_total;
		}
		uint64_t wait = SEC(0.02);
		if (w->phase <= PH_WINDOW) {
			if (period) {
				if (now > next_pub + SEC(1)) { /* more than a second late: skip, do not burst */
					uint64_t k = (now - next_pub) / period;
					skipped += k;
					next_pub += k * period;
				}
				while (next_pub <= now && w->seq < w->cap) {
					w_publish(w);
					next_pub += period;
				}
				wait = next_pub > now ? next_pub - now : 0;
			} else {
				if (now > w->last_delivery + SEC(1) && now > w->last_writeoff + SEC(1) && w_outstanding(w)) {
					/* Closed loop stuck on deliveries that have not come for a
					 * second (lost, or, in the warm-up, messages published
					 * before the meshes formed that wait for gossip): let
					 * them go. Counted in the window only. */
					w->stalls += w->phase == PH_WINDOW;
					w->written_off += w_outstanding(w);
					w->last_writeoff = now;
				}
				/* after a failed publish (the pool or the command queue is
				 * full), wait a little rather than spin on failures */
				while (now >= w->hold_until && w_outstanding(w) < inflight && w->seq < w->cap)
					w_publish(w);
				if (now < w->hold_until && w->hold_until - now < wait)
					wait = w->hold_until - now;
			}
			uint64_t edge = w->phase == PH_WARM ? t_start : t_end, to_edge = edge > now ? edge - now : 0;
			if (to_edge < wait)
				wait = to_edge;
		} else {
			uint64_t expected = ((uint64_t)w->win_end - w->win_first - w->pub_failed_win) * (w->n - 1);
			uint64_t last = w->last_delivery > t_end ? w->last_delivery : t_end;
			if (w->got >= expected || now > last + SEC(cfg.quiet) || now > t_end + SEC(cfg.drain)) {
				w->phase = PH_DONE;
				break;
			}
		}
		if (cfg.timeline && now >= next_line) {
			/* diagnosis: where the deliveries stall */
			gsum g = w_stats(w, NULL);
			printf("# wisp t=%.1f s published %u delivered %llu complete %llu outstanding %llu dups %llu "
			       "frames_dropped %llu pool_exhausted %llu\n",
			       (now - t_warm) / 1e9, w->seq, (unsigned long long)w->deliv_total,
			       (unsigned long long)w->complete, (unsigned long long)w_outstanding(w),
			       (unsigned long long)g.dup, (unsigned long long)g.frames_dropped,
			       (unsigned long long)g.pool_exhausted);
			next_line += SEC(0.1);
		}
		w_wait(w, wait);
	}
	uint64_t cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0, bench = clock_ns(CLOCK_THREAD_CPUTIME_ID) - bench0;
	gsum g1 = w_stats(w, NULL);
	double rss = rss_bytes(), hwm = hwm_bytes();
	uint64_t last = w->last_delivery < now ? w->last_delivery : now;
	double span = ((last > t_end ? last : t_end) - t_start) / 1e9, all = (now - t_start) / 1e9;
	uint64_t published = w->win_end - w->win_first, deliv = w->deliv_total - deliv0;
	uint64_t expected = (published - w->pub_failed_win) * (w->n - 1);
	double cpu_s = cpu / 1e9;
	printf("result impl=wisp nodes=%u conns=%u size=%u sign=%s rate=%g inflight=%u fast_msg_id=1 window_s=%g "
	       "published=%llu pub_per_s=%.6g publish_failed=%llu publish_again=%llu skipped=%llu expected=%llu "
	       "got=%llu missing=%lld app_dups=%llu stalls=%llu deliveries=%llu span_s=%.6g delivered_per_s=%.6g "
	       "window_delivered_per_s=%.6g drain_s=%.6g lat_p50_us=%.6g lat_p99_us=%.6g lat_p999_us=%.6g "
	       "lat_max_us=%.6g cpu_s=%.6g cpu_cores=%.6g cpu_us_per_delivery=%.6g dup_per_delivery=%.6g "
	       "rss_base_kib=%.0f rss_kib_per_node=%.6g hwm_kib_per_node=%.6g bench_cpu_share=%.6g "
	       "events_dropped=%llu frames_dropped=%llu pool_exhausted=%llu peer_errors=%llu slow_closes=%llu "
	       "lib_delivered=%llu budget_stalls=%llu pool_stalls=%llu idontwant_out=%llu\n",
	       w->n, n_edges, sc->size, sc->strict ? "strict" : "none", sc->rate, sc->rate > 0 ? 0 : inflight,
	       cfg.duration, (unsigned long long)published, published / cfg.duration,
	       (unsigned long long)w->pub_failed, (unsigned long long)w->pub_again, (unsigned long long)skipped,
	       (unsigned long long)expected, (unsigned long long)w->got, (long long)(expected - w->got),
	       (unsigned long long)w->app_dups, (unsigned long long)w->stalls, (unsigned long long)deliv, span,
	       deliv / span, (deliv_end - deliv0) / cfg.duration,
	       last > t_end ? (last - t_end) / 1e9 : 0.0, hist_quantile(&w->lat, 0.5) / 1e3,
	       hist_quantile(&w->lat, 0.99) / 1e3, hist_quantile(&w->lat, 0.999) / 1e3, hist_max(&w->lat) / 1e3,
	       cpu_s, cpu_s / all, deliv ? cpu_s * 1e6 / deliv : NAN,
	       deliv ? (double)(g1.dup - g0.dup) / deliv : NAN, rss_base / 1024, (rss - rss_base) / 1024 / w->n,
	       (hwm - rss_base) / 1024 / w->n, cpu ? (double)bench / cpu : NAN,
	       (unsigned long long)g1.events_dropped, (unsigned long long)g1.frames_dropped,
	       (unsigned long long)g1.pool_exhausted, (unsigned long long)g1.peer_errors,
	       (unsigned long long)g1.slow_closes, (unsigned long long)(g1.delivered - g0.delivered),
	       (unsigned long long)(g1.budget_stalls - g0.budget_stalls), (unsigned long long)(g1.pool_stalls - g0.pool_stalls),
	       (unsigned long long)(g1.idontwant_out - g0.idontwant_out));
	fflush(stdout);
	for (uint32_t i = 0; i < w->n; i++)
		wisp_node_stop(w->node[i].n);
	w_drain(w); /* events queued before the stop hold buffers */
	for (uint32_t i = 0; i < w->n; i++)
		wisp_node_free(w->node[i].n);
	free(w->bits);
	free(w->count);
	free(w->buf);
	free(w);
	return 0;
}

/* ---- child processes ------------------------------------------------------------------ */

/* Restricts the calling process to the first n CPUs it may use. */
static void cpu_limit(uint32_t n)
{
	cpu_set_t all, mine;
	if (!n || sched_getaffinity(0, sizeof(all), &all) != 0)
		return;
	CPU_ZERO(&mine);
	for (int c = 0, k = 0; c < CPU_SETSIZE && (uint32_t)k < n; c++)
		if (CPU_ISSET(c, &all)) {
			CPU_SET(c, &mine);
			k++;
		}
	(void)sched_setaffinity(0, sizeof(mine), &mine);
}

typedef struct proc {
	const char *label;
	pid_t pid;
	int fd[2]; /* stdout, stderr */
	char buf[2][8192];
	size_t have[2];
	char result[8192]; /* the "result ..." line */
	char first[256];   /* the first stdout line (node --version) */
	int status;
} proc;

/* Starts a child with stdout and stderr on pipes: argv is exec'd, or, when
 * argv is NULL, the child runs wisp_run(sc). The child gets SIGTERM if the
 * bench dies first. */
static int proc_start(proc *p, char *const argv[], const scenario *sc, bool limit_cpus)
{
	int o[2], e[2];
	if (pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC))
		return -1;
	fflush(stdout);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		if (limit_cpus)
			cpu_limit(cfg.cpus);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
			_exit(127);
		if (!argv) {
			setvbuf(stdout, NULL, _IOLBF, 0);
			_exit(wisp_run(sc));
		}
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	p->pid = pid;
	p->fd[0] = o[0];
	p->fd[1] = e[0];
	p->have[0] = p->have[1] = 0;
	p->result[0] = p->first[0] = 0;
	return 0;
}

static void proc_line(proc *p, int k, char *line, bool quiet)
{
	if (k == 0 && !p->first[0])
		snprintf(p->first, sizeof(p->first), "%s", line);
	if (k == 0 && !strncmp(line, "result ", 7))
		snprintf(p->result, sizeof(p->result), "%s", line + 7);
	else if (!quiet)
		printf("# %s%s: %s\n", p->label, k ? " stderr" : "", line[0] == '#' ? line + 1 + (line[1] == ' ') : line);
}

/* Reads the child's output until both pipes end, kills it at the deadline,
 * reaps it. False when it timed out or did not exit with 0. */
static bool proc_finish(proc *p, uint64_t deadline, bool quiet)
{
	bool timed_out = false;
	while (p->fd[0] >= 0 || p->fd[1] >= 0) {
		struct pollfd pf[2];
		int n = 0, which[2];
		for (int k = 0; k < 2; k++)
			if (p->fd[k] >= 0) {
				pf[n] = (struct pollfd){ .fd = p->fd[k], .events = POLLIN };
				which[n++] = k;
			}
		uint64_t now = now_ns();
		if (now >= deadline) {
			timed_out = true;
			kill(p->pid, SIGKILL);
			break;
		}
		if (poll(pf, (nfds_t)n, (int)((deadline - now) / 1000000u) + 1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int k = which[i];
			ssize_t r = read(p->fd[k], p->buf[k] + p->have[k], sizeof(p->buf[k]) - 1 - p->have[k]);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				if (p->have[k]) {
					p->buf[k][p->have[k]] = 0;
					proc_line(p, k, p->buf[k], quiet);
				}
				close(p->fd[k]);
				p->fd[k] = -1;
				continue;
			}
			p->have[k] += (size_t)r;
			char *nl;
			while ((nl = memchr(p->buf[k], '\n', p->have[k]))) {
				*nl = 0;
				proc_line(p, k, p->buf[k], quiet);
				size_t used = (size_t)(nl - p->buf[k]) + 1;
				memmove(p->buf[k], nl + 1, p->have[k] - used);
				p->have[k] -= used;
			}
			if (p->have[k] == sizeof(p->buf[k]) - 1) { /* an over-long line: cut */
				p->buf[k][p->have[k]] = 0;
				proc_line(p, k, p->buf[k], quiet);
				p->have[k] = 0;
			}
		}
	}
	for (int k = 0; k < 2; k++)
		if (p->fd[k] >= 0) {
			close(p->fd[k]);
			p->fd[k] = -1;
		}
	waitpid(p->pid, &p->status, 0);
	if (timed_out)
		printf("# %s: timed out, killed\n", p->label);
	else if (!(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0))
		printf("# %s: exited with %s %d\n", p->label, WIFSIGNALED(p->status) ? "signal" : "status",
		       WIFSIGNALED(p->status) ? WTERMSIG(p->status) : WEXITSTATUS(p->status));
	return !timed_out && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
}

/* key=value from a result line; false when absent or not a number. */
static bool kv_num(const char *line, const char *key, double *v)
{
	size_t kl = strlen(key);
	for (const char *p = line; p && *p;) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			char *end;
			*v = strtod(p + kl + 1, &end);
			return end != p + kl + 1 && (*end == ' ' || !*end);
		}
		p = strchr(p, ' ');
	}
	return false;
}

/* ---- metrics -------------------------------------------------------------------------- */

enum {
	M_DELIVERED, M_PUB, M_P50, M_P99, M_P999, M_CPU, M_CORES, M_DUP, M_RSS, M_HWM, M_MISSING, M_BENCH,
	M_COUNT
};

static const struct {
	const char *key, *unit;
	int better; /* 1 higher, -1 lower, 0 neither (a ratio row is printed for +-1) */
} metric[M_COUNT] = {
	[M_DELIVERED] = { "delivered_per_s", "msg/s", 1 },
	[M_PUB] = { "pub_per_s", "msg/s", 0 },
	[M_P50] = { "lat_p50_us", "us", -1 },
	[M_P99] = { "lat_p99_us", "us", -1 },
	[M_P999] = { "lat_p999_us", "us", -1 },
	[M_CPU] = { "cpu_us_per_delivery", "us", -1 },
	[M_CORES] = { "cpu_cores", "cores", 0 },
	[M_DUP] = { "dup_per_delivery", "ratio", -1 },
	[M_RSS] = { "rss_kib_per_node", "KiB", -1 },
	[M_HWM] = { "hwm_kib_per_node", "KiB", -1 },
	[M_MISSING] = { "missing", "msgs", 0 },
	[M_BENCH] = { "bench_cpu_share", "ratio", 0 },
};

typedef struct series {
	double v[M_COUNT][MAX_RUNS];
	int n[M_COUNT];
	int failed;
	double med[M_COUNT];
} series;

static series res[MAX_SCENARIOS][2]; /* [scenario][0 wisp, 1 js] */

static void fmt_num(char *out, size_t cap, double v)
{
	if (isnan(v))
		snprintf(out, cap, "nan");
	else if (fabs(v) >= 100)
		snprintf(out, cap, "%.0f", v);
	else if (fabs(v) >= 1)
		snprintf(out, cap, "%.2f", v);
	else
		snprintf(out, cap, "%.3g", v);
}

/* ---- one run -------------------------------------------------------------------------- */

static bool js_ok;

static void run_one(int si, bool js, int run)
{
	const scenario *sc = &cfg.sc[si];
	char label[96];
	snprintf(label, sizeof(label), "%s %s run %d", js ? "js" : "wisp", sc->name, run + 1);
	proc p = { .label = label };
	char a_nodes[16], a_edges[MAX_EDGES * 12], a_size[16], a_rate[32], a_inflight[16], a_warm[32], a_dur[32],
		a_drain[32], a_quiet[32], a_max[16];
	int rc;
	if (js) {
		snprintf(a_nodes, sizeof(a_nodes), "%u", cfg.nodes);
		size_t off = 0;
		a_edges[0] = 0;
		for (uint32_t e = 0; e < n_edges; e++)
			off += (size_t)snprintf(a_edges + off, sizeof(a_edges) - off, "%s%u-%u", e ? "," : "", edges[e][0],
						edges[e][1]);
		snprintf(a_size, sizeof(a_size), "%u", sc->size);
		snprintf(a_rate, sizeof(a_rate), "%g", sc->rate);
		snprintf(a_inflight, sizeof(a_inflight), "%u", sc->inflight ? sc->inflight : cfg.inflight);
		snprintf(a_warm, sizeof(a_warm), "%g", cfg.warmup);
		snprintf(a_dur, sizeof(a_dur), "%g", cfg.duration);
		snprintf(a_drain, sizeof(a_drain), "%g", cfg.drain);
		snprintf(a_quiet, sizeof(a_quiet), "%g", cfg.quiet);
		snprintf(a_max, sizeof(a_max), "%u", cfg.max_msgs);
		char *argv[] = { (char *)cfg.node, (char *)cfg.js_script, "--nodes", a_nodes, "--edges", a_edges,
				 "--size", a_size, "--sign", sc->strict ? "strict" : "none", "--rate", a_rate,
				 "--inflight", a_inflight, "--warmup", a_warm, "--duration", a_dur, "--drain", a_drain,
				 "--quiet", a_quiet, "--max-msgs", a_max, cfg.js_stock ? "--stock" : NULL, NULL };
		rc = proc_start(&p, argv, sc, true);
	} else {
		rc = proc_start(&p, NULL, sc, true);
	}
	series *s = &res[si][js];
	if (rc) {
		printf("# %s: cannot start: %s\n", label, strerror(errno));
		s->failed++;
		failures++;
		return;
	}
	/* setup (js starts N nodes in a second or two) + warm-up + window + drain */
	uint64_t deadline = now_ns() + SEC(90 + cfg.warmup + cfg.duration + cfg.drain + cfg.quiet);
	bool ok = proc_finish(&p, deadline, false);
	if (!ok || !p.result[0]) {
		if (ok)
			printf("# %s: no result line\n", label);
		s->failed++;
		failures++;
		return;
	}
	double v[M_COUNT];
	for (int m = 0; m < M_COUNT; m++) {
		if (!kv_num(p.result, metric[m].key, &v[m]))
			v[m] = NAN;
		if (!isnan(v[m]) && s->n[m] < MAX_RUNS)
			s->v[m][s->n[m]++] = v[m];
	}
	double pubs = NAN, app_dups = 0, pf = 0, evd = 0, fd = 0, st = 0;
	kv_num(p.result, "published", &pubs);
	kv_num(p.result, "app_dups", &app_dups);
	kv_num(p.result, "publish_failed", &pf);
	kv_num(p.result, "events_dropped", &evd);
	kv_num(p.result, "frames_dropped", &fd);
	kv_num(p.result, "stalls", &st);
	printf("# %s: published %.0f (%.0f/s), delivered %.0f/s, missing %.0f, p50 %.2f ms, p99 %.2f ms, "
	       "p999 %.2f ms, %.1f us cpu/delivery (%.2f cores), %.2f dups/delivery, %.0f KiB/node\n",
	       label, pubs, v[M_PUB], v[M_DELIVERED], v[M_MISSING], v[M_P50] / 1e3, v[M_P99] / 1e3, v[M_P999] / 1e3,
	       v[M_CPU], v[M_CORES], v[M_DUP], v[M_RSS]);
	printf("# %s raw: %s\n", label, p.result);
	if (app_dups > 0 || pf > 0 || evd > 0 || fd > 0 || st > 0 || (v[M_MISSING] > 0))
		printf("# %s WARNING: missing %.0f, repeated deliveries %.0f, publish failures %.0f, events dropped "
		       "%.0f, frames dropped %.0f, closed-loop stalls %.0f\n",
		       label, v[M_MISSING], app_dups, pf, evd, fd, st);
}

/* ---- js prerequisites and the machine ------------------------------------------------------ */

static const char *js_missing(char *node_ver, size_t cap)
{
	static char why[PATH_MAX + 128];
	const char *files = bench_js_files_missing(cfg.js_script, "@chainsafe/libp2p-gossipsub");
	if (files)
		return files;
	proc p = { .label = "node --version" };
	char *argv[] = { (char *)cfg.node, "--version", NULL };
	if (proc_start(&p, argv, NULL, false) || !proc_finish(&p, now_ns() + SEC(20), true) || p.first[0] != 'v') {
		snprintf(why, sizeof(why), "cannot run '%s --version' (is node installed? --node PATH)", cfg.node);
		return why;
	}
	snprintf(node_ver, cap, "%.60s", p.first);
	if (atoi(node_ver + 1) < 20) {
		snprintf(why, sizeof(why), "node %s is older than 20", node_ver);
		return why;
	}
	return NULL;
}

static void machine_row(const char *node_ver)
{
	bench_host h;
	bench_host_get(&h);
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", h.name, h.cpus);
	printf("bench=gossip-bench name=machine arch=%s cpu=\"%s\" nproc=%ld kernel=%s loadavg=%.2f node=%s %s\n",
	       h.u.machine, h.cpu, h.cpus, h.u.release, h.load, node_ver[0] ? node_ver : "none", machine);
}

/* ---- options ----------------------------------------------------------------------------- */

/* A message size: "1K", "64K", "1M" or plain bytes, at most 1 MiB; 0
 * when malformed. */
static uint32_t msg_size(const char *s)
{
	uint64_t v = parse_size(s);
	return v <= (1u << 20) ? (uint32_t)v : 0;
}

static void size_text(char *out, size_t cap, uint32_t size)
{
	if (size % (1024 * 1024) == 0)
		snprintf(out, cap, "%uM", size >> 20);
	else if (size % 1024 == 0)
		snprintf(out, cap, "%uK", size >> 10);
	else
		snprintf(out, cap, "%u", size);
}

/* "N" messages/s, "max" (closed loop, --inflight) or "max/K" (closed loop,
 * K messages in flight). */
static bool parse_rate(const char *s, double *rate, uint32_t *inflight)
{
	char *end;
	*inflight = 0;
	if (!strncmp(s, "max", 3)) {
		*rate = 0;
		if (!s[3])
			return true;
		if (s[3] != '/')
			return false;
		unsigned long k = strtoul(s + 4, &end, 10);
		*inflight = (uint32_t)k;
		return end != s + 4 && !*end && k >= 1 && k <= 100000;
	}
	*rate = strtod(s, &end);
	return end != s && !*end && *rate > 0 && *rate <= 1e6;
}

static bool add_scenario(uint32_t size, const char *sign, double rate, uint32_t inflight)
{
	if (cfg.n_sc == MAX_SCENARIOS || !size || size < HDR || (strcmp(sign, "strict") && strcmp(sign, "none")))
		return false;
	scenario *sc = &cfg.sc[cfg.n_sc++];
	sc->size = size;
	sc->strict = !strcmp(sign, "strict");
	sc->rate = rate;
	sc->inflight = inflight;
	char st[16], rt[32];
	size_text(st, sizeof(st), size);
	if (rate > 0)
		snprintf(rt, sizeof(rt), "%g", rate);
	else if (inflight)
		snprintf(rt, sizeof(rt), "max%u", inflight);
	else
		snprintf(rt, sizeof(rt), "max");
	snprintf(sc->name, sizeof(sc->name), "%s-%s-%s", st, sc->strict ? "strict" : "none", rt);
	return true;
}

/* "SIZE:SIGN:RATE,..." */
static bool parse_scenarios(const char *list)
{
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *sign = strchr(t, ':'), *rate = sign ? strchr(sign + 1, ':') : NULL;
		double r;
		uint32_t k;
		if (!rate)
			return false;
		*sign++ = 0;
		*rate++ = 0;
		if (!parse_rate(rate, &r, &k) || !add_scenario(msg_size(t), sign, r, k))
			return false;
	}
	return cfg.n_sc > 0;
}

#define DEFAULT_SCENARIOS "1K:strict:10,1K:strict:max/32,64K:none:10,64K:none:max/8"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gossip-bench [--nodes N] [--degree K] [--scenarios LIST | --size SIZE --sign POLICY --rate R]\n"
		"                    [--inflight K] [--warmup S] [--duration S] [--drain S] [--runs R]\n"
		"                    [--skip-js] [--js-stock] [--cpus N] [--workers N] [--wisp-pool MIB]\n"
		"                    [--node PATH] [--js-script PATH]\n"
		"\n"
		"Gossipsub on loopback, wisp and js-libp2p in one run. N nodes (wisp: in one forked\n"
		"process per run; js: in one node.js process per run), node i dialing i+1 .. i+K (mod N),\n"
		"all on one topic. Messages are published round robin across the nodes; each payload\n"
		"carries its publish time. Per run: a warm-up (not counted), a measured window, and a\n"
		"drain until every message of the window has reached every other node (or nothing\n"
		"arrives for 2 s). Reported per implementation and scenario, min/median/max over runs:\n"
		"  delivered_per_s      message deliveries (all subscribers) per second, window + drain\n"
		"  lat_p50/p99/p999_us  publish -> delivery latency of the window's messages\n"
		"  cpu_us_per_delivery  process CPU time (all threads) per delivery\n"
		"  dup_per_delivery     duplicate copies received per delivery\n"
		"  rss_kib_per_node     (RSS at the end - RSS before the nodes) / N; hwm_: peak RSS\n"
		"  missing              deliveries of window messages that never came\n"
		"and wisp/js ratio rows. perf/README.md describes every row.\n"
		"\n"
		"  --nodes N          nodes per implementation (default 8, 2..%d)\n"
		"  --degree K         each node dials the next K (default 3: 6 neighbours each at N = 8)\n"
		"  --scenarios LIST   SIZE:SIGN:RATE,... SIZE bytes (K, M suffixes), SIGN strict (StrictSign)\n"
		"                     or none (StrictNoSign, content ids), RATE messages/s in total, or\n"
		"                     max[/K] (closed loop: at most K, default --inflight, messages not yet\n"
		"                     delivered to every other node). Default\n"
		"                     " DEFAULT_SCENARIOS "\n"
		"  --size/--sign/--rate  one scenario instead (defaults 1K, strict, 10)\n"
		"  --inflight K       closed loop: messages not yet delivered everywhere (default 16)\n"
		"  --warmup S         seconds of publishing before the window (default 2)\n"
		"  --duration S       the measured window (default 5)\n"
		"  --drain S          at most this long after the window (default 20)\n"
		"  --runs R           runs of each scenario and implementation (default 3, at most %d)\n"
		"  --skip-js          wisp only (also when node or node_modules is missing)\n"
		"  --js-stock         js without fastMsgIdFn (stock js verifies every duplicate copy)\n"
		"  --cpus N           run both sides on the first N CPUs only (default: all)\n"
		"  --workers N        network workers per wisp node (default 1)\n"
		"  --wisp-pool MIB    bound on each wisp node's buffer pool (default 256, the library's)\n"
		"  --node PATH        the node binary (default: node from PATH)\n"
		"  --js-script PATH   default: %s/tests/interop/gossip-bench-js.mjs\n"
		"  --timeline         wisp: print the counters every 100 ms (diagnosis)\n"
		"\n"
		"Exit status: 0 ok (also when js was skipped), 1 a run failed, 2 usage.\n",
		MAX_NODES, MAX_RUNS, WISP_SOURCE_DIR);
}

/* ---- output -------------------------------------------------------------------------------- */

static void rows(void)
{
	for (int si = 0; si < cfg.n_sc; si++)
		for (int im = 0; im < 2; im++) {
			series *s = &res[si][im];
			if (im == 1 && !js_ok)
				continue;
			for (int m = 0; m < M_COUNT; m++) {
				double t[MAX_RUNS];
				int n = s->n[m];
				memcpy(t, s->v[m], (size_t)n * sizeof(double));
				qsort(t, (size_t)n, sizeof(double), cmp_double);
				char a[32], b[32], c[32];
				/* the upper median for an even count, as the other benches */
				s->med[m] = n ? t[n / 2] : NAN;
				fmt_num(a, sizeof(a), n ? t[0] : NAN);
				fmt_num(b, sizeof(b), s->med[m]);
				fmt_num(c, sizeof(c), n ? t[n - 1] : NAN);
				printf("bench=gossip-bench impl=%s scenario=%s name=%s unit=%s min=%s median=%s max=%s "
				       "runs=%d %s\n",
				       im ? "js" : "wisp", cfg.sc[si].name, metric[m].key, metric[m].unit, a, b, c, n,
				       machine);
			}
		}
	if (!js_ok)
		return;
	for (int si = 0; si < cfg.n_sc; si++)
		for (int m = 0; m < M_COUNT; m++) {
			if (!metric[m].better)
				continue;
			double w = res[si][0].med[m], j = res[si][1].med[m];
			char a[32], b[32];
			fmt_num(a, sizeof(a), w);
			fmt_num(b, sizeof(b), j);
			printf("bench=gossip-bench name=ratio scenario=%s metric=%s wisp=%s js=%s value=%.3g better=%s "
			       "meaning=\"wisp median / js median\" %s\n",
			       cfg.sc[si].name, metric[m].key, a, b, w / j, metric[m].better > 0 ? "higher" : "lower",
			       machine);
		}
}

static void summary(double elapsed)
{
	printf("#\n# gossip-bench summary: medians of %d runs, %u nodes, %u connections, %s\n", cfg.runs, cfg.nodes,
	       n_edges, machine);
	printf("# %-16s %-4s %10s %9s %9s %9s %9s %7s %7s %9s %8s\n", "scenario", "impl", "deliv/s", "p50 ms",
	       "p99 ms", "p999 ms", "cpu us/d", "cores", "dup/d", "KiB/node", "missing");
	for (int si = 0; si < cfg.n_sc; si++)
		for (int im = 0; im < 2; im++) {
			if (im == 1 && !js_ok)
				continue;
			const double *d = res[si][im].med;
			printf("# %-16s %-4s %10.0f %9.3f %9.3f %9.3f %9.1f %7.2f %7.2f %9.0f %8.0f%s\n", cfg.sc[si].name,
			       im ? "js" : "wisp", d[M_DELIVERED], d[M_P50] / 1e3, d[M_P99] / 1e3, d[M_P999] / 1e3,
			       d[M_CPU], d[M_CORES], d[M_DUP], d[M_RSS], d[M_MISSING],
			       res[si][im].failed ? "  (failed runs, see above)" : "");
		}
	if (js_ok)
		for (int si = 0; si < cfg.n_sc; si++) {
			const double *w = res[si][0].med, *j = res[si][1].med;
			printf("# %s: wisp/js delivered %.2fx; js/wisp latency p50 %.1fx, p99 %.1fx, p999 %.1fx; js/wisp "
			       "CPU per delivery %.1fx; wisp/js memory per node %.2fx\n",
			       cfg.sc[si].name, w[M_DELIVERED] / j[M_DELIVERED], j[M_P50] / w[M_P50], j[M_P99] / w[M_P99],
			       j[M_P999] / w[M_P999], j[M_CPU] / w[M_CPU], w[M_RSS] / j[M_RSS]);
		}
	printf("# elapsed %.0f s, %d failed runs\n", elapsed, failures);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nodes", required_argument, NULL, 'n' },	 { "degree", required_argument, NULL, 'k' },
		{ "scenarios", required_argument, NULL, 'S' }, { "size", required_argument, NULL, 'z' },
		{ "sign", required_argument, NULL, 'g' },	 { "rate", required_argument, NULL, 'r' },
		{ "inflight", required_argument, NULL, 'i' },  { "warmup", required_argument, NULL, 'W' },
		{ "duration", required_argument, NULL, 'd' },  { "drain", required_argument, NULL, 'D' },
		{ "runs", required_argument, NULL, 'R' },	 { "skip-js", no_argument, NULL, 's' },
		{ "js-stock", no_argument, NULL, 'T' },	 { "cpus", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },	 { "node", required_argument, NULL, 'N' },
		{ "js-script", required_argument, NULL, 'j' }, { "wisp-pool", required_argument, NULL, 'P' },
		{ "timeline", no_argument, NULL, 'L' },	 { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *scen = NULL, *size = NULL, *sign = NULL, *rate = NULL;
	static char js_default[PATH_MAX];
	bool bad = false;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			cfg.nodes = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.nodes < 2 || cfg.nodes > MAX_NODES;
			break;
		case 'k':
			cfg.degree = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.degree < 1 || cfg.degree > 16;
			break;
		case 'S': scen = optarg; break;
		case 'z': size = optarg; break;
		case 'g': sign = optarg; break;
		case 'r': rate = optarg; break;
		case 'i':
			cfg.inflight = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.inflight < 1 || cfg.inflight > 100000;
			break;
		case 'W': cfg.warmup = strtod(optarg, &end); bad |= *end || !(cfg.warmup >= 0 && cfg.warmup <= 3600); break;
		case 'd':
			cfg.duration = strtod(optarg, &end);
			bad |= *end || !(cfg.duration >= 0.1 && cfg.duration <= 3600);
			break;
		case 'D': cfg.drain = strtod(optarg, &end); bad |= *end || !(cfg.drain >= 0 && cfg.drain <= 3600); break;
		case 'R':
			cfg.runs = (int)strtol(optarg, &end, 10);
			bad |= *end || cfg.runs < 1 || cfg.runs > MAX_RUNS;
			break;
		case 's': cfg.skip_js = true; break;
		case 'T': cfg.js_stock = true; break;
		case 'L': cfg.timeline = true; break;
		case 'c':
			cfg.cpus = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.cpus < 1 || cfg.cpus > CPU_SETSIZE;
			break;
		case 'w':
			cfg.workers = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.workers < 1 || cfg.workers > 16;
			break;
		case 'P':
			cfg.pool_mib = (uint32_t)strtoul(optarg, &end, 10);
			bad |= *end || cfg.pool_mib < 4 || cfg.pool_mib > 65536;
			break;
		case 'N': cfg.node = optarg; break;
		case 'j': cfg.js_script = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (scen && (size || sign || rate)) {
		fprintf(stderr, "gossip-bench: --scenarios or --size/--sign/--rate, not both\n");
		return 2;
	}
	if (size || sign || rate) {
		double r = 10;
		uint32_t k = 0;
		bad |= (rate && !parse_rate(rate, &r, &k)) ||
		       !add_scenario(size ? msg_size(size) : 1024, sign ? sign : "strict", r, k);
	} else if (!parse_scenarios(scen ? scen : DEFAULT_SCENARIOS)) {
		fprintf(stderr, "gossip-bench: bad --scenarios (SIZE:strict|none:RATE|max,...; SIZE %d bytes to 1M)\n", HDR);
		return 2;
	}
	if (bad || optind != argc) {
		fprintf(stderr, "gossip-bench: bad option value or argument\n");
		usage(stderr);
		return 2;
	}
	if (!cfg.js_script) {
		snprintf(js_default, sizeof(js_default), "%s/tests/interop/gossip-bench-js.mjs", WISP_SOURCE_DIR);
		cfg.js_script = js_default;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	uint64_t t_start = now_ns();
	make_edges();

	char node_ver[64] = "";
	const char *js_skip = cfg.skip_js ? "--skip-js" : js_missing(node_ver, sizeof(node_ver));
	js_ok = !js_skip;
	machine_row(node_ver);
	printf("bench=gossip-bench name=config nodes=%u degree=%u connections=%u inflight=%u warmup_s=%g "
	       "duration_s=%g drain_max_s=%g runs=%d wisp_workers=%u wisp_pool_mib=%u cpus_limit=%u js_fast_msg_id=%d %s\n",
	       cfg.nodes, cfg.degree, n_edges, cfg.inflight, cfg.warmup, cfg.duration, cfg.drain, cfg.runs,
	       cfg.workers, cfg.pool_mib, cfg.cpus, !cfg.js_stock, machine);
	for (int si = 0; si < cfg.n_sc; si++) {
		const scenario *sc = &cfg.sc[si];
		char rt[32];
		if (sc->rate > 0)
			snprintf(rt, sizeof(rt), "%g", sc->rate);
		else
			snprintf(rt, sizeof(rt), "max");
		printf("bench=gossip-bench name=scenario scenario=%s size=%u sign=%s msg_id=%s rate=%s inflight=%u %s\n",
		       sc->name, sc->size, sc->strict ? "strict" : "none", sc->strict ? "from||seqno" : "sha256(data)", rt,
		       sc->rate > 0 ? 0 : sc->inflight ? sc->inflight : cfg.inflight, machine);
	}
	if (js_skip)
		printf("bench=gossip-bench name=js_skipped reason=\"%s\" %s\n", js_skip, machine);

	/* Rounds: every scenario, each implementation once, the order alternating. */
	for (int r = 0; r < cfg.runs; r++)
		for (int si = 0; si < cfg.n_sc; si++)
			for (int k = 0; k < 2; k++) {
				bool js = (k + r + si) % 2 == 1;
				if (js && !js_ok)
					continue;
				run_one(si, js, r);
			}
	rows();
	double elapsed = (now_ns() - t_start) / 1e9;
	printf("bench=gossip-bench name=elapsed unit=s value=%.1f failures=%d %s\n", elapsed, failures, machine);
	summary(elapsed);
	return failures ? 1 : 0;
}
