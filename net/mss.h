/* multistream-select 1.0: agreeing on the protocol of a connection or stream.
 *
 * Every message is uvarint(length) || text || '\n', the length counting the
 * newline. Both sides first send "/multistream/1.0.0". The dialer then
 * proposes protocols one at a time; the listener echoes one it speaks or
 * answers "na". The dialer here pipelines: its header and first proposal go
 * out together, as js-libp2p and go-libp2p do.
 *
 * Sans-I/O: the caller hands in received bytes with wisp_mss_read() and sends
 * whatever wisp_mss_write() produces. Once negotiation is done, read stops at
 * the end of the message that finished it, so bytes that follow belong to the
 * negotiated protocol and stay with the caller.
 *
 * Bounds: a message is at most WISP_MSS_MAX_MSG bytes (checked from the
 * length prefix, before the text arrives), and a listener answers at most
 * WISP_MSS_MAX_PROPOSALS proposals before it gives up on the dialer.
 *
 * One object per negotiation, owned by the connection's thread.
 */
#ifndef WISP_NET_MSS_H
#define WISP_NET_MSS_H

#include <stdbool.h>
#include <stdint.h>

#include <wisp/common.h>

#define WISP_MSS_PROTOCOL "/multistream/1.0.0"
/* A message, newline included; js-libp2p and go-libp2p use the same bound. */
#define WISP_MSS_MAX_MSG 1024u
#define WISP_MSS_MAX_PROPOSALS 16u
#define WISP_MSS_MAX_DIALER_PROTOS 8u

/* Listener: does this node speak proto[0..len)? Returns a handle >= 0 that
 * wisp_mss_selected() reports, or < 0 for no. The text is not terminated and
 * is valid only during the call. */
typedef int wisp_mss_match_fn(void *ctx, const char *proto, size_t len);

enum wisp_mss_state {
	MSS_EXPECT_HEADER,   /* the peer's "/multistream/1.0.0" */
	MSS_EXPECT_ANSWER,   /* dialer: echo of our proposal, or "na" */
	MSS_EXPECT_PROPOSAL, /* listener: a protocol the dialer wants */
	MSS_DONE,
	MSS_FAILED,
};

typedef struct wisp_mss {
	enum wisp_mss_state state;
	bool dialer;
	bool header_seen;
	int err;
	int selected;
	uint32_t proposals; /* dialer: next index to propose; listener: answered */
	/* dialer */
	const char *protos[WISP_MSS_MAX_DIALER_PROTOS];
	uint32_t n_protos;
	/* listener */
	wisp_mss_match_fn *match;
	void *match_ctx;
	/* Bytes waiting to be sent: our header plus one proposal or answer. */
	uint32_t out_len;
	uint8_t out[2 * (WISP_MSS_MAX_MSG + 16)];
} wisp_mss;

/* Dialer over protos[0..n), in order of preference; the strings are borrowed
 * for the object's life. The header and first proposal are queued at once.
 * Errors: WISP_ERR_INVALID_ARG (n is 0 or over WISP_MSS_MAX_DIALER_PROTOS,
 * or a protocol is empty, too long, or holds a newline). */
int wisp_mss_dialer_init(wisp_mss *m, const char *const *protos, size_t n) WISP_NONNULL(1, 2) WISP_WARN_UNUSED;

/* Listener asking match() about each proposal. Its header is queued at once. */
void wisp_mss_listener_init(wisp_mss *m, wisp_mss_match_fn *match, void *ctx) WISP_NONNULL(1, 2);

/* Consume received bytes in[0..len): whole messages only, and nothing past
 * the message that completes the negotiation. Returns the bytes consumed
 * (0: a message is incomplete, call again with more), or
 *   WISP_ERR_TOO_LARGE   a message longer than WISP_MSS_MAX_MSG;
 *   WISP_ERR_VARINT      a bad length prefix;
 *   WISP_ERR_MALFORMED   empty message, no trailing newline, control bytes;
 *   WISP_ERR_PROTOCOL    not multistream (wrong header), an unexpected
 *                        answer, or more than WISP_MSS_MAX_PROPOSALS
 *                        proposals;
 *   WISP_ERR_REFUSED     dialer: the listener said "na" to every protocol;
 *   WISP_ERR_STATE       called after done.
 * Errors stick: the object is failed and returns the same error again. */
ssize_t wisp_mss_read(wisp_mss *m, const uint8_t *in, size_t len) WISP_NONNULL(1) WISP_WARN_UNUSED;

/* Move queued bytes into out[0..cap); returns how many (0: nothing queued).
 * Whatever does not fit stays queued. */
size_t wisp_mss_write(wisp_mss *m, uint8_t *out, size_t cap) WISP_NONNULL(1);

/* Bytes queued for wisp_mss_write(). */
static inline size_t wisp_mss_pending(const wisp_mss *m)
{
	return m->out_len;
}

static inline bool wisp_mss_done(const wisp_mss *m)
{
	return m->state == MSS_DONE;
}

/* After done: the dialer's index into its protos, or the listener's handle
 * from match(). */
static inline int wisp_mss_selected(const wisp_mss *m)
{
	return m->selected;
}

#endif
