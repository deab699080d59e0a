/* wisp: libp2p-compatible peer-to-peer networking for validator nodes.
 *
 * The application holds a wisp_node. Every call on it is a thread-safe
 * enqueue that returns at once: it never blocks on the network, and a full
 * queue is reported as WISP_ERR_AGAIN (and counted), never waited out.
 * Results and events come back through an event ring that one application
 * thread drains with wisp_node_next_event(); wisp_node_event_fd() is an fd
 * that application can poll in its own event loop.
 *
 * Threads: wisp_node_new/start/stop/free are called by one controlling thread.
 * Commands (wisp_node_probe, later publish/subscribe/request) may be called
 * from any number of threads at once, between start and stop. Events are
 * drained by one thread at a time.
 */
#ifndef WISP_WISP_H
#define WISP_WISP_H

#include <wisp/common.h>
#include <wisp/error.h>
#include <wisp/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WISP_VERSION_STRING "0.1.0"

typedef struct wisp_node wisp_node;

/* ---- options ----------------------------------------------------------- */

#define WISP_OPTIONS_VERSION 1

/* Creation options. Initialize with wisp_options_default(), then change
 * fields; wisp_node_new() copies the struct, so it may live on the stack.
 * New fields are only ever appended, and `version` tells the library which
 * fields the caller knows about. */
typedef struct wisp_options {
	uint32_t version;          /* WISP_OPTIONS_VERSION */
	uint32_t workers;          /* network worker threads; 0 = online CPUs */
	uint32_t actor_threads;    /* threads hosting the actors; 0 = 1 */
	int pin_workers;           /* pin worker i to CPU i mod online CPUs (default 1) */
	uint32_t mailbox_slots;    /* messages per actor mailbox, power of two (default 4096) */
	uint32_t event_slots;      /* events in the application's ring, power of two (default 4096) */
	uint32_t ring_entries;     /* io_uring submission entries per thread (default 256) */
	uint32_t stats_interval_ms;/* a WISP_EVENT_STATS every this often; 0 = never (default 0) */
	uint32_t probe_slots;      /* probes in flight at once (default 64) */
	size_t pool_bytes;         /* upper bound on pooled message buffers, bytes (default 64 MiB) */
	const wisp_mem *mem;       /* allocator; NULL = libc */
} wisp_options;

/* Fill *o with the defaults above. */
WISP_API void wisp_options_default(wisp_options *o) WISP_NONNULL(1);

/* ---- lifecycle --------------------------------------------------------- */

/* Create a node from *o (copied). Allocates but starts no thread.
 * Errors: WISP_ERR_INVALID_ARG (bad option: the message says which, see
 * wisp_node_errmsg), WISP_ERR_NOMEM. On error *out is NULL. */
WISP_API int wisp_node_new(wisp_node **out, const wisp_options *o) WISP_WARN_UNUSED WISP_NONNULL(1, 2);

/* Create the io_uring instances, start the worker and actor threads and the
 * actors. Blocks until every thread has set up or one has failed.
 * Errors: WISP_ERR_IO_URING (io_uring cannot be created: kernel too old,
 * kernel.io_uring_disabled, seccomp; wisp_node_errmsg names the errno),
 * WISP_ERR_IO (thread creation), WISP_ERR_NOMEM, WISP_ERR_STATE (not new). */
WISP_API int wisp_node_start(wisp_node *n) WISP_WARN_UNUSED WISP_NONNULL(1);

/* Stop: refuse new commands, let the actors drain their mailboxes and stop,
 * then the workers, join every thread and release every in-flight buffer.
 * Events already queued stay readable until wisp_node_free(). Idempotent.
 * Returns WISP_OK, or WISP_ERR_STATE when the node never started. */
WISP_API int wisp_node_stop(wisp_node *n) WISP_NONNULL(1);

/* Stop if needed and release everything, including undrained events.
 * NULL is allowed. */
WISP_API void wisp_node_free(wisp_node *n);

/* The last error's explanation for this node (never NULL, "" when none).
 * Valid until the next call on the node from the controlling thread. */
WISP_API const char *wisp_node_errmsg(const wisp_node *n) WISP_NONNULL(1);

/* ---- events ------------------------------------------------------------ */

typedef enum wisp_event_type {
	WISP_EVENT_NONE = 0,
	WISP_EVENT_PROBE = 1, /* a wisp_node_probe() came back */
	WISP_EVENT_STATS = 2, /* a periodic runtime figures snapshot */
} wisp_event_type;

#define WISP_PROBE_MAX_WORKERS 64

