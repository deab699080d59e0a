/* Request/response streams, on the worker that owns the connection.
 *
 * Everything that touches bytes happens here, next to the socket: reading
 * and writing the framing (codec/rrframe.h), zstd both ways (one context
 * per worker), the timeouts, and the per-stream queue of response chunks.
 * The request/response actor (actors/reqresp/actor.h) decides what may
 * run; the application hears from here directly.
 *
 *   outbound  RR_REQUEST opens a stream, writes the request and
 *             half-closes; each chunk read becomes a WISP_EVENT_RESPONSE,
 *             and the end (the peer's close, a timeout, a cancel, a reset,
 *             a framing error) one WISP_EVENT_RESPONSE_END plus OUT_DONE to
 *             the actor;
 *   inbound   the request is read whole (bounded by the protocol's
 *             max_request) and goes to the actor as INBOUND; ADMIT files
 *             the stream under its in slot, REFUSE answers it with an error
 *             chunk; RR_RESPOND chunks from the application are compressed,
 *             queued and written as the connection drains; IN_DONE tells
 *             the actor when the stream is gone.
 *
 * Worker thread only.
 */
#ifndef WISP_NET_REQRESP_H
#define WISP_NET_REQRESP_H

#include "net/shard.h"

struct wisp_node;

#define WISP_RR_FLAG_LAST 0x100u     /* RR_RESPOND: the final chunk */
#define WISP_RR_FLAG_END_ONLY 0x200u /* RR_RESPOND: no chunk, just the end */

/* Add a protocol the application registered to the node's table (before
 * start). Errors: those of wisp_proto_add(). */
struct wisp_rr_proto;
int wisp_rr_add_proto(struct wisp_node *n, struct wisp_rr_proto *p);

/* A WISP_EVENT_RESPONSE / RESPONSE_END payload for request id, with room
 * for len content bytes (its data points at them). NULL when the pool is
 * exhausted. Any thread. */
wisp_buf *wisp_rr_response_buf(struct wisp_node *n, uint64_t id, uint32_t proto, const wisp_peer_id *peer,
			       size_t len);

/* Per-worker state, from the shard's start and stop. */
int wisp_rr_shard_start(wisp_shard *s);
void wisp_rr_shard_stop(wisp_shard *s);

/* Connection life: the actor learns which peer a connection reaches. */
void wisp_rr_upgraded(wisp_shard_conn *sc);
void wisp_rr_closed(wisp_shard_conn *sc);

/* Commands from the worker's mailbox. */
void wisp_rr_request(wisp_shard *s, wisp_conn_ref conn, uint64_t out_ref, wisp_buf *req);
void wisp_rr_cancel(wisp_shard *s, uint64_t out_ref);
void wisp_rr_admit(wisp_shard *s, uint64_t wkey, uint64_t in_ref);
void wisp_rr_refuse(wisp_shard *s, uint64_t wkey, uint32_t result, wisp_buf *msg);
void wisp_rr_respond(wisp_shard *s, uint64_t in_ref, uint32_t flags, wisp_buf *chunk);

#endif
