/* wisp Atlas request/response: the four protocols' ids, their protobuf
 * messages and the registration of all four on a node.
 *
 * Every protocol uses wisp's request/response framing (wisp.h, section
 * "request/response"): the request is one message, the response zero or
 * more chunks of one message each; a chunk with a non-zero result carries
 * an error message instead and ends the response. The messages:
 *
 *   /atlas/req/tx/1/pb_zstd          TxRequest -> Tx*
 *     message TxRequest  { repeated bytes ids = 1; }
 *     message Tx         { bytes id = 1; bytes body = 2; }
 *     One Tx per id found, in request order; ids not found are skipped.
 *
 *   /atlas/req/state/1/pb_zstd       StateRequest -> StateBlock*
 *     message StateRequest { uint64 height = 1; bytes last_hash = 2; uint32 max_blocks = 3; }
 *     message StateBlock   { uint64 height = 1; bytes hash = 2; bytes parent_hash = 3;
 *                            bytes body = 4; }
 *     The requester holds the chain up to height, whose block hash is
 *     last_hash; the blocks that follow come one per chunk, heights
 *     increasing from height + 1, at most max_blocks of them. A responder
 *     whose block at height is not last_hash answers result 1 (invalid
 *     request) with a message: that check is the application's.
 *
 *   /atlas/req/checkpoint/1/pb_zstd  CheckpointRequest -> CheckpointManifest+ | CheckpointPart*
 *     message CheckpointRequest  { uint64 height = 1; bytes chunk_id = 2; }
 *     message CheckpointManifest { uint64 height = 1; bytes state_root = 2;
 *                                  repeated ChunkRef chunks = 3; }
 *     message ChunkRef           { bytes id = 1; bytes sha256 = 2; uint64 size = 3; }
 *     message CheckpointPart     { uint64 offset = 1; bytes data = 2; }
 *     An empty chunk_id asks for the checkpoint's manifest: one or more
 *     CheckpointManifest chunks whose chunks lists concatenate. Otherwise it
 *     asks for that state chunk: CheckpointPart chunks in order, offset being
 *     where data starts in the state chunk.
 *
 *   /atlas/req/pending/1/pb_zstd     PendingRequest -> PendingTx*
 *     message PendingRequest { bytes sender = 1; uint64 nonce_from = 2; uint64 nonce_to = 3;
 *                              uint32 max = 4; }
 *     message PendingTx      { bytes sender = 1; uint64 nonce = 2; bytes id = 3; bytes body = 4; }
 *     The sender's pending transactions with nonces in [nonce_from,
 *     nonce_to], nonces increasing, at most max of them.
 *
 * Encoding is proto3 as protobuf libraries write it: fields in number
 * order, scalars that are 0 and bytes that are empty left out, so go and js
 * protobuf code produces and reads the same bytes. Decoding skips unknown
 * fields; a singular field that appears more than once keeps its last value
 * (every occurrence must be within the limits); varints must be minimal
 * (codec/pb.h), so a message re-encodes to its canonical form.
 *
 * Limits, checked by the encoders (WISP_ERR_INVALID_ARG) and the decoders:
 *   every message                at most WISP_ATLAS_MAX_MESSAGE bytes (one
 *                                chunk); requests at most their protocol's
 *                                WISP_ATLAS_*_REQUEST_MAX
 *   TxRequest.ids                1..256 ids, each 1..64 bytes
 *   Tx.id                        1..64 bytes
 *   StateRequest.last_hash       1..64 bytes
 *   StateRequest.max_blocks      1..1024
 *   StateBlock.hash, parent_hash 1..64 bytes each
 *   CheckpointRequest.chunk_id   0..64 bytes (0: the manifest)
 *   CheckpointManifest.state_root  1..64 bytes
 *   ChunkRef.id                  1..64 bytes
 *   ChunkRef.sha256              exactly 32 bytes
 *   ChunkRef.size                1..2^32
 *   CheckpointPart               offset + len(data) at most 2^32 (the
 *                                largest state chunk)
 *   PendingRequest.sender        1..64 bytes
 *   PendingRequest               nonce_from <= nonce_to
 *   PendingRequest.max           1..1024
 *   PendingTx.sender, id         1..64 bytes each
 * Bodies (Tx, StateBlock, PendingTx body; CheckpointPart data) have no
 * bound of their own beyond the message's. "1..n" means required: absent or
 * empty breaks the schema.
 *
 * Decoder errors (all in the peer class, wisp_err_is_peer()):
 *   WISP_ERR_TOO_LARGE   the message, a length, a count or a value is over
 *                        its maximum;
 *   WISP_ERR_MALFORMED   a value under its minimum (a required field missing
 *                        or empty, max_blocks 0, a sha256 shorter than 32),
 *                        nonce_from > nonce_to, a field number 0;
 *   WISP_ERR_WIRE_TYPE   a known field with another wire type, or wire type
 *                        3, 4, 6, 7 anywhere;
 *   WISP_ERR_TRUNCATED, WISP_ERR_VARINT  not a well-formed protobuf.
 *
 * Memory: decoding never allocates and never copies: wisp_atlas_bytes in a
 * decoded message point into the input, which must outlive them. Encoders
 * write into the caller's buffer (out may be NULL when cap is 0); an
 * encoder's *_size() gives the exact length it will write for a message
 * within the limits.
 *
 * Argument order follows common.h. Threads: the codec functions are pure
 * and may run on any thread; wisp_atlas_register() is called as
 * wisp_reqresp_register() is.
 */
