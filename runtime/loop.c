#include "runtime/loop.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <wisp/error.h>

#include "runtime/clock.h"
#include "runtime/mem.h"

/* Messages an actor may handle per turn before the loop moves on to its other
 * actors, timers and completions: bounds the latency one busy actor adds. */
#define DRAIN_BUDGET 256u

/* At stop, turns a loop may spend draining mailboxes that keep refilling. */
#define STOP_DRAIN_TURNS 64u

/* ---- probe ------------------------------------------------------------- */

static const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

int wisp_uring_probe(wisp_uring_features *f, char *msg, size_t msglen)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	struct io_uring ring;
	int ret = -EINVAL;
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = { .flags = tries[i] };
		ret = io_uring_queue_init_params(8, &ring, &p);
		if (ret == 0) {
			f->setup_flags = tries[i];
			break;
		}
		if (ret != -EINVAL)
			break; /* not a missing flag: io_uring itself is refused */
	}
	if (ret < 0) {
		int e = -ret;
		int disabled = -1;
		FILE *fp = fopen("/proc/sys/kernel/io_uring_disabled", "r");
		if (fp) {
			if (fscanf(fp, "%d", &disabled) != 1)
				disabled = -1;
			fclose(fp);
		}
		snprintf(msg, msglen,
			 "io_uring is unavailable: io_uring_setup failed with %s (%s)%s%s", errno_name(e),
			 strerror(e),
			 disabled > 0 ? "; kernel.io_uring_disabled is set" : "",
			 e == EPERM || e == ENOSYS || e == EACCES
				 ? "; check kernel.io_uring_disabled, seccomp filters (containers) and the kernel version (5.19+)"
				 : "");
		return WISP_ERR_IO_URING;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	if (probe) {
		f->msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
		io_uring_free_probe(probe);
	}
	io_uring_queue_exit(&ring);
	return WISP_OK;
}

/* ---- actors ------------------------------------------------------------ */

int wisp_actor_init(wisp_actor *a, wisp_loop *loop, const wisp_actor_ops *ops, void *state, uint32_t slots,
		    uint32_t loops)
{
	memset(a, 0, sizeof(*a));
	if (loop->n_actors == WISP_LOOP_MAX_ACTORS)
		return WISP_ERR_LIMIT;
	int err = wisp_mailbox_init(&a->mb, loop->mem, slots, loops, loop);
	if (err)
		return err;
	a->ops = ops;
	a->state = state;
	a->loop = loop;
	loop->actors[loop->n_actors++] = a;
	return WISP_OK;
}

uint64_t wisp_actor_fini(wisp_actor *a)
{
	if (!a->loop)
		return 0;
	return wisp_mailbox_fini(&a->mb, a->loop->mem);
}

/* ---- loop set-up ------------------------------------------------------- */

int wisp_loop_init(wisp_loop *l, const wisp_mem *mem, const wisp_uring_features *feat, wisp_thread_kind kind,
		   uint32_t index, uint32_t lane, int cpu, uint32_t ring_entries)
{
	memset(l, 0, sizeof(*l));
	l->lane = lane;
	l->mem = mem;
	l->feat = feat;
	l->kind = kind;
	l->index = index;
	l->cpu = cpu;
	l->ring_entries = ring_entries;
	l->ring_fd = -1;
	sem_init(&l->ready, 0, 0);
	sem_init(&l->go, 0, 0);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return l->wake_fd < 0 ? WISP_ERR_IO : WISP_OK;
}

void wisp_loop_set_io(wisp_loop *l, wisp_loop_io_fn *fn, void *arg)
{
	l->io_fn = fn;
	l->io_arg = arg;
}

void wisp_loop_set_flush(wisp_loop *l, wisp_loop_flush_fn *fn, void *arg)
{
	l->flush_fn = fn;
	l->flush_arg = arg;
}

void wisp_loop_fini(wisp_loop *l)
{
	wisp_timer_heap_fini(&l->timers, l->mem);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	l->wake_fd = -1;
	sem_destroy(&l->ready);
	sem_destroy(&l->go);
}

struct io_uring_sqe *wisp_loop_sqe(wisp_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static void arm_wake_read(wisp_loop *l)
{
	struct io_uring_sqe *sqe = wisp_loop_sqe(l);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, l->wake_fd, &l->wake_buf, sizeof(l->wake_buf), 0);
	io_uring_sqe_set_data64(sqe, wisp_ud_encode(WISP_UD_WAKE_EVENTFD, 0));
}

/* ---- wakeups ----------------------------------------------------------- */

