#include "actors/telemetry.h"

#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"
#include "runtime/node.h"
#include "runtime/worker.h"

struct probe {
	wisp_buf *buf;       /* the wisp_probe_result being filled; NULL: slot free */
	uint64_t cookie;
	wisp_tstamp deadline;
	uint32_t answered;
	uint32_t generation; /* tells a late answer for a reused slot apart */
};

struct wisp_telemetry {
	struct wisp_node *node;
	wisp_actor *self;
	wisp_timer stats_timer;
	wisp_timer probe_timer;
	uint32_t n_probes;
	uint32_t in_flight;
	struct probe probes[];
};

static wisp_probe_result *result_of(struct probe *p)
{
	return (wisp_probe_result *)(void *)p->buf->data;
}

int wisp_telemetry_new(wisp_telemetry **out, struct wisp_node *n)
{
	uint32_t slots = n->opt.probe_slots;
	wisp_telemetry *t = wisp_calloc(n->mem, 1, sizeof(*t) + slots * sizeof(struct probe));
	if (!t)
		return WISP_ERR_NOMEM;
	t->node = n;
	t->n_probes = slots;
	*out = t;
	return WISP_OK;
}

void wisp_telemetry_free(wisp_telemetry *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_probes; i++)
		wisp_buf_unref(t->probes[i].buf);
	wisp_free(t->node->mem, t);
}

static void finish(wisp_telemetry *t, struct probe *p, int status)
{
	result_of(p)->done = wisp_loop_now(t->self->loop);
	wisp_node_emit(t->node, t->self->loop, WISP_EVENT_PROBE, status, p->cookie, p->buf);
	p->buf = NULL;
	p->generation++;
	t->in_flight--;
}

static void start_probe(wisp_telemetry *t, wisp_actor *a, const wisp_msg *m, wisp_tstamp now)
{
	wisp_node *n = t->node;
	struct probe *p = NULL;
	uint32_t slot = 0;
	for (; slot < t->n_probes; slot++)
		if (!t->probes[slot].buf) {
			p = &t->probes[slot];
			break;
		}
	wisp_buf *buf = p ? wisp_buf_alloc(n->pool, sizeof(wisp_probe_result)) : NULL;
	if (!buf) {
		wisp_node_emit(n, a->loop, WISP_EVENT_PROBE, p ? WISP_ERR_NOMEM : WISP_ERR_LIMIT, m->a, NULL);
		return;
	}
	p->buf = buf;
	p->cookie = m->a;
	p->answered = 0;
	p->deadline = now + WISP_PROBE_TIMEOUT_NS;
	t->in_flight++;
	wisp_probe_result *r = result_of(p);
	memset(r, 0, sizeof(*r));
	r->sent = m->b;
	r->actor_recv = wisp_loop_now(a->loop);
	uint32_t reach = n->n_workers < WISP_PROBE_MAX_WORKERS ? n->n_workers : WISP_PROBE_MAX_WORKERS;
	uint64_t tag = (uint64_t)p->generation << 32 | slot;
	for (uint32_t i = 0; i < reach; i++) {
		wisp_msg out = { .type = WISP_WMSG_PROBE, .a = tag };
		if (wisp_actor_send(&n->worker_actors[i], &out, a) != WISP_OK)
			r->unreachable++;
	}
	if (r->unreachable == reach)
		finish(t, p, WISP_ERR_AGAIN);
	else if (!wisp_timer_armed(&t->probe_timer))
		wisp_loop_timer_arm(a->loop, &t->probe_timer, p->deadline);
}

static void probe_ack(wisp_telemetry *t, const wisp_msg *m)
{
	uint32_t slot = (uint32_t)m->a, gen = (uint32_t)(m->a >> 32);
	if (slot >= t->n_probes)
		return;
	struct probe *p = &t->probes[slot];
	if (!p->buf || p->generation != gen)
		return; /* answered after its probe timed out */
	wisp_probe_result *r = result_of(p);
	if (m->src < WISP_PROBE_MAX_WORKERS)
		r->worker_recv[m->src] = m->b;
	r->workers = ++p->answered;
	uint32_t reach = t->node->n_workers < WISP_PROBE_MAX_WORKERS ? t->node->n_workers : WISP_PROBE_MAX_WORKERS;
	if (p->answered + r->unreachable >= reach)
		finish(t, p, r->unreachable ? WISP_ERR_AGAIN : WISP_OK);
}

static void on_probe_timer(wisp_timer *timer, wisp_tstamp now)
{
	wisp_telemetry *t = timer->arg;
	wisp_tstamp next = 0;
	for (uint32_t i = 0; i < t->n_probes; i++) {
		struct probe *p = &t->probes[i];
		if (!p->buf)
			continue;
		if (p->deadline <= now)
			finish(t, p, WISP_ERR_TIMEOUT);
		else if (!next || p->deadline < next)
			next = p->deadline;
	}
	if (next)
		wisp_loop_timer_arm(t->self->loop, &t->probe_timer, next);
}

static void on_stats_timer(wisp_timer *timer, wisp_tstamp now)
{
	wisp_telemetry *t = timer->arg;
	wisp_node *n = t->node;
	wisp_buf *buf = wisp_buf_alloc(n->pool, sizeof(wisp_stats));
	if (buf) {
		wisp_node_stats_fill(n, (wisp_stats *)(void *)buf->data);
		wisp_node_emit(n, t->self->loop, WISP_EVENT_STATS, WISP_OK, now, buf);
	} else {
		wisp_node_emit(n, t->self->loop, WISP_EVENT_STATS, WISP_ERR_NOMEM, now, NULL);
	}
	wisp_loop_timer_arm(t->self->loop, &t->stats_timer,
			    now + (wisp_tstamp)n->opt.stats_interval_ms * WISP_NS_PER_MS);
}

static int telemetry_start(wisp_actor *a, wisp_tstamp now)
{
	wisp_telemetry *t = a->state;
	t->self = a;
	wisp_timer_init(&t->stats_timer, on_stats_timer, t);
	wisp_timer_init(&t->probe_timer, on_probe_timer, t);
	if (t->node->opt.stats_interval_ms)
		return wisp_loop_timer_arm(a->loop, &t->stats_timer,
					   now + (wisp_tstamp)t->node->opt.stats_interval_ms * WISP_NS_PER_MS);
	return WISP_OK;
}

static void telemetry_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	wisp_telemetry *t = a->state;
	switch (m->type) {
	case WISP_TMSG_PROBE:
		start_probe(t, a, m, now);
		break;
	case WISP_TMSG_PROBE_ACK:
		probe_ack(t, m);
		break;
	default:
		break;
	}
}

static void telemetry_stop(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_telemetry *t = a->state;
	for (uint32_t i = 0; i < t->n_probes; i++)
		if (t->probes[i].buf)
			finish(t, &t->probes[i], WISP_ERR_CLOSED);
	wisp_loop_timer_disarm(a->loop, &t->stats_timer);
	wisp_loop_timer_disarm(a->loop, &t->probe_timer);
}

const wisp_actor_ops wisp_telemetry_ops = {
	.name = "telemetry",
	.start = telemetry_start,
	.msg = telemetry_msg,
	.stop = telemetry_stop,
};
