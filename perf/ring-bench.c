/* ring-bench: the runtime's mailbox throughput and wake latency, each beside
 * a raw baseline measured in the same run, so the runtime's overhead reads as
 * a ratio.
 *
 *   spsc   a loop's actor floods an actor on another loop (the loop lane)
 *          vs a raw ck_ring SPSC loop between two spinning threads;
 *   mpsc   P application threads flood one actor (the shared lane)
 *          vs P raw ck_ring MPSC producers and a spinning consumer;
 *   wake   one message to a sleeping loop, send to handler, from an
 *          application thread (eventfd) and from another loop (MSG_RING)
 *          vs a raw eventfd write to a thread blocked in read().
 *
 * Output: one row per figure, `key=value` fields, medians over --runs. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <ck_ring.h>

#include "runtime/clock.h"
#include "runtime/loop.h"
#include "runtime/mem.h"
#include "runtime/ring.h"

CK_RING_PROTOTYPE(bench_msg, wisp_msg)

static struct {
	uint64_t msgs;
	int runs;
	int producers;
	int wakes;
	const char *only;
} cfg = { .msgs = 2000000, .runs = 5, .producers = 2, .wakes = 2000 };

static char machine[128];

/* ---- small helpers ----------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void pin(int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % n, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void wait_fd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) != sizeof(v)) {
		if (errno != EAGAIN && errno != EINTR) {
			perror("read");
			exit(1);
		}
		sched_yield();
	}
}

static void nap_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

/* Print a throughput row from per-run rates (msgs/s). Returns the median. */
static double row_rate(const char *name, double *rate, int n)
{
	uint64_t v[64];
	for (int i = 0; i < n; i++)
		v[i] = (uint64_t)rate[i];
	qsort(v, (size_t)n, sizeof(v[0]), cmp_u64);
	printf("bench=ring-bench name=%s unit=msgs/s min=%llu median=%llu max=%llu runs=%d %s\n", name,
	       (unsigned long long)v[0], (unsigned long long)v[n / 2], (unsigned long long)v[n - 1], n, machine);
	return (double)v[n / 2];
}

/* Print a latency row from samples (ns). Returns p50. */
static double row_latency(const char *name, uint64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(ns[0]), cmp_u64);
	uint64_t p50 = ns[n / 2], p99 = ns[(size_t)n * 99 / 100];
	printf("bench=ring-bench name=%s unit=us min=%.2f p50=%.2f p99=%.2f max=%.2f samples=%d %s\n", name,
	       ns[0] / 1e3, p50 / 1e3, p99 / 1e3, ns[n - 1] / 1e3, n, machine);
	return (double)p50;
}

static void row_ratio(const char *name, double value, const char *meaning)
{
	printf("bench=ring-bench name=%s unit=ratio value=%.2f meaning=\"%s\" %s\n", name, value, meaning, machine);
}

/* ---- raw ck_ring baselines --------------------------------------------- */

enum raw_kind { RAW_SPSC, RAW_MPSC_STOCK, RAW_MPSC_YIELD };

struct raw {
	ck_ring_t ring;
	wisp_msg *slots;
	uint64_t per_producer;
	int producers;
	enum raw_kind kind;
	_Atomic int ready;
	_Atomic bool stop;
};

/* A stock ck MPSC run on an oversubscribed machine can crawl (a preempted
 * ticket holder stalls every other producer for a scheduler slice), so each
 * raw run is cut off here and reports what it did by then. */
#define RAW_DEADLINE_NS (3 * WISP_NS_PER_S)

static bool raw_send(struct raw *r, wisp_msg *m)
{
	unsigned int ticket;
	wisp_msg *slot;
	switch (r->kind) {
	case RAW_SPSC:
		return ck_ring_enqueue_spsc_bench_msg(&r->ring, r->slots, m);
	case RAW_MPSC_STOCK:
		return ck_ring_enqueue_mpsc_bench_msg(&r->ring, r->slots, m);
	case RAW_MPSC_YIELD:
		slot = ck_ring_enqueue_reserve_mpsc_bench_msg(&r->ring, r->slots, &ticket);
		if (!slot)
			return false;
		*slot = *m;
		wisp_ring_commit_mp(&r->ring, ticket);
		return true;
	}
	return false;
}