void wisp_loop_notify(wisp_loop *l, wisp_loop *from)
{
	/* Pairs with the fence after the loop publishes ASLEEP: either the loop
	 * sees our message when it re-checks, or we see ASLEEP here. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&l->sleeping, memory_order_relaxed) != WISP_LOOP_ASLEEP)
		return;
	uint32_t expect = WISP_LOOP_ASLEEP;
	if (!atomic_compare_exchange_strong_explicit(&l->sleeping, &expect, WISP_LOOP_WAKING,
						     memory_order_acq_rel, memory_order_relaxed))
		return; /* another producer is waking it */
	if (from && from != l && from->feat->msg_ring) {
		struct io_uring_sqe *sqe = wisp_loop_sqe(from);
		if (sqe) {
			/* Submitted with the rest of the sender's turn. */
			io_uring_prep_msg_ring(sqe, l->ring_fd, 0, wisp_ud_encode(WISP_UD_WAKE_MSG, 0), 0);
			io_uring_sqe_set_data64(sqe, wisp_ud_encode(WISP_UD_WAKE_SENT, 0));
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			wisp_stat_add(&from->wakes_sent, 1);
			return;
		}
	}
	uint64_t one = 1;
	ssize_t w = write(l->wake_fd, &one, sizeof(one));
	(void)w; /* EAGAIN only when the counter is saturated: it is already readable */
	if (from)
		wisp_stat_add(&from->wakes_sent, 1);
}

/* ---- the loop ---------------------------------------------------------- */

static unsigned drain_actor(wisp_actor *a, wisp_tstamp now, unsigned budget)
{
	unsigned n = 0;
	wisp_msg m;
	while (n < budget && wisp_mailbox_recv_mpsc(&a->mb, &m)) {
		a->ops->msg(a, &m, now);
		wisp_buf_unref(m.buf);
		n++;
	}
	return n;
}

static unsigned fire_timers(wisp_loop *l, wisp_tstamp now)
{
	unsigned n = 0;
	wisp_timer *t;
	while ((t = wisp_timer_heap_top(&l->timers)) && t->deadline <= now) {
		wisp_timer_heap_disarm(&l->timers, t);
		t->fn(t, now);
		n++;
	}
	if (n)
		wisp_stat_add(&l->timers_fired, n);
	return n;
}

static bool needs_enter(wisp_loop *l)
{
	/* With DEFER_TASKRUN completions are only posted when the owner enters
	 * the kernel; TASKRUN_FLAG tells us when that would find work. */
	if (!(l->feat->setup_flags & IORING_SETUP_DEFER_TASKRUN))
		return false;
	if (!(l->feat->setup_flags & IORING_SETUP_TASKRUN_FLAG))
		return true;
	return IO_URING_READ_ONCE(*l->ring.sq.kflags) & IORING_SQ_TASKRUN;
}

static unsigned reap(wisp_loop *l, wisp_tstamp now)
{
	if (needs_enter(l))
		io_uring_get_events(&l->ring);
	unsigned head, n = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		switch (wisp_ud_kind(ud)) {
		case WISP_UD_WAKE_EVENTFD:
			wisp_stat_add(&l->wakeups, 1);
			if (!atomic_load_explicit(&l->stop, memory_order_relaxed))
				arm_wake_read(l);
			break;
		case WISP_UD_WAKE_MSG:
			wisp_stat_add(&l->wakeups, 1);
			break;
		case WISP_UD_WAKE_SENT:
			/* Only failures arrive (CQE_SKIP_SUCCESS): the target was
			 * torn down. Nothing to retry. */
			wisp_stat_add(&l->wake_errors, 1);
			break;
		default:
			if (l->io_fn && wisp_ud_kind(ud) >= WISP_UD_USER)
				l->io_fn(l->io_arg, cqe, now);
			break;
		}
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	return n;
}

static bool has_pending(wisp_loop *l)
{
	for (uint32_t i = 0; i < l->n_actors; i++)
		if (wisp_mailbox_pending(&l->actors[i]->mb))
			return true;
	/* Not needs_enter(): deferred task work is run by the wait itself, which
	 * returns at once if that posts a completion. Counting the flag as work
	 * kept a loop from ever sleeping while the kernel left it set. */
	return io_uring_cq_ready(&l->ring);
}

static void note_cpu(wisp_loop *l)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
		atomic_store_explicit(&l->cpu_ns, (uint64_t)ts.tv_sec * WISP_NS_PER_S + (uint64_t)ts.tv_nsec,
				      memory_order_relaxed);
}

static void sleep_until_work(wisp_loop *l)
{
	atomic_store_explicit(&l->sleeping, WISP_LOOP_ASLEEP, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	if (has_pending(l) || atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		atomic_store_explicit(&l->sleeping, WISP_LOOP_AWAKE, memory_order_relaxed);
		return;
	}
	struct __kernel_timespec ts, *tsp = NULL;
	wisp_timer *t = wisp_timer_heap_top(&l->timers);
	if (t) {
		wisp_tstamp now = wisp_clock_now();
		wisp_tstamp d = t->deadline > now ? t->deadline - now : 0;
		ts.tv_sec = (long long)(d / WISP_NS_PER_S);
		ts.tv_nsec = (long long)(d % WISP_NS_PER_S);
		tsp = &ts;
	}
	struct io_uring_cqe *cqe;
	wisp_stat_add(&l->sleeps, 1);
	note_cpu(l); /* a syscall, but only on the way to sleep */
	io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, tsp, NULL);
	atomic_store_explicit(&l->sleeping, WISP_LOOP_AWAKE, memory_order_release);
}

