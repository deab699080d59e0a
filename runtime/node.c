#include "runtime/node.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ifaddrs.h>
#include <netinet/in.h>

#include "actors/gossip/actor.h"
#include "actors/reqresp/actor.h"
#include "actors/reqresp/sync.h"
#include "actors/scoring/actor.h"
#include "actors/telemetry.h"
#include "codec/multiaddr.h"
#include "codec/peer_record.h"
#include "net/addr.h"
#include "net/builtin.h"
#include "net/pubsub.h"
#include "peerset/peers.h"
#include "runtime/clock.h"
#include "runtime/mem.h"
#include "runtime/worker.h"

void wisp_options_default(wisp_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = WISP_OPTIONS_VERSION;
	o->workers = 0;
	o->actor_threads = 1;
	o->pin_workers = 1;
	o->mailbox_slots = 4096;
	o->event_slots = 4096;
	o->ring_entries = 256;
	o->stats_interval_ms = 0;
	o->probe_slots = 64;
	o->pool_bytes = (size_t)256 << 20;
	o->mem = NULL;
	o->identity = NULL;
	o->listen = NULL;
	o->n_listen = 0;
	o->dial_timeout_ms = 10000;
	o->handshake_timeout_ms = 10000;
	o->max_conns = 1024;
	o->max_streams_per_conn = 512;
	o->conn_send_budget = (size_t)4 << 20;
	o->stall_timeout_ms = 10000;
	o->agent = NULL;
	o->services = 0;
	o->explicit_peers = NULL;
	o->n_explicit_peers = 0;
	o->explicit_redial_ms = 10000;
	o->max_requests_out = 1024;
	o->max_requests_in = 1024;
}

__attribute__((format(printf, 2, 3))) static void set_err(wisp_node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(n->errmsg, sizeof(n->errmsg), fmt, ap);
	va_end(ap);
}

const char *wisp_node_errmsg(const wisp_node *n)
{
	return n->errmsg;
}

static bool pow2(uint32_t v)
{
	return v >= 4 && (v & (v - 1)) == 0;
}

/* Validate the options the caller gave; explain the first bad one. */
static int check_options(const wisp_options *o, char *msg, size_t len)
{
	if (o->version != WISP_OPTIONS_VERSION) {
		snprintf(msg, len, "options.version is %u; this library knows version %u (call wisp_options_default)",
			 o->version, WISP_OPTIONS_VERSION);
		return WISP_ERR_INVALID_ARG;
	}
	if (o->workers > WISP_PROBE_MAX_WORKERS || o->actor_threads > 8 ||
	    o->workers + (o->actor_threads ? o->actor_threads : 1) > WISP_STATS_MAX_THREADS) {
		snprintf(msg, len, "options: at most %u workers and 8 actor threads", WISP_PROBE_MAX_WORKERS);
		return WISP_ERR_INVALID_ARG;
	}
	if (!pow2(o->mailbox_slots) || !pow2(o->event_slots)) {
		snprintf(msg, len, "options.mailbox_slots and event_slots must be powers of two >= 4");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->ring_entries < 8 || o->ring_entries > 32768) {
		snprintf(msg, len, "options.ring_entries must be within 8..32768");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->probe_slots < 1 || o->probe_slots > 65536) {
		snprintf(msg, len, "options.probe_slots must be within 1..65536");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->n_listen > WISP_MAX_LISTEN || (o->n_listen && !o->listen)) {
		snprintf(msg, len, "options: at most %u listen addresses, in options.listen", WISP_MAX_LISTEN);
		return WISP_ERR_INVALID_ARG;
	}
	if (o->max_conns < 1 || o->max_conns > (1u << 20) || o->max_streams_per_conn < 8 ||
	    o->max_streams_per_conn > 65536) {
		snprintf(msg, len, "options.max_conns must be within 1..2^20 and max_streams_per_conn within 8..65536");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->conn_send_budget < 65536 || o->dial_timeout_ms == 0 || o->handshake_timeout_ms == 0 ||
	    o->stall_timeout_ms == 0) {
		snprintf(msg, len, "options: conn_send_budget must be >= 64 KiB and the timeouts > 0");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->n_explicit_peers > WISP_MAX_EXPLICIT_PEERS || (o->n_explicit_peers && !o->explicit_peers) ||
	    o->explicit_redial_ms < 10) {
		snprintf(msg, len, "options: at most %u explicit peers, in options.explicit_peers, and "
			 "explicit_redial_ms >= 10", WISP_MAX_EXPLICIT_PEERS);
		return WISP_ERR_INVALID_ARG;
	}
	if (o->max_requests_out < 1 || o->max_requests_out > 65536 || o->max_requests_in < 1 ||
	    o->max_requests_in > 65536) {
		snprintf(msg, len, "options.max_requests_out and max_requests_in must be within 1..65536");
		return WISP_ERR_INVALID_ARG;
	}
	if (o->services & ~(WISP_SERVICE_PERF | WISP_SERVICE_ECHO)) {
		snprintf(msg, len, "options.services has unknown bits");
		return WISP_ERR_INVALID_ARG;
	}
	return WISP_OK;
}

/* The CPUs this process may run on, in order; returns how many. */
static uint32_t allowed_cpus(int *cpus, uint32_t max)
{
	cpu_set_t set;
	uint32_t n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && n < max; c++)
			if (CPU_ISSET(c, &set))
				cpus[n++] = c;
	}
	if (!n) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);
		for (long c = 0; c < online && n < max; c++)
			cpus[n++] = (int)c;
	}
	return n ? n : (cpus[0] = 0, 1);
}

