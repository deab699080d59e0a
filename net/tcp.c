#include "net/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <wisp/error.h>

#include "runtime/clock.h"
#include "runtime/mem.h"

void wisp_tcp_config_default(wisp_tcp_config *c)
{
	c->buf_size = 16 * 1024;
	c->buf_count = 512;
	c->backlog = 1024;
	c->close_linger_ns = 2 * WISP_NS_PER_S;
}

/* user_data: kind and object pointer (user-space pointers fit in 56 bits). */
static uint64_t ud(unsigned kind, const void *p)
{
	return wisp_ud_encode(kind, (uint64_t)(uintptr_t)p);
}

static void *ud_ptr(uint64_t u)
{
	return (void *)(uintptr_t)wisp_ud_value(u);
}

static struct io_uring_sqe *sqe_for(wisp_tcp *t, unsigned kind, const void *obj, uint32_t *obj_inflight)
{
	struct io_uring_sqe *sqe = wisp_loop_sqe(t->loop);
	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, ud(kind, obj));
	t->inflight++;
	(*obj_inflight)++;
	return sqe;
}

/* ---- engine ------------------------------------------------------------ */

int wisp_tcp_init(wisp_tcp *t, wisp_loop *loop, const wisp_mem *mem, const wisp_tcp_config *cfg,
		  const wisp_tcp_ops *ops, void *ctx)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->mem = mem;
	if (cfg)
		t->cfg = *cfg;
	else
		wisp_tcp_config_default(&t->cfg);
	t->ops = ops;
	t->ctx = ctx;
	uint32_t n = t->cfg.buf_count;
	if (n == 0 || n > 32768 || (n & (n - 1)) || t->cfg.buf_size < 1024)
		return WISP_ERR_INVALID_ARG;
	t->br_bytes = (size_t)n * sizeof(struct io_uring_buf);
	t->br = wisp_malloc_aligned(mem, t->br_bytes, 4096);
	t->bufs = wisp_malloc_aligned(mem, (size_t)n * t->cfg.buf_size, 64);
	if (!t->br || !t->bufs) {
		wisp_free_aligned(mem, t->br);
		wisp_free_aligned(mem, t->bufs);
		t->br = NULL;
		t->bufs = NULL;
		return WISP_ERR_NOMEM;
	}
	memset(t->br, 0, t->br_bytes);
	t->bgid = 1;
	struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)t->br, .ring_entries = n, .bgid = t->bgid };
	int ret = io_uring_register_buf_ring(&loop->ring, &reg, 0);
	if (ret < 0) {
		wisp_free_aligned(mem, t->br);
		wisp_free_aligned(mem, t->bufs);
		t->br = NULL;
		t->bufs = NULL;
		return WISP_ERR_IO_URING;
	}
	t->br_registered = true;
	io_uring_buf_ring_init(t->br);
	int mask = io_uring_buf_ring_mask(n);
	for (uint32_t i = 0; i < n; i++)
		io_uring_buf_ring_add(t->br, t->bufs + (size_t)i * t->cfg.buf_size, t->cfg.buf_size, (unsigned short)i,
				      mask, (int)i);
	io_uring_buf_ring_advance(t->br, (int)n);
	return WISP_OK;
}

static void recycle(wisp_tcp *t, unsigned bid)
{
	io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * t->cfg.buf_size, t->cfg.buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(t->cfg.buf_count), 0);
	io_uring_buf_ring_advance(t->br, 1);
}

/* ---- connections ------------------------------------------------------- */

static void link_open(wisp_tcp *t, wisp_tcp_conn *c)
{
	c->prev_open = NULL;
	c->next_open = t->open_list;
	if (t->open_list)
		t->open_list->prev_open = c;
	t->open_list = c;
	wisp_stat_add(&t->stats.open, 1);
}

static void unlink_open(wisp_tcp *t, wisp_tcp_conn *c)
{
	if (c->prev_open)
		c->prev_open->next_open = c->next_open;
	else
		t->open_list = c->next_open;
	if (c->next_open)
		c->next_open->prev_open = c->prev_open;
	c->next_open = c->prev_open = NULL;
	atomic_store_explicit(&t->stats.open, wisp_stat_get(&t->stats.open) - 1, memory_order_relaxed);
}

