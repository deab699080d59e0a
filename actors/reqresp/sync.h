/* The chunked parallel sync helper (wisp_sync_start), run by the
 * request/response actor: which chunk to ask of which peer, the parts that
 * come back (assembled, sized and hashed here), retries, penalties,
 * progress events. Internal to actors/reqresp; the actor's thread only.
 */
#ifndef WISP_ACTORS_REQRESP_SYNC_H
#define WISP_ACTORS_REQRESP_SYNC_H

#include <stdbool.h>

#include <wisp/wisp.h>

#include "actors/reqresp/actor.h"
#include "actors/scoring/actor.h"
#include "net/shard.h"

struct wisp_syncs;
struct wisp_sync_job;

/* A sync as the handle hands it over: one allocation (node's wisp_mem)
 * holding the job, the chunk list and the peers. The actor owns it from
 * WISP_RMSG_SYNC on (a stopping node frees what it never read). */
struct wisp_sync_job *wisp_sync_job_new(wisp_node *n, const wisp_sync_spec *spec, uint32_t proto,
					uint64_t id, uint64_t cookie);
void wisp_sync_job_free(wisp_node *n, struct wisp_sync_job *j);

int wisp_syncs_new(struct wisp_syncs **out, wisp_reqresp *r);
void wisp_syncs_free(struct wisp_syncs *s);
/* At the actor's stop: every job ends (WISP_ERR_CLOSED) and is freed. */
void wisp_syncs_stop(struct wisp_syncs *s);

void wisp_sync_begin(struct wisp_syncs *s, struct wisp_sync_job *j, wisp_tstamp now);
void wisp_sync_cancel_job(struct wisp_syncs *s, uint64_t sync_id);
/* A response chunk of job's chunk (buf: wisp_response_info + content; the
 * callee takes it). WISP_ERR_BAD_CONTENT when it does not fit the chunk. */
int wisp_sync_part(struct wisp_syncs *s, uint32_t job, uint32_t chunk, wisp_buf *buf);
/* The request for job's chunk ended with status. */
void wisp_sync_out_done(struct wisp_syncs *s, uint32_t job, uint32_t chunk, const wisp_peer_id *peer, int status);

/* What sync.c needs of the actor (actor.c). */
wisp_node *wisp_rr_node(const wisp_reqresp *r);
wisp_actor *wisp_rr_actor(const wisp_reqresp *r);
/* The connection the actor knows for a peer, 0 when none (yet). */
wisp_conn_ref wisp_rr_conn_of(wisp_reqresp *r, const wisp_peer_id *id);
const wisp_scoring_rep *wisp_rr_rep_of(const wisp_reqresp *r, const wisp_peer_id *id);
uint64_t wisp_rr_reps_gen(const wisp_reqresp *r);
/* Send a request (buf: wisp_rr_req + content, taken on success) to its
 * peer over conn, filed as job's chunk when sync. Errors:
 * WISP_ERR_NOTFOUND (conn 0: not connected), WISP_ERR_LIMIT
 * (max_requests_out), WISP_ERR_AGAIN. */
int wisp_rr_dispatch(wisp_reqresp *r, wisp_buf *buf, wisp_conn_ref conn, bool sync, uint32_t job, uint32_t chunk);
void wisp_rr_cancel_id(wisp_reqresp *r, uint64_t id);
void wisp_rr_report(wisp_reqresp *r, const wisp_peer_id *id, wisp_rep_kind kind, uint64_t latency_us);

#endif