/* Identity, limits, listen addresses and protocols, from the options. */
static int net_setup(wisp_node *n, const wisp_options *o)
{
	int err;
	if (o->identity) {
		n->identity = *o->identity;
	} else if ((err = wisp_privkey_generate(&n->identity))) {
		set_err(n, "could not make a node key: %s", wisp_strerror(err));
		return err;
	}
	if ((err = wisp_peer_id_from_pubkey(&n->peer_id, wisp_privkey_pubkey(&n->identity))))
		return err;
	wisp_peer_text(&n->peer_id, n->peer_text, sizeof(n->peer_text));
	snprintf(n->net.agent, sizeof(n->net.agent), "%s", o->agent ? o->agent : "wisp/" WISP_VERSION_STRING);
	n->net.dial_timeout_ns = (uint64_t)o->dial_timeout_ms * WISP_NS_PER_MS;
	n->net.handshake_timeout_ns = (uint64_t)o->handshake_timeout_ms * WISP_NS_PER_MS;
	n->net.stall_timeout_ns = (uint64_t)o->stall_timeout_ms * WISP_NS_PER_MS;
	n->net.conn_send_budget = o->conn_send_budget;
	n->net.max_conns_per_worker = o->max_conns;
	n->net.max_streams_per_conn = o->max_streams_per_conn;
	for (uint32_t i = 0; i < o->n_listen; i++) {
		wisp_peer_id pid;
		bool has_pid;
		err = o->listen[i] ? wisp_tcp_addr_parse(o->listen[i], &n->net.listen_req[i], &n->net.listen_req_len[i],
							 &pid, &has_pid)
				   : WISP_ERR_INVALID_ARG;
		if (err || has_pid) {
			set_err(n, "listen address '%s': %s", o->listen[i] ? o->listen[i] : "(null)",
				err ? wisp_strerror(err) : "must not name a peer (/p2p)");
			return err ? err : WISP_ERR_INVALID_ARG;
		}
	}
	n->net.n_listen = o->n_listen;
	if (o->n_explicit_peers && !(n->xpeers = wisp_calloc(n->mem, o->n_explicit_peers, sizeof(*n->xpeers))))
		return WISP_ERR_NOMEM;
	for (uint32_t i = 0; i < o->n_explicit_peers; i++) {
		wisp_dial_req *x = &n->xpeers[i];
		const char *a = o->explicit_peers[i];
		err = a ? wisp_tcp_addr_parse(a, &x->addr, &x->addr_len, &x->peer, &x->has_peer) : WISP_ERR_INVALID_ARG;
		if (err || !x->has_peer || wisp_peer_id_equal(&x->peer, &n->peer_id)) {
			set_err(n, "explicit peer '%s': %s", a ? a : "(null)",
				err ? wisp_strerror(err)
				    : x->has_peer ? "that is this node" : "must name the peer (/p2p/<id>)");
			return err ? err : WISP_ERR_INVALID_ARG;
		}
	}
	n->n_xpeers = o->n_explicit_peers;
	n->xpeer_redial_ns = (uint64_t)o->explicit_redial_ms * WISP_NS_PER_MS;
	wisp_gs_limits lim;
	wisp_gs_limits_default(&lim);
	n->net.pubsub_max_rpc = lim.max_rpc;
	n->net.pubsub_budget = o->conn_send_budget;
	n->net.pubsub_max_frames = 65536;
	if ((err = wisp_builtin_register(n)) || (err = wisp_pubsub_register(n))) {
		set_err(n, "registering the built-in protocols failed: %s", wisp_strerror(err));
		return err;
	}
	return WISP_OK;
}

static void advertise_add(wisp_node *n, const struct sockaddr *sa)
{
	if (n->net.n_advertise == WISP_MAX_ADVERTISE)
		return;
	ssize_t len = wisp_multiaddr_from_sockaddr(sa, WISP_MA_TCP, n->net.advertise[n->net.n_advertise],
						   sizeof(n->net.advertise[0]));
	if (len > 0)
		n->net.advertise_len[n->net.n_advertise++] = (uint32_t)len;
}

/* What identify tells peers: each bound address, with a wildcard replaced by
 * this host's addresses of that family. */
static void advertise_bound(wisp_node *n, const struct sockaddr_storage *b)
{
	bool any = (b->ss_family == AF_INET &&
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
		   (b->ss_family == AF_INET6 &&
		    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)b)->sin6_addr));
	if (!any) {
		advertise_add(n, (const struct sockaddr *)b);
		return;
	}
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) != 0)
		return;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != b->ss_family)
			continue;
		struct sockaddr_storage a;
		memset(&a, 0, sizeof(a));
		if (b->ss_family == AF_INET) {
			struct sockaddr_in *x = (struct sockaddr_in *)&a;
			*x = *(const struct sockaddr_in *)i->ifa_addr;
			x->sin_port = ((const struct sockaddr_in *)b)->sin_port;
		} else {
			struct sockaddr_in6 *x = (struct sockaddr_in6 *)&a;
			*x = *(const struct sockaddr_in6 *)i->ifa_addr;
			if (IN6_IS_ADDR_LINKLOCAL(&x->sin6_addr))
				continue;
			x->sin6_port = ((const struct sockaddr_in6 *)b)->sin6_port;
		}
		advertise_add(n, (const struct sockaddr *)&a);
	}
	freeifaddrs(ifs);
}

static void close_listeners(wisp_node *n)
{
	for (uint32_t i = 0; i < WISP_MAX_LISTEN; i++)
		if (n->net.listen_fds[i] >= 0) {
			close(n->net.listen_fds[i]);
			n->net.listen_fds[i] = -1;
		}
}

/* Bind every listen address before any thread runs, so that a taken port
 * fails the start with a message naming it. */