static void *raw_producer(void *arg)
{
	struct raw *r = arg;
	if (r->kind == RAW_SPSC)
		pin(0);
	atomic_fetch_add(&r->ready, 1);
	for (uint64_t i = 0; i < r->per_producer; i++) {
		wisp_msg m = { .type = 1, .a = i };
		while (!raw_send(r, &m)) {
			if (atomic_load_explicit(&r->stop, memory_order_relaxed))
				return NULL;
			ck_pr_stall();
		}
	}
	return NULL;
}

static double raw_run(int producers, enum raw_kind kind)
{
	struct raw r = { .per_producer = cfg.msgs / (uint64_t)producers, .producers = producers, .kind = kind };
	uint32_t slots = 4096;
	r.slots = aligned_alloc(64, slots * sizeof(wisp_msg));
	ck_ring_init(&r.ring, slots);
	pthread_t th[16];
	for (int i = 0; i < producers; i++)
		pthread_create(&th[i], NULL, raw_producer, &r);
	cpu_set_t saved;
	pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
	pin(1);
	while (atomic_load(&r.ready) < producers)
		;
	uint64_t want = r.per_producer * (uint64_t)producers, got = 0, sum = 0;
	wisp_tstamp t0 = wisp_clock_now();
	wisp_msg m;
	while (got < want) {
		if (ck_ring_dequeue_mpsc_bench_msg(&r.ring, r.slots, &m)) {
			sum += m.a + 1;
			got++;
		} else {
			ck_pr_stall();
			if (wisp_clock_now() - t0 > RAW_DEADLINE_NS)
				break;
		}
	}
	wisp_tstamp t1 = wisp_clock_now();
	atomic_store(&r.stop, true);
	/* Let a producer stuck in ck's commit finish: drain until all joined. */
	for (int i = 0; i < producers; i++)
		while (pthread_tryjoin_np(th[i], NULL) != 0)
			while (ck_ring_dequeue_mpsc_bench_msg(&r.ring, r.slots, &m))
				;
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	free(r.slots);
	if (sum == 0)
		abort(); /* keeps the loop from being optimized away */
	return (double)got * 1e9 / (double)(t1 - t0);
}

/* ---- the runtime under test -------------------------------------------- */

enum { MSG_DATA = 1, MSG_FLOOD = 2, MSG_PING = 3, MSG_LAT = 4 };

struct sink {
	uint64_t got, want;
	uint64_t *lat;
	int n_lat;
	int done_fd;
};

static void sink_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	struct sink *s = a->state;
	if (m->type == MSG_LAT) {
		s->lat[s->n_lat++] = wisp_loop_now(a->loop) - m->b;
		uint64_t one = 1;
		if (write(s->done_fd, &one, 8) != 8)
			abort();
		return;
	}
	if (++s->got == s->want) {
		uint64_t one = 1;
		if (write(s->done_fd, &one, 8) != 8)
			abort();
	}
}

static const wisp_actor_ops sink_ops = { .name = "sink", .msg = sink_msg };

/* The source floods the sink from its own loop, or stamps and forwards a
 * ping (the loop-to-loop wake path). */
static void source_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	wisp_actor *sink = a->state;
	if (m->type == MSG_PING) {
		wisp_msg lat = { .type = MSG_LAT, .b = wisp_loop_now(a->loop) };
		if (wisp_actor_send(sink, &lat, a))
			abort();
		return;
	}
	for (uint64_t i = 0; i < m->a; i++) {
		wisp_msg d = { .type = MSG_DATA, .a = i };
		while (wisp_actor_send(sink, &d, a) == WISP_ERR_AGAIN) {
			/* Bench only: a real actor never waits on a full mailbox.
			 * Flush our queued wakeups so a sleeping sink hears. */
			if (io_uring_sq_ready(&a->loop->ring))
				io_uring_submit(&a->loop->ring);
			ck_pr_stall();
		}
	}
}

static const wisp_actor_ops source_ops = { .name = "source", .msg = source_msg };

