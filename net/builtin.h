/* Protocols every wisp node runs on its workers, next to the connection
 * that carries them:
 *
 *   /ipfs/id/1.0.0       identify: on every new connection each side asks
 *                        the other; answers carry our key, listen
 *                        addresses, protocols, agent, the observed address
 *                        and our signed peer record; the peer's record is
 *                        verified here and goes to the gossip actor (PX)
 *   /ipfs/id/push/1.0.0  identify push: received and reported (we never
 *                        push: our protocols do not change while running)
 *   /ipfs/ping/1.0.0     ping: every byte echoed; wisp_ping() sends 32
 *   /perf/1.0.0          perf (WISP_SERVICE_PERF): u64 big-endian count of
 *                        bytes wanted, the upload, half-close; then the
 *                        download and close
 *   /wisp/echo/1.0.0     echo (WISP_SERVICE_ECHO): every byte back, close
 *                        after the peer's FIN
 *
 * and the client side of the diagnostic transfers (wisp_stream_test()).
 * Results go to the application through the peers actor, in order behind
 * the connection's CONNECTED event.
 *
 * Handlers run on the connection's worker thread.
 */
#ifndef WISP_NET_BUILTIN_H
#define WISP_NET_BUILTIN_H

#include "net/shard.h"
#include "peerset/peers.h"

struct wisp_node;

#define WISP_PROTO_IDENTIFY "/ipfs/id/1.0.0"
#define WISP_PROTO_IDENTIFY_PUSH "/ipfs/id/push/1.0.0"
#define WISP_PROTO_PING "/ipfs/ping/1.0.0"
#define WISP_PROTO_PERF "/perf/1.0.0"
#define WISP_PROTO_ECHO "/wisp/echo/1.0.0"

/* Echo payload of stream i: the little-endian bytes of a xorshift32
 * sequence seeded with (i + 1) * 0x9E3779B9 (the seed itself not emitted);
 * js-peer (tests/interop/echo-data.mjs) makes the same bytes. */
typedef struct wisp_echo_gen {
	uint32_t x;
	uint8_t word[4];
	uint8_t pos; /* next byte of word; 4: draw a new word */
} wisp_echo_gen;

void wisp_echo_gen_init(wisp_echo_gen *g, uint32_t stream);
void wisp_echo_gen_fill(wisp_echo_gen *g, uint8_t *out, size_t n);

/* Add the built-in protocols to the node's table (before start).
 * Errors: wisp_proto_add()'s. */
int wisp_builtin_register(struct wisp_node *n);

/* Per-shard state (the shared zero buffer perf sends from). */
int wisp_builtin_shard_start(wisp_shard *s);
void wisp_builtin_shard_stop(wisp_shard *s);

/* A connection reached its session: ask the peer to identify itself. */
void wisp_builtin_upgraded(wisp_shard_conn *sc);
/* A connection is about to be freed: release what the built-ins hold for
 * it (their streams are closed by wisp_conn_free() afterwards). */
void wisp_builtin_closed(wisp_shard_conn *sc);

/* Commands routed by the peers actor; sc is NULL when the connection is
 * gone (the result then says WISP_ERR_NOTFOUND). */
void wisp_builtin_ping(wisp_shard *s, wisp_shard_conn *sc, const wisp_peer_cmd *c, uint64_t cookie);
void wisp_builtin_test(wisp_shard *s, wisp_shard_conn *sc, const wisp_peer_cmd *c, uint64_t cookie);

#endif