static void run(wisp_loop *l)
{
	unsigned stop_turns = 0;
	for (;;) {
		wisp_tstamp now = wisp_clock_now();
		unsigned did = 0;
		for (uint32_t i = 0; i < l->n_actors; i++)
			did += drain_actor(l->actors[i], now, DRAIN_BUDGET);
		if (did)
			wisp_stat_add(&l->msgs, did);
		/* Completions before timers: bytes that arrived before a deadline
		 * are seen before the deadline's timer (after a long sleep both
		 * are due in the same turn). */
		unsigned io = reap(l, now);
		io += fire_timers(l, now);
		if (l->flush_fn && l->flush_fn(l->flush_arg, now))
			io++;
		wisp_stat_add(&l->turns, 1);
		if (atomic_load_explicit(&l->stop, memory_order_acquire)) {
			/* Drain what is queued, but do not chase producers forever. */
			if (!did || ++stop_turns > STOP_DRAIN_TURNS)
				break;
			continue;
		}
		if ((wisp_stat_get(&l->turns) & 4095) == 0)
			note_cpu(l);
		if (did || io) {
			if (io_uring_sq_ready(&l->ring))
				io_uring_submit(&l->ring);
			continue;
		}
		sleep_until_work(l);
	}
}

static void *loop_main(void *arg)
{
	wisp_loop *l = arg;
	char name[16];
	snprintf(name, sizeof(name), "wisp-%c%u", l->kind == WISP_THREAD_WORKER ? 'w' : 'a', l->index);
	pthread_setname_np(pthread_self(), name);
	if (l->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(l->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
			l->cpu = -1; /* a restricted cpuset: run unpinned */
	}

	/* The ring is created here, on its only submitter (SINGLE_ISSUER). */
	struct io_uring_params p = { .flags = l->feat->setup_flags };
	int ret = io_uring_queue_init_params(l->ring_entries, &l->ring, &p);
	if (ret < 0) {
		l->init_err = WISP_ERR_IO_URING;
		snprintf(l->init_msg, sizeof(l->init_msg), "%s: io_uring_queue_init(%u entries) failed with %s (%s)",
			 name, l->ring_entries, errno_name(-ret), strerror(-ret));
		sem_post(&l->ready);
		return NULL;
	}
	l->ring_ready = true;
	l->ring_fd = l->ring.ring_fd;
	arm_wake_read(l);
	io_uring_submit(&l->ring);
	wisp_tstamp now = wisp_clock_now();
	uint32_t started = 0;
	for (; started < l->n_actors; started++) {
		wisp_actor *a = l->actors[started];
		int err = a->ops->start ? a->ops->start(a, now) : WISP_OK;
		if (err) {
			l->init_err = err;
			snprintf(l->init_msg, sizeof(l->init_msg), "%s: actor %s failed to start: %s", name,
				 a->ops->name, wisp_strerror(err));
			break;
		}
	}
	sem_post(&l->ready);

	while (sem_wait(&l->go) != 0 && errno == EINTR)
		;
	if (!atomic_load_explicit(&l->stop, memory_order_acquire))
		run(l);
	/* Stop hooks run for every actor that started, also when the node's
	 * start was aborted. */
	now = wisp_clock_now();
	for (uint32_t i = 0; i < started; i++)
		if (l->actors[i]->ops->stop)
			l->actors[i]->ops->stop(l->actors[i], now);
	io_uring_submit(&l->ring); /* wakes queued by the stop hooks */
	note_cpu(l);
	io_uring_queue_exit(&l->ring);
	l->ring_ready = false;
	return NULL;
}

wisp_tstamp wisp_loop_now(const wisp_loop *l)
{
	(void)l;
	return wisp_clock_now();
}

int wisp_loop_spawn(wisp_loop *l)
{
	if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
		return WISP_ERR_IO;
	l->thread_started = true;
	return WISP_OK;
}

int wisp_loop_wait_ready(wisp_loop *l)
{
	while (sem_wait(&l->ready) != 0 && errno == EINTR)
		;
	return l->init_err;
}

void wisp_loop_go(wisp_loop *l, bool run_actors)
{
	if (!run_actors)
		atomic_store_explicit(&l->stop, true, memory_order_release);
	sem_post(&l->go);
}

void wisp_loop_request_stop(wisp_loop *l)
{
	atomic_store_explicit(&l->stop, true, memory_order_seq_cst);
	uint64_t one = 1;
	ssize_t w = write(l->wake_fd, &one, sizeof(one));
	(void)w;
}

void wisp_loop_join(wisp_loop *l)
{
	if (!l->thread_started)
		return;
	pthread_join(l->thread, NULL);
	l->thread_started = false;
}