struct rt {
	wisp_uring_features feat;
	wisp_loop *loops;
	wisp_actor source, sink;
	struct sink s;
};

static int rt_start(struct rt *r)
{
	char msg[256];
	if (wisp_uring_probe(&r->feat, msg, sizeof(msg))) {
		fprintf(stderr, "ring-bench: %s\n", msg);
		return 77;
	}
	const wisp_mem *mem = wisp_mem_default();
	r->loops = wisp_malloc_aligned(mem, 2 * sizeof(wisp_loop), 64);
	memset(r->loops, 0, 2 * sizeof(wisp_loop));
	r->s.done_fd = eventfd(0, EFD_NONBLOCK);
	r->s.lat = calloc((size_t)cfg.wakes * 2, sizeof(uint64_t));
	/* Source on CPU 0, sink on CPU 1, as the raw threads. */
	if (wisp_loop_init(&r->loops[0], mem, &r->feat, WISP_THREAD_WORKER, 0, 0, 0, 256) ||
	    wisp_loop_init(&r->loops[1], mem, &r->feat, WISP_THREAD_WORKER, 1, 1, 1, 256) ||
	    wisp_actor_init(&r->sink, &r->loops[1], &sink_ops, &r->s, 4096, 2) ||
	    wisp_actor_init(&r->source, &r->loops[0], &source_ops, &r->sink, 4096, 2))
		return 1;
	for (int i = 0; i < 2; i++)
		if (wisp_loop_spawn(&r->loops[i]) || wisp_loop_wait_ready(&r->loops[i])) {
			fprintf(stderr, "ring-bench: %s\n", r->loops[i].init_msg);
			return 1;
		}
	for (int i = 0; i < 2; i++)
		wisp_loop_go(&r->loops[i], true);
	return 0;
}

static void rt_stop(struct rt *r)
{
	for (int i = 0; i < 2; i++)
		wisp_loop_request_stop(&r->loops[i]);
	for (int i = 0; i < 2; i++)
		wisp_loop_join(&r->loops[i]);
	wisp_actor_fini(&r->source);
	wisp_actor_fini(&r->sink);
	for (int i = 0; i < 2; i++)
		wisp_loop_fini(&r->loops[i]);
	wisp_free_aligned(wisp_mem_default(), r->loops);
	close(r->s.done_fd);
	free(r->s.lat);
}

static void wait_asleep(wisp_loop *l)
{
	while (atomic_load(&l->sleeping) != WISP_LOOP_ASLEEP)
		nap_us(20);
}

static double wisp_spsc_run(struct rt *r)
{
	r->s.got = 0;
	r->s.want = cfg.msgs;
	wisp_msg go = { .type = MSG_FLOOD, .a = cfg.msgs };
	wisp_tstamp t0 = wisp_clock_now();
	if (wisp_actor_send(&r->source, &go, NULL))
		abort();
	wait_fd(r->s.done_fd);
	return (double)cfg.msgs * 1e9 / (double)(wisp_clock_now() - t0);
}

struct app_producer {
	wisp_actor *to;
	uint64_t count;
	_Atomic int *start;
};

static void *app_producer_main(void *arg)
{
	struct app_producer *p = arg;
	while (!atomic_load(p->start))
		;
	for (uint64_t i = 0; i < p->count; i++) {
		wisp_msg d = { .type = MSG_DATA, .a = i };
		while (wisp_actor_send(p->to, &d, NULL) == WISP_ERR_AGAIN)
			ck_pr_stall();
	}
	return NULL;
}

