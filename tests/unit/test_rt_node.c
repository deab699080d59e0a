/* The public handle: lifecycle, probes through every thread, the event fd,
 * accounting at stop with commands in flight, idling, io_uring refused, and
 * allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wisp/wisp.h>

#include "runtime/loop.h"
#include "runtime/node.h"
#include "tests/testlib.h"

#define WAIT_MS 20000

static void skip_without_uring(void)
{
	wisp_uring_features f;
	char msg[256];
	if (wisp_uring_probe(&f, msg, sizeof(msg)) != WISP_OK) {
		print_message("skipping: %s\n", msg);
		skip();
	}
}

static wisp_node *start_node(uint32_t workers, uint32_t stats_ms)
{
	wisp_options o;
	wisp_options_default(&o);
	o.workers = workers;
	o.stats_interval_ms = stats_ms;
	wisp_node *n = NULL;
	assert_int_equal(wisp_node_new(&n, &o), WISP_OK);
	int err = wisp_node_start(n);
	if (err)
		print_message("start: %s\n", wisp_node_errmsg(n));
	assert_int_equal(err, WISP_OK);
	return n;
}

struct evwait {
	wisp_node *n;
	wisp_event ev;
	wisp_event_type want;
};

static bool next_event_of(void *arg)
{
	struct evwait *w = arg;
	while (wisp_node_next_event(w->n, &w->ev) == 1) {
		if (w->ev.type == w->want)
			return true;
		wisp_event_release(w->n, &w->ev);
	}
	return false;
}

/* Wait (polling the event fd) for the next event of a type. */
static bool wait_event(wisp_node *n, wisp_event_type type, wisp_event *out)
{
	struct evwait w = { .n = n, .want = type };
	bool ok = wt_wait_until(next_event_of, &w, wisp_node_event_fd(n), WAIT_MS);
	*out = w.ev;
	return ok;
}

static void test_options_are_checked(void **state)
{
	(void)state;
	wisp_options o;
	wisp_node *n = (wisp_node *)1;
	wisp_options_default(&o);
	o.version = 99;
	assert_int_equal(wisp_node_new(&n, &o), WISP_ERR_INVALID_ARG);
	assert_null(n);
	wisp_options_default(&o);
	o.mailbox_slots = 1000;
	assert_int_equal(wisp_node_new(&n, &o), WISP_ERR_INVALID_ARG);
	wisp_options_default(&o);
	o.workers = 1000;
	assert_int_equal(wisp_node_new(&n, &o), WISP_ERR_INVALID_ARG);
	assert_string_equal(wisp_errname(WISP_ERR_AGAIN), "WISP_ERR_AGAIN");
	assert_true(wisp_err_is_peer(WISP_ERR_VARINT));
	assert_false(wisp_err_is_peer(WISP_ERR_AGAIN));
	assert_true(wisp_err_is_fatal(WISP_ERR_NOMEM));
}

static void test_probe_visits_every_worker(void **state)
{
	(void)state;
	skip_without_uring();
	wisp_node *n = start_node(3, 0);
	for (uint64_t k = 1; k <= 20; k++) {
		assert_int_equal(wisp_node_probe(n, k), WISP_OK);
		wisp_event ev;
		assert_true(wait_event(n, WISP_EVENT_PROBE, &ev));
		assert_int_equal(ev.status, WISP_OK);
		assert_int_equal(ev.cookie, k);
		const wisp_probe_result *r = ev.u.probe;
		assert_non_null(r);
		assert_int_equal(r->workers, 3);
		assert_int_equal(r->unreachable, 0);
		assert_true(r->sent <= r->actor_recv);
		for (int i = 0; i < 3; i++) {
			assert_true(r->worker_recv[i] >= r->actor_recv);
			assert_true(r->worker_recv[i] <= r->done);
		}
		wisp_event_release(n, &ev);
	}
	wisp_stats st;
	wisp_node_stats(n, &st);
	assert_int_equal(st.threads, 4);
	assert_int_equal(st.thread[0].kind, WISP_THREAD_WORKER);
	assert_int_equal(st.thread[3].kind, WISP_THREAD_ACTORS);
	assert_int_equal(st.events, 20);
	assert_int_equal(st.events_dropped, 0);
	for (int i = 0; i < 3; i++)
		assert_true(st.thread[i].msgs >= 20);
	assert_int_equal(wisp_node_stop(n), WISP_OK);
	assert_int_equal(wisp_node_stop(n), WISP_OK); /* idempotent */
	assert_int_equal(wisp_node_probe(n, 1), WISP_ERR_CLOSED);
	wisp_node_stats(n, &st);
	assert_int_equal(st.pool_in_use, 0);
	wisp_node_free(n);
}