static int bind_listeners(wisp_node *n)
{
	for (uint32_t i = 0; i < n->net.n_listen; i++) {
		struct sockaddr_storage bound;
		socklen_t blen;
		int err = wisp_tcp_bind((const struct sockaddr *)&n->net.listen_req[i], n->net.listen_req_len[i], 1024,
					&n->net.listen_fds[i], &bound, &blen);
		if (err) {
			set_err(n, "listen %s: %s", n->opt.listen[i], strerror(errno));
			close_listeners(n);
			return err;
		}
		char text[WISP_ADDR_TEXT_MAX];
		wisp_peers_addr_text((const struct sockaddr *)&bound, text, sizeof(text));
		snprintf(n->net.listen_text[i], sizeof(n->net.listen_text[i]), "%.60s/p2p/%.60s", text, n->peer_text);
		advertise_bound(n, &bound);
	}
	return WISP_OK;
}

/* Our signed peer record of the advertised addresses, for identify. Its seq
 * is the wall clock: records must grow across restarts, and nothing is
 * kept on disk. */
static void seal_record(wisp_node *n)
{
	wisp_peer_record_addr addrs[WISP_MAX_ADVERTISE];
	n->net.record_len = 0;
	if (!n->net.n_advertise)
		return;
	for (uint32_t i = 0; i < n->net.n_advertise; i++)
		addrs[i] = (wisp_peer_record_addr){ n->net.advertise[i], n->net.advertise_len[i] };
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seq = (uint64_t)ts.tv_sec * WISP_NS_PER_S + (uint64_t)ts.tv_nsec;
	ssize_t len = wisp_peer_record_seal(&n->identity, seq, addrs, n->net.n_advertise, n->net.record,
					    sizeof(n->net.record));
	/* identify then goes without one, as a peer without a record does */
	if (len > 0)
		n->net.record_len = (uint32_t)len;
}

/* The explanation of this thread's last wisp_node_new() failure. */
static _Thread_local char new_errmsg[256];

const char *wisp_node_new_errmsg(void)
{
	return new_errmsg;
}

int wisp_node_new(wisp_node **out, const wisp_options *o)
{
	*out = NULL;
	new_errmsg[0] = 0;
	char msg[160];
	int err = check_options(o, msg, sizeof(msg));
	if (err) {
		snprintf(new_errmsg, sizeof(new_errmsg), "%s", msg);
		return err;
	}
	const wisp_mem *mem = o->mem ? o->mem : wisp_mem_default();
	wisp_node *n = wisp_calloc(mem, 1, sizeof(*n));
	if (!n) {
		snprintf(new_errmsg, sizeof(new_errmsg), "out of memory for the node");
		return WISP_ERR_NOMEM;
	}
	n->opt = *o;
	n->mem = mem;
	n->event_fd = -1;

	int cpus[WISP_PROBE_MAX_WORKERS];
	uint32_t ncpu = allowed_cpus(cpus, WISP_PROBE_MAX_WORKERS);
	n->n_workers = o->workers ? o->workers : ncpu;
	n->n_hosts = o->actor_threads ? o->actor_threads : 1;
	n->opt.workers = n->n_workers;
	n->opt.actor_threads = n->n_hosts;

	err = WISP_ERR_NOMEM;
	n->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->event_fd < 0) {
		err = WISP_ERR_IO;
		goto fail;
	}
	if ((err = wisp_pool_new(&n->pool, mem, o->pool_bytes)) != WISP_OK) {
		if (err == WISP_ERR_INVALID_ARG)
			set_err(n, "options.pool_bytes is too small");
		goto fail;
	}
	for (uint32_t i = 0; i < WISP_MAX_LISTEN; i++)
		n->net.listen_fds[i] = -1;
	if ((err = net_setup(n, o)))
		goto fail;
	err = WISP_ERR_NOMEM;
	n->workers = wisp_malloc_aligned(mem, n->n_workers * sizeof(wisp_loop), 64);
	if (n->workers)
		memset(n->workers, 0, n->n_workers * sizeof(wisp_loop));
	n->hosts = wisp_malloc_aligned(mem, n->n_hosts * sizeof(wisp_loop), 64);
	if (n->hosts)
		memset(n->hosts, 0, n->n_hosts * sizeof(wisp_loop));
	n->worker_actors = wisp_calloc(mem, n->n_workers, sizeof(wisp_actor));
	n->worker_state = wisp_calloc(mem, n->n_workers, sizeof(wisp_worker));
	if (!n->workers || !n->hosts || !n->worker_actors || !n->worker_state)
		goto fail;
	for (uint32_t i = 0; i < n->n_workers; i++) {
		if ((err = wisp_loop_init(&n->workers[i], mem, &n->feat, WISP_THREAD_WORKER, i, i,
					  o->pin_workers ? cpus[i % ncpu] : -1, o->ring_entries)))
			goto fail;
	}
	for (uint32_t i = 0; i < n->n_hosts; i++) {
		if ((err = wisp_loop_init(&n->hosts[i], mem, &n->feat, WISP_THREAD_ACTORS, i, n->n_workers + i,
					  -1, o->ring_entries)))
			goto fail;
	}
	uint32_t loops = n->n_workers + n->n_hosts;
	for (uint32_t i = 0; i < n->n_workers; i++) {
		n->worker_state[i].node = n;
		n->worker_state[i].index = i;
		if ((err = wisp_actor_init(&n->worker_actors[i], &n->workers[i], &wisp_worker_ops,
					   &n->worker_state[i], o->mailbox_slots, loops)))
			goto fail;
	}
	/* The request/response actor goes first on its loop: each turn it takes
	 * the workers' news of connections before the peers actor tells the
	 * application of them (net/shard.c sends it first), so a wisp_request()
	 * made on WISP_EVENT_CONNECTED finds the connection. */
	n->rr_in = wisp_calloc(mem, o->max_requests_in, sizeof(*n->rr_in));
	if (!n->rr_in) {
		err = WISP_ERR_NOMEM;
		goto fail;
	}
	atomic_init(&n->rr_next_id, 1);
	if ((err = wisp_reqresp_new(&n->rr_state, n)))
		goto fail;
	if ((err = wisp_actor_init(&n->reqresp, &n->hosts[0], &wisp_reqresp_ops, n->rr_state, o->mailbox_slots,
				   loops)))
		goto fail;
	if ((err = wisp_telemetry_new(&n->tele_state, n)))
		goto fail;
	if ((err = wisp_actor_init(&n->telemetry, &n->hosts[0], &wisp_telemetry_ops, n->tele_state,
				   o->mailbox_slots, loops)))
		goto fail;
	if ((err = wisp_peers_new(&n->peers_state, n, n->n_workers * o->max_conns)))
		goto fail;
	if ((err = wisp_actor_init(&n->peers, &n->hosts[0], &wisp_peers_ops, n->peers_state, o->mailbox_slots,
				   loops)))
		goto fail;
	wisp_gs_config gcfg;
	wisp_gs_config_default(&gcfg);
	gcfg.max_peers = n->n_workers * o->max_conns < 4096 ? n->n_workers * o->max_conns : 4096;
	wisp_score_params sp;
	wisp_score_params_default(&sp);
	sp.max_peers = gcfg.max_peers;
	sp.max_topics = gcfg.max_topics + gcfg.max_remote_topics;
	/* the router judges peers by the scoring actor's thresholds */
	gcfg.gossip_threshold = sp.thresholds.gossip;
	gcfg.publish_threshold = sp.thresholds.publish;
	gcfg.graylist_threshold = sp.thresholds.graylist;
	gcfg.accept_px_threshold = sp.thresholds.accept_px;
	gcfg.opportunistic_graft_threshold = sp.thresholds.opportunistic_graft;
	if ((err = wisp_gossip_new(&n->gossip_state, n, &gcfg)))
		goto fail;
	if ((err = wisp_actor_init(&n->gossip, &n->hosts[0], &wisp_gossip_ops, n->gossip_state, o->mailbox_slots,
				   loops)))
		goto fail;
	if ((err = wisp_scoring_new(&n->scoring_state, n, &sp)))
		goto fail;
	if ((err = wisp_actor_init(&n->scoring, &n->hosts[0], &wisp_scoring_ops, n->scoring_state, o->mailbox_slots,
				   loops)))
		goto fail;
	if ((err = wisp_mailbox_init(&n->events, mem, o->event_slots, loops, NULL)))
		goto fail;
	*out = n;
	return WISP_OK;