static void conn_init(wisp_tcp *t, wisp_tcp_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->tcp = t;
	c->fd = fd;
	link_open(t, c);
}

static void arm_recv(wisp_tcp_conn *c)
{
	wisp_tcp *t = c->tcp;
	struct io_uring_sqe *sqe = sqe_for(t, WISP_UD_TCP_RECV, c, &c->inflight);
	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = t->bgid;
	c->recv_armed = true;
}

static void set_nodelay(int fd)
{
	int one = 1;
	/* Small frames (pings, acks) must not wait for Nagle; batching is
	 * ours, one send per connection per turn. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int wisp_tcp_adopt(wisp_tcp *t, wisp_tcp_conn *c, int fd)
{
	conn_init(t, c, fd);
	c->peer_len = sizeof(c->peer);
	if (getpeername(fd, (struct sockaddr *)&c->peer, &c->peer_len) != 0) {
		unlink_open(t, c);
		close(fd);
		c->fd = -1;
		c->state = WTCP_CLOSED;
		return WISP_ERR_IO;
	}
	set_nodelay(fd);
	c->state = WTCP_OPEN;
	arm_recv(c);
	return WISP_OK;
}

int wisp_tcp_dial(wisp_tcp *t, wisp_tcp_conn *c, const struct sockaddr *addr, socklen_t len, uint64_t timeout_ns)
{
	if (len > sizeof(c->peer) || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return WISP_ERR_INVALID_ARG;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return WISP_ERR_IO;
	conn_init(t, c, fd);
	memcpy(&c->peer, addr, len);
	c->peer_len = len;
	c->state = WTCP_CONNECTING;
	c->timeout.tv_sec = (long long)(timeout_ns / WISP_NS_PER_S);
	c->timeout.tv_nsec = (long long)(timeout_ns % WISP_NS_PER_S);
	/* The connect and its timeout are linked: both must go in one
	 * submission, so make room for the pair first. */
	if (io_uring_sq_space_left(&t->loop->ring) < 2)
		io_uring_submit(&t->loop->ring);
	struct io_uring_sqe *sqe = sqe_for(t, WISP_UD_TCP_CONNECT, c, &c->inflight);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&c->peer, c->peer_len);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = sqe_for(t, WISP_UD_TCP_TIMEOUT, c, &c->inflight);
	io_uring_prep_link_timeout(sqe, &c->timeout, 0);
	c->timer_armed = true;
	wisp_stat_add(&t->stats.dials, 1);
	return WISP_OK;
}

int wisp_tcp_send(wisp_tcp_conn *c, wisp_buf *buf, size_t off, size_t len)
{
	if (c->state != WTCP_OPEN && c->state != WTCP_CONNECTING)
		return WISP_ERR_CLOSED;
	if (c->seg_count == WISP_TCP_SEGS)
		return WISP_ERR_AGAIN;
	if (len == 0)
		return WISP_OK;
	if (off + len > buf->len || len > UINT32_MAX)
		return WISP_ERR_INVALID_ARG;
	wisp_tcp_seg *s = &c->segs[(c->seg_head + c->seg_count) % WISP_TCP_SEGS];
	s->buf = wisp_buf_ref(buf);
	s->off = (uint32_t)off;
	s->len = (uint32_t)len;
	c->seg_count++;
	c->queued += len;
	if (!c->dirty) {
		c->dirty = true;
		c->next_dirty = c->tcp->dirty;
		c->tcp->dirty = c;
	}
	return WISP_OK;
}

