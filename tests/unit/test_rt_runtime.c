/* Runtime core: loops, actors, mailboxes, wakeups, timers, stop. Real
 * threads and real io_uring instances; every wait has a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/loop.h"
#include "runtime/mem.h"
#include "tests/testlib.h"

#define WAIT_MS 20000

/* ---- harness ----------------------------------------------------------- */

struct rt {
	wisp_uring_features feat;
	wisp_loop *loops;
	int n;
	wisp_pool *pool;
};

static void rt_init(struct rt *r, int n)
{
	char msg[256];
	memset(r, 0, sizeof(*r));
	if (wisp_uring_probe(&r->feat, msg, sizeof(msg)) != WISP_OK) {
		print_message("skipping: %s\n", msg);
		skip();
	}
	r->n = n;
	r->loops = wisp_malloc_aligned(wisp_mem_default(), n * sizeof(wisp_loop), 64);
	assert_non_null(r->loops);
	for (int i = 0; i < n; i++)
		assert_int_equal(wisp_loop_init(&r->loops[i], wisp_mem_default(), &r->feat, WISP_THREAD_ACTORS,
						(uint32_t)i, (uint32_t)i, -1, 64),
				 WISP_OK);
	assert_int_equal(wisp_pool_new(&r->pool, wisp_mem_default(), 16 << 20), WISP_OK);
}

static void rt_run(struct rt *r)
{
	for (int i = 0; i < r->n; i++)
		assert_int_equal(wisp_loop_spawn(&r->loops[i]), WISP_OK);
	for (int i = 0; i < r->n; i++)
		assert_int_equal(wisp_loop_wait_ready(&r->loops[i]), WISP_OK);
	for (int i = 0; i < r->n; i++)
		wisp_loop_go(&r->loops[i], true);
}

static uint64_t rt_stop(struct rt *r)
{
	uint64_t discarded = 0;
	for (int i = 0; i < r->n; i++)
		wisp_loop_request_stop(&r->loops[i]);
	for (int i = 0; i < r->n; i++)
		wisp_loop_join(&r->loops[i]);
	for (int i = 0; i < r->n; i++) {
		wisp_loop *l = &r->loops[i];
		for (uint32_t k = 0; k < l->n_actors; k++)
			discarded += wisp_actor_fini(l->actors[k]);
		wisp_loop_fini(l);
	}
	wisp_free_aligned(wisp_mem_default(), r->loops);
	wisp_pool_stats ps;
	wisp_pool_stats_get(r->pool, &ps);
	assert_int_equal(ps.in_use, 0); /* every buffer came back */
	wisp_pool_free(r->pool);
	return discarded;
}

static bool fd_counter_reached(int fd, uint64_t *acc, uint64_t want)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		*acc += v;
	return *acc >= want;
}

struct fdwait {
	int fd;
	uint64_t acc, want;
};

static bool fdwait_cond(void *arg)
{
	struct fdwait *w = arg;
	return fd_counter_reached(w->fd, &w->acc, w->want);
}

/* Wait until eventfd fd has been signalled `want` times in all. */
static bool wait_fd(int fd, uint64_t want)
{
	struct fdwait w = { fd, 0, want };
	return wt_wait_until(fdwait_cond, &w, fd, WAIT_MS);
}

/* ---- collector: checks per-producer order ------------------------------ */

#define MAX_PRODUCERS 8

struct collector {
	uint64_t next[MAX_PRODUCERS]; /* next expected sequence per producer */
	uint64_t got, want;
	uint64_t order_errors;
	uint64_t bytes_ok;
	int done_fd;
};

static void collector_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	struct collector *c = a->state;
	if (m->src >= MAX_PRODUCERS || m->a != c->next[m->src])
		c->order_errors++;
	else
		c->next[m->src]++;
	if (m->buf && m->buf->len == 8 && memcmp(m->buf->data, &m->a, 8) == 0)
		c->bytes_ok++;
	if (++c->got == c->want) {
		uint64_t one = 1;
		assert_int_equal(write(c->done_fd, &one, 8), 8);
	}
}

static const wisp_actor_ops collector_ops = { .name = "collector", .msg = collector_msg };