fail:
	snprintf(new_errmsg, sizeof(new_errmsg), "%s", n->errmsg[0] ? n->errmsg : wisp_strerror(err));
	wisp_node_free(n);
	return err;
}

static void stop_loops(wisp_loop *loops, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		wisp_loop_request_stop(&loops[i]);
	for (uint32_t i = 0; i < count; i++)
		wisp_loop_join(&loops[i]);
}

int wisp_node_start(wisp_node *n)
{
	if (atomic_load(&n->state) != NODE_NEW) {
		set_err(n, "wisp_node_start: the node was already started");
		return WISP_ERR_STATE;
	}
	char msg[sizeof(n->errmsg)];
	int err = wisp_uring_probe(&n->feat, msg, sizeof(msg));
	if (err) {
		set_err(n, "%s", msg);
		return err;
	}
	if ((err = bind_listeners(n)))
		return err;
	seal_record(n);
	uint32_t total = n->n_workers + n->n_hosts;
	uint32_t spawned = 0;
	for (; spawned < total; spawned++) {
		wisp_loop *l = spawned < n->n_workers ? &n->workers[spawned] : &n->hosts[spawned - n->n_workers];
		if ((err = wisp_loop_spawn(l)) != WISP_OK) {
			set_err(n, "pthread_create failed for runtime thread %u: %s", spawned, strerror(errno));
			break;
		}
	}
	for (uint32_t i = 0; i < spawned; i++) {
		wisp_loop *l = i < n->n_workers ? &n->workers[i] : &n->hosts[i - n->n_workers];
		int e = wisp_loop_wait_ready(l);
		if (e && !err) {
			err = e;
			set_err(n, "%s", l->init_msg);
		}
	}
	for (uint32_t i = 0; i < spawned; i++) {
		wisp_loop *l = i < n->n_workers ? &n->workers[i] : &n->hosts[i - n->n_workers];
		wisp_loop_go(l, err == WISP_OK);
	}
	if (err) {
		for (uint32_t i = 0; i < spawned; i++) {
			wisp_loop *l = i < n->n_workers ? &n->workers[i] : &n->hosts[i - n->n_workers];
			wisp_loop_join(l);
		}
		close_listeners(n);
		return err;
	}
	atomic_store(&n->state, NODE_RUNNING);
	for (uint32_t i = 0; i < n->net.n_listen; i++) {
		wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_listen_info));
		if (!b)
			break;
		wisp_listen_info *li = (wisp_listen_info *)b->data;
		snprintf(li->addr, sizeof(li->addr), "%s", n->net.listen_text[i]);
		b->len = sizeof(*li);
		wisp_node_emit(n, NULL, WISP_EVENT_LISTENING, WISP_OK, 0, b);
	}
	return WISP_OK;
}

static uint64_t drain_actor(wisp_node *n, wisp_actor *a)
{
	uint64_t k = 0;
	wisp_msg m;
	wisp_mailbox_close(&a->mb);
	while (wisp_mailbox_recv_mpsc(&a->mb, &m)) {
		if (a->ops == &wisp_worker_ops && m.type == WISP_WMSG_ADOPT)
			close((int)m.a); /* a socket dealt to a worker that stopped first */
		if (a->ops == &wisp_reqresp_ops && m.type == WISP_RMSG_SYNC)
			wisp_sync_job_free(n, (struct wisp_sync_job *)(uintptr_t)m.a);
		wisp_buf_unref(m.buf);
		k++;
	}
	return k;
}

