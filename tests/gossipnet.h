/* A few wisp nodes on loopback for the gossip tests with an evil peer
 * (tests/evilgossip.h): started through the public API, with the gossip
 * actor's test hook for a shorter heartbeat, and their events counted per
 * node. Messages the tests publish carry data "<tag><k>:" (then padding),
 * tag 'h' (honest), 'e' (the evil peer's) or 'p' (mesh probes), and each
 * node counts the deliveries of every (tag, k), so a test can check that
 * every message arrived exactly once.
 *
 * Uses cmocka asserts: include after <cmocka.h>. Test thread only.
 */
#ifndef WISP_TESTS_GOSSIPNET_H
#define WISP_TESTS_GOSSIPNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/wisp.h>

#include "actors/gossip/router.h"
#include "tests/evilgossip.h"

#define GN_MAX_NODES 4
#define GN_TAGS 4096

typedef struct gn_opts {
	uint32_t nodes;            /* 1..GN_MAX_NODES; every node listens */
	uint32_t heartbeat_ms;     /* 0: the router's default (1 s) */
	uint32_t mcache_len;       /* 0: default */
	uint32_t mcache_gossip;    /* 0: default */
	size_t conn_send_budget;   /* 0: default */
	uint32_t stall_timeout_ms; /* 0: default */
} gn_opts;

typedef struct gn_node {
	wisp_node *n;
	uint16_t port;
	char listen[WISP_ADDR_TEXT_MAX];
	unsigned connected, subscribed, published, messages;
	int publish_status;
	wisp_published_info last_pub;   /* the last PUBLISHED event */
	wisp_peer_id last_source;       /* who forwarded the last message */
	unsigned disconnected;
	int last_disconnect;            /* its status */
	char last_disconnect_stage[16];
	uint16_t got[3][GN_TAGS];       /* deliveries of 'h', 'e', 'p' messages by k */
} gn_node;

extern gn_node gn[GN_MAX_NODES];
extern unsigned gn_count;

/* Start o->nodes nodes (one worker each, unpinned) and wait until each
 * listens. */
void gn_start(const gn_opts *o);
/* Stop every node; each must give every pooled buffer back. */
void gn_stop(void);
/* from dials to; waits until both see the connection. */
void gn_dial(int from, int to);
/* Every node subscribes to topic (o NULL: defaults). */
void gn_subscribe_all(const char *topic, const wisp_topic_opts *o);
/* Publish probes from node `from` until one reaches every other node: the
 * subscriptions have travelled and the meshes have formed. */
void gn_wait_mesh(const char *topic, int from);

/* Drain every node's events (and, when e is not NULL, read what the node
 * sent e) until cond() holds: false after timeout_ms. */
bool gn_wait(eg_peer *e, bool (*cond)(void), unsigned timeout_ms);
/* Drain what is there now. */
void gn_drain(eg_peer *e);
/* gn_wait until node i's router counter at off (a uint64_t field of
 * wisp_gs_router_stats) reaches value; when it does not within timeout_ms,
 * prints name and returns false. GN_WAIT_ROUTER asserts it for a field. */
bool gn_wait_router(eg_peer *e, int i, size_t off, const char *name, uint64_t value, unsigned timeout_ms);
#define GN_WAIT_ROUTER(e, i, field, value, timeout_ms)                                                  \
	assert_true(gn_wait_router((e), (i), offsetof(wisp_gs_router_stats, field), #field, (value), (timeout_ms)))

/* Data of message (tag, k): "<tag><k>:" padded with '.' to len bytes
 * (at least the prefix). Returns its length. */
size_t gn_data(char *out, size_t cap, char tag, unsigned k, size_t len);
/* Deliveries of (tag, k) at node i. */
unsigned gn_got(int i, char tag, unsigned k);
/* Node i publishes (tag, k) of len bytes on topic and waits for the
 * PUBLISHED event; returns its status (gn[i].last_pub has the id). */
int gn_publish(int i, const char *topic, char tag, unsigned k, size_t len);
/* Publish without waiting for the answer. */
void gn_publish_async(int i, const char *topic, char tag, unsigned k, size_t len);

void gn_stats(int i, wisp_stats *out);
void gn_router_stats(int i, wisp_gs_router_stats *out);

#endif
