#include "runtime/worker.h"

#include <unistd.h>

#include <wisp/error.h>

#include "actors/gossip/actor.h"
#include "actors/telemetry.h"
#include "net/builtin.h"
#include "net/pubsub.h"
#include "net/reqresp.h"
#include "runtime/mem.h"
#include "peerset/peers.h"
#include "runtime/node.h"

static int worker_start(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_worker *w = a->state;
	int err = wisp_shard_start(&w->shard, w->node, w->index, a->loop, a);
	/* The loop runs stop hooks only for actors that started: release
	 * what the shard set up before it failed (stop copes with a partial
	 * start). */
	if (err)
		wisp_shard_stop(&w->shard);
	return err;
}

static void worker_stop(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_worker *w = a->state;
	wisp_shard_stop(&w->shard);
	wisp_free(w->node->mem, w->verify_scratch);
	w->verify_scratch = NULL;
}

/* A StrictSign check for the gossip actor, off its thread. */
static void gs_verify(wisp_worker *w, wisp_actor *a, wisp_msg *m)
{
	wisp_node *n = w->node;
	bool ok = false;
	uint64_t off = m->b >> 32, len = m->b & 0xffffffffu;
	if (!w->verify_scratch) {
		w->verify_len = (size_t)n->net.pubsub_max_rpc + 4096;
		w->verify_scratch = wisp_malloc(n->mem, w->verify_len);
	}
	if (m->buf && w->verify_scratch && off + len <= m->buf->len) {
		wisp_gs_message msg;
		wisp_gs_limits lim;
		wisp_gs_limits_default(&lim);
		lim.max_message = n->net.pubsub_max_rpc;
		ok = wisp_gs_message_decode(&msg, m->buf->data + off, (size_t)len, &lim) == WISP_OK &&
		     wisp_gs_verify(&msg, w->verify_scratch, w->verify_len) == WISP_OK;
	}
	wisp_msg r = { .type = WISP_GMSG_VERIFIED, .src = w->index, .a = m->a, .b = ok };
	/* a lost answer leaves the message to the router's validate timeout */
	(void)wisp_actor_send(&n->gossip, &r, a);
}

static void peer_cmd(wisp_worker *w, wisp_msg *m)
{
	const wisp_peer_cmd *c = (const wisp_peer_cmd *)m->buf->data;
	wisp_shard_conn *sc = wisp_shard_find(&w->shard, m->a);
	switch (c->kind) {
	case WISP_PEER_CLOSE:
		if (sc)
			wisp_shard_close(sc, WISP_ERR_CLOSED, false);
		break;
	case WISP_PEER_PING:
		wisp_builtin_ping(&w->shard, sc, c, m->b);
		break;
	case WISP_PEER_TEST:
		wisp_builtin_test(&w->shard, sc, c, m->b);
		break;
	}
}

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
	case WISP_WMSG_DIAL:
		if (m->buf) {
			const wisp_dial_req *r = (const wisp_dial_req *)m->buf->data;
			wisp_shard_dial(&w->shard, (const struct sockaddr *)&r->addr, r->addr_len,
					r->has_peer ? &r->peer : NULL, m->a);
		}
		break;
	case WISP_WMSG_ADOPT:
		wisp_shard_adopt(&w->shard, (int)m->a);
		break;
	case WISP_WMSG_PEER_CMD:
		if (m->buf)
			peer_cmd(w, m);
		break;
	case WISP_WMSG_GS_SEND + WISP_PUBSUB_CONTROL:
	case WISP_WMSG_GS_SEND + WISP_PUBSUB_PUBLISH_HIGH:
	case WISP_WMSG_GS_SEND + WISP_PUBSUB_FORWARD_HIGH:
	case WISP_WMSG_GS_SEND + WISP_PUBSUB_PUBLISH:
	case WISP_WMSG_GS_SEND + WISP_PUBSUB_FORWARD:
		if (m->buf)
			wisp_pubsub_send(&w->shard, m->a, m->buf, (int)(m->type - WISP_WMSG_GS_SEND), m->b);
		break;
	case WISP_WMSG_GS_VERIFY:
		gs_verify(w, a, m);
		break;
	case WISP_WMSG_RR_REQUEST:
		if (m->buf) {
			wisp_rr_request(&w->shard, m->a, m->b, m->buf);
			m->buf = NULL;
		}
		break;
	case WISP_WMSG_RR_CANCEL:
		wisp_rr_cancel(&w->shard, m->a);
		break;
	case WISP_WMSG_RR_ADMIT:
		wisp_rr_admit(&w->shard, m->a, m->b);
		break;
	case WISP_WMSG_RR_REFUSE:
		wisp_rr_refuse(&w->shard, m->a, (uint32_t)m->b, m->buf);
		m->buf = NULL;
		break;
	case WISP_WMSG_RR_RESPOND:
		if (m->buf) {
			wisp_rr_respond(&w->shard, m->a, (uint32_t)m->b, m->buf);
			m->buf = NULL;
		}
		break;
	default:
		break;
	}
}

const wisp_actor_ops wisp_worker_ops = {
	.name = "worker",
	.start = worker_start,
	.msg = worker_msg,
	.stop = worker_stop,
};