static void test_stats_events(void **state)
{
	(void)state;
	skip_without_uring();
	wisp_node *n = start_node(2, 20);
	wisp_event ev;
	for (int i = 0; i < 3; i++) {
		assert_true(wait_event(n, WISP_EVENT_STATS, &ev));
		assert_int_equal(ev.status, WISP_OK);
		assert_non_null(ev.u.stats);
		assert_int_equal(ev.u.stats->threads, 3);
		assert_true(ev.u.stats->thread[2].timers >= (uint64_t)i);
		wisp_event_release(n, &ev);
	}
	wisp_node_free(n); /* stops too */
}

/* ---- stop while many threads send commands ----------------------------- */

struct prober {
	wisp_node *n;
	uint64_t ok, again, closed;
	uint32_t id;
};

static void *prober_main(void *arg)
{
	struct prober *p = arg;
	for (uint64_t k = 0;; k++) {
		int err = wisp_node_probe(p->n, (uint64_t)p->id << 32 | k);
		if (err == WISP_OK)
			p->ok++;
		else if (err == WISP_ERR_AGAIN)
			p->again++;
		else {
			assert_int_equal(err, WISP_ERR_CLOSED);
			p->closed++;
			return NULL;
		}
	}
}

static void test_stop_with_commands_in_flight(void **state)
{
	(void)state;
	skip_without_uring();
	wisp_options o;
	wisp_options_default(&o);
	o.workers = 2;
	o.mailbox_slots = 256;
	o.event_slots = 1 << 16; /* room for every answer: none may drop */
	o.probe_slots = 1 << 16;
	wisp_node *n = NULL;
	assert_int_equal(wisp_node_new(&n, &o), WISP_OK);
	assert_int_equal(wisp_node_start(n), WISP_OK);
	enum { T = 3 };
	pthread_t th[T];
	struct prober p[T];
	for (int i = 0; i < T; i++) {
		p[i] = (struct prober){ .n = n, .id = (uint32_t)i };
		assert_int_equal(pthread_create(&th[i], NULL, prober_main, &p[i]), 0);
	}
	/* Stop once answers are flowing, with the probers still sending. */
	wisp_event ev;
	assert_true(wait_event(n, WISP_EVENT_PROBE, &ev));
	uint64_t answers = 1;
	wisp_event_release(n, &ev);
	assert_int_equal(wisp_node_stop(n), WISP_OK);
	uint64_t ok = 0;
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		ok += p[i].ok;
		assert_int_equal(p[i].closed, 1);
	}
	/* Every accepted probe was answered exactly once, or is counted as
	 * discarded at stop; nothing vanished and every buffer came back. */
	uint64_t by_status[4] = { 0 };
	while (wisp_node_next_event(n, &ev) == 1) {
		assert_int_equal(ev.type, WISP_EVENT_PROBE);
		answers++;
		by_status[ev.status == WISP_OK ? 0 : ev.status == WISP_ERR_CLOSED ? 1 : ev.status == WISP_ERR_AGAIN ? 2 : 3]++;
		wisp_event_release(n, &ev);
	}
	wisp_stats st;
	wisp_node_stats(n, &st);
	print_message("accepted %llu, answered %llu (ok %llu, closed %llu, partial %llu), discarded %llu\n",
		      (unsigned long long)ok, (unsigned long long)answers, (unsigned long long)by_status[0],
		      (unsigned long long)by_status[1], (unsigned long long)by_status[2],
		      (unsigned long long)st.discarded);
	assert_int_equal(by_status[3], 0);
	assert_int_equal(st.events_dropped, 0);
	/* The gate closes before the actors stop, so every accepted probe
	 * reached the telemetry actor and was answered; what was discarded
	 * were internal hops (worker fan-out and answers) still queued. */
	assert_int_equal(answers, ok);
	assert_int_equal(st.pool_in_use, 0);
	wisp_node_free(n);
}