struct producer {
	wisp_actor *to;
	wisp_pool *pool;
	uint32_t id;
	uint64_t count;
	uint64_t again; /* sends refused with WISP_ERR_AGAIN, then retried */
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	for (uint64_t seq = 0; seq < p->count; seq++) {
		wisp_buf *b = NULL;
		if (seq % 4 == 0) { /* every fourth message carries a buffer */
			while (!(b = wisp_buf_alloc(p->pool, 8)))
				sched_yield();
			memcpy(b->data, &seq, 8);
		}
		wisp_msg m = { .type = 1, .src = p->id, .a = seq, .buf = b };
		int err;
		while ((err = wisp_actor_send(p->to, &m, NULL)) == WISP_ERR_AGAIN) {
			p->again++;
			sched_yield();
		}
		assert_int_equal(err, WISP_OK);
	}
	return NULL;
}

static void test_many_producers_keep_order(void **state)
{
	(void)state;
	struct rt r;
	rt_init(&r, 1);
	struct collector c = { .done_fd = eventfd(0, EFD_NONBLOCK) };
	wisp_actor actor;
	/* A small mailbox, so producers also meet backpressure. */
	assert_int_equal(wisp_actor_init(&actor, &r.loops[0], &collector_ops, &c, 64, (uint32_t)r.n), WISP_OK);
	enum { N = 4, PER = 50000 };
	c.want = (uint64_t)N * PER;
	rt_run(&r);

	pthread_t th[N];
	struct producer p[N];
	for (int i = 0; i < N; i++) {
		p[i] = (struct producer){ .to = &actor, .pool = r.pool, .id = (uint32_t)i, .count = PER };
		assert_int_equal(pthread_create(&th[i], NULL, producer_main, &p[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	assert_true(wait_fd(c.done_fd, 1));
	rt_stop(&r);

	assert_int_equal(c.order_errors, 0);
	assert_int_equal(c.got, c.want);
	assert_int_equal(c.bytes_ok, c.want / 4);
	for (int i = 0; i < N; i++)
		assert_int_equal(c.next[i], PER);
	uint64_t again = 0;
	for (int i = 0; i < N; i++)
		again += p[i].again;
	assert_int_equal(wisp_stat_get(&actor.mb.full), again); /* every refusal counted */
	close(c.done_fd);
}

struct sleepwait {
	wisp_loop *l;
	uint64_t sleeps_before;
};

static bool loop_asleep(void *arg)
{
	struct sleepwait *s = arg;
	return atomic_load(&s->l->sleeping) == WISP_LOOP_ASLEEP &&
	       wisp_stat_get(&s->l->sleeps) > s->sleeps_before;
}

/* ---- gate: an actor that blocks in its handler until released ---------- */

struct gate {
	sem_t entered, release;
	uint64_t got;
	int done_fd;
	uint64_t want;
};

static void gate_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	struct gate *g = a->state;
	if (m->type == 99) { /* hold the loop busy until the test lets go */
		sem_post(&g->entered);
		while (sem_wait(&g->release) != 0)
			;
	}
	if (++g->got == g->want) {
		uint64_t one = 1;
		assert_int_equal(write(g->done_fd, &one, 8), 8);
	}
}

static const wisp_actor_ops gate_ops = { .name = "gate", .msg = gate_msg };

static bool sem_entered(void *arg)
{
	return sem_trywait(arg) == 0;
}

static void test_backpressure_and_ownership(void **state)
{
	(void)state;
	struct rt r;
	rt_init(&r, 1);
	struct gate g = { .done_fd = eventfd(0, EFD_NONBLOCK) };
	sem_init(&g.entered, 0, 0);
	sem_init(&g.release, 0, 0);
	wisp_actor actor;
	assert_int_equal(wisp_actor_init(&actor, &r.loops[0], &gate_ops, &g, 16, (uint32_t)r.n), WISP_OK);
	rt_run(&r);

	/* From sleep: the first send wakes the loop, once. */
	struct sleepwait sw = { &r.loops[0], 0 };
	assert_true(wt_wait_until(loop_asleep, &sw, -1, WAIT_MS));
	uint64_t wakeups_before = wisp_stat_get(&r.loops[0].wakeups);
	wisp_msg hold = { .type = 99 };
	assert_int_equal(wisp_actor_send(&actor, &hold, NULL), WISP_OK);
	assert_true(wt_wait_until(sem_entered, &g.entered, -1, WAIT_MS));

	/* The actor is stuck in its handler: the ring takes exactly 15. */
	for (int i = 0; i < 15; i++) {
		wisp_msg m = { .type = 1, .a = (uint64_t)i };
		assert_int_equal(wisp_actor_send(&actor, &m, NULL), WISP_OK);
	}
	wisp_buf *b = wisp_buf_alloc(r.pool, 100);
	assert_non_null(b);
	wisp_msg extra = { .type = 1, .buf = b };
	assert_int_equal(wisp_actor_send(&actor, &extra, NULL), WISP_ERR_AGAIN);
	assert_int_equal(wisp_actor_send(&actor, &extra, NULL), WISP_ERR_AGAIN);
	assert_int_equal(wisp_stat_get(&actor.mb.full), 2);
	/* A refused send leaves the buffer with the sender. */
	assert_int_equal(atomic_load(&b->refs), 1);

	g.want = 16;
	sem_post(&g.release);
	assert_true(wait_fd(g.done_fd, 1));
	/* The sends after the first found the loop busy: none of them woke it.
	 * (It may already be asleep again, so only the flag is awaited: the
	 * turn that reaps the first wakeup comes before it can sleep.) */
	sw.sleeps_before = 0;
	assert_true(wt_wait_until(loop_asleep, &sw, -1, WAIT_MS));
	assert_int_equal(wisp_stat_get(&r.loops[0].wakeups), wakeups_before + 1);

	/* Now it can take the buffer. */
	g.want = 17;
	assert_int_equal(wisp_actor_send(&actor, &extra, NULL), WISP_OK);
	assert_true(wait_fd(g.done_fd, 1));
	rt_stop(&r);
	close(g.done_fd);
	sem_destroy(&g.entered);
	sem_destroy(&g.release);
}

/* ---- wakeups ----------------------------------------------------------- */

/* relay: forwards every message to the actor in state (from its own loop).
 * Test-only: when the receiver is full it flushes its own queued wakeups
 * and retries, so the test can check order without drops. Real actors never
 * wait on a full mailbox. */
static void relay_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	wisp_actor *to = a->state;
	while (wisp_actor_send(to, m, a) == WISP_ERR_AGAIN) {
		io_uring_submit(&a->loop->ring);
		sched_yield();
	}
	m->buf = NULL;
}

struct statwait {
	wisp_stat *s;
	uint64_t at_least;
};

static bool stat_reached(void *arg)
{
	struct statwait *w = arg;
	return wisp_stat_get(w->s) >= w->at_least;
}

static const wisp_actor_ops relay_ops = { .name = "relay", .msg = relay_msg };

static void test_wakeups_only_when_asleep(void **state)
{
	(void)state;
	struct rt r;
	rt_init(&r, 2);
	struct collector c = { .done_fd = eventfd(0, EFD_NONBLOCK) };
	wisp_actor sink, relay;
	assert_int_equal(wisp_actor_init(&sink, &r.loops[1], &collector_ops, &c, 1024, (uint32_t)r.n), WISP_OK);
	assert_int_equal(wisp_actor_init(&relay, &r.loops[0], &relay_ops, &sink, 1024, (uint32_t)r.n), WISP_OK);
	rt_run(&r);

	/* Both loops go to sleep when idle. */
	struct sleepwait s0 = { &r.loops[0], 0 }, s1 = { &r.loops[1], 0 };
	assert_true(wt_wait_until(loop_asleep, &s0, -1, WAIT_MS));
	assert_true(wt_wait_until(loop_asleep, &s1, -1, WAIT_MS));

	/* One message from this thread (eventfd wake of loop 0), relayed by
	 * loop 0 to the sleeping loop 1 (a MSG_RING wake when available). */
	uint64_t w0 = wisp_stat_get(&r.loops[0].wakeups), w1 = wisp_stat_get(&r.loops[1].wakeups);
	c.want = 1;
	wisp_msg m = { .type = 1, .src = 0, .a = 0 };
	assert_int_equal(wisp_actor_send(&relay, &m, NULL), WISP_OK);
	assert_true(wait_fd(c.done_fd, 1));
	/* Each loop counts its wakeup when it reaps it, just after the turn
	 * that handled the message. */
	struct statwait sw0 = { &r.loops[0].wakeups, w0 + 1 }, sw1 = { &r.loops[1].wakeups, w1 + 1 };
	assert_true(wt_wait_until(stat_reached, &sw0, -1, WAIT_MS));
	assert_true(wt_wait_until(stat_reached, &sw1, -1, WAIT_MS));
	assert_int_equal(wisp_stat_get(&r.loops[0].wakes_sent), 1);
	assert_int_equal(wisp_stat_get(&r.loops[0].wake_errors), 0);

	/* A burst of 10000 through the relay: far fewer wakeups than messages,
	 * since a busy receiver is never woken. */
	c.want = 10001;
	for (uint64_t i = 1; i <= 10000; i++) {
		wisp_msg mm = { .type = 1, .src = 0, .a = i };
		while (wisp_actor_send(&relay, &mm, NULL) == WISP_ERR_AGAIN)
			sched_yield();
	}
	assert_true(wait_fd(c.done_fd, 1));
	assert_int_equal(c.order_errors, 0);
	print_message("burst of 10000: %llu wakeups of the receiving loop\n",
		      (unsigned long long)(wisp_stat_get(&r.loops[1].wakeups) - w1));
	rt_stop(&r);
	close(c.done_fd);
}

/* ---- timers ------------------------------------------------------------ */

struct timers {
	wisp_timer t[4];
	wisp_tstamp deadline[4];
	wisp_tstamp fired_at[4];
	int order[4];
	int fired;
	int late_bad; /* fired before its deadline */
	int done_fd;
};

static void on_timer(wisp_timer *t, wisp_tstamp now)
{
	struct timers *s = t->arg;
	int idx = (int)(t - s->t);
	if (now < s->deadline[idx])
		s->late_bad++;
	s->fired_at[idx] = now;
	s->order[s->fired++] = idx;
	if (s->fired == 3) {
		uint64_t one = 1;
		assert_int_equal(write(s->done_fd, &one, 8), 8);
	}
}

static int timers_start(wisp_actor *a, wisp_tstamp now)
{
	struct timers *s = a->state;
	static const int ms[4] = { 30, 10, 50, 20 };
	for (int i = 0; i < 4; i++) {
		wisp_timer_init(&s->t[i], on_timer, s);
		s->deadline[i] = now + (wisp_tstamp)ms[i] * WISP_NS_PER_MS;
		int err = wisp_loop_timer_arm(a->loop, &s->t[i], s->deadline[i]);
		if (err)
			return err;
	}
	/* Timer 3 is cancelled, timer 2 moved earlier than timer 0. */
	wisp_loop_timer_disarm(a->loop, &s->t[3]);
	s->deadline[2] = now + 25 * WISP_NS_PER_MS;
	return wisp_loop_timer_arm(a->loop, &s->t[2], s->deadline[2]);
}

static void nop_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)a;
	(void)m;
	(void)now;
}

