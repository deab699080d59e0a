#include "actors/scoring/actor.h"

#include <math.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/gossip/actor.h"
#include "actors/reqresp/actor.h"
#include "net/pubsub.h"
#include "runtime/mem.h"
#include "runtime/node.h"

struct wisp_scoring {
	wisp_node *node;
	wisp_actor *actor;
	wisp_score_params params;
	wisp_score *score;
	wisp_timer decay, snap;
	bool dirty;
	wisp_peer_id *ids;        /* per handle, while connected (len 0: none) */
	wisp_scoring_app *app;    /* the application's values, WISP_SCORING_APP_MAX */
	uint32_t n_app;
	uint64_t add_seq;         /* the last PEER_ADD applied: snapshots carry it */
	wisp_idtab handles;       /* peer id -> handle, while connected */
	wisp_reps reps;           /* request/response reputations */
	bool reps_dirty;
	wisp_scoring_stats st;
};

typedef struct id_handle {
	wisp_peer_id id; /* first: the table's key */
	uint32_t handle;
} id_handle;

int wisp_scoring_new(wisp_scoring **out, wisp_node *node, const wisp_score_params *p)
{
	char why[160];
	if (wisp_score_params_validate(p, why, sizeof(why)) != WISP_OK)
		return WISP_ERR_INVALID_ARG;
	wisp_scoring *s = wisp_calloc(node->mem, 1, sizeof(*s));
	if (!s)
		return WISP_ERR_NOMEM;
	s->node = node;
	s->params = *p;
	s->ids = wisp_calloc(node->mem, p->max_peers, sizeof(*s->ids));
	s->app = wisp_calloc(node->mem, WISP_SCORING_APP_MAX, sizeof(*s->app));
	if (!s->ids || !s->app || wisp_idtab_init(&s->handles, node->mem, sizeof(id_handle), p->max_peers) ||
	    wisp_reps_init(&s->reps, node->mem, WISP_SCORING_APP_MAX)) {
		wisp_scoring_free(s);
		return WISP_ERR_NOMEM;
	}
	*out = s;
	return WISP_OK;
}

void wisp_scoring_free(wisp_scoring *s)
{
	if (!s)
		return;
	wisp_score_free(s->score);
	wisp_idtab_fini(&s->handles, s->node->mem);
	wisp_reps_fini(&s->reps, s->node->mem);
	wisp_free(s->node->mem, s->ids);
	wisp_free(s->node->mem, s->app);
	wisp_free(s->node->mem, s);
}

const wisp_scoring_stats *wisp_scoring_stats_of(const wisp_scoring *s)
{
	return &s->st;
}

