#include "runtime/worker.h"

#include "actors/telemetry.h"
#include "runtime/node.h"

static void worker_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	(void)now;
	wisp_worker *w = a->state;
	switch (m->type) {
	case WISP_WMSG_PROBE: {
		wisp_msg ack = { .type = WISP_TMSG_PROBE_ACK, .src = w->index, .a = m->a, .b = wisp_loop_now(a->loop) };
		/* A full telemetry mailbox loses this answer; the probe then
		 * completes at stop with WISP_ERR_CLOSED. Counted by the mailbox. */
		(void)wisp_actor_send(&w->node->telemetry, &ack, a);
		break;
	}
	default:
		break;
	}
}

const wisp_actor_ops wisp_worker_ops = {
	.name = "worker",
	.msg = worker_msg,
};