#ifndef WISP_ATLAS_H
#define WISP_ATLAS_H

#include <wisp/common.h>
#include <wisp/error.h>
#include <wisp/wisp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WISP_ATLAS_PROTO_TX "/atlas/req/tx/1/pb_zstd"
#define WISP_ATLAS_PROTO_STATE "/atlas/req/state/1/pb_zstd"
#define WISP_ATLAS_PROTO_CHECKPOINT "/atlas/req/checkpoint/1/pb_zstd"
#define WISP_ATLAS_PROTO_PENDING "/atlas/req/pending/1/pb_zstd"

/* The four protocols, in the order wisp_atlas_register() registers them. */
typedef enum wisp_atlas_proto {
	WISP_ATLAS_TX = 0,
	WISP_ATLAS_STATE = 1,
	WISP_ATLAS_CHECKPOINT = 2,
	WISP_ATLAS_PENDING = 3,
	WISP_ATLAS_PROTOCOLS = 4,
} wisp_atlas_proto;

#define WISP_ATLAS_MAX_MESSAGE WISP_REQRESP_MAX_CHUNK /* any message: one chunk (1 MiB) */
#define WISP_ATLAS_MAX_HASH 64u                       /* ids, hashes, senders, chunk ids */
#define WISP_ATLAS_MAX_IDS 256u                       /* TxRequest.ids */
#define WISP_ATLAS_MAX_BLOCKS 1024u                   /* StateRequest.max_blocks */
#define WISP_ATLAS_MAX_PENDING 1024u                  /* PendingRequest.max */
#define WISP_ATLAS_SHA256_LEN 32u                     /* ChunkRef.sha256 */
#define WISP_ATLAS_MAX_CHUNK_SIZE (UINT64_C(1) << 32) /* ChunkRef.size, CheckpointPart end */

/* Largest request accepted per protocol: the schema's largest encoding
 * (TxRequest: 256 ids of 1 + 1 + 64 bytes; the others under 100 bytes)
 * plus 512 bytes for fields a later revision may add. */
#define WISP_ATLAS_TX_REQUEST_MAX (256u * 66u + 512u)
#define WISP_ATLAS_STATE_REQUEST_MAX 512u
#define WISP_ATLAS_CHECKPOINT_REQUEST_MAX 512u
#define WISP_ATLAS_PENDING_REQUEST_MAX 512u

/* Most response chunks per protocol: one per requested id, block or pending
 * tx; for checkpoints, 4096 manifest pieces or parts. A part of a 1 MiB
 * chunk holds at most 1 MiB - 10 bytes of data (offset and data headers),
 * so one response carries a state chunk of up to 4096 * (2^20 - 10) bytes,
 * a little under the 2^32 ChunkRef.size allows: checkpoint producers keep
 * their chunks below that. */
#define WISP_ATLAS_TX_MAX_CHUNKS 256u
#define WISP_ATLAS_STATE_MAX_CHUNKS 1024u
#define WISP_ATLAS_CHECKPOINT_MAX_CHUNKS 4096u
#define WISP_ATLAS_PENDING_MAX_CHUNKS 1024u

