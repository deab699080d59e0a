#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/gossipnet.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/gossip/actor.h"
#include "runtime/node.h"
#include "tests/testlib.h"

#define WAIT_MS 20000

gn_node gn[GN_MAX_NODES];
unsigned gn_count;

static int tag_index(char tag)
{
	return tag == 'h' ? 0 : tag == 'e' ? 1 : tag == 'p' ? 2 : -1;
}

static void take(gn_node *x, const wisp_event *ev)
{
	switch (ev->type) {
	case WISP_EVENT_LISTENING: {
		snprintf(x->listen, sizeof(x->listen), "%s", ev->u.listen->addr);
		const char *tcp = strstr(x->listen, "/tcp/");
		x->port = tcp ? (uint16_t)atoi(tcp + 5) : 0;
		break;
	}
	case WISP_EVENT_CONNECTED:
		x->connected++;
		break;
	case WISP_EVENT_DISCONNECTED:
		x->disconnected++;
		x->last_disconnect = ev->status;
		snprintf(x->last_disconnect_stage, sizeof(x->last_disconnect_stage), "%s",
			 ev->u.peer ? ev->u.peer->stage : "");
		break;
	case WISP_EVENT_SUBSCRIBED:
		if (ev->status == WISP_OK)
			x->subscribed++;
		break;
	case WISP_EVENT_PUBLISHED:
		x->published++;
		x->publish_status = ev->status;
		if (ev->u.published)
			x->last_pub = *ev->u.published;
		break;
	case WISP_EVENT_MESSAGE: {
		const wisp_message_info *m = ev->u.message;
		x->messages++;
		x->last_source = m->source;
		char text[16];
		snprintf(text, sizeof(text), "%.*s", (int)(m->len < 15 ? m->len : 15), (const char *)m->data);
		unsigned k;
		int t = tag_index(text[0]);
		if (t >= 0 && sscanf(text + 1, "%u:", &k) == 1 && k < GN_TAGS)
			x->got[t][k]++;
		break;
	}
	default:
		break;
	}
}

static wisp_node *node_at(int i)
{
	return gn[i].n;
}

static void take_at(int i, const wisp_event *ev)
{
	take(&gn[i], ev);
}

void gn_drain(eg_peer *e)
{
	for (unsigned i = 0; i < gn_count; i++) {
		wisp_event ev;
		while (gn[i].n && wisp_node_next_event(gn[i].n, &ev) == 1) {
			take(&gn[i], &ev);
			wisp_event_release(gn[i].n, &ev);
		}
	}
	if (e && e->p.fd >= 0 && !e->p.eof)
		(void)eg_poll(e);
}

bool gn_wait(eg_peer *e, bool (*cond)(void), unsigned timeout_ms)
{
	if (!e)
		return wt_wait_nodes(node_at, (int)gn_count, take_at, cond, timeout_ms);
	uint64_t deadline = wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		gn_drain(e);
		if (cond())
			return true;
		uint64_t now = wt_now_ns();
		if (now >= deadline)
			return false;
		struct pollfd p[GN_MAX_NODES + 1];
		int k = 0;
		for (unsigned i = 0; i < gn_count; i++)
			if (gn[i].n)
				p[k++] = (struct pollfd){ .fd = wisp_node_event_fd(gn[i].n), .events = POLLIN };
		if (e->p.fd >= 0 && !e->p.eof)
			p[k++] = (struct pollfd){ .fd = e->p.fd, .events = POLLIN };
		int left = (int)((deadline - now) / 1000000u) + 1;
		(void)poll(p, (nfds_t)k, left < 20 ? left : 20);
	}
}

static int rs_node;
static size_t rs_off;
static uint64_t rs_val;

static bool rs_reached(void)
{
	wisp_gs_router_stats rs;
	gn_router_stats(rs_node, &rs);
	uint64_t v;
	memcpy(&v, (const char *)&rs + rs_off, sizeof(v));
	return v >= rs_val;
}

bool gn_wait_router(eg_peer *e, int i, size_t off, const char *name, uint64_t value, unsigned timeout_ms)
{
	rs_node = i;
	rs_off = off;
	rs_val = value;
	bool ok = gn_wait(e, rs_reached, timeout_ms);
	if (!ok)
		print_message("router counter %s never reached %llu\n", name, (unsigned long long)value);
	return ok;
}

static bool all_listening(void)
{
	for (unsigned i = 0; i < gn_count; i++)
		if (!gn[i].port)
			return false;
	return true;
}

