#include "net/mss.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/frame.h"

#define NA "na"

static bool proto_ok(const char *p, size_t len)
{
	if (len == 0 || len + 1 > WISP_MSS_MAX_MSG)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20)
			return false;
	return true;
}

/* Queue one message; the callers size `out` so that it always fits. */
static void queue(wisp_mss *m, const char *text, size_t len)
{
	uint8_t *o = m->out + m->out_len;
	ssize_t pre = wisp_frame_put_prefix(o, sizeof(m->out) - m->out_len, len + 1);
	/* out holds a header and one full message with room to spare */
	memcpy(o + pre, text, len);
	o[pre + (ssize_t)len] = '\n';
	m->out_len += (uint32_t)(pre + (ssize_t)len + 1);
}

static void queue_str(wisp_mss *m, const char *s)
{
	queue(m, s, strlen(s));
}

int wisp_mss_dialer_init(wisp_mss *m, const char *const *protos, size_t n)
{
	if (n == 0 || n > WISP_MSS_MAX_DIALER_PROTOS)
		return WISP_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++)
		if (!protos[i] || !proto_ok(protos[i], strlen(protos[i])))
			return WISP_ERR_INVALID_ARG;
	memset(m, 0, offsetof(wisp_mss, out));
	m->dialer = true;
	m->state = MSS_EXPECT_HEADER;
	m->selected = -1;
	m->n_protos = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		m->protos[i] = protos[i];
	queue_str(m, WISP_MSS_PROTOCOL);
	queue_str(m, protos[0]);
	m->proposals = 1;
	return WISP_OK;
}

void wisp_mss_listener_init(wisp_mss *m, wisp_mss_match_fn *match, void *ctx)
{
	memset(m, 0, offsetof(wisp_mss, out));
	m->state = MSS_EXPECT_HEADER;
	m->selected = -1;
	m->match = match;
	m->match_ctx = ctx;
	queue_str(m, WISP_MSS_PROTOCOL);
}

static ssize_t fail(wisp_mss *m, int err)
{
	m->state = MSS_FAILED;
	m->err = err;
	return err;
}

static bool is(const uint8_t *text, size_t len, const char *s)
{
	size_t n = strlen(s);
	return len == n && memcmp(text, s, n) == 0;
}

/* One whole message, newline stripped. Returns 0 to go on, or an error. */
static int on_message(wisp_mss *m, const uint8_t *text, size_t len)
{
	if (m->state == MSS_EXPECT_HEADER) {
		if (!is(text, len, WISP_MSS_PROTOCOL))
			return WISP_ERR_PROTOCOL; /* garbage, or another multistream version */
		m->state = m->dialer ? MSS_EXPECT_ANSWER : MSS_EXPECT_PROPOSAL;
		return WISP_OK;
	}
	if (m->state == MSS_EXPECT_ANSWER) {
		const char *want = m->protos[m->proposals - 1];
		if (is(text, len, want)) {
			m->selected = (int)m->proposals - 1;
			m->state = MSS_DONE;
			return WISP_OK;
		}
		if (!is(text, len, NA))
			return WISP_ERR_PROTOCOL;
		if (m->proposals == m->n_protos)
			return WISP_ERR_REFUSED;
		queue_str(m, m->protos[m->proposals++]);
		return WISP_OK;
	}
	/* MSS_EXPECT_PROPOSAL */
	if (++m->proposals > WISP_MSS_MAX_PROPOSALS)
		return WISP_ERR_PROTOCOL;
	int h = m->match(m->match_ctx, (const char *)text, len);
	if (h < 0) {
		/* "ls" is answered like any protocol we do not speak. */
		queue_str(m, NA);
		return WISP_OK;
	}
	queue(m, (const char *)text, len);
	m->selected = h;
	m->state = MSS_DONE;
	return WISP_OK;
}

ssize_t wisp_mss_read(wisp_mss *m, const uint8_t *in, size_t len)
{
	if (m->state == MSS_FAILED)
		return m->err;
	if (m->state == MSS_DONE)
		return WISP_ERR_STATE;
	size_t used = 0;
	while (m->state != MSS_DONE && used < len) {
		/* Answers queue at most one message each; never let the peer
		 * make us queue more than out holds (it must read ours). */
		if (m->out_len + WISP_MSS_MAX_MSG + 16 > sizeof(m->out))
			break;
		const uint8_t *text;
		size_t tlen;
		ssize_t n = wisp_frame_peek(in + used, len - used, WISP_MSS_MAX_MSG, &text, &tlen, NULL);
		if (n == 0)
			break;
		if (n < 0)
			return fail(m, (int)n);
		if (tlen == 0 || text[tlen - 1] != '\n')
			return fail(m, WISP_ERR_MALFORMED);
		tlen--;
		for (size_t i = 0; i < tlen; i++)
			if (text[i] < 0x20)
				return fail(m, WISP_ERR_MALFORMED);
		if (tlen == 0)
			return fail(m, WISP_ERR_MALFORMED);
		int err = on_message(m, text, tlen);
		if (err)
			return fail(m, err);
		used += (size_t)n;
	}
	return (ssize_t)used;
}

size_t wisp_mss_write(wisp_mss *m, uint8_t *out, size_t cap)
{
	size_t n = m->out_len < cap ? m->out_len : cap;
	if (n == 0)
		return 0;
	memcpy(out, m->out, n);
	memmove(m->out, m->out + n, m->out_len - n);
	m->out_len -= (uint32_t)n;
	return n;
}