/* A byte string inside someone else's buffer. p may be NULL when len is 0;
 * decoders always set it so. */
typedef struct wisp_atlas_bytes {
	const uint8_t *p;
	uint32_t len;
} wisp_atlas_bytes;

typedef struct wisp_atlas_tx_request {
	uint32_t n_ids;
	wisp_atlas_bytes ids[WISP_ATLAS_MAX_IDS];
} wisp_atlas_tx_request;

typedef struct wisp_atlas_tx {
	wisp_atlas_bytes id;
	wisp_atlas_bytes body;
} wisp_atlas_tx;

typedef struct wisp_atlas_state_request {
	uint64_t height;
	wisp_atlas_bytes last_hash;
	uint32_t max_blocks;
} wisp_atlas_state_request;

typedef struct wisp_atlas_state_block {
	uint64_t height;
	wisp_atlas_bytes hash;
	wisp_atlas_bytes parent_hash;
	wisp_atlas_bytes body;
} wisp_atlas_state_block;

typedef struct wisp_atlas_checkpoint_request {
	uint64_t height;
	wisp_atlas_bytes chunk_id; /* empty: the manifest */
} wisp_atlas_checkpoint_request;

typedef struct wisp_atlas_chunk_ref {
	wisp_atlas_bytes id;
	wisp_atlas_bytes sha256;
	uint64_t size;
} wisp_atlas_chunk_ref;

/* A manifest's refs are not held in the struct (one message may list tens
 * of thousands): the encoder takes them as an array, and a decoded
 * manifest is read with a wisp_atlas_manifest_cursor. */
typedef struct wisp_atlas_checkpoint_manifest {
	uint64_t height;
	wisp_atlas_bytes state_root;
	uint32_t n_chunks;     /* set by decode: refs in the message; encode ignores it */
	wisp_atlas_bytes wire; /* set by decode: the input, which the cursor walks again */
} wisp_atlas_checkpoint_manifest;

typedef struct wisp_atlas_manifest_cursor {
	const uint8_t *p;
	const uint8_t *end;
} wisp_atlas_manifest_cursor;

typedef struct wisp_atlas_checkpoint_part {
	uint64_t offset;
	wisp_atlas_bytes data;
} wisp_atlas_checkpoint_part;

typedef struct wisp_atlas_pending_request {
	wisp_atlas_bytes sender;
	uint64_t nonce_from; /* inclusive */
	uint64_t nonce_to;   /* inclusive */
	uint32_t max;
} wisp_atlas_pending_request;

typedef struct wisp_atlas_pending_tx {
	wisp_atlas_bytes sender;
	uint64_t nonce;
	wisp_atlas_bytes id;
	wisp_atlas_bytes body;
} wisp_atlas_pending_tx;

/* ---- codecs -------------------------------------------------------------
 *
 * For each message M:
 *   wisp_atlas_M_size(m)              the encoded length of m;
 *   wisp_atlas_M_encode(m, out, cap)  writes m to out[0..cap); returns the
 *       length, WISP_ERR_INVALID_ARG (m is outside the limits above, or a
 *       non-empty wisp_atlas_bytes has p NULL) or WISP_ERR_NOBUF;
 *   wisp_atlas_M_decode(in, n, out)   reads in[0..n) into *out; returns 0
 *       or a decoder error (top of this file), and then *out is zeroed.
 */