static const wisp_actor_ops timers_ops = { .name = "timers", .start = timers_start, .msg = nop_msg };

static bool three_fired(void *arg)
{
	return wisp_stat_get(&((wisp_loop *)arg)->timers_fired) == 3;
}

static void test_timers_fire_in_order(void **state)
{
	(void)state;
	struct rt r;
	rt_init(&r, 1);
	struct timers s = { .done_fd = eventfd(0, EFD_NONBLOCK) };
	wisp_actor actor;
	assert_int_equal(wisp_actor_init(&actor, &r.loops[0], &timers_ops, &s, 16, (uint32_t)r.n), WISP_OK);
	rt_run(&r);
	assert_true(wait_fd(s.done_fd, 1));
	/* the last callback signals before its loop counts it */
	assert_true(wt_wait_until(three_fired, &r.loops[0], -1, 5000));
	rt_stop(&r);
	assert_int_equal(s.fired, 3);
	assert_int_equal(s.order[0], 1);
	assert_int_equal(s.order[1], 2);
	assert_int_equal(s.order[2], 0);
	assert_int_equal(s.late_bad, 0);
	assert_int_equal(s.fired_at[3], 0);
	close(s.done_fd);
}

/* A heap of many timers, armed, re-armed and cancelled at random, pops in
 * deadline order. Single-threaded: the heap alone. */