static double wisp_mpsc_run(struct rt *r, int producers)
{
	uint64_t per = cfg.msgs / (uint64_t)producers;
	r->s.got = 0;
	r->s.want = per * (uint64_t)producers;
	_Atomic int start = 0;
	pthread_t th[16];
	struct app_producer p[16];
	for (int i = 0; i < producers; i++) {
		p[i] = (struct app_producer){ .to = &r->sink, .count = per, .start = &start };
		pthread_create(&th[i], NULL, app_producer_main, &p[i]);
	}
	uint64_t wakeups = wisp_stat_get(&r->loops[1].wakeups), sleeps = wisp_stat_get(&r->loops[1].sleeps);
	wisp_tstamp t0 = wisp_clock_now();
	atomic_store(&start, 1);
	wait_fd(r->s.done_fd);
	double rate = (double)r->s.want * 1e9 / (double)(wisp_clock_now() - t0);
	printf("# mpsc run: %.0f msgs/s, the sink slept %llu times and was woken %llu times\n", rate,
	       (unsigned long long)(wisp_stat_get(&r->loops[1].sleeps) - sleeps),
	       (unsigned long long)(wisp_stat_get(&r->loops[1].wakeups) - wakeups));
	for (int i = 0; i < producers; i++)
		pthread_join(th[i], NULL);
	return rate;
}

/* Wake latency: from this thread to the sleeping sink (eventfd path), or
 * through the source loop to the sleeping sink (MSG_RING path). */
static void wisp_wake_run(struct rt *r, bool via_loop, uint64_t *out)
{
	r->s.n_lat = 0;
	for (int i = 0; i < cfg.wakes; i++) {
		wait_asleep(&r->loops[1]);
		if (via_loop) {
			wait_asleep(&r->loops[0]);
			wisp_msg ping = { .type = MSG_PING };
			if (wisp_actor_send(&r->source, &ping, NULL))
				abort();
		} else {
			wisp_msg lat = { .type = MSG_LAT, .b = wisp_clock_now() };
			if (wisp_actor_send(&r->sink, &lat, NULL))
				abort();
		}
		wait_fd(r->s.done_fd);
	}
	memcpy(out, r->s.lat, (size_t)cfg.wakes * sizeof(uint64_t));
}

/* ---- raw wake baseline: eventfd to a thread blocked in read() ---------- */

struct rawwake {
	int fd, back;
	_Atomic uint64_t stamp;
	uint64_t *lat;
	int n;
};

static void *rawwake_main(void *arg)
{
	struct rawwake *w = arg;
	pin(1);
	for (int i = 0; i < w->n; i++) {
		uint64_t v;
		if (read(w->fd, &v, 8) != 8) /* blocking */
			abort();
		w->lat[i] = wisp_clock_now() - atomic_load(&w->stamp);
		if (write(w->back, &v, 8) != 8)
			abort();
	}
	return NULL;
}