static void submit_send(wisp_tcp_conn *c)
{
	wisp_tcp *t = c->tcp;
	uint32_t n = c->seg_count < WISP_TCP_IOV ? c->seg_count : WISP_TCP_IOV;
	for (uint32_t i = 0; i < n; i++) {
		wisp_tcp_seg *s = &c->segs[(c->seg_head + i) % WISP_TCP_SEGS];
		c->iov[i].iov_base = s->buf->data + s->off;
		c->iov[i].iov_len = s->len;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	struct io_uring_sqe *sqe = sqe_for(t, WISP_UD_TCP_SEND, c, &c->inflight);
	if (!sqe)
		return;
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	c->sending = true;
	wisp_stat_add(&t->stats.send_calls, 1);
}

void wisp_tcp_flush(wisp_tcp *t)
{
	wisp_tcp_conn *c = t->dirty;
	t->dirty = NULL;
	while (c) {
		wisp_tcp_conn *next = c->next_dirty;
		c->dirty = false;
		c->next_dirty = NULL;
		if (c->state == WTCP_OPEN || c->state == WTCP_CLOSING) {
			if (!c->sending && c->seg_count)
				submit_send(c);
		}
		c = next;
	}
}

static void release_segs(wisp_tcp_conn *c)
{
	while (c->seg_count) {
		wisp_tcp_seg *s = &c->segs[c->seg_head];
		wisp_buf_unref(s->buf);
		s->buf = NULL;
		c->seg_head = (c->seg_head + 1) % WISP_TCP_SEGS;
		c->seg_count--;
	}
	c->queued = 0;
}

/* Every operation has completed: close the fd and hand c back. */
static void finish(wisp_tcp_conn *c)
{
	wisp_tcp *t = c->tcp;
	if (c->reset) {
		/* SO_LINGER 0: close sends RST and drops unsent bytes. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		wisp_stat_add(&t->stats.resets, 1);
	}
	close(c->fd);
	c->fd = -1;
	c->state = WTCP_CLOSED;
	release_segs(c);
	unlink_open(t, c);
	wisp_stat_add(&t->stats.closes, 1);
	t->ops->closed(t->ctx, c, c->close_err);
}

static void maybe_finish(wisp_tcp_conn *c)
{
	if (c->state == WTCP_DRAINING && c->inflight == 0)
		finish(c);
}

/* Cancel what is in flight on c; finish() follows the last completion. */
static void drain(wisp_tcp_conn *c)
{
	wisp_tcp *t = c->tcp;
	if (c->state == WTCP_DRAINING || c->state == WTCP_CLOSED)
		return;
	c->state = WTCP_DRAINING;
	if (c->inflight == 0) {
		finish(c);
		return;
	}
	struct io_uring_sqe *sqe = sqe_for(t, WISP_UD_TCP_CANCEL, c, &c->inflight);
	if (sqe)
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	if (c->timer_armed) {
		sqe = sqe_for(t, WISP_UD_TCP_CANCEL, c, &c->inflight);
		if (sqe)
			io_uring_prep_timeout_remove(sqe, ud(WISP_UD_TCP_TIMEOUT, c), 0);
	}
}

void wisp_tcp_abort(wisp_tcp_conn *c, int err)
{
	if (c->state == WTCP_DRAINING || c->state == WTCP_CLOSED)
		return;
	c->reset = true;
	if (!c->close_err)
		c->close_err = err;
	drain(c);
}

static void start_shutdown(wisp_tcp_conn *c)
{
	wisp_tcp *t = c->tcp;
	/* FIN after the last queued byte; then wait for the peer's FIN (the
	 * recv sees 0) or the linger timeout, whichever comes first. */
	if (shutdown(c->fd, SHUT_WR) != 0) {
		drain(c);
		return;
	}
	if (c->eof) {
		drain(c);
		return;
	}
	c->timeout.tv_sec = (long long)(t->cfg.close_linger_ns / WISP_NS_PER_S);
	c->timeout.tv_nsec = (long long)(t->cfg.close_linger_ns % WISP_NS_PER_S);
	struct io_uring_sqe *sqe = sqe_for(t, WISP_UD_TCP_TIMEOUT, c, &c->inflight);
	if (!sqe) {
		drain(c);
		return;
	}
	io_uring_prep_timeout(sqe, &c->timeout, 0, 0);
	c->timer_armed = true;
}

void wisp_tcp_close(wisp_tcp_conn *c)
{
	if (c->state != WTCP_OPEN && c->state != WTCP_CONNECTING)
		return;
	if (c->state == WTCP_CONNECTING) {
		c->close_err = WISP_ERR_CLOSED;
		drain(c);
		return;
	}
	c->state = WTCP_CLOSING;
	if (!c->sending && c->seg_count == 0)
		start_shutdown(c);
}

/* ---- listeners --------------------------------------------------------- */

static void arm_accept(wisp_tcp_listener *l)
{
	struct io_uring_sqe *sqe = sqe_for(l->tcp, WISP_UD_TCP_ACCEPT, l, &l->inflight);
	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	l->armed = true;
}

int wisp_tcp_bind(const struct sockaddr *addr, socklen_t len, uint32_t backlog, int *fdp,
		  struct sockaddr_storage *bound, socklen_t *bound_len)
{
	if (len > sizeof(*bound) || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return WISP_ERR_INVALID_ARG;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return WISP_ERR_IO;
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	*bound_len = sizeof(*bound);
	if (bind(fd, addr, len) != 0 || listen(fd, (int)backlog) != 0 ||
	    getsockname(fd, (struct sockaddr *)bound, bound_len) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return WISP_ERR_IO;
	}
	*fdp = fd;
	return WISP_OK;
}

int wisp_tcp_listen_fd(wisp_tcp *t, wisp_tcp_listener *l, int fd)
{
	memset(l, 0, sizeof(*l));
	l->tcp = t;
	l->fd = fd;
	l->addr_len = sizeof(l->addr);
	if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addr_len) != 0) {
		close(fd);
		l->fd = -1;
		return WISP_ERR_IO;
	}
	l->next = t->listeners;
	t->listeners = l;
	arm_accept(l);
	return WISP_OK;
}

int wisp_tcp_listen(wisp_tcp *t, wisp_tcp_listener *l, const struct sockaddr *addr, socklen_t len)
{
	int fd;
	struct sockaddr_storage bound;
	socklen_t blen;
	int err = wisp_tcp_bind(addr, len, t->cfg.backlog, &fd, &bound, &blen);
	if (err)
		return err;
	return wisp_tcp_listen_fd(t, l, fd);
}

static void listener_unlink(wisp_tcp_listener *l)
{
	for (wisp_tcp_listener **pp = &l->tcp->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
}

static void listener_maybe_close(wisp_tcp_listener *l)
{
	if (l->closing && l->inflight == 0 && l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
		listener_unlink(l);
	}
}

void wisp_tcp_unlisten(wisp_tcp_listener *l)
{
	if (l->closing || l->fd < 0)
		return;
	l->closing = true;
	if (l->inflight) {
		struct io_uring_sqe *sqe = sqe_for(l->tcp, WISP_UD_TCP_CANCEL, l, &l->inflight);
		if (sqe) {
			io_uring_prep_cancel_fd(sqe, l->fd, IORING_ASYNC_CANCEL_ALL);
			/* the CQE says it belongs to a listener, not a connection */
			io_uring_sqe_set_data64(sqe, ud(WISP_UD_TCP_SHUTDOWN, l));
		}
	}
	listener_maybe_close(l);
}

/* ---- completions ------------------------------------------------------- */

static int errno_to_err(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return WISP_ERR_REFUSED;
	case ECONNRESET:
	case EPIPE:
		return WISP_ERR_RESET;
	case ETIME:
	case ETIMEDOUT:
	case ECANCELED:
		return WISP_ERR_TIMEOUT;
	default:
		return WISP_ERR_IO;
	}
}

static void on_recv(wisp_tcp *t, wisp_tcp_conn *c, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		wisp_stat_add(&t->stats.recv_cqes, 1);
		wisp_stat_add(&t->stats.recv_bytes, (uint64_t)cqe->res);
		c->bytes_in += (uint64_t)cqe->res;
		if (c->state == WTCP_OPEN || c->state == WTCP_CLOSING)
			t->ops->recv(t->ctx, c, t->bufs + (size_t)bid * t->cfg.buf_size, (size_t)cqe->res);
		recycle(t, bid);
	}
	if (more)
		return;
	c->inflight--;
	t->inflight--;
	c->recv_armed = false;
	bool live = c->state == WTCP_OPEN || c->state == WTCP_CLOSING;
	if (cqe->res > 0 || cqe->res == -ENOBUFS) {
		/* The multishot ended (out of buffers, or the kernel's choice):
		 * buffers are back in the ring now, so receive again. */
		if (cqe->res == -ENOBUFS)
			wisp_stat_add(&t->stats.recv_nobufs, 1);
		if (live)
			arm_recv(c);
	} else if (live) {
		int err = cqe->res == 0 ? WISP_OK : errno_to_err(-cqe->res);
		c->eof = true;
		t->ops->eof(t->ctx, c, err);
		if (c->state == WTCP_CLOSING && !c->sending && c->seg_count == 0)
			drain(c); /* our FIN went out; theirs arrived */
		else if (err && c->state != WTCP_DRAINING)
			wisp_tcp_abort(c, err);
	}
	maybe_finish(c);
}

static void on_send(wisp_tcp *t, wisp_tcp_conn *c, const struct io_uring_cqe *cqe)
{
	c->inflight--;
	t->inflight--;
	c->sending = false;
	if (cqe->res < 0) {
		wisp_stat_add(&t->stats.send_errors, 1);
		if (c->state == WTCP_OPEN || c->state == WTCP_CLOSING)
			wisp_tcp_abort(c, errno_to_err(-cqe->res));
		maybe_finish(c);
		return;
	}
	size_t done = (size_t)cqe->res;
	wisp_stat_add(&t->stats.send_bytes, done);
	c->bytes_out += done;
	c->queued -= done;
	while (done && c->seg_count) {
		wisp_tcp_seg *s = &c->segs[c->seg_head];
		if (done < s->len) {
			s->off += (uint32_t)done;
			s->len -= (uint32_t)done;
			break;
		}
		done -= s->len;
		wisp_buf_unref(s->buf);
		s->buf = NULL;
		c->seg_head = (c->seg_head + 1) % WISP_TCP_SEGS;
		c->seg_count--;
	}
	if (c->state == WTCP_DRAINING) {
		maybe_finish(c);
		return;
	}
	if (c->seg_count) {
		/* submitted again with this turn's flush */
		if (!c->dirty) {
			c->dirty = true;
			c->next_dirty = t->dirty;
			t->dirty = c;
		}
	}
	if (c->state == WTCP_OPEN)
		t->ops->sent(t->ctx, c);
	if (c->state == WTCP_CLOSING && c->seg_count == 0 && !c->sending)
		start_shutdown(c);
}

static void on_connect(wisp_tcp *t, wisp_tcp_conn *c, const struct io_uring_cqe *cqe)
{
	c->inflight--;
	t->inflight--;
	if (c->state != WTCP_CONNECTING) {
		maybe_finish(c);
		return;
	}
	if (cqe->res < 0) {
		int err = errno_to_err(-cqe->res);
		wisp_stat_add(&t->stats.dial_errors, 1);
		if (err == WISP_ERR_TIMEOUT)
			wisp_stat_add(&t->stats.dial_timeouts, 1);
		c->close_err = err;
		c->state = WTCP_DRAINING;
		t->ops->connected(t->ctx, c, err);
		maybe_finish(c);
		return;
	}
	set_nodelay(c->fd);
	c->state = WTCP_OPEN;
	arm_recv(c);
	if (c->seg_count && !c->dirty) {
		/* bytes queued while connecting go out with this turn's flush */
		c->dirty = true;
		c->next_dirty = t->dirty;
		t->dirty = c;
	}
	t->ops->connected(t->ctx, c, WISP_OK);
}

static void on_timeout(wisp_tcp *t, wisp_tcp_conn *c, const struct io_uring_cqe *cqe)
{
	c->inflight--;
	t->inflight--;
	c->timer_armed = false;
	/* A linger timeout that fired: the peer never sent its FIN. */
	if (cqe->res == -ETIME && c->state == WTCP_CLOSING)
		drain(c);
	maybe_finish(c);
}

static void on_accept(wisp_tcp *t, wisp_tcp_listener *l, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->res >= 0) {
		wisp_stat_add(&t->stats.accepted, 1);
		if (l->closing)
			close(cqe->res);
		else
			t->ops->accepted(t->ctx, l, cqe->res);
	} else if (cqe->res != -ECANCELED) {
		wisp_stat_add(&t->stats.accept_errors, 1);
	}
	if (more)
		return;
	l->inflight--;
	t->inflight--;
	l->armed = false;
	if (!l->closing)
		arm_accept(l);
	listener_maybe_close(l);
}