static void test_timer_heap_random(void **state)
{
	(void)state;
	enum { N = 2000 };
	static wisp_timer t[N];
	wisp_timer_heap h = { 0 };
	srand(12345);
	print_message("seed 12345\n");
	for (int i = 0; i < N; i++) {
		wisp_timer_init(&t[i], NULL, NULL);
		assert_int_equal(wisp_timer_heap_arm(&h, wisp_mem_default(), &t[i], (wisp_tstamp)(rand() % 100000)),
				 WISP_OK);
	}
	for (int i = 0; i < N; i += 3)
		wisp_timer_heap_disarm(&h, &t[i]);
	for (int i = 1; i < N; i += 3)
		assert_int_equal(wisp_timer_heap_arm(&h, wisp_mem_default(), &t[i], (wisp_tstamp)(rand() % 100000)),
				 WISP_OK);
	wisp_tstamp last = 0;
	int popped = 0;
	wisp_timer *top;
	while ((top = wisp_timer_heap_top(&h))) {
		assert_true(top->deadline >= last);
		last = top->deadline;
		wisp_timer_heap_disarm(&h, top);
		assert_false(wisp_timer_armed(top));
		popped++;
	}
	assert_int_equal(popped, N - (N + 2) / 3);
	wisp_timer_heap_fini(&h, wisp_mem_default());
}