/* ---- idle ----------------------------------------------------------------- */

static void test_idle_node_sleeps(void **state)
{
	(void)state;
	skip_without_uring();
	wisp_node *n = start_node(2, 0);
	/* One probe so every thread has run, then let it go quiet. */
	assert_int_equal(wisp_node_probe(n, 7), WISP_OK);
	wisp_event ev;
	assert_true(wait_event(n, WISP_EVENT_PROBE, &ev));
	wisp_event_release(n, &ev);
	wisp_stats a, b;
	wisp_node_stats(n, &a);
	/* Watch the idle node for half a second (a window, not a sync point). */
	poll(NULL, 0, 500);
	wisp_node_stats(n, &b);
	for (uint32_t i = 0; i < a.threads; i++) {
		uint64_t turns = b.thread[i].turns - a.thread[i].turns;
		uint64_t cpu = b.thread[i].cpu_ns - a.thread[i].cpu_ns;
		print_message("thread %u: %llu turns, %llu us CPU while idle\n", i, (unsigned long long)turns,
			      (unsigned long long)(cpu / 1000));
		/* Asleep in io_uring_enter: at most the turns that finished the
		 * probe, no spinning. */
		assert_true(turns <= 4);
	}
	wisp_node_free(n);
}

/* ---- io_uring refused ------------------------------------------------------ */

/* In a child: a seccomp filter makes io_uring_setup fail with EPERM, as in a
 * container that blocks it; start must fail and say why. */
static int child_without_uring(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 10;
	wisp_options o;
	wisp_options_default(&o);
	o.workers = 1;
	wisp_node *n = NULL;
	if (wisp_node_new(&n, &o))
		return 11;
	int err = wisp_node_start(n);
	const char *msg = wisp_node_errmsg(n);
	fprintf(stderr, "start: %s: %s\n", wisp_errname(err), msg);
	int rc = err == WISP_ERR_IO_URING && strstr(msg, "EPERM") && strstr(msg, "io_uring") ? 0 : 12;
	wisp_node_free(n);
	return rc;
}

static void test_start_fails_clearly_without_io_uring(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_without_uring());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- allocation failures ---------------------------------------------------- */

static void test_every_allocation_failure(void **state)
{
	(void)state;
	skip_without_uring();
	unsigned long total = 0;
	for (unsigned long fail_at = 1;; fail_at++) {
		wt_failmem fm;
		wt_failmem_init(&fm, fail_at);
		wisp_options o;
		wisp_options_default(&o);
		o.workers = 2;
		o.mailbox_slots = 64;
		o.event_slots = 64;
		o.stats_interval_ms = 1; /* the telemetry actor allocates on its timer too */
		o.mem = &fm.mem;
		wisp_node *n = NULL;
		int err = wisp_node_new(&n, &o);
		if (err) {
			assert_int_equal(err, WISP_ERR_NOMEM);
			assert_null(n);
			continue; /* cmocka checks that nothing leaked */
		}
		err = wisp_node_start(n);
		if (err == WISP_OK) {
			/* A probe's buffer may be refused: then it answers NOMEM. */
			assert_int_equal(wisp_node_probe(n, 1), WISP_OK);
			wisp_event ev;
			assert_true(wait_event(n, WISP_EVENT_PROBE, &ev));
			assert_true(ev.status == WISP_OK || ev.status == WISP_ERR_NOMEM);
			wisp_event_release(n, &ev);
		} else {
			assert_int_equal(err, WISP_ERR_NOMEM);
		}
		wisp_node_free(n);
		if (fm.calls < fail_at) { /* nothing failed: every point was covered */
			total = fail_at - 1;
			break;
		}
	}
	print_message("%lu allocation points failed one by one\n", total);
	assert_true(total > 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_are_checked),
		cmocka_unit_test(test_probe_visits_every_worker),
		cmocka_unit_test(test_stats_events),
		cmocka_unit_test(test_stop_with_commands_in_flight),
		cmocka_unit_test(test_idle_node_sleeps),
		cmocka_unit_test(test_start_fails_clearly_without_io_uring),
		cmocka_unit_test(test_every_allocation_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
