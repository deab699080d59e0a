#include "tests/evilpeer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wisp/error.h>

#include "codec/frame.h"
#include "codec/pb.h"
#include "net/mss.h"
#include "net/yamux.h"
#include "tests/testlib.h"

#define YAMUX_ID "/yamux/1.0.0"

/* ---- sockets ------------------------------------------------------------ */

static int left_ms(uint64_t deadline)
{
	uint64_t now = wt_now_ns();
	return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

static void peer_init(ev_peer *p, int fd, const wisp_privkey *key)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->answer_pings = true;
	p->next_id = 1;
	if (key)
		p->key = *key;
	else if (wisp_privkey_generate(&p->key) != WISP_OK)
		memset(&p->key, 0, sizeof(p->key)); /* the handshake will fail loudly */
}

int ev_connect(ev_peer *p, uint16_t port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (rcvbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	peer_init(p, fd, NULL);
	return 0;
}

int ev_listen(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int ev_accept(ev_peer *p, int lfd, const wisp_privkey *key, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			peer_init(p, fd, key);
			return 0;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int ms = left_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd pf = { .fd = lfd, .events = POLLIN };
		(void)poll(&pf, 1, ms);
	}
}

void ev_close(ev_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (p->xx_live)
		wisp_noise_xx_fini(&p->xx);
	p->xx_live = false;
}

int ev_send(ev_peer *p, const void *buf, size_t n, unsigned timeout_ms)
{
	const uint8_t *b = buf;
	uint64_t deadline = wt_deadline(timeout_ms);
	while (n) {
		ssize_t w = send(p->fd, b, n, MSG_NOSIGNAL);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return errno == EPIPE ? -EPIPE : -errno;
		int ms = left_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd pf = { .fd = p->fd, .events = POLLOUT };
		(void)poll(&pf, 1, ms);
	}
	return 0;
}

/* One read into rx, waiting up to the deadline for something to come. */
static int recv_once(ev_peer *p, uint64_t deadline)
{
	if (p->eof)
		return p->close_err ? -p->close_err : -EPIPE;
	if (p->rx_len == sizeof(p->rx))
		return -ENOBUFS;
	for (;;) {
		ssize_t r = recv(p->fd, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len, 0);
		if (r > 0) {
			p->rx_len += (size_t)r;
			p->bytes_in += (uint64_t)r;
			return 0;
		}
		if (r == 0) {
			p->eof = true;
			return -EPIPE;
		}
		if (errno != EAGAIN && errno != EINTR) {
			p->eof = true;
			p->close_err = errno;
			return -errno;
		}
		int ms = left_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		struct pollfd pf = { .fd = p->fd, .events = POLLIN };
		(void)poll(&pf, 1, ms);
	}
}

int ev_fill(ev_peer *p, size_t need, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	while (p->rx_len < need) {
		int err = recv_once(p, deadline);
		if (err)
			return err;
	}
	return 0;
}

int ev_recv_some(ev_peer *p, unsigned timeout_ms)
{
	return recv_once(p, wt_deadline(timeout_ms));
}

void ev_consume(ev_peer *p, size_t n)
{
	if (n > p->rx_len)
		n = p->rx_len;
	memmove(p->rx, p->rx + n, p->rx_len - n);
	p->rx_len -= n;
}

static int parse_frames(ev_peer *p);

bool ev_wait_closed(ev_peer *p, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	for (;;) {
		/* What arrived before the close is looked at, then dropped. */
		if (p->transport && parse_frames(p) < 0)
			p->transport = false;
		if (!p->transport)
			p->rx_len = 0;
		int err = recv_once(p, deadline);
		if (err == -ETIMEDOUT)
			return false;
		if (p->eof)
			return true;
		if (err && err != -ENOBUFS)
			return false;
	}
}

/* ---- multistream-select ------------------------------------------------- */

size_t ev_mss_msg(uint8_t *out, size_t cap, const char *text)
{
	size_t len = strlen(text);
	uint8_t tmp[WISP_MSS_MAX_MSG + 16];
	if (len + 1 > sizeof(tmp))
		return 0;
	memcpy(tmp, text, len);
	tmp[len] = '\n';
	ssize_t n = wisp_frame_write(out, cap, tmp, len + 1);
	return n < 0 ? 0 : (size_t)n;
}

static int mss_run(ev_peer *p, wisp_mss *m, uint64_t deadline)
{
	for (;;) {
		uint8_t out[sizeof(m->out)];
		size_t n = wisp_mss_write(m, out, sizeof(out));
		if (n) {
			int err = ev_send(p, out, n, (unsigned)left_ms(deadline));
			if (err)
				return err;
		}
		if (wisp_mss_done(m))
			return 0;
		ssize_t r = wisp_mss_read(m, p->rx, p->rx_len);
		if (r < 0)
			return (int)r;
		ev_consume(p, (size_t)r);
		if (wisp_mss_done(m) || wisp_mss_pending(m))
			continue;
		int err = recv_once(p, deadline);
		if (err)
			return err;
	}
}

int ev_mss_dial(ev_peer *p, const char *proto, unsigned timeout_ms)
{
	wisp_mss m;
	const char *protos[] = { proto };
	int err = wisp_mss_dialer_init(&m, protos, 1);
	if (err)
		return err;
	return mss_run(p, &m, wt_deadline(timeout_ms));
}

static int match_noise(void *ctx, const char *id, size_t len)
{
	(void)ctx;
	return len == strlen("/noise") && memcmp(id, "/noise", len) == 0 ? 0 : -1;
}

int ev_mss_listen_noise(ev_peer *p, unsigned timeout_ms)
{
	wisp_mss m;
	wisp_mss_listener_init(&m, match_noise, NULL);
	return mss_run(p, &m, wt_deadline(timeout_ms));
}

int ev_mss_read(ev_peer *p, char *text, size_t cap, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	for (;;) {
		const uint8_t *t;
		size_t tlen;
		ssize_t r = wisp_frame_peek(p->rx, p->rx_len, WISP_MSS_MAX_MSG, &t, &tlen, NULL);
		if (r < 0)
			return (int)r;
		if (r > 0) {
			if (tlen == 0 || t[tlen - 1] != '\n' || tlen > cap)
				return WISP_ERR_MALFORMED;
			memcpy(text, t, tlen - 1);
			text[tlen - 1] = 0;
			ev_consume(p, (size_t)r);
			return 0;
		}
		int err = recv_once(p, deadline);
		if (err)
			return err;
	}
}

/* ---- Noise --------------------------------------------------------------- */

static void put_be16(uint8_t *o, size_t v)
{
	o[0] = (uint8_t)(v >> 8);
	o[1] = (uint8_t)v;
}

int ev_noise_start(ev_peer *p, bool initiator)
{
	if (p->xx_live)
		wisp_noise_xx_fini(&p->xx);
	int err = wisp_noise_xx_init(&p->xx, initiator, NULL, 0, NULL, NULL);
	p->xx_live = err == 0;
	return err;
}

ssize_t ev_noise_msg1(ev_peer *p, uint8_t *out, size_t cap)
{
	if (cap < 2)
		return WISP_ERR_NOBUF;
	ssize_t m = wisp_noise_xx_write(&p->xx, out + 2, cap - 2, NULL, 0);
	if (m < 0)
		return m;
	put_be16(out, (size_t)m);
	return m + 2;
}

int ev_noise_read_msg2(ev_peer *p, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	int err = ev_fill(p, 2, (unsigned)left_ms(deadline));
	if (err)
		return err;
	size_t flen = (size_t)p->rx[0] << 8 | p->rx[1];
	if ((err = ev_fill(p, 2 + flen, (unsigned)left_ms(deadline))))
		return err;
	uint8_t *payload;
	ssize_t plen = wisp_noise_xx_read(&p->xx, p->rx + 2, flen, &payload);
	if (plen < 0)
		return (int)plen;
	if ((size_t)plen > sizeof(p->remote_payload))
		return WISP_ERR_TOO_LARGE;
	memcpy(p->remote_payload, payload, (size_t)plen);
	p->remote_payload_len = (size_t)plen;
	ev_consume(p, 2 + flen);
	return 0;
}

ssize_t ev_noise_msg3(ev_peer *p, ev_sig sig, bool muxer, uint8_t *out, size_t cap)
{
	const size_t plen_prefix = strlen(WISP_NOISE_SIG_PREFIX);
	uint8_t msg[64], key[WISP_PUBKEY_PB_LEN], sigb[WISP_SIG_MAX + 8], ext[64], payload[512];
	memcpy(msg, WISP_NOISE_SIG_PREFIX, plen_prefix);
	memcpy(msg + plen_prefix, wisp_noise_xx_local_static(&p->xx), 32);
	ssize_t klen = wisp_pubkey_encode(wisp_privkey_pubkey(&p->key), key, sizeof(key));
	if (klen < 0)
		return klen;
	ssize_t slen = 0;
	switch (sig) {
	case EV_SIG_GOOD:
		slen = wisp_privkey_sign(&p->key, msg, plen_prefix + 32, sigb, sizeof(sigb));
		break;
	case EV_SIG_WRONG_KEY: {
		wisp_privkey other;
		if (wisp_privkey_generate(&other) != WISP_OK)
			return WISP_ERR_CRYPTO;
		slen = wisp_privkey_sign(&other, msg, plen_prefix + 32, sigb, sizeof(sigb));
		break;
	}
	case EV_SIG_WRONG_STATIC:
		for (size_t i = 0; i < 32; i++)
			msg[plen_prefix + i] ^= (uint8_t)(wt_rng() | 1);
		slen = wisp_privkey_sign(&p->key, msg, plen_prefix + 32, sigb, sizeof(sigb));
		break;
	case EV_SIG_GARBAGE:
		slen = 70;
		for (ssize_t i = 0; i < slen; i++)
			sigb[i] = (uint8_t)wt_rng();
		break;
	case EV_SIG_NONE:
		break;
	}
	if (slen < 0)
		return slen;
	wisp_pb_writer ew, w;
	wisp_pb_writer_init(&ew, ext, sizeof(ext));
	wisp_pb_put_bytes(&ew, 2, YAMUX_ID, strlen(YAMUX_ID));
	ssize_t elen = wisp_pb_writer_finish(&ew);
	wisp_pb_writer_init(&w, payload, sizeof(payload));
	wisp_pb_put_bytes(&w, 1, key, (size_t)klen);
	if (sig != EV_SIG_NONE)
		wisp_pb_put_bytes(&w, 2, sigb, (size_t)slen);
	if (muxer && elen > 0)
		wisp_pb_put_bytes(&w, 4, ext, (size_t)elen);
	ssize_t plen = wisp_pb_writer_finish(&w);
	if (elen < 0 || plen < 0)
		return WISP_ERR_INTERNAL;
	if (cap < 2)
		return WISP_ERR_NOBUF;
	ssize_t m = wisp_noise_xx_write(&p->xx, out + 2, cap - 2, payload, (size_t)plen);
	if (m < 0)
		return m;
	put_be16(out, (size_t)m);
	return m + 2;
}

int ev_handshake(ev_peer *p, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	uint8_t buf[1024];
	int err = ev_mss_dial(p, "/noise", timeout_ms);
	if (!err)
		err = ev_noise_start(p, true);
	if (err)
		return err;
	ssize_t n = ev_noise_msg1(p, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if ((err = ev_send(p, buf, (size_t)n, (unsigned)left_ms(deadline))))
		return err;
	if ((err = ev_noise_read_msg2(p, (unsigned)left_ms(deadline))))
		return err;
	n = ev_noise_msg3(p, EV_SIG_GOOD, true, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if ((err = ev_send(p, buf, (size_t)n, (unsigned)left_ms(deadline))))
		return err;
	p->transport = true;
	return 0;
}

ssize_t ev_seal(ev_peer *p, const void *pt, size_t n, uint8_t *out, size_t cap)
{
	if (n > WISP_NOISE_MAX_PLAINTEXT)
		return WISP_ERR_INVALID_ARG;
	if (cap < 2 + n + WISP_NOISE_TAG_LEN)
		return WISP_ERR_NOBUF;
	int err = wisp_noise_xx_seal(&p->xx, out + 2, pt, n);
	if (err)
		return err;
	put_be16(out, n + WISP_NOISE_TAG_LEN);
	return (ssize_t)(2 + n + WISP_NOISE_TAG_LEN);
}

int ev_send_sealed(ev_peer *p, const void *pt, size_t n, unsigned timeout_ms)
{
	static uint8_t frame[WISP_NOISE_MAX_WIRE];
	const uint8_t *b = pt;
	uint64_t deadline = wt_deadline(timeout_ms);
	do {
		size_t k = n < WISP_NOISE_MAX_PLAINTEXT ? n : WISP_NOISE_MAX_PLAINTEXT;
		ssize_t f = ev_seal(p, b, k, frame, sizeof(frame));
		if (f < 0)
			return (int)f;
		int err = ev_send(p, frame, (size_t)f, (unsigned)left_ms(deadline));
		if (err)
			return err;
		b += k;
		n -= k;
	} while (n);
	return 0;
}

/* ---- yamux --------------------------------------------------------------- */

size_t ev_ymx(uint8_t *out, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	wisp_yamux_put_header(out, type, flags, id, len);
	return WISP_YAMUX_HEADER_LEN;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int on_header(ev_peer *p)
{
	const uint8_t *h = p->yhdr;
	uint8_t type = h[1];
	uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
	uint32_t id = be32(h + 4), len = be32(h + 8);
	p->frames_in++;
	if (flags & WISP_YAMUX_SYN && type != WISP_YAMUX_PING)
		p->syns_in++;
	if (flags & WISP_YAMUX_ACK && type != WISP_YAMUX_PING)
		p->acks_in++;
	if (flags & WISP_YAMUX_RST)
		p->rsts_in++;
	if (flags & WISP_YAMUX_FIN)
		p->fins_in++;
	switch (type) {
	case WISP_YAMUX_DATA:
		p->yskip = len;
		p->ydata_id = id;
		p->data_in += len;
		break;
	case WISP_YAMUX_PING:
		if (flags == WISP_YAMUX_SYN) {
			p->pings_in++;
			if (p->answer_pings) {
				uint8_t pong[12];
				ev_ymx(pong, WISP_YAMUX_PING, WISP_YAMUX_ACK, 0, len);
				return ev_send_sealed(p, pong, sizeof(pong), 2000);
			}
		}
		break;
	case WISP_YAMUX_GO_AWAY:
		p->go_aways_in++;
		p->go_away_code = len;
		break;
	default:
		break;
	}
	return p->on_frame ? p->on_frame(p, type, flags, id, len) : 0;
}

static int on_plain(ev_peer *p, const uint8_t *b, size_t n)
{
	while (n) {
		if (p->yskip) {
			size_t k = n < p->yskip ? n : p->yskip;
			p->yskip -= (uint32_t)k;
			int err = p->on_data ? p->on_data(p, p->ydata_id, b, k) : 0;
			b += k;
			n -= k;
			if (err)
				return err;
			continue;
		}
		size_t k = 12 - p->yhdr_len;
		if (k > n)
			k = n;
		memcpy(p->yhdr + p->yhdr_len, b, k);
		p->yhdr_len += (uint32_t)k;
		b += k;
		n -= k;
		if (p->yhdr_len == 12) {
			p->yhdr_len = 0;
			int err = on_header(p);
			if (err)
				return err;
		}
	}
	return 0;
}

/* Decrypt and parse every whole frame in rx. */
static int parse_frames(ev_peer *p)
{
	while (p->rx_len >= 2) {
		size_t flen = (size_t)p->rx[0] << 8 | p->rx[1];
		if (flen < WISP_NOISE_TAG_LEN)
			return WISP_ERR_TRUNCATED;
		if (p->rx_len < 2 + flen)
			break;
		int err = wisp_noise_xx_open(&p->xx, p->rx + 2, flen);
		if (err)
			return err;
		err = on_plain(p, p->rx + 2, flen - WISP_NOISE_TAG_LEN);
		ev_consume(p, 2 + flen);
		if (err)
			return err;
	}
	return 0;
}

int ev_pump(ev_peer *p, bool (*cond)(ev_peer *, void *), void *arg, unsigned timeout_ms)
{
	uint64_t deadline = wt_deadline(timeout_ms);
	for (;;) {
		int err = parse_frames(p);
		if (err)
			return err;
		if (cond ? cond(p, arg) : p->frames_in > 0)
			return 0;
		err = recv_once(p, deadline);
		if (err)
			return err;
		if (!cond) {
			int e2 = parse_frames(p);
			return e2;
		}
	}
}
