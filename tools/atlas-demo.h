/* A demo Atlas state, generated from a few numbers, and the handlers that
 * serve it over the four Atlas protocols (wisp/atlas.h). wisp-node serves
 * it with --atlas-demo; tests/unit/test_rt_atlas.c checks every protocol
 * against it. Everything is a pure function of the configuration, so a
 * client can compute what a server must answer.
 *
 *   transactions  tx n (0 <= n < txs): id = SHA-256("atlas-demo tx " n),
 *                 body = 64 + n % 192 bytes of the stream seeded by n;
 *   blocks        heights 1..height: hash(h) = SHA-256("atlas-demo block" ||
 *                 h || hash(h - 1)), hash(0) = SHA-256("atlas-demo
 *                 genesis"); body 256 bytes seeded by h;
 *   checkpoint    at `height`: chunks of chunk_size bytes seeded by their
 *                 index, ids "chunk-<i>"; state_root = SHA-256 of the chunk
 *                 hashes in order; parts of at most 512 KiB;
 *   pending       senders "sender-<k>" (k < senders), each with nonces
 *                 0..pending-1: id = SHA-256("atlas-demo pending " k " " nonce),
 *                 body 100 bytes seeded by both.
 *
 * Requests are answered chunk by chunk as the node takes them: a response
 * waits (in order) when wisp_respond() says AGAIN, and atlas_demo_pump()
 * goes on. One thread (the one that drains the node's events).
 */
#ifndef WISP_TOOLS_ATLAS_DEMO_H
#define WISP_TOOLS_ATLAS_DEMO_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/atlas.h>
#include <wisp/wisp.h>

typedef struct atlas_demo_cfg {
	uint32_t txs;          /* default 10000 */
	uint64_t height;       /* default 1000 */
	uint32_t chunks;       /* checkpoint chunks (default 64) */
	uint32_t chunk_size;   /* default 1 MiB, at most WISP_REQRESP_MAX_CHUNK */
	uint32_t senders;      /* default 16 */
	uint32_t pending;      /* nonces per sender (default 64) */
} atlas_demo_cfg;

typedef struct atlas_demo atlas_demo;

void atlas_demo_cfg_default(atlas_demo_cfg *c);
/* NULL when out of memory or the configuration is out of range. */
atlas_demo *atlas_demo_new(const atlas_demo_cfg *c);
void atlas_demo_free(atlas_demo *d);

/* A WISP_EVENT_REQUEST on one of the Atlas protocols: answer it (now, or
 * as the node takes chunks). False when it is not an Atlas protocol. */
bool atlas_demo_request(atlas_demo *d, wisp_node *n, const wisp_request_info *ri);
/* Go on with responses that waited (call after RESPOND_READY, or now and
 * then). Returns how many responses still wait. */
uint32_t atlas_demo_pump(atlas_demo *d, wisp_node *n);

/* What a client can compute. */
const atlas_demo_cfg *atlas_demo_config(const atlas_demo *d);
void atlas_demo_tx_id(uint32_t n, uint8_t id[32]);
void atlas_demo_block_hash(const atlas_demo *d, uint64_t height, uint8_t hash[32]);
void atlas_demo_chunk(const atlas_demo *d, uint32_t i, wisp_sync_chunk *out);
void atlas_demo_bytes(uint64_t seed, uint8_t *out, size_t n);

#endif
