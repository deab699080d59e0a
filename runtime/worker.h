/* Network workers: one per pinned loop. Each will own a shard of the
 * connections; here it answers the runtime's control messages. */
#ifndef WISP_RUNTIME_WORKER_H
#define WISP_RUNTIME_WORKER_H

#include "runtime/loop.h"

struct wisp_node;

/* Messages a worker's mailbox takes. */
enum wisp_worker_msg {
	WISP_WMSG_PROBE = 1, /* a: probe slot; reply WISP_TMSG_PROBE_ACK to telemetry */
};

typedef struct wisp_worker {
	struct wisp_node *node;
	uint32_t index;
} wisp_worker;

extern const wisp_actor_ops wisp_worker_ops;

#endif