/* ---- stop with messages in flight -------------------------------------- */

static void count_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)m;
	(void)now;
	atomic_fetch_add((_Atomic uint64_t *)a->state, 1);
}

static const wisp_actor_ops count_ops = { .name = "count", .msg = count_msg };

struct flood {
	wisp_actor *to;
	wisp_pool *pool;
	_Atomic bool *stop;
	uint64_t ok, refused;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	while (!atomic_load(f->stop)) {
		wisp_buf *b = wisp_buf_alloc(f->pool, 64);
		wisp_msg m = { .type = 1, .buf = b };
		int err = wisp_actor_send(f->to, &m, NULL);
		if (err == WISP_OK) {
			f->ok++;
		} else {
			assert_true(err == WISP_ERR_AGAIN || err == WISP_ERR_CLOSED);
			wisp_buf_unref(b); /* still ours */
			f->refused++;
		}
	}
	return NULL;
}

static void test_stop_with_messages_in_flight(void **state)
{
	(void)state;
	struct rt r;
	rt_init(&r, 1);
	_Atomic uint64_t handled = 0;
	wisp_actor actor;
	assert_int_equal(wisp_actor_init(&actor, &r.loops[0], &count_ops, (void *)&handled, 256, (uint32_t)r.n), WISP_OK);
	rt_run(&r);
	_Atomic bool stop = false;
	enum { N = 3 };
	pthread_t th[N];
	struct flood f[N];
	for (int i = 0; i < N; i++) {
		f[i] = (struct flood){ .to = &actor, .pool = r.pool, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, flood_main, &f[i]), 0);
	}
	/* Stop the loop while the producers are still sending. */
	while (atomic_load(&handled) < 20000)
		sched_yield();
	wisp_loop_request_stop(&r.loops[0]);
	wisp_loop_join(&r.loops[0]);
	wisp_mailbox_close(&actor.mb);
	atomic_store(&stop, true);
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	uint64_t ok = 0;
	for (int i = 0; i < N; i++)
		ok += f[i].ok;
	/* Restart the join-free bookkeeping of rt_stop: the loop already ended. */
	uint64_t discarded = wisp_actor_fini(&actor);
	r.loops[0].n_actors = 0;
	wisp_loop_fini(&r.loops[0]);
	wisp_free_aligned(wisp_mem_default(), r.loops);
	/* Every accepted message was either handled or released at fini. */
	assert_int_equal(atomic_load(&handled) + discarded, ok);
	wisp_pool_stats ps;
	wisp_pool_stats_get(r.pool, &ps);
	assert_int_equal(ps.in_use, 0);
	wisp_pool_free(r.pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_producers_keep_order),
		cmocka_unit_test(test_backpressure_and_ownership),
		cmocka_unit_test(test_wakeups_only_when_asleep),
		cmocka_unit_test(test_timers_fire_in_order),
		cmocka_unit_test(test_timer_heap_random),
		cmocka_unit_test(test_stop_with_messages_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