int wisp_node_stop(wisp_node *n)
{
	int state = atomic_load(&n->state);
	if (state == NODE_STOPPED)
		return WISP_OK;
	if (state != NODE_RUNNING)
		return WISP_ERR_STATE;
	/* Close the command gate, then wait out calls already past it: after
	 * this no application thread is inside a mailbox. */
	atomic_store(&n->closing, true);
	while (atomic_load(&n->inflight))
		sched_yield();
	/* Actors first (they may still command the workers while they stop),
	 * then the workers. Whatever is still queued afterwards is released and
	 * counted. */
	stop_loops(n->hosts, n->n_hosts);
	wisp_mailbox_close(&n->telemetry.mb);
	wisp_mailbox_close(&n->peers.mb);
	wisp_mailbox_close(&n->gossip.mb);
	wisp_mailbox_close(&n->scoring.mb);
	wisp_mailbox_close(&n->reqresp.mb);
	stop_loops(n->workers, n->n_workers);
	uint64_t left = drain_actor(n, &n->telemetry) + drain_actor(n, &n->peers) + drain_actor(n, &n->gossip) +
			drain_actor(n, &n->scoring) + drain_actor(n, &n->reqresp);
	for (uint32_t i = 0; i < n->n_workers; i++)
		left += drain_actor(n, &n->worker_actors[i]);
	wisp_stat_add(&n->discarded, left);
	atomic_store(&n->state, NODE_STOPPED);
	return WISP_OK;
}

void wisp_node_free(wisp_node *n)
{
	if (!n)
		return;
	if (atomic_load(&n->state) == NODE_RUNNING)
		wisp_node_stop(n);
	const wisp_mem *mem = n->mem;
	wisp_actor_fini(&n->telemetry);
	wisp_telemetry_free(n->tele_state);
	wisp_actor_fini(&n->peers);
	wisp_peers_free(n->peers_state);
	wisp_actor_fini(&n->gossip);
	wisp_gossip_free(n->gossip_state);
	wisp_actor_fini(&n->scoring);
	wisp_scoring_free(n->scoring_state);
	wisp_actor_fini(&n->reqresp);
	wisp_reqresp_free(n->rr_state);
	wisp_free(mem, n->rr_in);
	close_listeners(n);
	wisp_privkey_wipe(&n->identity);
	if (n->worker_actors)
		for (uint32_t i = 0; i < n->n_workers; i++)
			wisp_actor_fini(&n->worker_actors[i]);
	if (n->workers)
		for (uint32_t i = 0; i < n->n_workers; i++)
			if (n->workers[i].mem)
				wisp_loop_fini(&n->workers[i]);
	if (n->hosts)
		for (uint32_t i = 0; i < n->n_hosts; i++)
			if (n->hosts[i].mem)
				wisp_loop_fini(&n->hosts[i]);
	wisp_mailbox_fini(&n->events, mem);
	wisp_pool_free(n->pool);
	if (n->event_fd >= 0)
		close(n->event_fd);
	wisp_free_aligned(mem, n->workers);
	wisp_free_aligned(mem, n->hosts);
	wisp_free(mem, n->worker_actors);
	wisp_free(mem, n->worker_state);
	wisp_free(mem, n->xpeers);
	wisp_free(mem, n);
}

int wisp_node_explicit_index(const wisp_node *n, const wisp_peer_id *id)
{
	for (uint32_t i = 0; i < n->n_xpeers; i++)
		if (wisp_peer_id_equal(&n->xpeers[i].peer, id))
			return (int)i;
	return -1;
}

/* ---- events ------------------------------------------------------------ */

int wisp_node_emit(wisp_node *n, wisp_loop *from, wisp_event_type type, int status, uint64_t cookie,
		   wisp_buf *buf)
{
	wisp_msg m = { .type = type, .a = cookie, .b = (uint64_t)(int64_t)status, .buf = buf };
	int err = wisp_mailbox_send_mpsc(&n->events, &m, from);
	if (err) {
		wisp_stat_add_shared(&n->events_dropped, 1);
		wisp_buf_unref(buf);
		return err;
	}
	/* Same hand-shake as a loop's sleep: the drainer stores app_waiting and
	 * re-checks the ring; we commit and then look at the flag. */
	atomic_thread_fence(memory_order_seq_cst);
	uint32_t waiting = 1;
	if (atomic_load_explicit(&n->app_waiting, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&n->app_waiting, &waiting, 0)) {
		uint64_t one = 1;
		ssize_t w = write(n->event_fd, &one, sizeof(one));
		(void)w;
	}
	return WISP_OK;
}

static void fill_event(wisp_event *ev, const wisp_msg *m)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = (wisp_event_type)m->type;
	ev->status = (int)(int64_t)m->b;
	ev->cookie = m->a;
	ev->priv_ = m->buf;
	if (m->buf)
		ev->u.data = m->buf->data; /* the payload struct of the event's type */
}

