/* The node behind the public handle: its threads, actors and event ring.
 * Internal: actors reach the application through wisp_node_emit(). */
#ifndef WISP_RUNTIME_NODE_H
#define WISP_RUNTIME_NODE_H

#include <stdatomic.h>

#include <wisp/wisp.h>

#include "runtime/buf.h"
#include "runtime/loop.h"
#include "runtime/mailbox.h"

struct wisp_worker;
struct wisp_telemetry;

enum wisp_node_state { NODE_NEW = 0, NODE_RUNNING = 1, NODE_STOPPED = 2 };

struct wisp_node {
	wisp_options opt;
	const wisp_mem *mem;
	wisp_uring_features feat;
	wisp_pool *pool;

	uint32_t n_workers, n_hosts;
	wisp_loop *workers;             /* n_workers, pinned */
	wisp_loop *hosts;               /* n_hosts, host the actors */
	wisp_actor *worker_actors;      /* one per worker: its mailbox */
	struct wisp_worker *worker_state;
	wisp_actor telemetry;
	struct wisp_telemetry *tele_state;

	/* Events to the application: many producers, the draining thread. */
	wisp_mailbox events;
	int event_fd;
	_Atomic uint32_t app_waiting;   /* the drainer found the ring empty */
	wisp_stat events_dropped;       /* several writers */
	wisp_stat discarded;            /* controller only */

	/* The command gate: calls in flight, and the flag that closes it. */
	_Atomic uint32_t inflight;
	_Atomic bool closing;
	_Atomic int state;

	char errmsg[256];
};

/* Queue an event for the application: type, status, cookie, and an owned
 * payload buffer (or NULL). from: the calling loop (NULL elsewhere). On
 * failure the buffer is released and the drop counted. Returns WISP_OK or
 * WISP_ERR_AGAIN/CLOSED. */
int wisp_node_emit(wisp_node *n, wisp_loop *from, wisp_event_type type, int status, uint64_t cookie,
		   wisp_buf *buf);

/* Fill *out (any thread). */
void wisp_node_stats_fill(const wisp_node *n, wisp_stats *out);

#endif
