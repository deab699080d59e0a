/* The request/response actor: admission, routing and accounting for
 * request/response streams; the bytes themselves stay on the workers
 * (net/reqresp.h), and so does compression.
 *
 *   handle   -> REQUEST: the actor checks the cap on requests in flight,
 *               finds the peer's connection and gives the worker holding it
 *               the request with an out slot (a reference the worker files
 *               the stream under); CANCEL finds the slot and tells that
 *               worker;
 *   workers  -> CONN_UP / CONN_DOWN: which connections reach which peer;
 *               INBOUND: a peer's request, read whole; the actor applies the
 *               responder limits (concurrency per peer and per protocol,
 *               the rate per peer, max_requests_in) and either admits it
 *               (an in slot, ADMIT to the worker, WISP_EVENT_REQUEST to the
 *               application) or refuses it ("resource unavailable", and the
 *               scoring actor hears); IN_DONE / OUT_DONE when a stream the
 *               actor counted has ended; BAD_PEER when a peer broke the
 *               framing.
 *
 * Chunks do not pass through here: response chunks go from the worker to
 * the application, and wisp_respond() goes from the application to the
 * worker, using the in slot's shared word (wisp_rr_shared) to find it and
 * to account the respond window.
 *
 * State is touched by the actor's thread only, except wisp_rr_shared.
 */
#ifndef WISP_ACTORS_REQRESP_ACTOR_H
#define WISP_ACTORS_REQRESP_ACTOR_H

#include <stdatomic.h>
#include <stddef.h>

#include <wisp/wisp.h>

#include "runtime/loop.h"

struct wisp_node;

enum wisp_rr_actor_msg {
	/* from workers */
	WISP_RMSG_CONN_UP = 300,   /* a: conn ref, buf: wisp_peer_id */
	WISP_RMSG_CONN_DOWN = 301, /* a: conn ref, buf: wisp_peer_id */
	WISP_RMSG_INBOUND = 302,   /* a: worker key of the stream, b: protocol, buf: the event
				      (wisp_request_info, then protocol text and content) */
	WISP_RMSG_IN_DONE = 303,   /* a: in ref, b: (uint32)status (may come twice for one ref) */
	WISP_RMSG_OUT_DONE = 304,  /* a: out ref, b: (uint32)status | first-byte latency us << 32 */
	WISP_RMSG_BAD_PEER = 305,  /* b: protocol << 32 | (uint32)error, buf: wisp_peer_id */
	WISP_RMSG_SYNC_PART = 306, /* a: out ref, buf: a response chunk as its event would carry it
				      (wisp_response_info, then the content) */
	/* from the handle */
	WISP_RMSG_REQUEST = 310,   /* through the peers actor: a: the peer's connection (0: none),
				      b: cookie, buf: wisp_rr_req + content */
	WISP_RMSG_CANCEL = 311,    /* a: request id */
	WISP_RMSG_SYNC = 312,      /* b: cookie, buf: wisp_rr_sync_cmd + chunks + peers */
	WISP_RMSG_SYNC_CANCEL = 313, /* a: sync id */
	/* from the scoring actor */
	WISP_RMSG_REPS = 320,      /* a: entries, buf: wisp_scoring_rep[a] */
};

/* A request on its way: handle -> actor -> worker (the same buffer). */
typedef struct wisp_rr_req {
	uint64_t id;
	uint64_t cookie;
	wisp_peer_id peer;
	uint32_t proto;
	uint32_t timeout_ms; /* the whole response; 0: none */
	uint32_t len;        /* content bytes after this header */
	uint32_t to_actor;   /* 1: the chunks go to the actor (WISP_RMSG_SYNC_PART), not the
				application, and the end only as OUT_DONE (the sync helper) */
} wisp_rr_req;

#define WISP_RR_REQ_PEER_OFFSET offsetof(wisp_rr_req, peer)

/* An in slot as application threads and workers see it. word: the
 * request's generation << 32 | want-ready bit << 31 | bytes queued (the
 * respond window's use); 0 when free. meta: worker << 8 | protocol; wkey:
 * the stream's worker key. */
typedef struct wisp_rr_shared {
	_Atomic uint64_t word;
	_Atomic uint64_t wkey;
	_Atomic uint32_t meta;
	uint32_t pad_;
} wisp_rr_shared;

/* A chunk on its way from wisp_respond() to the worker. The stream's worker
 * key rides along: the application's chunk may reach the worker before the
 * actor's ADMIT does (they travel in different lanes of its mailbox), and
 * then files the stream itself. */
typedef struct wisp_rr_chunk {
	uint64_t wkey;
	/* content follows */
} wisp_rr_chunk;

#define WISP_RR_WANT_READY (1ull << 31)
#define WISP_RR_QUEUED_MASK (WISP_RR_WANT_READY - 1)

/* What a chunk of len content bytes counts against the respond window: at
 * least 1 KiB, so that tiny chunks cannot queue without bound. */
static inline uint32_t wisp_rr_charge(size_t len)
{
	return len < 1024 ? 1024 : (uint32_t)len;
}

/* References: generation << 32 | slot (never 0: generations start at 1). */
static inline uint32_t wisp_rr_ref_slot(uint64_t ref)
{
	return (uint32_t)ref;
}

static inline uint32_t wisp_rr_ref_gen(uint64_t ref)
{
	return (uint32_t)(ref >> 32);
}

typedef struct wisp_reqresp wisp_reqresp;

extern const wisp_actor_ops wisp_reqresp_ops;

/* Errors: WISP_ERR_NOMEM. */
int wisp_reqresp_new(wisp_reqresp **out, struct wisp_node *node);
void wisp_reqresp_free(wisp_reqresp *r);

typedef struct wisp_reqresp_stats {
	wisp_stat requests_out, out_limit, not_connected, busy, rate_limited, admitted, bad_peers;
	wisp_stat dropped; /* mailboxes full: requests failed, refusals or admissions not delivered */
} wisp_reqresp_stats;
const wisp_reqresp_stats *wisp_reqresp_stats_of(const wisp_reqresp *r);

/* The reqresp part of wisp_stats: the workers' counters and the actor's. */
void wisp_reqresp_stats_fill(const struct wisp_node *n, wisp_stats *out);

#endif