WISP_API size_t wisp_atlas_tx_request_size(const wisp_atlas_tx_request *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_tx_request_encode(const wisp_atlas_tx_request *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_tx_request_decode(const uint8_t *in, size_t n, wisp_atlas_tx_request *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_tx_size(const wisp_atlas_tx *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_tx_encode(const wisp_atlas_tx *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_tx_decode(const uint8_t *in, size_t n, wisp_atlas_tx *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_state_request_size(const wisp_atlas_state_request *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_state_request_encode(const wisp_atlas_state_request *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_state_request_decode(const uint8_t *in, size_t n, wisp_atlas_state_request *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_state_block_size(const wisp_atlas_state_block *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_state_block_encode(const wisp_atlas_state_block *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_state_block_decode(const uint8_t *in, size_t n, wisp_atlas_state_block *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_checkpoint_request_size(const wisp_atlas_checkpoint_request *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_checkpoint_request_encode(const wisp_atlas_checkpoint_request *m, uint8_t *out,
						      size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_checkpoint_request_decode(const uint8_t *in, size_t n, wisp_atlas_checkpoint_request *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

/* The manifest's encoder takes its refs as refs[0..n_refs) (refs may be
 * NULL when n_refs is 0); m->n_chunks and m->wire are not read. The decoder
 * checks every ref against the limits before it returns 0, then sets
 * n_chunks and wire for wisp_atlas_manifest_cursor_init(). */
WISP_API size_t wisp_atlas_checkpoint_manifest_size(const wisp_atlas_checkpoint_manifest *m,
						    const wisp_atlas_chunk_ref *refs, size_t n_refs)
	WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_checkpoint_manifest_encode(const wisp_atlas_checkpoint_manifest *m,
						       const wisp_atlas_chunk_ref *refs, size_t n_refs,
						       uint8_t *out, size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_checkpoint_manifest_decode(const uint8_t *in, size_t n,
						   wisp_atlas_checkpoint_manifest *out) WISP_NONNULL(3)
	WISP_WARN_UNUSED;

/* Walks the refs of a manifest that wisp_atlas_checkpoint_manifest_decode()
 * accepted (its input still alive), in wire order. next() returns 1 with
 * *ref set (slices into the input), or 0 after the last one. */
WISP_API void wisp_atlas_manifest_cursor_init(wisp_atlas_manifest_cursor *c,
					      const wisp_atlas_checkpoint_manifest *m) WISP_NONNULL(1, 2);
WISP_API int wisp_atlas_manifest_next(wisp_atlas_manifest_cursor *c, wisp_atlas_chunk_ref *ref)
	WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_checkpoint_part_size(const wisp_atlas_checkpoint_part *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_checkpoint_part_encode(const wisp_atlas_checkpoint_part *m, uint8_t *out,
						   size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_checkpoint_part_decode(const uint8_t *in, size_t n, wisp_atlas_checkpoint_part *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_pending_request_size(const wisp_atlas_pending_request *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_pending_request_encode(const wisp_atlas_pending_request *m, uint8_t *out,
						   size_t cap) WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_pending_request_decode(const uint8_t *in, size_t n, wisp_atlas_pending_request *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

WISP_API size_t wisp_atlas_pending_tx_size(const wisp_atlas_pending_tx *m) WISP_NONNULL(1);
WISP_API ssize_t wisp_atlas_pending_tx_encode(const wisp_atlas_pending_tx *m, uint8_t *out, size_t cap)
	WISP_NONNULL(1) WISP_WARN_UNUSED;
WISP_API int wisp_atlas_pending_tx_decode(const uint8_t *in, size_t n, wisp_atlas_pending_tx *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

/* ---- registration ------------------------------------------------------ */

/* The options wisp_atlas_register() gives protocol p: *base (NULL: the
 * defaults) with max_request = p's WISP_ATLAS_*_REQUEST_MAX and max_chunks =
 * p's WISP_ATLAS_*_MAX_CHUNKS; everything else (serve, max_chunk, timeouts,
 * concurrency, rates) is base's. For registering one protocol with options
 * of one's own. Returns 0, or WISP_ERR_INVALID_ARG (p unknown, base of
 * another version). */
WISP_API int wisp_atlas_opts(wisp_atlas_proto p, const wisp_reqresp_opts *base, wisp_reqresp_opts *out)
	WISP_NONNULL(3) WISP_WARN_UNUSED;

/* Registers the four protocols on n, in wisp_atlas_proto order, each with
 * wisp_atlas_opts(p, base). When nothing was registered before, their
 * numbers (wisp_request_info.protocol_index) are the wisp_atlas_proto
 * values. Returns WISP_OK or the first wisp_reqresp_register() error
 * (WISP_ERR_INVALID_ARG, WISP_ERR_EXISTS, WISP_ERR_LIMIT, WISP_ERR_STATE);
 * registration cannot be undone, so on EXISTS or LIMIT the protocols before
 * the failing one stay registered. */
WISP_API int wisp_atlas_register(wisp_node *n, const wisp_reqresp_opts *base) WISP_NONNULL(1) WISP_WARN_UNUSED;

#ifdef __cplusplus
}
#endif

#endif
