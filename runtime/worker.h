/* Network workers: one per pinned loop. Each owns a shard of the
 * connections (net/shard.h) and answers the runtime's control messages. */
#ifndef WISP_RUNTIME_WORKER_H
#define WISP_RUNTIME_WORKER_H

#include "net/shard.h"
#include "runtime/loop.h"

struct wisp_node;

/* Messages a worker's mailbox takes. */
enum wisp_worker_msg {
	WISP_WMSG_PROBE = 1,    /* a: probe slot; reply WISP_TMSG_PROBE_ACK to telemetry */
	WISP_WMSG_DIAL = 2,     /* a: cookie, buf: wisp_dial_req (peerset/peers.h) */
	WISP_WMSG_ADOPT = 3,    /* a: an accepted socket, dealt by worker 0 */
	WISP_WMSG_PEER_CMD = 4, /* a: conn ref, b: cookie, buf: wisp_peer_cmd */
	WISP_WMSG_GS_SEND = 5,  /* +queue level (WISP_PUBSUB_*, 0..4): a: conn ref,
				   b: expiry (0 none), buf: a gossipsub RPC frame */
	WISP_WMSG_GS_VERIFY = 10,/* a: router ref, b: offset << 32 | length of the Message in buf,
				   buf: its frame; answer WISP_GMSG_VERIFIED to the gossip actor */
	/* request/response (net/reqresp.h) */
	WISP_WMSG_RR_REQUEST = 11, /* a: conn ref, b: out ref, buf: wisp_rr_req + content */
	WISP_WMSG_RR_CANCEL = 12,  /* a: out ref */
	WISP_WMSG_RR_ADMIT = 13,   /* a: worker key, b: in ref */
	WISP_WMSG_RR_REFUSE = 14,  /* a: worker key, b: result, buf: the message */
	WISP_WMSG_RR_RESPOND = 15, /* a: in ref, b: result | WISP_RR_FLAG_*, buf: wisp_rr_chunk + content */
};

typedef struct wisp_worker {
	struct wisp_node *node;
	uint32_t index;
	wisp_shard shard;
	uint8_t *verify_scratch; /* signature checks: max message + 4 KiB, made on first use */
	size_t verify_len;
} wisp_worker;

extern const wisp_actor_ops wisp_worker_ops;

#endif
