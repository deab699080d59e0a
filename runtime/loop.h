/* Loops: one thread, one io_uring, the actors it hosts, their timers.
 *
 * A loop repeatedly drains its actors' mailboxes (a bounded batch each),
 * fires due timers and reaps io_uring completions. When a turn finds nothing
 * to do it publishes that it is asleep and blocks in io_uring_enter until a
 * completion arrives or the earliest timer is due: an idle loop burns no CPU.
 *
 * Wakeups. A producer that fills a mailbox wakes the owner loop only when the
 * loop said it is asleep (Dekker-style: the loop stores ASLEEP then re-checks
 * its mailboxes; the producer commits its message then loads the flag, both
 * with full fences), and only one producer per sleep sends the wake:
 *   - from another loop, as an IORING_OP_MSG_RING SQE on the sender's ring,
 *     submitted with the rest of that sender's turn (no extra syscall);
 *   - from any other thread, as an eventfd write the sleeping ring has a
 *     read pending on.
 * While a loop is busy, producers make no syscall at all.
 */
#ifndef WISP_RUNTIME_LOOP_H
#define WISP_RUNTIME_LOOP_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <wisp/mem.h>
#include <wisp/wisp.h>

#include "runtime/mailbox.h"
#include "runtime/stat.h"
#include "runtime/timer.h"

typedef struct wisp_loop wisp_loop;
typedef struct wisp_actor wisp_actor;

/* ---- io_uring feature probe ------------------------------------------- */

typedef struct wisp_uring_features {
	unsigned setup_flags; /* IORING_SETUP_* every loop uses */
	bool msg_ring;        /* IORING_OP_MSG_RING is available */
} wisp_uring_features;

/* Find the io_uring set-up this kernel accepts: SINGLE_ISSUER and
 * DEFER_TASKRUN (with TASKRUN_FLAG) where available, else plain. On failure
 * writes an explanation naming the errno into msg.
 * Errors: WISP_ERR_IO_URING. */
int wisp_uring_probe(wisp_uring_features *f, char *msg, size_t msglen);

/* ---- io_uring user_data ------------------------------------------------ */

/* user_data packs a kind (top 8 bits) and a kind-specific value (56 bits). */
enum wisp_ud_kind {
	WISP_UD_WAKE_EVENTFD = 1, /* the loop's eventfd read completed */
	WISP_UD_WAKE_MSG = 2,     /* a MSG_RING wakeup from another loop */
	WISP_UD_WAKE_SENT = 3,    /* our MSG_RING failed (success CQEs skipped) */
	WISP_UD_USER = 16,        /* first kind passed to the loop's io handler */
};

static inline uint64_t wisp_ud_encode(unsigned kind, uint64_t value)
{
	return (uint64_t)kind << 56 | (value & ((UINT64_C(1) << 56) - 1));
}

static inline unsigned wisp_ud_kind(uint64_t ud)
{
	return (unsigned)(ud >> 56);
}

static inline uint64_t wisp_ud_value(uint64_t ud)
{
	return ud & ((UINT64_C(1) << 56) - 1);
}

/* ---- actors ------------------------------------------------------------ */

/* An actor's behaviour. All hooks run on the hosting loop's thread. */
typedef struct wisp_actor_ops {
	const char *name;
	/* On the loop's thread before it reports ready; an error fails the
	 * node's start. May send messages (they wait until the receiver runs). */
	int (*start)(wisp_actor *a, wisp_tstamp now);
	/* One message. The runtime unreferences m->buf after the hook returns,
	 * unless the hook took ownership by setting m->buf = NULL. */
	void (*msg)(wisp_actor *a, wisp_msg *m, wisp_tstamp now);
	/* After the mailbox was drained at stop (or the start was aborted);
	 * no message follows. */
	void (*stop)(wisp_actor *a, wisp_tstamp now);
} wisp_actor_ops;

struct wisp_actor {
	wisp_mailbox mb;
	const wisp_actor_ops *ops;
	void *state;
	wisp_loop *loop;
};

/* Initialize a, hosted by loop (which adds it to its list), with a mailbox
 * of `slots` messages per lane and a lane for each of `loops` loops. Before
 * the loop starts. Errors: WISP_ERR_NOMEM, WISP_ERR_INVALID_ARG,
 * WISP_ERR_LIMIT (loop full). */
int wisp_actor_init(wisp_actor *a, wisp_loop *loop, const wisp_actor_ops *ops, void *state, uint32_t slots,
		    uint32_t loops);
/* Release the mailbox; returns the count of messages discarded with it. */
uint64_t wisp_actor_fini(wisp_actor *a);

/* Send m to actor `to`. `from` is the caller's actor when it runs on a loop
 * (NULL otherwise). Same contract as wisp_mailbox_send_mpsc. */
static inline int wisp_actor_send(wisp_actor *to, const wisp_msg *m, wisp_actor *from)
{
	return wisp_mailbox_send_mpsc(&to->mb, m, from ? from->loop : NULL);
}