void wisp_tcp_on_cqe(wisp_tcp *t, const struct io_uring_cqe *cqe, wisp_tstamp now)
{
	(void)now;
	uint64_t u = io_uring_cqe_get_data64(cqe);
	void *p = ud_ptr(u);
	switch (wisp_ud_kind(u)) {
	case WISP_UD_TCP_ACCEPT:
		on_accept(t, p, cqe);
		break;
	case WISP_UD_TCP_CONNECT:
		on_connect(t, p, cqe);
		break;
	case WISP_UD_TCP_RECV:
		on_recv(t, p, cqe);
		break;
	case WISP_UD_TCP_SEND:
		on_send(t, p, cqe);
		break;
	case WISP_UD_TCP_TIMEOUT:
		on_timeout(t, p, cqe);
		break;
	case WISP_UD_TCP_CANCEL: {
		wisp_tcp_conn *c = p;
		c->inflight--;
		t->inflight--;
		maybe_finish(c);
		break;
	}
	case WISP_UD_TCP_SHUTDOWN: {
		wisp_tcp_listener *l = p;
		l->inflight--;
		t->inflight--;
		listener_maybe_close(l);
		break;
	}
	default:
		break;
	}
}

uint32_t wisp_tcp_fini(wisp_tcp *t, uint64_t wait_ns)
{
	while (t->listeners) {
		wisp_tcp_listener *l = t->listeners;
		if (l->closing) {
			/* still waiting for its cancel: forget it here */
			t->listeners = l->next;
			continue;
		}
		wisp_tcp_unlisten(l);
	}
	for (wisp_tcp_conn *c = t->open_list, *next; c; c = next) {
		next = c->next_open;
		wisp_tcp_abort(c, WISP_ERR_CLOSED);
	}
	wisp_tstamp deadline = wisp_clock_now() + wait_ns;
	struct io_uring *ring = &t->loop->ring;
	while (t->inflight) {
		wisp_tstamp now = wisp_clock_now();
		if (now >= deadline)
			break;
		struct __kernel_timespec ts = { .tv_sec = (long long)((deadline - now) / WISP_NS_PER_S),
						.tv_nsec = (long long)((deadline - now) % WISP_NS_PER_S) };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
		unsigned head, n = 0;
		io_uring_for_each_cqe(ring, head, cqe)
		{
			unsigned k = wisp_ud_kind(io_uring_cqe_get_data64(cqe));
			if (k >= WISP_UD_TCP_ACCEPT && k <= WISP_UD_TCP_TIMEOUT)
				wisp_tcp_on_cqe(t, cqe, now);
			n++;
		}
		io_uring_cq_advance(ring, n);
	}
	uint32_t left = t->inflight;
	if (t->br_registered && left == 0) {
		io_uring_unregister_buf_ring(ring, t->bgid);
		t->br_registered = false;
	}
	if (left == 0) {
		wisp_free_aligned(t->mem, t->br);
		wisp_free_aligned(t->mem, t->bufs);
		t->br = NULL;
		t->bufs = NULL;
	}
	/* With operations still in flight the kernel may write into the
	 * buffers: they are left to the ring's teardown (a leak, counted by
	 * the return value, never a use after free). */
	return left;
}

void wisp_tcp_addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
		snprintf(out, cap, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
		snprintf(out, cap, "[%s]:%u", host, port);
	} else {
		snprintf(out, cap, "?");
	}
}