void gn_start(const gn_opts *o)
{
	memset(gn, 0, sizeof(gn));
	assert_true(o->nodes >= 1 && o->nodes <= GN_MAX_NODES);
	gn_count = o->nodes;
	for (unsigned i = 0; i < gn_count; i++) {
		wisp_options wo;
		wt_node_options(&wo, true);
		if (o->conn_send_budget)
			wo.conn_send_budget = o->conn_send_budget;
		if (o->stall_timeout_ms)
			wo.stall_timeout_ms = o->stall_timeout_ms;
		assert_int_equal(wisp_node_new(&gn[i].n, &wo), WISP_OK);
		wisp_gs_config *c = wisp_gossip_config_for_tests(gn[i].n->gossip_state);
		if (o->heartbeat_ms) {
			c->heartbeat_ns = (uint64_t)o->heartbeat_ms * WISP_NS_PER_MS;
			c->heartbeat_delay_ns = c->heartbeat_ns / 2;
			/* the spec's slack: the peer clears its backoff at its own
			 * heartbeat */
			c->backoff_slack_ns = 2 * c->heartbeat_ns;
		}
		if (o->mcache_len)
			c->mcache_len = o->mcache_len;
		if (o->mcache_gossip)
			c->mcache_gossip = o->mcache_gossip;
		assert_int_equal(wisp_node_start(gn[i].n), WISP_OK);
	}
	assert_true(gn_wait(NULL, all_listening, WAIT_MS));
}

void gn_stop(void)
{
	for (unsigned i = 0; i < gn_count; i++)
		assert_int_equal(wisp_node_stop(gn[i].n), WISP_OK);
	gn_drain(NULL); /* events queued before the stop hold buffers */
	for (unsigned i = 0; i < gn_count; i++) {
		wt_node_finish(gn[i].n);
		gn[i].n = NULL;
	}
	gn_count = 0;
}

static int dial_from, dial_to;
static unsigned dial_base[2];

static bool dialed(void)
{
	return gn[dial_from].connected > dial_base[0] && gn[dial_to].connected > dial_base[1];
}

void gn_dial(int from, int to)
{
	dial_from = from;
	dial_to = to;
	dial_base[0] = gn[from].connected;
	dial_base[1] = gn[to].connected;
	assert_int_equal(wisp_dial(gn[from].n, gn[to].listen, 1), WISP_OK);
	assert_true(gn_wait(NULL, dialed, WAIT_MS));
}

static unsigned want_subscribed;

static bool all_subscribed(void)
{
	for (unsigned i = 0; i < gn_count; i++)
		if (gn[i].subscribed < want_subscribed)
			return false;
	return true;
}

void gn_subscribe_all(const char *topic, const wisp_topic_opts *o)
{
	want_subscribed = gn[0].subscribed + 1;
	for (unsigned i = 0; i < gn_count; i++)
		assert_int_equal(wisp_subscribe(gn[i].n, topic, o, 2), WISP_OK);
	assert_true(gn_wait(NULL, all_subscribed, WAIT_MS));
}

size_t gn_data(char *out, size_t cap, char tag, unsigned k, size_t len)
{
	int n = snprintf(out, cap, "%c%u:", tag, k);
	assert_true(n > 0 && (size_t)n < cap);
	size_t m = (size_t)n;
	while (m < len && m < cap)
		out[m++] = '.';
	return m;
}

unsigned gn_got(int i, char tag, unsigned k)
{
	int t = tag_index(tag);
	assert_true(t >= 0 && k < GN_TAGS);
	return gn[i].got[t][k];
}

static int pub_node;
static unsigned pub_before;

static bool pub_answered(void)
{
	return gn[pub_node].published > pub_before;
}

void gn_publish_async(int i, const char *topic, char tag, unsigned k, size_t len)
{
	static char buf[1 << 20];
	size_t n = gn_data(buf, sizeof(buf), tag, k, len);
	assert_int_equal(wisp_publish(gn[i].n, topic, buf, n, k), WISP_OK);
}

int gn_publish(int i, const char *topic, char tag, unsigned k, size_t len)
{
	pub_node = i;
	pub_before = gn[i].published;
	gn_publish_async(i, topic, tag, k, len);
	assert_true(gn_wait(NULL, pub_answered, WAIT_MS));
	return gn[i].publish_status;
}

static int probe_from;
static unsigned probe_k;

static bool probe_everywhere(void)
{
	for (unsigned i = 0; i < gn_count; i++)
		if ((int)i != probe_from && gn_got((int)i, 'p', probe_k) == 0)
			return false;
	return true;
}

static bool never(void)
{
	return false;
}

void gn_wait_mesh(const char *topic, int from)
{
	static unsigned next_probe;
	probe_from = from;
	for (int tries = 0; tries < 100; tries++) {
		probe_k = next_probe++ % GN_TAGS;
		int status = gn_publish(from, topic, 'p', probe_k, 0);
		if (status == WISP_OK && gn_wait(NULL, probe_everywhere, 500))
			return;
		if (status != WISP_OK)
			(void)gn_wait(NULL, never, 50); /* no subscriber known yet */
	}
	fail_msg("the mesh never formed");
}

void gn_stats(int i, wisp_stats *out)
{
	wisp_node_stats(gn[i].n, out);
}

void gn_router_stats(int i, wisp_gs_router_stats *out)
{
	wisp_gossip_router_stats(gn[i].n->gossip_state, out);
}