static void raw_wake_run(uint64_t *out)
{
	struct rawwake w = { .fd = eventfd(0, 0), .back = eventfd(0, EFD_NONBLOCK), .lat = out, .n = cfg.wakes };
	pthread_t th;
	pthread_create(&th, NULL, rawwake_main, &w);
	for (int i = 0; i < cfg.wakes; i++) {
		nap_us(50); /* let it block in read() again, as the loops sleep */
		atomic_store(&w.stamp, wisp_clock_now());
		uint64_t one = 1;
		if (write(w.fd, &one, 8) != 8)
			abort();
		wait_fd(w.back);
	}
	pthread_join(th, NULL);
	close(w.fd);
	close(w.back);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ring-bench [--msgs N] [--runs N] [--producers N] [--wakes N] [--only spsc|mpsc|wake]\n"
		"\n"
		"Measures wisp's actor mailboxes and wakeups beside raw baselines in the same run:\n"
		"  spsc  loop-to-loop lane vs raw ck_ring SPSC (msgs/s)\n"
		"  mpsc  N application threads into one actor vs raw ck_ring MPSC (msgs/s): ck reserve\n"
		"        with wisp's yielding commit (the baseline), and ck's stock spinning commit,\n"
		"        which can crawl when producers outnumber cores (each raw run stops at 3 s)\n"
		"  wake  message to a sleeping loop, eventfd and MSG_RING paths, vs raw eventfd (us)\n"
		"Rows are key=value; throughput rows give min/median/max over --runs, latency rows\n"
		"p50/p99 over --wakes samples. Defaults: --msgs 2000000 --runs 5 --producers 2 --wakes 2000.\n"
		"Exit status: 0 ok, 2 usage, 77 io_uring unavailable.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "msgs", required_argument, NULL, 'm' }, { "runs", required_argument, NULL, 'r' },
		{ "producers", required_argument, NULL, 'p' }, { "wakes", required_argument, NULL, 'w' },
		{ "only", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': cfg.msgs = strtoull(optarg, NULL, 10); break;
		case 'r': cfg.runs = atoi(optarg); break;
		case 'p': cfg.producers = atoi(optarg); break;
		case 'w': cfg.wakes = atoi(optarg); break;
		case 'o': cfg.only = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.msgs < 1000 || cfg.runs < 1 || cfg.runs > 64 || cfg.producers < 1 || cfg.producers > 16 ||
	    cfg.wakes < 10) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	char host[64] = "?";
	gethostname(host, sizeof(host));
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", host, sysconf(_SC_NPROCESSORS_ONLN));

	struct rt r;
	memset(&r, 0, sizeof(r));
	int err = rt_start(&r);
	if (err)
		return err;
	printf("# ring-bench: %llu messages x %d runs, %d producers, %d wakes; io_uring flags 0x%x, msg_ring %d\n",
	       (unsigned long long)cfg.msgs, cfg.runs, cfg.producers, cfg.wakes, r.feat.setup_flags, r.feat.msg_ring);
	double rate[64];
	bool all = !cfg.only;

	if (all || !strcmp(cfg.only, "spsc")) {
		/* Interleave raw and wisp runs so machine noise hits both alike. */
		double raw_r[64], wisp_r[64];
		for (int i = 0; i < cfg.runs; i++) {
			raw_r[i] = raw_run(1, RAW_SPSC);
			wisp_r[i] = wisp_spsc_run(&r);
		}
		double raw_m = row_rate("raw_ck_ring_spsc", raw_r, cfg.runs);
		double wisp_m = row_rate("wisp_mailbox_loop_to_loop", wisp_r, cfg.runs);
		row_ratio("spsc_wisp_over_raw", wisp_m / raw_m, "wisp loop-lane throughput / raw ck_ring SPSC");
	}
	if (all || !strcmp(cfg.only, "mpsc")) {
		double raw_r[64], stock_r[64];
		char name[64];
		for (int i = 0; i < cfg.runs; i++) {
			stock_r[i] = raw_run(cfg.producers, RAW_MPSC_STOCK);
			raw_r[i] = raw_run(cfg.producers, RAW_MPSC_YIELD);
			rate[i] = wisp_mpsc_run(&r, cfg.producers);
		}
		snprintf(name, sizeof(name), "raw_ck_ring_mpsc_stock_commit_p%d", cfg.producers);
		row_rate(name, stock_r, cfg.runs);
		snprintf(name, sizeof(name), "raw_ck_ring_mpsc_p%d", cfg.producers);
		double raw_m = row_rate(name, raw_r, cfg.runs);
		snprintf(name, sizeof(name), "wisp_mailbox_app_threads_p%d", cfg.producers);
		double wisp_m = row_rate(name, rate, cfg.runs);
		row_ratio("mpsc_wisp_over_raw", wisp_m / raw_m, "wisp shared-lane throughput / raw ck_ring MPSC");
	}
	if (all || !strcmp(cfg.only, "wake")) {
		uint64_t *raw = calloc((size_t)cfg.wakes, 8), *app = calloc((size_t)cfg.wakes, 8),
			 *loop = calloc((size_t)cfg.wakes, 8);
		raw_wake_run(raw);
		wisp_wake_run(&r, false, app);
		wisp_wake_run(&r, true, loop);
		double raw_p = row_latency("raw_eventfd_wake", raw, cfg.wakes);
		double app_p = row_latency("wisp_wake_app_to_loop", app, cfg.wakes);
		double loop_p = row_latency("wisp_wake_loop_to_loop", loop, cfg.wakes);
		row_ratio("wake_app_over_raw_p50", app_p / raw_p, "wisp eventfd wake p50 / raw eventfd p50");
		row_ratio("wake_loop_over_raw_p50", loop_p / raw_p, "wisp MSG_RING wake p50 / raw eventfd p50");
		free(raw);
		free(app);
		free(loop);
	}
	rt_stop(&r);
	return 0;
}