/* A probe's journey: application -> telemetry actor -> every worker ->
 * telemetry actor -> application. Times are CLOCK_MONOTONIC ns. */
typedef struct wisp_probe_result {
	wisp_tstamp sent;          /* wisp_node_probe() enqueued it */
	wisp_tstamp actor_recv;    /* the telemetry actor took it from its mailbox */
	wisp_tstamp done;          /* the last worker's answer reached the actor */
	uint32_t workers;          /* workers that answered */
	uint32_t unreachable;      /* workers whose mailbox was full */
	wisp_tstamp worker_recv[WISP_PROBE_MAX_WORKERS]; /* each worker took it */
} wisp_probe_result;

struct wisp_stats;

typedef struct wisp_event {
	wisp_event_type type;
	int status;      /* WISP_OK, or why the command failed */
	uint64_t cookie; /* the caller's value from the command */
	union {
		const wisp_probe_result *probe; /* WISP_EVENT_PROBE */
		const struct wisp_stats *stats; /* WISP_EVENT_STATS */
	} u;
	void *priv_;     /* owned buffer: released by wisp_event_release() */
} wisp_event;

/* Take the next event, if any. Returns 1 with *ev filled, 0 when the ring is
 * empty: from then on, wisp_node_event_fd() becomes readable when the next
 * event arrives. Every event taken must be given back with
 * wisp_event_release(). One thread drains at a time. */
WISP_API int wisp_node_next_event(wisp_node *n, wisp_event *ev) WISP_WARN_UNUSED WISP_NONNULL(1, 2);

/* Release what *ev points at. */
WISP_API void wisp_event_release(wisp_node *n, wisp_event *ev) WISP_NONNULL(1, 2);

/* An fd (eventfd) that is readable while events may be waiting. It is reset
 * by wisp_node_next_event() when that finds the ring empty. Owned by the
 * node; do not close it. -1 before wisp_node_new() succeeded. */
WISP_API int wisp_node_event_fd(const wisp_node *n) WISP_NONNULL(1);

/* ---- commands (any thread, between start and stop) --------------------- */

/* Send a probe through the runtime: it visits the telemetry actor and every
 * worker and comes back as a WISP_EVENT_PROBE event carrying cookie.
 * Errors: WISP_ERR_AGAIN (mailbox full, counted), WISP_ERR_CLOSED. */
WISP_API int wisp_node_probe(wisp_node *n, uint64_t cookie) WISP_NONNULL(1);

/* ---- figures ----------------------------------------------------------- */

#define WISP_STATS_MAX_THREADS 64

typedef enum wisp_thread_kind {
	WISP_THREAD_WORKER = 1, /* pinned network worker */
	WISP_THREAD_ACTORS = 2, /* hosts actors */
} wisp_thread_kind;

/* One runtime thread's counters (monotonic since start). */
typedef struct wisp_thread_stats {
	wisp_thread_kind kind;
	int cpu;                 /* pinned CPU, or -1 */
	uint64_t turns;          /* loop iterations */
	uint64_t sleeps;         /* times it blocked in io_uring_enter */
	uint64_t wakeups;        /* wakeups it received while asleep */
	uint64_t wakes_sent;     /* wakeups it sent to sleeping threads */
	uint64_t msgs;           /* mailbox messages processed */
	uint64_t timers;         /* timers fired */
	uint64_t cpu_ns;         /* thread CPU time */
} wisp_thread_stats;

typedef struct wisp_stats {
	uint32_t version;        /* WISP_OPTIONS_VERSION */
	uint32_t threads;
	wisp_thread_stats thread[WISP_STATS_MAX_THREADS];
	uint64_t mailbox_full;   /* sends refused with WISP_ERR_AGAIN */
	uint64_t mailbox_closed; /* sends refused because the receiver stopped */
	uint64_t discarded;      /* messages still queued at stop, released */
	uint64_t events;         /* events the application has taken */
	uint64_t events_dropped; /* events lost because that ring was full */
	uint64_t pool_in_use;    /* pooled buffers held right now */
	uint64_t pool_high;      /* most pooled buffers ever held at once */
	uint64_t pool_exhausted; /* allocations refused by the pool's byte bound */
	uint32_t uring_flags;    /* io_uring setup flags in use (IORING_SETUP_*) */
	int uring_msg_ring;      /* 1 when wakeups use IORING_OP_MSG_RING */
} wisp_stats;

/* Snapshot the node's counters into *out. Any thread; counters are read
 * without stopping anything, so totals are individually exact but not a
 * single instant. */
WISP_API void wisp_node_stats(const wisp_node *n, wisp_stats *out) WISP_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif

#endif
