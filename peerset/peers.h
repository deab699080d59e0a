/* The peers actor: which peers are connected, through which connections.
 *
 * Workers own connections; this actor owns the table from peer id to the
 * connections (worker, slot, generation) that reach it. Every connection
 * event passes through here on its way to the application, so the table
 * is up to date before the application hears of a peer, and commands that
 * name a peer (ping, disconnect, tests) are routed to the worker holding
 * its connection (request/response requests too, on their way to the
 * reqresp actor). Dials are dealt to workers round robin: the
 * application's, the explicit peers' (kept connected from here), and those
 * the gossip actor asks for after peer exchange (skipped when the peer is
 * connected by then).
 *
 * State is touched by the actor's thread only.
 */
#ifndef WISP_PEERSET_PEERS_H
#define WISP_PEERSET_PEERS_H

#include <sys/socket.h>

#include <wisp/wisp.h>

#include "runtime/loop.h"

struct wisp_node;

enum wisp_peers_msg {
	/* from workers */
	WISP_PMSG_CONN_UP = 1,   /* a: conn ref, b: dial cookie, buf: wisp_conn_up */
	WISP_PMSG_CONN_DOWN = 2, /* a: conn ref, b: dial cookie, buf: wisp_conn_down (NULL if the pool was empty) */
	WISP_PMSG_EVENT = 3,     /* a: event type | (uint32)status << 32, b: cookie, buf: the event's payload */
	/* from the application */
	WISP_PMSG_DIAL = 4,      /* b: cookie, buf: wisp_dial_req */
	WISP_PMSG_PEER_CMD = 5,  /* b: cookie, buf: wisp_peer_cmd */
	/* from the gossip actor */
	WISP_PMSG_PX_DIAL = 6,   /* buf: wisp_dial_req (has_peer set); events carry WISP_COOKIE_PX */
	/* from the application: a request (actors/reqresp/actor.h wisp_rr_req),
	 * routed here first because this actor emits CONNECTED: a request
	 * made after that event finds the connection. Forwarded to the
	 * reqresp actor with the connection (0: none). */
	WISP_PMSG_RR_REQUEST = 7,
};

typedef struct wisp_conn_up {
	wisp_peer_id peer;
	bool dialer;
	char addr[WISP_ADDR_TEXT_MAX];
} wisp_conn_up;

typedef struct wisp_conn_down {
	wisp_peer_id peer;
	bool has_peer;
	bool dialer;
	bool upgraded;
	int err;
	char stage[16];
	char addr[WISP_ADDR_TEXT_MAX];
} wisp_conn_down;

typedef struct wisp_dial_req {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool has_peer;
	wisp_peer_id peer;
} wisp_dial_req;

enum wisp_peer_cmd_kind { WISP_PEER_PING = 1, WISP_PEER_CLOSE = 2, WISP_PEER_TEST = 3 };

typedef struct wisp_peer_cmd {
	enum wisp_peer_cmd_kind kind;
	wisp_peer_id peer;
	wisp_test_spec test;
} wisp_peer_cmd;

extern const wisp_actor_ops wisp_peers_ops;

/* Actor state, allocated by the node. Errors: WISP_ERR_NOMEM. */
struct wisp_peers;
int wisp_peers_new(struct wisp_peers **out, struct wisp_node *node, uint32_t max_conns);
void wisp_peers_free(struct wisp_peers *p);

/* "/ip4/1.2.3.4/tcp/5" for a socket address ("?" when unknown). */
void wisp_peers_addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* Fill an event's peer text fields. */
void wisp_peer_text(const wisp_peer_id *id, char *out, size_t cap);

/* The payload of a PING or TEST result about peer, zeroed but for the peer
 * (and the test); NULL when the pool is empty (the event then goes without). */
struct wisp_pool;
struct wisp_buf *wisp_ping_result_buf(struct wisp_pool *pool, const wisp_peer_id *peer);
struct wisp_buf *wisp_test_result_buf(struct wisp_pool *pool, const wisp_peer_id *peer, const wisp_test_spec *t);

#endif