/* Every handle's score to the gossip actor, which reads them locally. */
static void send_snapshot(wisp_scoring *s, wisp_tstamp now)
{
	size_t n = s->params.max_peers;
	wisp_buf *b = wisp_buf_alloc(s->node->pool, n * sizeof(double));
	if (!b) {
		wisp_stat_add(&s->st.snapshot_drops, 1);
		return;
	}
	wisp_score_snapshot(s->score, (double *)(void *)b->data, n, now);
	b->len = (uint32_t)(n * sizeof(double));
	wisp_msg m = { .type = WISP_GMSG_SCORES, .a = n, .b = s->add_seq, .buf = b };
	if (wisp_actor_send(&s->node->gossip, &m, s->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_stat_add(&s->st.snapshot_drops, 1);
		return;
	}
	wisp_stat_add(&s->st.snapshots, 1);
	s->dirty = false;
}

/* The reputations, with scores, to the request/response actor. */
static void send_reps(wisp_scoring *s, wisp_tstamp now)
{
	uint32_t n = s->reps.tab.count;
	wisp_buf *b = wisp_buf_alloc(s->node->pool, n ? n * sizeof(wisp_scoring_rep) : 1);
	if (!b) {
		wisp_stat_add(&s->st.snapshot_drops, 1);
		return;
	}
	wisp_scoring_rep *out = (wisp_scoring_rep *)(void *)b->data;
	uint32_t k = 0;
	for (uint32_t i = 0; i < s->reps.tab.cap && k < n; i++) {
		const wisp_rep *p = wisp_idtab_slot(&s->reps.tab, i);
		if (!p)
			continue;
		const id_handle *h = wisp_idtab_get(&s->handles, &p->id, false);
		out[k].id = p->id;
		out[k].score = h ? wisp_score_get(s->score, h->handle, now) : wisp_rep_penalty(p);
		out[k].reliability = wisp_rep_reliability(p);
		out[k].latency_ms = p->latency_ms;
		k++;
	}
	b->len = (uint32_t)(k * sizeof(wisp_scoring_rep));
	wisp_msg m = { .type = WISP_RMSG_REPS, .a = k, .buf = b };
	if (wisp_actor_send(&s->node->reqresp, &m, s->actor) != WISP_OK) {
		wisp_buf_unref(b);
		wisp_stat_add(&s->st.snapshot_drops, 1);
		return;
	}
	s->reps_dirty = false;
}

static void on_snap(wisp_timer *t, wisp_tstamp now)
{
	wisp_scoring *s = t->arg;
	if (s->dirty)
		send_snapshot(s, now);
	if (s->reps_dirty)
		send_reps(s, now);
}

/* Something changed: a snapshot goes out within WISP_SCORING_SNAPSHOT_MS. */
static void changed(wisp_scoring *s, wisp_tstamp now)
{
	s->dirty = true;
	if (!wisp_timer_armed(&s->snap))
		(void)wisp_loop_timer_arm(s->actor->loop, &s->snap, now + WISP_SCORING_SNAPSHOT_MS * WISP_NS_PER_MS);
}

/* Decay runs while there are scores to decay or retained peers to forget;
 * an idle node sleeps. */
static void arm_decay(wisp_scoring *s)
{
	wisp_score_stats st;
	wisp_score_get_stats(s->score, &st);
	if (st.connected + st.retained + s->reps.tab.count == 0)
		wisp_loop_timer_disarm(s->actor->loop, &s->decay);
	else if (!wisp_timer_armed(&s->decay))
		(void)wisp_loop_timer_arm(s->actor->loop, &s->decay, wisp_score_expiry(s->score));
}

static int apply_p5(wisp_scoring *s, const wisp_peer_id *id);

static void on_decay(wisp_timer *t, wisp_tstamp now)
{
	wisp_scoring *s = t->arg;
	if (wisp_score_handle_expiry(s->score, now) > 0)
		changed(s, now);
	if (s->reps.tab.count) {
		wisp_reps_decay(&s->reps, now);
		for (uint32_t i = 0; i < s->reps.tab.cap; i++) {
			const wisp_rep *p = wisp_idtab_slot(&s->reps.tab, i);
			if (p)
				(void)apply_p5(s, &p->id);
		}
		s->reps_dirty = true;
		changed(s, now);
	}
	arm_decay(s);
}

static int scoring_start(wisp_actor *a, wisp_tstamp now)
{
	wisp_scoring *s = a->state;
	s->actor = a;
	int err = wisp_score_new(&s->score, s->node->mem, &s->params, now);
	if (err)
		return err;
	wisp_timer_init(&s->decay, on_decay, s);
	wisp_timer_init(&s->snap, on_snap, s);
	return WISP_OK;
}

static void scoring_stop(wisp_actor *a, wisp_tstamp now)
{
	(void)now;
	wisp_scoring *s = a->state;
	wisp_loop_timer_disarm(a->loop, &s->decay);
	wisp_loop_timer_disarm(a->loop, &s->snap);
}

static int64_t app_find(const wisp_scoring *s, const wisp_peer_id *id)
{
	for (uint32_t i = 0; i < s->n_app; i++)
		if (wisp_peer_id_equal(&s->app[i].id, id))
			return i;
	return -1;
}

static double app_value(const wisp_scoring *s, const wisp_peer_id *id)
{
	int64_t i = app_find(s, id);
	return i >= 0 ? s->app[i].value : 0;
}

/* P5 of a connected peer: the application's value plus the request/response
 * penalty. */
static int apply_p5(wisp_scoring *s, const wisp_peer_id *id)
{
	const id_handle *h = wisp_idtab_get(&s->handles, id, false);
	if (!h)
		return WISP_OK;
	return wisp_score_app_specific(s->score, h->handle,
				       app_value(s, id) + wisp_rep_penalty(wisp_reps_get(&s->reps, id)));
}

static void on_rep(wisp_scoring *s, wisp_msg *m, wisp_tstamp now)
{
	const wisp_peer_id *id = (const wisp_peer_id *)(void *)m->buf->data;
	if (m->buf->len != sizeof(*id) || !wisp_reps_note(&s->reps, id, (wisp_rep_kind)m->a, m->b, now)) {
		wisp_stat_add(&s->st.bad_events, 1);
		return;
	}
	s->reps_dirty = true;
	if (!s->reps.decayed)
		s->reps.decayed = now;
	if (m->a == WISP_REP_BAD || m->a == WISP_REP_OVER_LIMIT)
		(void)apply_p5(s, id);
}

static void on_query(wisp_scoring *s, wisp_msg *m, wisp_tstamp now)
{
	const wisp_peer_id *id = (const wisp_peer_id *)(void *)m->buf->data;
	wisp_buf *b = wisp_buf_alloc(s->node->pool, sizeof(wisp_peer_score_info));
	if (!b)
		return;
	wisp_peer_score_info *si = (wisp_peer_score_info *)(void *)b->data;
	memset(si, 0, sizeof(*si));
	si->peer = *id;
	const wisp_rep *p = wisp_reps_get(&s->reps, id);
	const id_handle *h = wisp_idtab_get(&s->handles, id, false);
	si->gossip = h != NULL;
	si->app = app_value(s, id);
	si->reqresp_penalty = wisp_rep_penalty(p);
	si->score = h ? wisp_score_get(s->score, h->handle, now) : si->reqresp_penalty;
	si->reliability = wisp_rep_reliability(p);
	if (p) {
		si->latency_ms = p->latency_ms;
		si->ok = p->ok;
		si->failed = p->failed;
		si->bad = p->bad;
	}
	b->len = sizeof(*si);
	wisp_node_emit(s->node, s->actor->loop, WISP_EVENT_PEER_SCORE, WISP_OK, m->b, b);
}

/* Remember the application's value for a peer id (0 forgets it) and apply
 * it to the peer's handle if it is connected. */
static int app_score(wisp_scoring *s, const wisp_scoring_app *v)
{
	int64_t i = app_find(s, &v->id);
	if (v->value == 0) {
		if (i >= 0)
			s->app[i] = s->app[--s->n_app];
	} else if (i >= 0) {
		s->app[i].value = v->value;
	} else if (s->n_app < WISP_SCORING_APP_MAX) {
		s->app[s->n_app++] = *v;
	} else {
		wisp_stat_add(&s->st.app_full, 1);
		return WISP_OK;
	}
	return apply_p5(s, &v->id);
}

static void scoring_msg(wisp_actor *a, wisp_msg *m, wisp_tstamp now)
{
	wisp_scoring *s = a->state;
	int err = WISP_OK;
	switch (m->type) {
	case WISP_SMSG_EVENT: {
		wisp_score_event e;
		err = wisp_score_event_unpack(&e, m->a, m->b);
		if (!err)
			err = wisp_score_apply(s->score, &e, now);
		wisp_stat_add(&s->st.events, 1);
		break;
	}
	case WISP_SMSG_PEER_ADD:
		if (m->b > s->add_seq)
			s->add_seq = m->b;
		if (m->buf) {
			const wisp_scoring_peer *p = (const wisp_scoring_peer *)m->buf->data;
			err = wisp_score_add_peer(s->score, (uint32_t)m->a, &p->id, p->has_ip ? p->ip : NULL, now);
			if (!err && m->a < s->params.max_peers) {
				s->ids[m->a] = p->id;
				id_handle *h = wisp_idtab_get(&s->handles, &p->id, true);
				if (h)
					h->handle = (uint32_t)m->a;
				err = apply_p5(s, &p->id);
			}
		}
		break;
	case WISP_SMSG_PEER_REMOVE:
		err = wisp_score_remove_peer(s->score, (uint32_t)m->a, now);
		if (m->a < s->params.max_peers && s->ids[m->a].len) {
			id_handle *h = wisp_idtab_get(&s->handles, &s->ids[m->a], false);
			if (h && h->handle == m->a)
				wisp_idtab_remove(&s->handles, h);
			s->ids[m->a].len = 0;
		}
		break;
	case WISP_SMSG_APP_SCORE:
		if (m->buf)
			err = app_score(s, (const wisp_scoring_app *)m->buf->data);
		break;
	case WISP_SMSG_REP:
		if (m->buf)
			on_rep(s, m, now);
		break;
	case WISP_SMSG_QUERY:
		if (m->buf && m->buf->len == sizeof(wisp_peer_id))
			on_query(s, m, now);
		return;
	case WISP_SMSG_TOPIC:
		err = wisp_score_set_topic(s->score, (uint32_t)m->a,
					   m->buf ? (const wisp_score_topic_params *)m->buf->data : NULL);
		break;
	default:
		return;
	}
	if (err)
		wisp_stat_add(&s->st.bad_events, 1);
	changed(s, now);
	arm_decay(s);
}

const wisp_actor_ops wisp_scoring_ops = {
	.name = "scoring",
	.start = scoring_start,
	.msg = scoring_msg,
	.stop = scoring_stop,
};
