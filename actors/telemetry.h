/* The telemetry actor: runtime figures for the application.
 *
 * It answers probes (a message sent through every worker and back, with the
 * time of each hop) and, every stats_interval_ms, sends the application a
 * snapshot of every thread's and mailbox's counters as a WISP_EVENT_STATS.
 */
#ifndef WISP_ACTORS_TELEMETRY_H
#define WISP_ACTORS_TELEMETRY_H

#include "runtime/loop.h"

struct wisp_node;

/* Messages the telemetry mailbox takes. */
enum wisp_telemetry_msg {
	WISP_TMSG_PROBE = 1,     /* from the handle: a = cookie, b = enqueue time */
	WISP_TMSG_PROBE_ACK = 2, /* from worker src: a = probe slot, b = its receive time */
};

/* A probe not answered by every worker within this long completes with
 * WISP_ERR_TIMEOUT. */
#define WISP_PROBE_TIMEOUT_NS (5 * WISP_NS_PER_S)

typedef struct wisp_telemetry wisp_telemetry;

/* Allocate the actor's state for node n (probe table of n->opt.probe_slots).
 * Errors: WISP_ERR_NOMEM. */
int wisp_telemetry_new(wisp_telemetry **out, struct wisp_node *n);
void wisp_telemetry_free(wisp_telemetry *t);

extern const wisp_actor_ops wisp_telemetry_ops;

#endif