/* ---- loops ------------------------------------------------------------- */

#define WISP_LOOP_MAX_ACTORS 16

/* Called for every completion whose kind is >= WISP_UD_USER. */
typedef void wisp_loop_io_fn(void *arg, const struct io_uring_cqe *cqe, wisp_tstamp now);
/* End-of-turn hook; returns true when it did work (the loop then runs
 * another turn instead of sleeping). */
typedef bool wisp_loop_flush_fn(void *arg, wisp_tstamp now);

enum { WISP_LOOP_AWAKE = 0, WISP_LOOP_ASLEEP = 1, WISP_LOOP_WAKING = 2 };

struct wisp_loop {
	/* Touched by other threads. */
	_Alignas(64) _Atomic uint32_t sleeping;
	_Atomic bool stop;
	int ring_fd;  /* valid once the loop slept: read by wakers after the flag */
	int wake_fd;  /* eventfd */

	/* Owner thread only (and the controller before start / after join). */
	_Alignas(64) struct io_uring ring;
	wisp_actor *actors[WISP_LOOP_MAX_ACTORS];
	uint32_t n_actors;
	wisp_timer_heap timers;
	uint64_t wake_buf;
	wisp_loop_io_fn *io_fn;
	void *io_arg;
	wisp_loop_flush_fn *flush_fn;
	void *flush_arg;
	const wisp_mem *mem;
	const wisp_uring_features *feat;
	wisp_thread_kind kind;
	uint32_t index;     /* among loops of its kind */
	uint32_t lane;      /* its lane in every mailbox: unique in the node */
	int cpu;            /* CPU to pin to, or -1 */
	uint32_t ring_entries;
	bool ring_ready;

	/* Start-up hand-shake with the controller. */
	pthread_t thread;
	bool thread_started;
	sem_t ready;        /* posted once: set-up finished (init_err says how) */
	sem_t go;           /* posted once: run (or abort when `stop` is set) */
	int init_err;
	char init_msg[192];

	/* Counters, written by the owner, read by anyone. */
	wisp_stat turns, sleeps, wakeups, wakes_sent, wake_errors, msgs, timers_fired;
	wisp_stat cpu_ns; /* thread CPU time, refreshed before each sleep and at exit */
};

/* Prepare a loop; no thread yet. lane: its lane index in every mailbox,
 * unique among the node's loops. Errors: WISP_ERR_IO (eventfd). */
int wisp_loop_init(wisp_loop *l, const wisp_mem *mem, const wisp_uring_features *feat, wisp_thread_kind kind,
		   uint32_t index, uint32_t lane, int cpu, uint32_t ring_entries);
/* Route completions of kinds >= WISP_UD_USER to fn. Before start. */
void wisp_loop_set_io(wisp_loop *l, wisp_loop_io_fn *fn, void *arg);
/* Run fn at the end of every turn, after mailboxes, timers and completions
 * and before the turn's submission: where a network worker turns what the
 * turn queued into one send per connection. Before start. */
void wisp_loop_set_flush(wisp_loop *l, wisp_loop_flush_fn *fn, void *arg);

/* Start the thread: it creates its ring, then posts `ready`. Errors:
 * WISP_ERR_IO (pthread_create). */
int wisp_loop_spawn(wisp_loop *l);
/* Wait for the set-up result: WISP_OK, or the thread's error (its message in
 * l->init_msg). */
int wisp_loop_wait_ready(wisp_loop *l);
/* Let a ready loop run its actors (run = true) or make it exit (false). */
void wisp_loop_go(wisp_loop *l, bool run);
/* Ask the loop to drain its mailboxes, stop its actors and exit. Any thread. */
void wisp_loop_request_stop(wisp_loop *l);
void wisp_loop_join(wisp_loop *l);
/* Release what init allocated. After join (or when never spawned). */
void wisp_loop_fini(wisp_loop *l);

/* Wake l if it sleeps. from: the caller's loop, or NULL. Any thread. */
void wisp_loop_notify(wisp_loop *l, wisp_loop *from);

/* A fresh reading of the runtime clock, for actors that must timestamp one
 * message precisely (the `now` their hooks get is the turn's start). Actors
 * read time only through the runtime, never the system clock. */
wisp_tstamp wisp_loop_now(const wisp_loop *l);

/* Timers of the loop's actors. Owner thread only. */
static inline int wisp_loop_timer_arm(wisp_loop *l, wisp_timer *t, wisp_tstamp deadline)
{
	return wisp_timer_heap_arm(&l->timers, l->mem, t, deadline);
}

static inline void wisp_loop_timer_disarm(wisp_loop *l, wisp_timer *t)
{
	wisp_timer_heap_disarm(&l->timers, t);
}

/* An SQE on the loop's ring, submitting queued ones first if the ring is
 * full. NULL only if the ring is broken. Owner thread only. */
struct io_uring_sqe *wisp_loop_sqe(wisp_loop *l);


#endif