int wisp_node_next_event(wisp_node *n, wisp_event *ev)
{
	wisp_msg m;
	if (wisp_mailbox_recv_mpsc(&n->events, &m)) {
		fill_event(ev, &m);
		return 1;
	}
	/* Empty: reset the fd, say we wait, then look once more so an event
	 * committed in between is not left behind an unreadable fd. */
	uint64_t v;
	ssize_t r = read(n->event_fd, &v, sizeof(v));
	(void)r;
	atomic_store(&n->app_waiting, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (wisp_mailbox_recv_mpsc(&n->events, &m)) {
		fill_event(ev, &m);
		return 1;
	}
	memset(ev, 0, sizeof(*ev));
	return 0;
}

void wisp_event_release(wisp_node *n, wisp_event *ev)
{
	(void)n;
	wisp_buf_unref(ev->priv_);
	ev->priv_ = NULL;
	ev->u.probe = NULL;
}

int wisp_node_event_fd(const wisp_node *n)
{
	return n->event_fd;
}

/* ---- commands ---------------------------------------------------------- */

int wisp_node_gate_enter(wisp_node *n)
{
	atomic_fetch_add(&n->inflight, 1);
	if (atomic_load(&n->closing) || atomic_load(&n->state) != NODE_RUNNING) {
		atomic_fetch_sub(&n->inflight, 1);
		return WISP_ERR_CLOSED;
	}
	return WISP_OK;
}

void wisp_node_gate_exit(wisp_node *n)
{
	atomic_fetch_sub_explicit(&n->inflight, 1, memory_order_release);
}

int wisp_node_probe(wisp_node *n, uint64_t cookie)
{
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	wisp_msg m = { .type = WISP_TMSG_PROBE, .a = cookie, .b = wisp_clock_now() };
	err = wisp_actor_send(&n->telemetry, &m, NULL);
	wisp_node_gate_exit(n);
	return err;
}

/* ---- the network ------------------------------------------------------ */

const wisp_peer_id *wisp_node_peer_id(const wisp_node *n)
{
	return &n->peer_id;
}

/* Hand actor a command with a payload built by fill(). */
static int actor_cmd(wisp_node *n, wisp_actor *actor, uint32_t type, uint64_t cookie, size_t size,
		     void (*fill)(void *dst, const void *arg), const void *arg)
{
	int err = wisp_node_gate_enter(n);
	if (err)
		return err;
	wisp_buf *b = wisp_buf_alloc(n->pool, size);
	if (!b) {
		wisp_node_gate_exit(n);
		return WISP_ERR_AGAIN;
	}
	memset(b->data, 0, size);
	fill(b->data, arg);
	b->len = (uint32_t)size;
	wisp_msg m = { .type = type, .b = cookie, .buf = b };
	err = wisp_actor_send(actor, &m, NULL);
	if (err)
		wisp_buf_unref(b);
	wisp_node_gate_exit(n);
	return err;
}

static void fill_dial(void *dst, const void *arg)
{
	*(wisp_dial_req *)dst = *(const wisp_dial_req *)arg;
}

int wisp_dial(wisp_node *n, const char *multiaddr, uint64_t cookie)
{
	wisp_dial_req r;
	memset(&r, 0, sizeof(r));
	int err = wisp_tcp_addr_parse(multiaddr, &r.addr, &r.addr_len, &r.peer, &r.has_peer);
	if (err)
		return err == WISP_ERR_UNSUPPORTED ? WISP_ERR_INVALID_ARG : err;
	if (r.has_peer && wisp_peer_id_equal(&r.peer, &n->peer_id))
		return WISP_ERR_INVALID_ARG; /* dialing ourselves */
	return actor_cmd(n, &n->peers, WISP_PMSG_DIAL, cookie, sizeof(r), fill_dial, &r);
}

static void fill_cmd(void *dst, const void *arg)
{
	*(wisp_peer_cmd *)dst = *(const wisp_peer_cmd *)arg;
}

static int peer_command(wisp_node *n, enum wisp_peer_cmd_kind kind, const wisp_peer_id *peer,
			const wisp_test_spec *t, uint64_t cookie)
{
	wisp_peer_cmd c;
	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.peer = *peer;
	if (t)
		c.test = *t;
	return actor_cmd(n, &n->peers, WISP_PMSG_PEER_CMD, cookie, sizeof(c), fill_cmd, &c);
}

int wisp_ping(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie)
{
	return peer_command(n, WISP_PEER_PING, peer, NULL, cookie);
}

int wisp_disconnect(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie)
{
	return peer_command(n, WISP_PEER_CLOSE, peer, NULL, cookie);
}

int wisp_stream_test(wisp_node *n, const wisp_peer_id *peer, const wisp_test_spec *t, uint64_t cookie)
{
	bool ok;
	switch (t->kind) {
	case WISP_TEST_ECHO:
		ok = t->streams >= 1 && t->streams <= 256 && t->bytes > 0;
		break;
	case WISP_TEST_RTT:
		ok = t->size >= 1 && t->size <= 65536 && t->count >= 1 && t->count <= 1000000;
		break;
	case WISP_TEST_PERF:
		ok = true;
		break;
	default:
		ok = false;
	}
	if (!ok)
		return WISP_ERR_INVALID_ARG;
	return peer_command(n, WISP_PEER_TEST, peer, t, cookie);
}

/* ---- gossip ----------------------------------------------------------- */

void wisp_topic_opts_default(wisp_topic_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = WISP_TOPIC_OPTS_VERSION;
	o->sign = WISP_SIGN_STRICT;
	o->msgid = WISP_MSGID_DEFAULT;
	o->max_size = 1u << 20;
	o->idontwant_min = 1024;
	o->flood_publish = 1;
	o->validate = 0;
	o->priority = WISP_PRIORITY_NORMAL;
	o->compress = WISP_COMPRESS_NONE;
}

static int gossip_cmd(wisp_node *n, wisp_msg *m)
{
	int err = wisp_node_gate_enter(n);
	if (err) {
		wisp_buf_unref(m->buf);
		return err;
	}
	err = wisp_actor_send(&n->gossip, m, NULL);
	if (err)
		wisp_buf_unref(m->buf);
	wisp_node_gate_exit(n);
	return err;
}

static int topic_cmd(wisp_node *n, uint32_t type, const char *topic, const wisp_topic_opts *o, uint64_t cookie)
{
	size_t len = strlen(topic);
	if (len == 0 || len > 255 ||
	    (o && (o->version != WISP_TOPIC_OPTS_VERSION || (unsigned)o->priority > WISP_PRIORITY_HIGH ||
		   (unsigned)o->compress > WISP_COMPRESS_ZSTD)))
		return WISP_ERR_INVALID_ARG;
	wisp_buf *b = wisp_buf_alloc(n->pool, sizeof(wisp_gossip_sub));
	if (!b)
		return WISP_ERR_AGAIN;
	wisp_gossip_sub *s = (wisp_gossip_sub *)b->data;
	memset(s, 0, sizeof(*s));
	memcpy(s->topic, topic, len);
	s->len = (uint32_t)len;
	if (o)
		s->opts = *o;
	else
		wisp_topic_opts_default(&s->opts);
	b->len = sizeof(*s);
	wisp_msg m = { .type = type, .b = cookie, .buf = b };
	return gossip_cmd(n, &m);
}

int wisp_subscribe(wisp_node *n, const char *topic, const wisp_topic_opts *o, uint64_t cookie)
{
	return topic_cmd(n, WISP_GMSG_SUBSCRIBE, topic, o, cookie);
}

int wisp_unsubscribe(wisp_node *n, const char *topic, uint64_t cookie)
{
	return topic_cmd(n, WISP_GMSG_UNSUBSCRIBE, topic, NULL, cookie);
}

int wisp_publish(wisp_node *n, const char *topic, const void *data, size_t len, uint64_t cookie)
{
	size_t tlen = strlen(topic);
	if (tlen == 0 || tlen > 255 || (len && !data))
		return WISP_ERR_INVALID_ARG;
	size_t need = sizeof(wisp_gossip_pub) + tlen + len;
	if (need > wisp_pool_max_len(n->pool))
		return WISP_ERR_TOO_LARGE;
	wisp_buf *b = wisp_buf_alloc(n->pool, need);
	if (!b)
		return WISP_ERR_AGAIN;
	wisp_gossip_pub *p = (wisp_gossip_pub *)b->data;
	p->topic_len = (uint32_t)tlen;
	p->data_len = (uint32_t)len;
	memcpy(p + 1, topic, tlen);
	if (len)
		memcpy((uint8_t *)(p + 1) + tlen, data, len);
	b->len = (uint32_t)need;
	wisp_msg m = { .type = WISP_GMSG_PUBLISH, .b = cookie, .buf = b };
	return gossip_cmd(n, &m);
}

int wisp_validate(wisp_node *n, uint64_t ref, wisp_verdict v)
{
	if ((unsigned)v > WISP_VERDICT_IGNORE_RETRY)
		return WISP_ERR_INVALID_ARG;
	_Static_assert((int)WISP_VERDICT_ACCEPT == (int)WISP_GS_ACCEPT && (int)WISP_VERDICT_REJECT == (int)WISP_GS_REJECT &&
			       (int)WISP_VERDICT_IGNORE == (int)WISP_GS_IGNORE &&
			       (int)WISP_VERDICT_IGNORE_RETRY == (int)WISP_GS_IGNORE_RETRY,
		       "verdicts pass through unchanged");
	wisp_msg m = { .type = WISP_GMSG_VALIDATE, .a = ref, .b = (uint64_t)v };
	return gossip_cmd(n, &m);
}

static void fill_id(void *dst, const void *arg)
{
	*(wisp_peer_id *)dst = *(const wisp_peer_id *)arg;
}

int wisp_peer_score(wisp_node *n, const wisp_peer_id *peer, uint64_t cookie)
{
	if (peer->len == 0 || peer->len > sizeof(peer->bytes))
		return WISP_ERR_INVALID_ARG;
	return actor_cmd(n, &n->scoring, WISP_SMSG_QUERY, cookie, sizeof(*peer), fill_id, peer);
}

static void fill_app(void *dst, const void *arg)
{
	*(wisp_scoring_app *)dst = *(const wisp_scoring_app *)arg;
}

int wisp_set_app_score(wisp_node *n, const wisp_peer_id *peer, double value)
{
	if (!isfinite(value) || !peer->len || peer->len > WISP_PEER_ID_MAX)
		return WISP_ERR_INVALID_ARG;
	wisp_scoring_app v;
	memset(&v, 0, sizeof(v));
	v.id = *peer;
	v.value = value;
	return actor_cmd(n, &n->scoring, WISP_SMSG_APP_SCORE, 0, sizeof(v), fill_app, &v);
}

/* ---- figures ----------------------------------------------------------- */

static void loop_stats(const wisp_loop *l, wisp_thread_stats *t)
{
	t->kind = l->kind;
	t->cpu = l->cpu;
	t->turns = wisp_stat_get(&l->turns);
	t->sleeps = wisp_stat_get(&l->sleeps);
	t->wakeups = wisp_stat_get(&l->wakeups);
	t->wakes_sent = wisp_stat_get(&l->wakes_sent);
	t->msgs = wisp_stat_get(&l->msgs);
	t->timers = wisp_stat_get(&l->timers_fired);
	t->cpu_ns = wisp_stat_get(&l->cpu_ns);
}

static void mailbox_stats(const wisp_mailbox *mb, wisp_stats *out)
{
	out->mailbox_full += wisp_stat_get(&mb->full);
	out->mailbox_closed += wisp_stat_get(&mb->refused_closed);
}

void wisp_node_stats_fill(const wisp_node *n, wisp_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->version = WISP_OPTIONS_VERSION;
	for (uint32_t i = 0; n->worker_state && i < n->n_workers; i++) {
		const wisp_shard *sh = &n->worker_state[i].shard;
		const wisp_shard_stats *ss = &sh->stats;
		const wisp_tcp_stats *ts = &sh->tcp.stats;
		out->net.conns_in += wisp_stat_get(&ss->conns_in);
		out->net.conns_out += wisp_stat_get(&ss->conns_out);
		out->net.open += wisp_stat_get(&ts->open);
		out->net.upgraded += wisp_stat_get(&ss->upgraded);
		out->net.handshake_failures += wisp_stat_get(&ss->handshake_failures) + wisp_stat_get(&ss->handshake_timeouts);
		out->net.handshake_timeouts += wisp_stat_get(&ss->handshake_timeouts);
		out->net.peer_errors += wisp_stat_get(&ss->peer_errors);
		out->net.slow_closes += wisp_stat_get(&ss->slow_closes);
		out->net.conn_limit += wisp_stat_get(&ss->conn_limit);
		out->net.dial_failures += wisp_stat_get(&ss->dial_failures);
		out->net.budget_stalls += wisp_stat_get(&ss->budget_stalls);
		out->net.pool_stalls += wisp_stat_get(&ss->pool_stalls);
		out->net.bytes_in += wisp_stat_get(&ts->recv_bytes);
		out->net.bytes_out += wisp_stat_get(&ts->send_bytes);
		out->net.resets += wisp_stat_get(&ts->resets);
		out->net.streams_refused += wisp_stat_get(&ss->streams_refused);
		out->net.streams_capped += wisp_stat_get(&ss->streams_capped);
	}
	if (n->gossip_state) {
		wisp_gs_router_stats rs;
		wisp_gossip_router_stats(n->gossip_state, &rs);
		const wisp_gossip_stats *gs = wisp_gossip_stats_of(n->gossip_state);
		out->gossip.peers = rs.peers;
		out->gossip.rpc_in = rs.rpc_in;
		out->gossip.rpc_out = rs.rpc_out;
		out->gossip.rpc_bad = rs.rpc_bad;
		out->gossip.rpc_graylisted = rs.rpc_graylisted;
		out->gossip.msg_in = rs.msg_in;
		out->gossip.msg_duplicate = rs.msg_duplicate;
		out->gossip.msg_accepted = rs.msg_accepted;
		out->gossip.msg_delivered = rs.msg_delivered;
		out->gossip.msg_forwarded = rs.msg_forwarded;
		out->gossip.msg_rejected = rs.msg_rejected;
		out->gossip.mesh = rs.mesh;
		out->gossip.msg_bad_signature = rs.msg_bad_signature;
		out->gossip.msg_policy = rs.msg_policy;
		out->gossip.msg_too_large = rs.msg_too_large;
		out->gossip.msg_ignored = rs.msg_ignored;
		out->gossip.published = rs.pub_ok;
		out->gossip.publish_no_peers = rs.pub_no_peers;
		out->gossip.ihave_in = rs.ihave_in;
		out->gossip.iwant_served = rs.iwant_served;
		out->gossip.graft_in = rs.graft_in;
		out->gossip.prune_in = rs.prune_in;
		out->gossip.idontwant_in = rs.idontwant_in;
		out->gossip.idontwant_out = rs.idontwant_out;
		out->gossip.verify_dealt = wisp_stat_get(&gs->verify_dealt);
		out->gossip.msg_decompress_failed = wisp_stat_get(&gs->decompress_failed);
		out->gossip.px_received = rs.px_accepted;
		out->gossip.px_ignored = rs.px_ignored + wisp_stat_get(&gs->px_ignored);
		out->gossip.px_bad_record = wisp_stat_get(&gs->px_bad_record);
		out->gossip.px_unsupported_key = wisp_stat_get(&gs->px_unsupported_key);
		out->gossip.px_dialed = wisp_stat_get(&gs->px_dialed);
		out->gossip.px_records_sent = rs.px_out_records;
		for (uint32_t i = 0; n->worker_state && i < n->n_workers; i++) {
			const wisp_pubsub_stats *ps = &n->worker_state[i].shard.pubsub;
			out->gossip.frames_dropped += wisp_stat_get(&ps->over_budget) + wisp_stat_get(&ps->expired);
			out->gossip.frames_evicted += wisp_stat_get(&ps->evicted);
		}
	}
	wisp_reqresp_stats_fill(n, out);
	out->net.identify_errors = wisp_stat_get(&n->net.identify_errors);
	out->net.ping_errors = wisp_stat_get(&n->net.ping_errors);
	out->net.peer_record_errors = wisp_stat_get(&n->net.peer_record_errors);
	uint32_t k = 0;
	for (uint32_t i = 0; i < n->n_workers && k < WISP_STATS_MAX_THREADS; i++)
		loop_stats(&n->workers[i], &out->thread[k++]);
	for (uint32_t i = 0; i < n->n_hosts && k < WISP_STATS_MAX_THREADS; i++)
		loop_stats(&n->hosts[i], &out->thread[k++]);
	out->threads = k;
	for (uint32_t i = 0; i < n->n_workers; i++)
		mailbox_stats(&n->worker_actors[i].mb, out);
	mailbox_stats(&n->telemetry.mb, out);
	out->discarded = wisp_stat_get(&n->discarded);
	out->events = wisp_stat_get(&n->events.received);
	out->events_dropped = wisp_stat_get(&n->events_dropped);
	wisp_pool_stats ps;
	wisp_pool_stats_get(n->pool, &ps);
	out->pool_in_use = ps.in_use;
	out->pool_high = ps.high;
	out->pool_exhausted = ps.exhausted + ps.too_large;
	out->uring_flags = n->feat.setup_flags;
	out->uring_msg_ring = n->feat.msg_ring;
}

void wisp_node_stats(const wisp_node *n, wisp_stats *out)
{
	wisp_node_stats_fill(n, out);
}
