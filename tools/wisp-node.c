/* wisp-node: run a wisp node.
 *
 * Two modes:
 *   --self-check   start a node, drive probes through the actors and every
 *                  worker, print the runtime's figures, stop cleanly and
 *                  check that nothing was left behind;
 *   (default)      a libp2p node: listen, dial, answer identify and ping,
 *                  and take commands as JSON lines on stdin, printing
 *                  events (JSON lines with --json, text otherwise).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <wisp/atlas.h>
#include <wisp/wisp.h>

#include "tools/atlas-demo.h"
#include "tools/json-line.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_START = 3 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wisp-node [--key FILE] [--listen MULTIADDR]... [--dial MULTIADDR]...\n"
		"                 [--duration SECONDS] [--json] [--workers N] [--serve echo,perf]\n"
		"                 [--topic NAME]... [--sign strict|none] [--msg-id default|content|js]\n"
		"                 [--compress zstd|none] [--priority high|normal] [--explicit MULTIADDR]...\n"
		"                 [--reqresp PROTOCOL[=echo|app|none]]... [--respond echo|app]\n"
		"       wisp-node --self-check [--workers N] [--duration SECONDS] [--json]\n"
		"\n"
		"Runs a libp2p node (TCP, Noise, yamux, identify, ping) and prints what happens.\n"
		"\n"
		"  --key FILE          the node's secp256k1 key (wisp-keygen FILE makes one);\n"
		"                      without it the node uses a fresh key\n"
		"  --listen MULTIADDR  listen, e.g. /ip4/0.0.0.0/tcp/4001 or /ip6/::1/tcp/0 (repeatable)\n"
		"  --dial MULTIADDR    connect at start, e.g. /ip4/127.0.0.1/tcp/4001/p2p/16Uiu2...\n"
		"                      (repeatable; with /p2p the peer must prove that identity)\n"
		"  --duration SECONDS  stop after this long (default: at {\"cmd\":\"quit\"}, end of\n"
		"                      stdin, SIGINT or SIGTERM)\n"
		"  --json              one JSON object per line on stdout, each with an \"event\"\n"
		"  --workers N         network worker threads (default: online CPUs)\n"
		"  --serve LIST        also serve diagnostic protocols: echo (/wisp/echo/1.0.0),\n"
		"                      perf (/perf/1.0.0); off by default\n"
		"  --topic NAME        subscribe to a gossipsub topic at start (repeatable)\n"
		"  --sign POLICY       strict (StrictSign, the default) or none (StrictNoSign), for\n"
		"                      every topic this node joins or publishes to\n"
		"  --msg-id KIND       message ids: default (from || seqno; content under none),\n"
		"                      content (SHA-256 of the data), js (js-libp2p's StrictSign\n"
		"                      default: author key || seqno). Every node on a topic must agree\n"
		"  --compress KIND     zstd: every --topic's data travels zstd-compressed (wisp only:\n"
		"                      every node on the topic must agree); none (the default)\n"
		"  --priority LEVEL    high: every --topic's messages go ahead of normal topics' in\n"
		"                      each peer's send queue; normal (the default)\n"
		"  --explicit MULTIADDR  a gossipsub explicit peer (/p2p required; repeatable): kept\n"
		"                      connected, sent every message of its topics, never meshed\n"
		"  --reqresp PROTOCOL  register a request/response protocol (repeatable, at most 16;\n"
		"                      e.g. /atlas/req/tx/1/pb_zstd): requests to peers with the\n"
		"                      request command, and peers' requests answered as --respond\n"
		"                      says, or as PROTOCOL=MODE says for this one\n"
		"  --respond MODE      how peers' requests are answered: app (the default: each is a\n"
		"                      request event, answered by respond / respond_end commands),\n"
		"                      echo (a built-in test responder, below), none (not served:\n"
		"                      peers hear \"na\"; we only ask)\n"
		"  --atlas-demo SPEC   serve the four Atlas protocols (/atlas/req/tx|state|checkpoint|\n"
		"                      pending/1/pb_zstd) from a generated demo state (tools/atlas-demo.h):\n"
		"                      SPEC is 'default' or key=value pairs of txs (10000), height\n"
		"                      (1000), chunks (64), chunk_size (1048576), senders (16),\n"
		"                      pending (64 nonces each), rate (requests/s per peer and protocol;\n"
		"                      0, the default here: no limit)\n"
		"  --self-check        the runtime self-check instead (see above)\n"
		"  --help              this text\n"
		"\n"
		"Commands, one JSON object per line on stdin (any may carry an \"id\", which its\n"
		"result event repeats):\n"
		"  {\"cmd\":\"dial\",\"addr\":\"/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2...\"}\n"
		"  {\"cmd\":\"ping\",\"peer_id\":\"16Uiu2...\"}\n"
		"  {\"cmd\":\"close\",\"peer_id\":\"16Uiu2...\"}\n"
		"  {\"cmd\":\"echo\",\"peer_id\":\"...\",\"bytes\":1048576,\"streams\":1}\n"
		"  {\"cmd\":\"rtt\",\"peer_id\":\"...\",\"size\":1024,\"count\":1000}\n"
		"  {\"cmd\":\"perf\",\"peer_id\":\"...\",\"upload\":N,\"download\":M}\n"
		"  {\"cmd\":\"subscribe\",\"topic\":\"t\"}  {\"cmd\":\"unsubscribe\",\"topic\":\"t\"}\n"
		"    (subscribe may add \"priority\":\"high\" and \"compress\":\"zstd\" for that topic)\n"
		"  {\"cmd\":\"publish\",\"topic\":\"t\",\"data\":\"text\"} (or \"hex\":\"00ff\", or \"size\":1024 random bytes)\n"
		"  {\"cmd\":\"app_score\",\"peer_id\":\"...\",\"score\":-5000} (the application's score\n"
		"    for a peer; answered by an app_score event)\n"
		"  {\"cmd\":\"request\",\"peer_id\":\"...\",\"protocol\":\"/atlas/req/tx/1/pb_zstd\",\"data\":\"text\"}\n"
		"    (or \"hex\", or \"size\":N with \"seq\":K for N bytes of echo payload K; optional\n"
		"    \"timeout_ms\" for the whole response; \"peer\" may stand for \"peer_id\"):\n"
		"    a response event per chunk, then response_end\n"
		"  {\"cmd\":\"cancel\",\"id\":<the request's id>} (or \"request_id\":N): response_end canceled\n"
		"  {\"cmd\":\"respond\",\"ref\":\"<request event's ref>\",\"result\":0,\"data\":\"...\",\"last\":false}\n"
		"    (content as for request; result 1 invalid request, 2 server error, 3 resource\n"
		"    unavailable: the data is then a UTF-8 message of at most 256 bytes and ends\n"
		"    the response) -> responded\n"
		"  {\"cmd\":\"respond_end\",\"ref\":\"...\"} (end without another chunk) -> responded\n"
		"  {\"cmd\":\"stats\"}\n"
		"  {\"cmd\":\"quit\"}\n"
		"Events: listening, connected, disconnected, identify, ping, echo_done, rtt_done,\n"
		"perf_done, closed, subscribed, published, publish_failed, message, request,\n"
		"response, response_end, responded, respond_ready, stats, error (kind dial,\n"
		"handshake, ping, echo, perf, request, respond, command), quit. The README\n"
		"documents every field.\n"
		"\n"
		"The echo responder (--respond echo) reads the request as text:\n"
		"  \"chunks=N size=S\"        N chunks (0: none, just the end) of S bytes each; chunk\n"
		"                           i is the first S bytes of echo payload i (the xorshift32\n"
		"                           sequence of the echo command's stream i)\n"
		"  \"error=R msg=TEXT\"       one chunk with result R (1..3) and message TEXT (the\n"
		"                           rest of the request); after chunks=N size=S: those first\n"
		"  anything else            echoed back as one chunk\n"
		"A request that starts with chunks= or error= but does not parse is answered with\n"
		"result 1 (invalid request) and a message saying why.\n"
		"\n"
		"Exit status: 0 ok, 1 the self-check failed, 2 usage, 3 the node could not start\n"
		"(key file, listen address, io_uring)\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define MAX_SAMPLES 200000

static int self_check(long workers, double duration, int json)
{
	wisp_options o;
	wisp_options_default(&o);
	o.workers = (uint32_t)workers;
	o.stats_interval_ms = 1000;
	wisp_node *n;
	int err = wisp_node_new(&n, &o);
	if (err) {
		fprintf(stderr, "wisp-node: cannot create the node: %s: %s\n", wisp_errname(err), wisp_node_new_errmsg());
		return 3;
	}
	if ((err = wisp_node_start(n)) != WISP_OK) {
		fprintf(stderr, "wisp-node: cannot start: %s: %s\n", wisp_errname(err), wisp_node_errmsg(n));
		wisp_node_free(n);
		return 3;
	}
	wisp_stats st;
	wisp_node_stats(n, &st);
	if (json)
		printf("{\"event\":\"started\",\"workers\":%u,\"threads\":%u,\"uring_flags\":%u,\"msg_ring\":%d}\n",
		       st.threads - 1, st.threads, st.uring_flags, st.uring_msg_ring);
	else
		printf("wisp-node %s self-check: %u workers + 1 actor thread, io_uring flags 0x%x "
		       "(SINGLE_ISSUER %s, DEFER_TASKRUN %s), MSG_RING wakeups %s\n",
		       WISP_VERSION_STRING, st.threads - 1, st.uring_flags, st.uring_flags & (1u << 12) ? "on" : "off",
		       st.uring_flags & (1u << 13) ? "on" : "off", st.uring_msg_ring ? "on" : "off");

	/* Probes, 32 in flight at a time, until the duration is over. */
	uint64_t *rtt = malloc(MAX_SAMPLES * sizeof(*rtt));
	if (!rtt)
		return 1;
	size_t samples = 0, answered = 0, failed = 0, refused = 0, stats_events = 0;
	uint64_t t_end = now_ns() + (uint64_t)(duration * 1e9), cookie = 0;
	unsigned in_flight = 0;
	int fd = wisp_node_event_fd(n);
	while (now_ns() < t_end || in_flight) {
		while (in_flight < 32 && now_ns() < t_end) {
			if (wisp_node_probe(n, ++cookie) != WISP_OK) {
				refused++;
				break;
			}
			in_flight++;
		}
		wisp_event ev;
		int got = 0;
		while (wisp_node_next_event(n, &ev) == 1) {
			got = 1;
			if (ev.type == WISP_EVENT_PROBE) {
				in_flight--;
				if (ev.status != WISP_OK)
					failed++;
				else if (answered++ < MAX_SAMPLES)
					rtt[samples++] = ev.u.probe->done - ev.u.probe->sent;
			} else if (ev.type == WISP_EVENT_STATS && ev.status == WISP_OK) {
				stats_events++;
				const wisp_stats *s = ev.u.stats;
				uint64_t msgs = 0;
				for (uint32_t i = 0; i < s->threads; i++)
					msgs += s->thread[i].msgs;
				if (json)
					printf("{\"event\":\"stats\",\"msgs\":%llu,\"pool_in_use\":%llu}\n",
					       (unsigned long long)msgs, (unsigned long long)s->pool_in_use);
				else
					printf("  [stats] %llu mailbox messages so far, %llu buffers in use\n",
					       (unsigned long long)msgs, (unsigned long long)s->pool_in_use);
			}
			wisp_event_release(n, &ev);
		}
		if (!got) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 100);
		}
	}
	wisp_node_stats(n, &st);
	wisp_node_stop(n);
	/* Events queued before the stop (a late stats snapshot) hold buffers
	 * until the application takes them. */
	wisp_event ev;
	while (wisp_node_next_event(n, &ev) == 1) {
		if (ev.type == WISP_EVENT_PROBE && ev.status != WISP_OK)
			failed++;
		wisp_event_release(n, &ev);
	}
	wisp_stats after;
	wisp_node_stats(n, &after);

	qsort(rtt, samples, sizeof(*rtt), cmp_u64);
	double p50 = samples ? rtt[samples / 2] / 1e3 : 0, p99 = samples ? rtt[samples * 99 / 100] / 1e3 : 0;
	if (json) {
		printf("{\"event\":\"probes\",\"ok\":%zu,\"failed\":%zu,\"refused\":%zu,\"rtt_p50_us\":%.1f,"
		       "\"rtt_p99_us\":%.1f}\n",
		       answered, failed, refused, p50, p99);
	} else {
		printf("probes: %zu answered by every worker, %zu failed, %zu refused (mailbox full); "
		       "round trip p50 %.1f us, p99 %.1f us\n",
		       answered, failed, refused, p50, p99);
		printf("%-8s %4s %12s %10s %10s %10s %10s\n", "thread", "cpu", "messages", "wakeups", "sleeps",
		       "turns", "cpu_ms");
	}
	for (uint32_t i = 0; i < st.threads; i++) {
		const wisp_thread_stats *t = &st.thread[i];
		char name[16];
		snprintf(name, sizeof(name), "%s%u", t->kind == WISP_THREAD_WORKER ? "worker" : "actors",
			 t->kind == WISP_THREAD_WORKER ? i : i - (st.threads - 1));
		if (json)
			printf("{\"event\":\"thread\",\"name\":\"%s\",\"cpu\":%d,\"msgs\":%llu,\"wakeups\":%llu,"
			       "\"sleeps\":%llu,\"turns\":%llu,\"cpu_ns\":%llu}\n",
			       name, t->cpu, (unsigned long long)t->msgs, (unsigned long long)t->wakeups,
			       (unsigned long long)t->sleeps, (unsigned long long)t->turns,
			       (unsigned long long)t->cpu_ns);
		else
			printf("%-8s %4d %12llu %10llu %10llu %10llu %10.1f\n", name, t->cpu,
			       (unsigned long long)t->msgs, (unsigned long long)t->wakeups,
			       (unsigned long long)t->sleeps, (unsigned long long)t->turns, t->cpu_ns / 1e6);
	}
	int ok = samples > 0 && failed == 0 && after.pool_in_use == 0 && after.events_dropped == 0;
	if (json)
		printf("{\"event\":\"stopped\",\"ok\":%s,\"mailbox_full\":%llu,\"events_dropped\":%llu,"
		       "\"discarded\":%llu,\"pool_in_use\":%llu,\"pool_high\":%llu,\"stats_events\":%zu}\n",
		       ok ? "true" : "false", (unsigned long long)after.mailbox_full,
		       (unsigned long long)after.events_dropped, (unsigned long long)after.discarded,
		       (unsigned long long)after.pool_in_use, (unsigned long long)after.pool_high, stats_events);
	else
		printf("stopped: %llu sends refused (full), %llu events dropped, %llu messages discarded at stop, "
		       "%llu buffers still held (high water %llu): %s\n",
		       (unsigned long long)after.mailbox_full, (unsigned long long)after.events_dropped,
		       (unsigned long long)after.discarded, (unsigned long long)after.pool_in_use,
		       (unsigned long long)after.pool_high, ok ? "self-check passed" : "SELF-CHECK FAILED");
	free(rtt);
	wisp_node_free(n);
	return ok ? 0 : 1;
}

/* ---- the network node --------------------------------------------------- */

#define MAX_DIALS 16
#define ID_SLOTS 4096

/* How peers' requests on a protocol are answered. */
enum rr_mode { RR_APP = 0, RR_ECHO = 1, RR_NONE = 2, RR_ATLAS = 3 };
static const char *const rr_mode_name[] = { "app", "echo", "none", "atlas-demo" };

#define RR_MAX_OUT 2048  /* our requests in flight that the tool keeps track of */
#define RR_MAX_ECHO 1024 /* responses the echo responder is sending at once */
#define RR_TAG_MAX 256   /* a request command's "id", as printed back */

/* One of our requests in flight: its end event frees the entry. */
typedef struct rr_out {
	uint64_t cookie; /* 0: free */
	uint64_t id;     /* wisp_request()'s */
	char tag[RR_TAG_MAX]; /* the command's "id", re-quoted; "" when none */
} rr_out;

/* A response the echo responder is sending: chunks of echo payload, then an
 * error chunk or the end; or one chunk echoing the request back (copy). */
typedef struct rr_echo {
	uint64_t ref;    /* 0: free */
	uint32_t next, chunks, size;
	int error;       /* the result of a final error chunk; 0: none */
	bool blocked;    /* wisp_respond() said AGAIN: retry */
	bool echo_back;  /* answer with the request itself */
	bool msg_fixed;  /* msg was not UTF-8 and now says so */
	uint8_t *copy;   /* the request, to echo back (NULL when empty) */
	uint32_t copy_len;
	uint32_t msg_len;
	char msg[WISP_REQRESP_MAX_ERRMSG];
} rr_echo;

typedef struct cli {
	wisp_node *n;
	int json;
	uint32_t n_listen;
	uint32_t listening_seen;
	char listen_addrs[8][WISP_ADDR_TEXT_MAX];
	uint64_t next_cookie;
	/* command ids, by cookie: the result event repeats them */
	struct {
		uint64_t cookie;
		char id[JL_MAX_TEXT + 2];
	} ids[ID_SLOTS];
	const char *quit_why;
	wisp_topic_opts topic_opts;
	uint64_t rng;
	/* request/response */
	uint8_t rr_mode[WISP_REQRESP_MAX_PROTOCOLS]; /* by protocol index */
	atlas_demo *atlas;  /* --atlas-demo: the state the Atlas protocols serve */
	rr_out out[RR_MAX_OUT];
	rr_echo echo[RR_MAX_ECHO];
	uint32_t n_echo;    /* echo entries in use */
	uint32_t n_blocked; /* of which wait for room */
} cli;

static void remember_id(cli *c, uint64_t cookie, const jl_object *o)
{
	const jl_field *f = jl_get(o, "id");
	c->ids[cookie % ID_SLOTS].cookie = cookie;
	c->ids[cookie % ID_SLOTS].id[0] = 0;
	if (!f)
		return;
	if (f->is_string) {
		/* re-quote: the id is printed back as it came */
		char *out = c->ids[cookie % ID_SLOTS].id;
		FILE *m = fmemopen(out, sizeof(c->ids[0].id), "w");
		if (m) {
			jl_put_string(m, f->text);
			fclose(m);
		}
	} else {
		snprintf(c->ids[cookie % ID_SLOTS].id, sizeof(c->ids[0].id), "%s", f->text);
	}
}

/* `,"<key>":<id>` for the command behind cookie, if it had one. */
static void put_id_as(cli *c, uint64_t cookie, const char *key)
{
	if (cookie && c->ids[cookie % ID_SLOTS].cookie == cookie && c->ids[cookie % ID_SLOTS].id[0])
		printf(",\"%s\":%s", key, c->ids[cookie % ID_SLOTS].id);
}

static void put_id(cli *c, uint64_t cookie)
{
	put_id_as(c, cookie, "id");
}

static void json_error(cli *c, const char *kind, const char *peer, int status, const char *message,
		       uint64_t cookie)
{
	if (c->json) {
		printf("{\"event\":\"error\",\"kind\":\"%s\"", kind);
		if (peer && *peer) {
			printf(",\"peer_id\":");
			jl_put_string(stdout, peer);
		}
		if (status)
			printf(",\"code\":\"%s\"", wisp_errname(status));
		printf(",\"message\":");
		jl_put_string(stdout, message);
		put_id(c, cookie);
		printf("}\n");
	} else {
		printf("error (%s)%s%s: %s\n", kind, peer && *peer ? " with " : "", peer ? peer : "", message);
	}
}

static void print_list(const char *const *v, uint32_t n)
{
	putchar('[');
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			putchar(',');
		jl_put_string(stdout, v[i]);
	}
	putchar(']');
}

/* ---- request/response ---------------------------------------------------- */

/* The first n bytes of echo payload seq: the xorshift32 sequence of the
 * echo command's stream seq (tests/interop/README.md, "Echo payload"). */
static void echo_payload(uint32_t seq, uint8_t *out, size_t n)
{
	uint32_t x = (seq + 1) * 0x9E3779B9u;
	for (size_t i = 0; i < n;) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		for (int k = 0; k < 4 && i < n; k++)
			out[i++] = (uint8_t)(x >> (8 * k));
	}
}

static void peer_text(const wisp_peer_id *id, char out[WISP_PEER_ID_TEXT_MAX])
{
	if (wisp_peer_id_to_base58(id, out, WISP_PEER_ID_TEXT_MAX) < 0)
		out[0] = 0;
}

/* p[0..n) as a JSON string; the caller knows it is UTF-8. */
static void put_bytes(const uint8_t *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

/* `,"len":n,"sha256":"..."` and the content itself when it is short
 * enough to read: "data" for printable ASCII of at most 256 bytes (or any
 * UTF-8, when utf8 says the library checked it: error messages), else
 * "hex" up to 64 bytes. */
static void put_content(const uint8_t *p, uint32_t len, bool utf8)
{
	uint8_t sha[32];
	unsigned shalen = 0;
	EVP_Digest(p ? p : (const uint8_t *)"", len, sha, &shalen, EVP_sha256(), NULL);
	printf(",\"len\":%u,\"sha256\":\"", len);
	for (int i = 0; i < 32; i++)
		printf("%02x", sha[i]);
	putchar('"');
	bool text = utf8 || len <= 256;
	for (uint32_t i = 0; !utf8 && text && i < len; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f)
			text = false;
	if (text) {
		printf(",\"data\":");
		put_bytes(p, len);
	} else if (len <= 64) {
		printf(",\"hex\":\"");
		for (uint32_t i = 0; i < len; i++)
			printf("%02x", p[i]);
		putchar('"');
	}
}

static rr_out *out_find(cli *c, uint64_t cookie)
{
	for (uint32_t i = 0; cookie && i < RR_MAX_OUT; i++)
		if (c->out[i].cookie == cookie)
			return &c->out[i];
	return NULL;
}

static const char *end_status(int status)
{
	switch (status) {
	case WISP_OK: return "ok";
	case WISP_ERR_NOTFOUND: return "not_connected";
	case WISP_ERR_LIMIT: return "limit";
	case WISP_ERR_REFUSED: return "refused";
	case WISP_ERR_TIMEOUT: return "timeout";
	case WISP_ERR_CANCELED: return "canceled";
	case WISP_ERR_RESET: return "reset";
	default: return wisp_err_is_peer(status) ? "peer_error" : "error";
	}
}

static void on_response(cli *c, const wisp_event *ev)
{
	const wisp_response_info *r = ev->u.response;
	rr_out *o = out_find(c, ev->cookie);
	if (!r) {
		/* the library sends none without its payload; be safe anyway */
		json_error(c, "request", NULL, ev->status, "response event without its payload", ev->cookie);
		if (o && ev->type == WISP_EVENT_RESPONSE_END)
			o->cookie = 0;
		return;
	}
	char peer[WISP_PEER_ID_TEXT_MAX];
	peer_text(&r->peer, peer);
	bool end = ev->type == WISP_EVENT_RESPONSE_END;
	if (!c->json) {
		if (end)
			printf("response %llu from %s on %s ended: %s, %u chunks, %llu bytes, %.3f ms\n",
			       (unsigned long long)r->id, peer, r->protocol, ev->status ? wisp_strerror(ev->status) : "ok",
			       r->index, (unsigned long long)r->bytes, r->elapsed_ns / 1e6);
		else
			printf("response %llu from %s chunk %u: result %d, %u bytes\n", (unsigned long long)r->id, peer,
			       r->index, (int)r->result, r->len);
	} else {
		printf("{\"event\":\"%s\",\"request_id\":%llu,\"protocol\":", end ? "response_end" : "response",
		       (unsigned long long)r->id);
		jl_put_string(stdout, r->protocol);
		printf(",\"peer_id\":\"%s\"", peer);
		if (end) {
			printf(",\"status\":\"%s\",\"code\":\"%s\"", end_status(ev->status), wisp_errname(ev->status));
			if (ev->status) {
				printf(",\"message\":");
				jl_put_string(stdout, wisp_strerror(ev->status));
			}
			printf(",\"chunks\":%u,\"bytes\":%llu,\"result\":%d", r->index, (unsigned long long)r->bytes,
			       (int)r->result);
		} else {
			printf(",\"index\":%u,\"result\":%d", r->index, (int)r->result);
			put_content(r->data, r->len, r->result != WISP_RR_SUCCESS);
		}
		printf(",\"elapsed_ms\":%.3f", r->elapsed_ns / 1e6);
		if (o && o->tag[0])
			printf(",\"id\":%s", o->tag);
		printf("}\n");
	}
	if (end && o)
		o->cookie = 0;
}

static void echo_done(cli *c, rr_echo *e)
{
	if (e->blocked)
		c->n_blocked--;
	free(e->copy);
	memset(e, 0, sizeof(*e));
	c->n_echo--;
}

/* Send what the echo responder owes for e until it is all queued or
 * wisp_respond() says AGAIN (then RESPOND_READY, or the next loop turn,
 * tries again: AGAIN also means a full mailbox or pool, which no event
 * announces). */
static void echo_pump(cli *c, rr_echo *e)
{
	static uint8_t buf[WISP_REQRESP_MAX_CHUNK];
	static uint32_t buf_seq = UINT32_MAX, buf_size; /* what buf holds */
	for (;;) {
		int err;
		bool done = false;
		if (e->echo_back) {
			err = wisp_respond(c->n, e->ref, WISP_RR_SUCCESS, e->copy, e->copy_len, 1);
			done = true;
		} else if (e->next < e->chunks) {
			if (buf_seq != e->next || buf_size < e->size) {
				echo_payload(e->next, buf, e->size);
				buf_seq = e->next;
				buf_size = e->size;
			}
			bool last = e->next + 1 == e->chunks && !e->error;
			err = wisp_respond(c->n, e->ref, WISP_RR_SUCCESS, buf, e->size, last);
			if (!err && !last) {
				e->next++;
				continue;
			}
			done = true;
		} else if (e->error) {
			err = wisp_respond(c->n, e->ref, (wisp_rr_result)e->error, e->msg, e->msg_len, 1);
			done = true;
		} else {
			err = wisp_respond_end(c->n, e->ref);
			done = true;
		}
		if (err == WISP_ERR_INVALID_ARG && e->error && e->next >= e->chunks && !e->echo_back && !e->msg_fixed) {
			/* the message was not UTF-8: say so instead */
			e->msg_fixed = true;
			e->error = WISP_RR_INVALID_REQUEST;
			e->msg_len = (uint32_t)snprintf(e->msg, sizeof(e->msg), "echo responder: msg is not UTF-8");
			continue;
		}
		if (err == WISP_ERR_AGAIN) {
			if (!e->blocked)
				c->n_blocked++;
			e->blocked = true;
			return;
		}
		if (err) {
			char msg[160];
			snprintf(msg, sizeof(msg), "echo responder: respond to ref %llu: %s", (unsigned long long)e->ref,
				 wisp_strerror(err));
			json_error(c, "respond", NULL, err, msg, 0);
		}
		if (done) {
			echo_done(c, e);
			return;
		}
	}
}

/* Reads the echo responder's request text into e; 0, or -1 with why. */
static int echo_parse(const uint8_t *d, uint32_t len, rr_echo *e, char *why, size_t cap)
{
	char text[1024];
	if (len >= sizeof(text)) {
		snprintf(why, cap, "echo request over %zu bytes", sizeof(text) - 1);
		return -1;
	}
	memcpy(text, d, len);
	text[len] = 0;
	if (strlen(text) != len) {
		snprintf(why, cap, "echo request with a NUL byte");
		return -1;
	}
	bool have_chunks = false, have_size = false;
	char *p = text;
	while (*p) {
		if (*p == ' ') {
			p++;
			continue;
		}
		if (!strncmp(p, "msg=", 4)) {
			size_t n = strlen(p + 4);
			if (n > sizeof(e->msg)) {
				snprintf(why, cap, "msg over %zu bytes", sizeof(e->msg));
				return -1;
			}
			memcpy(e->msg, p + 4, n);
			e->msg_len = (uint32_t)n;
			if (!e->error) {
				snprintf(why, cap, "msg= without error=");
				return -1;
			}
			break;
		}
		char *eq = strchr(p, '='), *sp = strchr(p, ' ');
		if (!sp)
			sp = p + strlen(p);
		if (!eq || eq > sp) {
			snprintf(why, cap, "expected key=value at \"%.40s\"", p);
			return -1;
		}
		char *end;
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (end != sp || eq + 1 == sp || errno || !isdigit((unsigned char)eq[1])) {
			snprintf(why, cap, "not a number in \"%.*s\"", (int)(sp - p) > 40 ? 40 : (int)(sp - p), p);
			return -1;
		}
		size_t klen = (size_t)(eq - p);
		if (klen == 6 && !strncmp(p, "chunks", 6) && v <= 65536) {
			e->chunks = (uint32_t)v;
			have_chunks = true;
		} else if (klen == 4 && !strncmp(p, "size", 4) && v <= WISP_REQRESP_MAX_CHUNK) {
			e->size = (uint32_t)v;
			have_size = true;
		} else if (klen == 5 && !strncmp(p, "error", 5) && v >= 1 && v <= 3) {
			e->error = (int)v;
		} else {
			snprintf(why, cap, "unknown key or value out of range: \"%.*s\" (chunks <= 65536, "
					   "size <= %u, error 1..3)",
				 (int)(sp - p) > 40 ? 40 : (int)(sp - p), p, WISP_REQRESP_MAX_CHUNK);
			return -1;
		}
		p = sp;
	}
	if (have_size && !have_chunks) {
		snprintf(why, cap, "size= without chunks=");
		return -1;
	}
	return 0;
}

/* A peer's request on an echo protocol: start answering it. */
static void echo_start(cli *c, const wisp_request_info *r)
{
	rr_echo *e = NULL;
	for (uint32_t i = 0; i < RR_MAX_ECHO && !e; i++)
		if (!c->echo[i].ref)
			e = &c->echo[i];
	if (!e) {
		static const char busy[] = "echo responder: too many responses at once";
		int err = wisp_respond(c->n, r->ref, WISP_RR_UNAVAILABLE, busy, sizeof(busy) - 1, 1);
		if (err)
			json_error(c, "respond", NULL, err, "echo responder: cannot refuse a request", 0);
		return;
	}
	memset(e, 0, sizeof(*e));
	e->ref = r->ref;
	c->n_echo++;
	bool command = (r->len >= 7 && !memcmp(r->data, "chunks=", 7)) ||
		       (r->len >= 6 && !memcmp(r->data, "error=", 6));
	char why[200];
	if (!command) {
		/* anything else comes back as it came */
		if (r->len && !(e->copy = malloc(r->len))) {
			e->error = WISP_RR_SERVER_ERROR;
			e->msg_len = (uint32_t)snprintf(e->msg, sizeof(e->msg), "echo responder: out of memory");
		} else {
			if (r->len)
				memcpy(e->copy, r->data, r->len);
			e->copy_len = r->len;
			e->echo_back = true;
		}
	} else if (echo_parse(r->data, r->len, e, why, sizeof(why)) != 0) {
		memset(e->msg, 0, sizeof(e->msg));
		e->chunks = 0;
		e->error = WISP_RR_INVALID_REQUEST;
		e->msg_len = (uint32_t)snprintf(e->msg, sizeof(e->msg), "%s", why);
	}
	echo_pump(c, e);
}

/* Retry the echo responses that wisp_respond() turned away. */
static void echo_retry(cli *c, uint64_t ref)
{
	for (uint32_t i = 0; c->n_blocked && i < RR_MAX_ECHO; i++) {
		rr_echo *e = &c->echo[i];
		if (e->ref && e->blocked && (!ref || e->ref == ref)) {
			e->blocked = false;
			c->n_blocked--;
			echo_pump(c, e);
		}
	}
}

static rr_echo *echo_find(cli *c, uint64_t ref)
{
	for (uint32_t i = 0; c->n_echo && i < RR_MAX_ECHO; i++)
		if (c->echo[i].ref == ref)
			return &c->echo[i];
	return NULL;
}

static void on_request(cli *c, const wisp_event *ev)
{
	const wisp_request_info *r = ev->u.request;
	if (!r)
		return;
	uint32_t mode = r->protocol_index < WISP_REQRESP_MAX_PROTOCOLS ? c->rr_mode[r->protocol_index] : RR_APP;
	char peer[WISP_PEER_ID_TEXT_MAX];
	peer_text(&r->peer, peer);
	if (c->json) {
		/* the ref as a string: it is 64 bits, past JSON readers' exact integers */
		printf("{\"event\":\"request\",\"ref\":\"%llu\",\"protocol\":", (unsigned long long)r->ref);
		jl_put_string(stdout, r->protocol);
		printf(",\"peer_id\":\"%s\"", peer);
		put_content(r->data, r->len, false);
		printf(",\"respond\":\"%s\"}\n", rr_mode_name[mode]);
	} else {
		printf("request %llu from %s on %s: %u bytes%s\n", (unsigned long long)r->ref, peer, r->protocol, r->len,
		       mode == RR_ECHO ? " (echo responder)" : "");
	}
	if (mode == RR_ECHO)
		echo_start(c, r);
	else if (mode == RR_ATLAS)
		atlas_demo_request(c->atlas, c->n, r);
}

static void on_respond_ready(cli *c, const wisp_event *ev)
{
	uint64_t ref = ev->u.request ? ev->u.request->ref : 0;
	if (c->atlas && atlas_demo_pump(c->atlas, c->n) == 0)
		return;
	rr_echo *e = echo_find(c, ref);
	if (e) {
		echo_retry(c, ref);
		return;
	}
	if (c->json)
		printf("{\"event\":\"respond_ready\",\"ref\":\"%llu\"}\n", (unsigned long long)ref);
	else
		printf("request %llu has room for more chunks\n", (unsigned long long)ref);
}

static void on_event(cli *c, const wisp_event *ev)
{
	char hex[200];
	switch (ev->type) {
	case WISP_EVENT_LISTENING:
		if (c->listening_seen < 8)
			snprintf(c->listen_addrs[c->listening_seen], WISP_ADDR_TEXT_MAX, "%s", ev->u.listen->addr);
		if (++c->listening_seen == c->n_listen) {
			char me[WISP_PEER_ID_TEXT_MAX];
			if (wisp_peer_id_to_base58(wisp_node_peer_id(c->n), me, sizeof(me)) < 0)
				me[0] = 0;
			if (c->json) {
				printf("{\"event\":\"listening\",\"peer_id\":\"%s\",\"addrs\":[", me);
				for (uint32_t i = 0; i < c->n_listen && i < 8; i++)
					printf("%s\"%s\"", i ? "," : "", c->listen_addrs[i]);
				printf("],\"agent\":\"wisp/%s\"}\n", WISP_VERSION_STRING);
			} else {
				for (uint32_t i = 0; i < c->n_listen && i < 8; i++)
					printf("listening on %s\n", c->listen_addrs[i]);
			}
		}
		break;
	case WISP_EVENT_CONNECTED: {
		const wisp_peer_info *p = ev->u.peer;
		if (c->json) {
			printf("{\"event\":\"connected\",\"peer_id\":\"%s\",\"direction\":\"%s\",\"addr\":\"%s\","
			       "\"muxer\":\"/yamux/1.0.0\",\"encryption\":\"/noise\"",
			       p->peer_text, p->inbound ? "inbound" : "outbound", p->addr);
			put_id(c, ev->cookie);
			printf("}\n");
		} else {
			printf("connected %s %s %s\n", p->inbound ? "from" : "to", p->peer_text, p->addr);
		}
		break;
	}
	case WISP_EVENT_DISCONNECTED: {
		const wisp_peer_info *p = ev->u.peer;
		const char *reason = ev->status == WISP_ERR_CLOSED ? "local"
				     : ev->status == WISP_ERR_RESET ? "remote"
								     : wisp_strerror(ev->status);
		if (c->json) {
			printf("{\"event\":\"disconnected\",\"peer_id\":\"%s\",\"direction\":\"%s\",\"reason\":",
			       p->peer_text, p->inbound ? "inbound" : "outbound");
			jl_put_string(stdout, reason);
			printf(",\"code\":\"%s\"}\n", wisp_errname(ev->status));
		} else {
			printf("disconnected from %s (%s)\n", p->peer_text, reason);
		}
		break;
	}
	case WISP_EVENT_DIAL_FAILED:
	case WISP_EVENT_INBOUND_FAILED: {
		const wisp_peer_info *p = ev->u.peer;
		char msg[300];
		bool connect = p && !strcmp(p->stage, "connect");
		snprintf(msg, sizeof(msg), "%s%s%s: %s", ev->type == WISP_EVENT_DIAL_FAILED ? "dial " : "inbound from ",
			 p ? p->addr : "?", p && *p->stage ? (connect ? " (connect)" : " (handshake)") : "",
			 wisp_strerror(ev->status));
		json_error(c, connect ? "dial" : "handshake", p ? p->peer_text : NULL, ev->status, msg, ev->cookie);
		break;
	}
	case WISP_EVENT_IDENTIFY: {
		const wisp_identify_info *id = ev->u.identify;
		for (uint32_t i = 0; i < id->public_key_len && i < 64; i++)
			snprintf(hex + 2 * i, 3, "%02x", id->public_key[i]);
		hex[2 * (id->public_key_len < 64 ? id->public_key_len : 64)] = 0;
		if (c->json) {
			printf("{\"event\":\"identify\",\"peer_id\":\"%s\",\"agent\":", id->peer_text);
			jl_put_string(stdout, id->agent);
			printf(",\"protocol_version\":");
			jl_put_string(stdout, id->protocol_version);
			printf(",\"protocols\":");
			print_list(id->protocols, id->n_protocols);
			printf(",\"listen_addrs\":");
			print_list(id->listen_addrs, id->n_listen_addrs);
			printf(",\"observed_addr\":");
			jl_put_string(stdout, id->observed_addr);
			printf(",\"public_key\":\"%s\",\"push\":%s,\"signed_peer_record\":%d}\n", hex,
			       id->push ? "true" : "false", id->signed_peer_record);
		} else {
			printf("identify %s: agent \"%s\", %u protocols, %u listen addresses\n", id->peer_text, id->agent,
			       id->n_protocols, id->n_listen_addrs);
		}
		break;
	}
	case WISP_EVENT_PING: {
		const wisp_ping_info *p = ev->u.ping;
		if (ev->status) {
			char msg[200];
			snprintf(msg, sizeof(msg), "ping failed: %s", wisp_strerror(ev->status));
			json_error(c, "ping", p ? p->peer_text : NULL, ev->status, msg, ev->cookie);
		} else if (c->json) {
			printf("{\"event\":\"ping\",\"peer_id\":\"%s\",\"rtt_us\":%.1f", p->peer_text, p->rtt_ns / 1e3);
			put_id(c, ev->cookie);
			printf("}\n");
		} else {
			printf("ping %s: %.1f us\n", p->peer_text, p->rtt_ns / 1e3);
		}
		break;
	}
	case WISP_EVENT_TEST: {
		const wisp_test_result *t = ev->u.test;
		const char *kind = !t ? "echo" : t->test.kind == WISP_TEST_PERF ? "perf" : "echo";
		if (ev->status || !t) {
			char msg[200];
			snprintf(msg, sizeof(msg), "%s failed: %s", t && t->test.kind == WISP_TEST_RTT ? "rtt" : kind,
				 wisp_strerror(ev->status));
			json_error(c, kind, t ? t->peer_text : NULL, ev->status, msg, ev->cookie);
			break;
		}
		double us = t->elapsed_ns / 1e3, sec = t->elapsed_ns / 1e9;
		if (t->test.kind == WISP_TEST_ECHO) {
			for (int i = 0; i < 32; i++)
				snprintf(hex + 2 * i, 3, "%02x", t->sha256[i]);
			double mib = sec > 0 ? t->bytes / 1048576.0 / sec : 0;
			if (c->json)
				printf("{\"event\":\"echo_done\",\"peer_id\":\"%s\",\"streams\":%u,\"bytes\":%llu,\"ok\":%s,"
				       "\"sha256\":\"%s\",\"elapsed_us\":%.0f,\"mbps\":%.1f,\"mib_per_s\":%.1f",
				       t->peer_text, t->test.streams, (unsigned long long)t->test.bytes,
				       t->ok ? "true" : "false", hex, us, mib * 8 * 1.048576, mib);
			else
				printf("echo %s: %u x %llu bytes %s in %.3f s (%.1f MiB/s)\n", t->peer_text, t->test.streams,
				       (unsigned long long)t->test.bytes, t->ok ? "ok" : "MISMATCH", sec, mib);
		} else if (t->test.kind == WISP_TEST_RTT) {
			double per = sec > 0 ? t->test.count / sec : 0;
			if (c->json)
				printf("{\"event\":\"rtt_done\",\"peer_id\":\"%s\",\"count\":%u,\"size\":%u,\"ok\":%s,"
				       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"per_sec\":%.0f,"
				       "\"elapsed_us\":%.0f",
				       t->peer_text, t->test.count, t->test.size, t->ok ? "true" : "false", t->p50_ns / 1e3,
				       t->p90_ns / 1e3, t->p99_ns / 1e3, t->max_ns / 1e3, per, us);
			else
				printf("rtt %s: %u x %u bytes, p50 %.1f us, p99 %.1f us, %.0f/s%s\n", t->peer_text,
				       t->test.count, t->test.size, t->p50_ns / 1e3, t->p99_ns / 1e3, per,
				       t->ok ? "" : " MISMATCH");
		} else {
			double up = t->upload_ns ? t->test.upload * 8 / (t->upload_ns / 1e3) : 0;
			double down = t->download_ns ? t->test.download * 8 / (t->download_ns / 1e3) : 0;
			if (c->json)
				printf("{\"event\":\"perf_done\",\"peer_id\":\"%s\",\"upload\":%llu,\"download\":%llu,"
				       "\"ok\":%s,\"elapsed_us\":%.0f,\"upload_us\":%.0f,\"download_us\":%.0f,"
				       "\"upload_mbps\":%.1f,\"download_mbps\":%.1f",
				       t->peer_text, (unsigned long long)t->test.upload,
				       (unsigned long long)t->test.download, t->ok ? "true" : "false", us,
				       t->upload_ns / 1e3, t->download_ns / 1e3, up, down);
			else
				printf("perf %s: up %llu bytes (%.0f Mbit/s), down %llu bytes (%.0f Mbit/s)%s\n",
				       t->peer_text, (unsigned long long)t->test.upload, up,
				       (unsigned long long)t->test.download, down, t->ok ? "" : " INCOMPLETE");
		}
		if (c->json) {
			put_id(c, ev->cookie);
			printf("}\n");
		}
		break;
	}
	case WISP_EVENT_SUBSCRIBED: {
		const wisp_topic_info *t = ev->u.topic;
		if (ev->status) {
			char msg[320];
			snprintf(msg, sizeof(msg), "subscribe %s: %s", t ? t->topic : "?", wisp_strerror(ev->status));
			json_error(c, "command", NULL, ev->status, msg, ev->cookie);
		} else if (c->json) {
			printf("{\"event\":\"%s\",\"topic\":", t->subscribed ? "subscribed" : "unsubscribed");
			jl_put_string(stdout, t->topic);
			put_id(c, ev->cookie);
			printf("}\n");
		} else {
			printf("%s %s\n", t->subscribed ? "subscribed to" : "unsubscribed from", t->topic);
		}
		break;
	}
	case WISP_EVENT_PUBLISHED: {
		const wisp_published_info *p = ev->u.published;
		for (uint32_t i = 0; p && i < p->id_len; i++)
			snprintf(hex + 2 * i, 3, "%02x", p->id[i]);
		if (p)
			hex[2 * p->id_len] = 0;
		if (ev->status && ev->status != WISP_ERR_NOTFOUND) {
			const char *why = ev->status == WISP_ERR_TOO_LARGE ? "too_large"
					  : ev->status == WISP_ERR_EXISTS  ? "duplicate"
					  : ev->status == WISP_ERR_AGAIN   ? "queue_full"
					  : ev->status == WISP_ERR_NOMEM   ? "no_memory"
									   : wisp_strerror(ev->status);
			if (c->json) {
				printf("{\"event\":\"publish_failed\",\"topic\":");
				jl_put_string(stdout, p ? p->topic : "");
				printf(",\"reason\":\"%s\"", why);
				put_id_as(c, ev->cookie, "cmd_id"); /* "id" is the message's */
				printf("}\n");
			} else {
				printf("publish to %s failed: %s\n", p ? p->topic : "?", why);
			}
		} else if (ev->status == WISP_ERR_NOTFOUND) {
			/* no peer on the topic: cached and gossiped to peers that join */
			if (c->json) {
				printf("{\"event\":\"publish_failed\",\"topic\":");
				jl_put_string(stdout, p ? p->topic : "");
				printf(",\"reason\":\"no_peers\",\"id\":\"%s\"", p ? hex : "");
				put_id_as(c, ev->cookie, "cmd_id"); /* "id" is the message's */
				printf("}\n");
			} else {
				printf("published to %s: no peers yet (id %s)\n", p ? p->topic : "?", p ? hex : "");
			}
		} else if (c->json) {
			printf("{\"event\":\"published\",\"topic\":");
			jl_put_string(stdout, p->topic);
			printf(",\"id\":\"%s\",\"peers\":%u", hex, p->peers);
			put_id_as(c, ev->cookie, "cmd_id"); /* "id" is the message's */
			printf("}\n");
		} else {
			printf("published to %s: %u peers (id %s)\n", p->topic, p->peers, hex);
		}
		break;
	}
	case WISP_EVENT_MESSAGE: {
		const wisp_message_info *m = ev->u.message;
		char from[WISP_PEER_ID_TEXT_MAX] = "", src[WISP_PEER_ID_TEXT_MAX] = "";
		if (m->from.len && wisp_peer_id_to_base58(&m->from, from, sizeof(from)) < 0)
			from[0] = 0;
		if (m->source.len && wisp_peer_id_to_base58(&m->source, src, sizeof(src)) < 0)
			src[0] = 0;
		for (uint32_t i = 0; i < m->id_len; i++)
			snprintf(hex + 2 * i, 3, "%02x", m->id[i]);
		hex[2 * m->id_len] = 0;
		uint8_t sha[32];
		unsigned shalen = 0;
		EVP_Digest(m->data, m->len, sha, &shalen, EVP_sha256(), NULL);
		char shahex[65];
		for (int i = 0; i < 32; i++)
			snprintf(shahex + 2 * i, 3, "%02x", sha[i]);
		bool text = m->len <= 256;
		for (uint32_t i = 0; text && i < m->len; i++)
			if (m->data[i] < 0x20 || m->data[i] >= 0x7f)
				text = false;
		if (c->json) {
			printf("{\"event\":\"message\",\"topic\":");
			jl_put_string(stdout, m->topic);
			printf(",\"from\":");
			if (from[0])
				printf("\"%s\"", from);
			else
				printf("null");
			printf(",\"id\":\"%s\",\"size\":%u,\"sha256\":\"%s\"", hex, m->len, shahex);
			if (text) {
				char d[257];
				memcpy(d, m->data, m->len);
				d[m->len] = 0;
				printf(",\"data\":");
				jl_put_string(stdout, d);
			}
			printf(",\"propagation_source\":\"%s\"}\n", src);
		} else {
			printf("message on %s from %s (%u bytes)%s%.*s\n", m->topic, from[0] ? from : "(unsigned)", m->len,
			       text ? ": " : "", text ? (int)m->len : 0, text ? (const char *)m->data : "");
		}
		break;
	}
	case WISP_EVENT_CLOSED:
		if (ev->status == WISP_ERR_NOTFOUND) {
			json_error(c, "command", ev->u.peer ? ev->u.peer->peer_text : NULL, ev->status,
				   "close: not connected to that peer", ev->cookie);
		} else if (c->json) {
			printf("{\"event\":\"closed\",\"peer_id\":\"%s\"", ev->u.peer ? ev->u.peer->peer_text : "");
			put_id(c, ev->cookie);
			printf("}\n");
		} else {
			printf("closing the connections to %s\n", ev->u.peer ? ev->u.peer->peer_text : "?");
		}
		break;
	case WISP_EVENT_REQUEST:
		on_request(c, ev);
		break;
	case WISP_EVENT_RESPONSE:
	case WISP_EVENT_RESPONSE_END:
		on_response(c, ev);
		break;
	case WISP_EVENT_RESPOND_READY:
		on_respond_ready(c, ev);
		break;
	default:
		break;
	}
}

static void print_stats(cli *c, uint64_t cookie)
{
	wisp_stats s;
	wisp_node_stats(c->n, &s);
	if (c->json) {
		printf("{\"event\":\"stats\",\"conns_in\":%llu,\"conns_out\":%llu,\"open\":%llu,\"upgraded\":%llu,"
		       "\"handshake_failures\":%llu,\"handshake_timeouts\":%llu,\"peer_errors\":%llu,"
		       "\"slow_closes\":%llu,\"conn_limit\":%llu,\"dial_failures\":%llu,\"bytes_in\":%llu,"
		       "\"bytes_out\":%llu,\"resets\":%llu,\"streams_refused\":%llu,\"streams_capped\":%llu,"
		       "\"identify_errors\":%llu,\"ping_errors\":%llu,\"peer_record_errors\":%llu,"
		       "\"pool_in_use\":%llu,\"mailbox_full\":%llu,"
		       "\"events_dropped\":%llu,\"gossip\":{\"peers\":%llu,\"rpc_in\":%llu,\"rpc_out\":%llu,"
		       "\"rpc_bad\":%llu,\"msg_in\":%llu,\"msg_duplicate\":%llu,\"msg_accepted\":%llu,"
		       "\"msg_delivered\":%llu,\"msg_forwarded\":%llu,\"msg_rejected\":%llu,"
		       "\"msg_bad_signature\":%llu,\"msg_policy\":%llu,\"published\":%llu,"
		       "\"idontwant_in\":%llu,\"idontwant_out\":%llu,\"frames_dropped\":%llu,"
		       "\"px_received\":%llu,\"px_ignored\":%llu,\"px_bad_record\":%llu,"
		       "\"px_unsupported_key\":%llu,\"px_dialed\":%llu,\"px_records_sent\":%llu}"
		       ",\"reqresp\":{\"requests_out\":%llu,\"responses_ok\":%llu,\"failed\":%llu,"
		       "\"timeouts\":%llu,\"canceled\":%llu,\"refused\":%llu,\"out_limit\":%llu,\"resets\":%llu,"
		       "\"bad_responses\":%llu,\"chunks_in\":%llu,\"bytes_in\":%llu,\"requests_in\":%llu,"
		       "\"admitted\":%llu,\"busy\":%llu,\"rate_limited\":%llu,\"bad_requests\":%llu,"
		       "\"respond_timeouts\":%llu,\"chunks_out\":%llu,\"bytes_out\":%llu,\"dropped\":%llu}",
		       (unsigned long long)s.net.conns_in, (unsigned long long)s.net.conns_out,
		       (unsigned long long)s.net.open, (unsigned long long)s.net.upgraded,
		       (unsigned long long)s.net.handshake_failures, (unsigned long long)s.net.handshake_timeouts,
		       (unsigned long long)s.net.peer_errors, (unsigned long long)s.net.slow_closes,
		       (unsigned long long)s.net.conn_limit, (unsigned long long)s.net.dial_failures,
		       (unsigned long long)s.net.bytes_in, (unsigned long long)s.net.bytes_out,
		       (unsigned long long)s.net.resets, (unsigned long long)s.net.streams_refused,
		       (unsigned long long)s.net.streams_capped, (unsigned long long)s.net.identify_errors,
		       (unsigned long long)s.net.ping_errors, (unsigned long long)s.net.peer_record_errors,
		       (unsigned long long)s.pool_in_use,
		       (unsigned long long)s.mailbox_full, (unsigned long long)s.events_dropped,
		       (unsigned long long)s.gossip.peers, (unsigned long long)s.gossip.rpc_in,
		       (unsigned long long)s.gossip.rpc_out, (unsigned long long)s.gossip.rpc_bad,
		       (unsigned long long)s.gossip.msg_in, (unsigned long long)s.gossip.msg_duplicate,
		       (unsigned long long)s.gossip.msg_accepted, (unsigned long long)s.gossip.msg_delivered,
		       (unsigned long long)s.gossip.msg_forwarded, (unsigned long long)s.gossip.msg_rejected,
		       (unsigned long long)s.gossip.msg_bad_signature, (unsigned long long)s.gossip.msg_policy,
		       (unsigned long long)s.gossip.published, (unsigned long long)s.gossip.idontwant_in,
		       (unsigned long long)s.gossip.idontwant_out, (unsigned long long)s.gossip.frames_dropped,
		       (unsigned long long)s.gossip.px_received, (unsigned long long)s.gossip.px_ignored,
		       (unsigned long long)s.gossip.px_bad_record, (unsigned long long)s.gossip.px_unsupported_key,
		       (unsigned long long)s.gossip.px_dialed, (unsigned long long)s.gossip.px_records_sent,
		       (unsigned long long)s.reqresp.requests_out, (unsigned long long)s.reqresp.responses_ok,
		       (unsigned long long)s.reqresp.failed, (unsigned long long)s.reqresp.timeouts,
		       (unsigned long long)s.reqresp.canceled, (unsigned long long)s.reqresp.refused,
		       (unsigned long long)s.reqresp.out_limit, (unsigned long long)s.reqresp.resets,
		       (unsigned long long)s.reqresp.bad_responses, (unsigned long long)s.reqresp.chunks_in,
		       (unsigned long long)s.reqresp.bytes_in, (unsigned long long)s.reqresp.requests_in,
		       (unsigned long long)s.reqresp.admitted, (unsigned long long)s.reqresp.busy,
		       (unsigned long long)s.reqresp.rate_limited, (unsigned long long)s.reqresp.bad_requests,
		       (unsigned long long)s.reqresp.respond_timeouts, (unsigned long long)s.reqresp.chunks_out,
		       (unsigned long long)s.reqresp.bytes_out, (unsigned long long)s.reqresp.dropped);
		put_id(c, cookie);
		printf("}\n");
	} else {
		printf("stats: %llu in, %llu out, %llu open, %llu handshake failures (%llu timeouts), "
		       "%llu peer errors, %llu slow peers closed\n",
		       (unsigned long long)s.net.conns_in, (unsigned long long)s.net.conns_out,
		       (unsigned long long)s.net.open, (unsigned long long)s.net.handshake_failures,
		       (unsigned long long)s.net.handshake_timeouts, (unsigned long long)s.net.peer_errors,
		       (unsigned long long)s.net.slow_closes);
		printf("stats: requests %llu out (%llu ok, %llu failed), %llu in (%llu answered by us, %llu busy, "
		       "%llu rate limited, %llu invalid)\n",
		       (unsigned long long)s.reqresp.requests_out, (unsigned long long)s.reqresp.responses_ok,
		       (unsigned long long)s.reqresp.failed, (unsigned long long)s.reqresp.requests_in,
		       (unsigned long long)s.reqresp.admitted, (unsigned long long)s.reqresp.busy,
		       (unsigned long long)s.reqresp.rate_limited, (unsigned long long)s.reqresp.bad_requests);
	}
}

static int peer_arg(cli *c, const jl_object *o, wisp_peer_id *id, uint64_t cookie)
{
	const char *text = jl_str(o, "peer_id");
	if (!text)
		text = jl_str(o, "peer"); /* request's documented spelling; any command takes it */
	if (!text) {
		json_error(c, "command", NULL, 0, "missing \"peer_id\"", cookie);
		return -1;
	}
	int err = wisp_peer_id_parse(id, text, strlen(text));
	if (err) {
		json_error(c, "command", text, err, "\"peer_id\" is not a peer id", cookie);
		return -1;
	}
	return 0;
}

/* The content of a publish, request or respond command, into buf: "data"
 * (text), "hex", or "size" bytes (random for publish; else echo payload
 * "seq", default 0). None of them: *len = 0, or an error when need is set.
 * Returns 0, or -1 after printing the error. */
static int payload_arg(cli *c, const jl_object *o, const char *cmd, bool random, bool need, uint8_t *buf,
		       size_t cap, size_t *len, uint64_t cookie)
{
	const char *text = jl_str(o, "data"), *hexs = jl_str(o, "hex");
	long long size = jl_uint(o, "size", -2), seq = jl_uint(o, "seq", 0);
	char msg[160];
	*len = 0;
	if ((text != NULL) + (hexs != NULL) + (size != -2) > 1 || (!text && !hexs && size == -2 && need)) {
		snprintf(msg, sizeof(msg), "%s needs one of \"data\", \"hex\", \"size\"", cmd);
		json_error(c, "command", NULL, 0, msg, cookie);
		return -1;
	}
	if (text) {
		*len = strlen(text);
		memcpy(buf, text, *len); /* JL_MAX_TEXT < cap */
	} else if (hexs) {
		size_t hl = strlen(hexs);
		for (size_t i = 0; i < hl; i += 2) {
			unsigned v;
			if (hl % 2 || hl / 2 > cap || !isxdigit((unsigned char)hexs[i]) ||
			    !isxdigit((unsigned char)hexs[i + 1]) || sscanf(hexs + i, "%2x", &v) != 1) {
				json_error(c, "command", NULL, 0, "\"hex\" must be an even number of hex digits", cookie);
				return -1;
			}
			buf[(*len)++] = (uint8_t)v;
		}
	} else if (size != -2) {
		if (size < 0 || (unsigned long long)size > cap || seq < 0 || seq > UINT32_MAX) {
			snprintf(msg, sizeof(msg), "\"size\" is at most %zu, \"seq\" a 32-bit count", cap);
			json_error(c, "command", NULL, 0, msg, cookie);
			return -1;
		}
		if (random) {
			for (long long i = 0; i < size; i++) {
				c->rng ^= c->rng << 13;
				c->rng ^= c->rng >> 7;
				c->rng ^= c->rng << 17;
				buf[i] = (uint8_t)c->rng;
			}
		} else {
			echo_payload((uint32_t)seq, buf, (size_t)size);
		}
		*len = (size_t)size;
	}
	return 0;
}

/* A request event's "ref": a decimal string (as printed) or number. */
static int ref_arg(cli *c, const jl_object *o, uint64_t *ref, uint64_t cookie)
{
	const jl_field *f = jl_get(o, "ref");
	char *end = NULL;
	errno = 0;
	*ref = f && isdigit((unsigned char)f->text[0]) ? strtoull(f->text, &end, 10) : 0;
	if (!f || !end || *end || errno || !*ref) {
		json_error(c, "command", NULL, 0, "\"ref\" must be a request event's ref", cookie);
		return -1;
	}
	return 0;
}

/* A true/false field; def when absent; -1 when malformed. */
static int bool_arg(const jl_object *o, const char *key, int def)
{
	const jl_field *f = jl_get(o, key);
	if (!f)
		return def;
	if (f->is_string)
		return -1;
	return !strcmp(f->text, "true") ? 1 : !strcmp(f->text, "false") ? 0 : -1;
}

/* The content of the command being run (publish, request, respond). */
static uint8_t payload[WISP_REQRESP_MAX_CHUNK];

static void command(cli *c, const char *line)
{
	static jl_object o; /* 16 fields of up to JL_MAX_TEXT: too big for the stack */
	const char *why;
	uint64_t cookie = ++c->next_cookie;
	if (jl_parse(line, &o, &why) != 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "bad command line (%s): %.200s", why, line);
		json_error(c, "command", NULL, 0, msg, 0);
		return;
	}
	remember_id(c, cookie, &o);
	const char *cmd = jl_str(&o, "cmd");
	if (!cmd) {
		json_error(c, "command", NULL, 0, "missing \"cmd\"", cookie);
		return;
	}
	int err = WISP_OK;
	const char *kind = "command";
	wisp_peer_id peer;
	if (!strcmp(cmd, "quit")) {
		c->quit_why = "command";
		return;
	} else if (!strcmp(cmd, "stats")) {
		print_stats(c, cookie);
		return;
	} else if (!strcmp(cmd, "dial")) {
		const char *addr = jl_str(&o, "addr");
		if (!addr) {
			json_error(c, "command", NULL, 0, "missing \"addr\"", cookie);
			return;
		}
		kind = "dial";
		err = wisp_dial(c->n, addr, cookie);
	} else if (!strcmp(cmd, "ping") || !strcmp(cmd, "close")) {
		if (peer_arg(c, &o, &peer, cookie))
			return;
		kind = cmd[0] == 'p' ? "ping" : "command";
		err = cmd[0] == 'p' ? wisp_ping(c->n, &peer, cookie) : wisp_disconnect(c->n, &peer, cookie);
	} else if (!strcmp(cmd, "subscribe") || !strcmp(cmd, "unsubscribe")) {
		const char *topic = jl_str(&o, "topic");
		if (!topic) {
			json_error(c, "command", NULL, 0, "missing \"topic\"", cookie);
			return;
		}
		/* the node's topic options, with this topic's priority and
		 * compression when the command gives them */
		wisp_topic_opts to = c->topic_opts;
		const char *prio = jl_str(&o, "priority"), *comp = jl_str(&o, "compress");
		if ((prio && strcmp(prio, "high") && strcmp(prio, "normal")) ||
		    (comp && strcmp(comp, "zstd") && strcmp(comp, "none"))) {
			json_error(c, "command", NULL, 0, "\"priority\" is high or normal, \"compress\" zstd or none",
				   cookie);
			return;
		}
		if (prio)
			to.priority = !strcmp(prio, "high") ? WISP_PRIORITY_HIGH : WISP_PRIORITY_NORMAL;
		if (comp)
			to.compress = !strcmp(comp, "zstd") ? WISP_COMPRESS_ZSTD : WISP_COMPRESS_NONE;
		err = cmd[0] == 's' ? wisp_subscribe(c->n, topic, &to, cookie) : wisp_unsubscribe(c->n, topic, cookie);
	} else if (!strcmp(cmd, "publish")) {
		const char *topic = jl_str(&o, "topic");
		if (!topic) {
			json_error(c, "command", NULL, 0, "publish needs \"topic\" and one of \"data\", \"hex\", \"size\"", cookie);
			return;
		}
		uint8_t *buf = payload;
		size_t len;
		if (payload_arg(c, &o, "publish", true, true, buf, sizeof(payload), &len, cookie))
			return;
		err = wisp_publish(c->n, topic, buf, len, cookie);
	} else if (!strcmp(cmd, "request")) {
		const char *proto = jl_str(&o, "protocol");
		long long timeout = jl_uint(&o, "timeout_ms", 0);
		if (!proto || timeout < 0 || timeout > UINT32_MAX) {
			json_error(c, "command", NULL, 0, "request needs \"protocol\" (and \"timeout_ms\" is a 32-bit count)",
				   cookie);
			return;
		}
		if (peer_arg(c, &o, &peer, cookie))
			return;
		const char *tag = c->ids[cookie % ID_SLOTS].id;
		size_t tag_len = strlen(tag);
		if (tag_len >= RR_TAG_MAX) {
			json_error(c, "command", NULL, 0, "a request's \"id\" is at most 255 characters", cookie);
			return;
		}
		rr_out *slot = out_find(c, 0);
		for (uint32_t i = 0; !slot && i < RR_MAX_OUT; i++)
			if (!c->out[i].cookie)
				slot = &c->out[i];
		if (!slot) {
			json_error(c, "request", NULL, WISP_ERR_LIMIT, "request: 2048 requests in flight already", cookie);
			return;
		}
		uint8_t *buf = payload;
		size_t len;
		if (payload_arg(c, &o, "request", false, false, buf, sizeof(payload), &len, cookie))
			return;
		uint64_t id = 0;
		kind = "request";
		err = wisp_request(c->n, &peer, proto, buf, len, (uint32_t)timeout, cookie, &id);
		if (!err) {
			slot->cookie = cookie;
			slot->id = id;
			memcpy(slot->tag, tag, tag_len + 1);
		}
	} else if (!strcmp(cmd, "cancel")) {
		long long rid = jl_uint(&o, "request_id", -2);
		const char *tag = c->ids[cookie % ID_SLOTS].id;
		rr_out *target = NULL;
		for (uint32_t i = 0; !target && i < RR_MAX_OUT; i++)
			if (c->out[i].cookie && (rid >= 0 ? c->out[i].id == (uint64_t)rid
							 : rid == -2 && tag[0] && !strcmp(c->out[i].tag, tag)))
				target = &c->out[i];
		if (!target) {
			json_error(c, "command", NULL, 0, "cancel: no request in flight with that \"id\" or \"request_id\"",
				   cookie);
			return;
		}
		kind = "request";
		err = wisp_request_cancel(c->n, target->id);
	} else if (!strcmp(cmd, "respond") || !strcmp(cmd, "respond_end")) {
		uint64_t ref;
		if (ref_arg(c, &o, &ref, cookie))
			return;
		bool end_only = cmd[7] == '_';
		long long result = jl_uint(&o, "result", 0);
		int last = bool_arg(&o, "last", 0);
		if (result < 0 || result > 3 || last < 0) {
			json_error(c, "command", NULL, 0, "\"result\" is 0..3 and \"last\" true or false", cookie);
			return;
		}
		uint8_t *buf = payload;
		size_t len = 0;
		if (!end_only && payload_arg(c, &o, "respond", false, false, buf, sizeof(payload), &len, cookie))
			return;
		kind = "respond";
		err = end_only ? wisp_respond_end(c->n, ref)
			       : wisp_respond(c->n, ref, (wisp_rr_result)result, buf, len, last);
		if (!err && !c->json)
			printf("responded to %llu%s\n", (unsigned long long)ref, end_only ? " (end)" : "");
		if (!err && c->json) {
			printf("{\"event\":\"responded\",\"ref\":\"%llu\"", (unsigned long long)ref);
			if (end_only)
				printf(",\"end\":true");
			else
				printf(",\"result\":%lld,\"len\":%zu,\"last\":%s", result, len,
				       last || result ? "true" : "false");
			put_id(c, cookie);
			printf("}\n");
		}
	} else if (!strcmp(cmd, "echo") || !strcmp(cmd, "rtt") || !strcmp(cmd, "perf")) {
		if (peer_arg(c, &o, &peer, cookie))
			return;
		wisp_test_spec t = { 0 };
		long long a, b;
		if (cmd[0] == 'e') {
			t.kind = WISP_TEST_ECHO;
			a = jl_uint(&o, "bytes", 1 << 20);
			b = jl_uint(&o, "streams", 1);
			t.bytes = (uint64_t)a;
			t.streams = (uint32_t)b;
			kind = "echo";
		} else if (cmd[0] == 'r') {
			t.kind = WISP_TEST_RTT;
			a = jl_uint(&o, "size", 1024);
			b = jl_uint(&o, "count", 1000);
			t.size = (uint32_t)a;
			t.count = (uint32_t)b;
			kind = "echo";
		} else {
			t.kind = WISP_TEST_PERF;
			a = jl_uint(&o, "upload", 0);
			b = jl_uint(&o, "download", 0);
			t.upload = (uint64_t)a;
			t.download = (uint64_t)b;
			kind = "perf";
		}
		if (a < 0 || b < 0 || b > UINT32_MAX * (cmd[0] == 'p' ? 1ll << 31 : 1ll)) {
			json_error(c, "command", NULL, 0, "numeric fields must be non-negative integers in range", cookie);
			return;
		}
		err = wisp_stream_test(c->n, &peer, &t, cookie);
	} else if (!strcmp(cmd, "app_score")) {
		if (peer_arg(c, &o, &peer, cookie))
			return;
		const jl_field *f = jl_get(&o, "score");
		char *end = NULL;
		double v = f && !f->is_string ? strtod(f->text, &end) : 0;
		if (!f || f->is_string || *end) {
			json_error(c, "command", NULL, 0, "app_score needs a number \"score\"", cookie);
			return;
		}
		err = wisp_set_app_score(c->n, &peer, v);
		if (!err && c->json) {
			/* the library answers nothing: the command's own event */
			printf("{\"event\":\"app_score\",\"peer_id\":");
			jl_put_string(stdout, jl_str(&o, "peer_id"));
			printf(",\"score\":%.17g", v);
			put_id(c, cookie);
			printf("}\n");
		}
	} else {
		char msg[120];
		snprintf(msg, sizeof(msg), "unknown command \"%.60s\"", cmd);
		json_error(c, "command", NULL, 0, msg, cookie);
		return;
	}
	if (err) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%.20s: %s%s", cmd, wisp_strerror(err),
			 err == WISP_ERR_AGAIN && !strcmp(kind, "respond") ? " (retry; after respond_ready when the window was full)" : "");
		json_error(c, err == WISP_ERR_INVALID_ARG || err == WISP_ERR_MALFORMED || err == WISP_ERR_UNKNOWN_CODE
				      ? "command"
				      : kind,
			   NULL, err, msg, cookie);
	}
}

typedef struct gossip_args {
	const char *topics[16];
	uint32_t n_topics;
	wisp_topic_opts opts;
	const char *explicit_peers[WISP_MAX_EXPLICIT_PEERS];
	uint32_t n_explicit;
} gossip_args;

typedef struct rr_args {
	char protos[WISP_REQRESP_MAX_PROTOCOLS][WISP_REQRESP_PROTOCOL_MAX + 1];
	int mode[WISP_REQRESP_MAX_PROTOCOLS]; /* -1: --respond's */
	uint32_t n;
	int respond; /* --respond */
	bool atlas;  /* --atlas-demo */
	atlas_demo_cfg atlas_cfg;
	uint32_t atlas_rate;
} rr_args;

/* --atlas-demo's "txs=N,height=H,chunks=C,chunk_size=S,senders=K,pending=P,
 * rate=R" (any subset; "default" for none). False when it does not parse. */
static bool parse_atlas_spec(const char *spec, rr_args *ra)
{
	atlas_demo_cfg_default(&ra->atlas_cfg);
	ra->atlas_rate = 0;
	if (!strcmp(spec, "default"))
		return true;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '='), *end;
		if (!eq)
			return false;
		*eq = 0;
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (errno || *end || eq[1] == 0 || v > UINT32_MAX)
			return false;
		atlas_demo_cfg *c = &ra->atlas_cfg;
		if (!strcmp(t, "txs"))
			c->txs = (uint32_t)v;
		else if (!strcmp(t, "height"))
			c->height = v;
		else if (!strcmp(t, "chunks"))
			c->chunks = (uint32_t)v;
		else if (!strcmp(t, "chunk_size"))
			c->chunk_size = (uint32_t)v;
		else if (!strcmp(t, "senders"))
			c->senders = (uint32_t)v;
		else if (!strcmp(t, "pending"))
			c->pending = (uint32_t)v;
		else if (!strcmp(t, "rate"))
			ra->atlas_rate = (uint32_t)v;
		else
			return false;
	}
	return true;
}

static int run_node(const char *key_path, const char **listen, uint32_t n_listen, const char **dials,
		    uint32_t n_dials, double duration, int json, long workers, uint32_t services,
		    const gossip_args *ga, const rr_args *ra)
{
	static cli c;
	memset(&c, 0, sizeof(c));
	c.json = json;
	c.topic_opts = ga->opts;
	c.rng = now_ns() | 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	wisp_privkey key;
	wisp_options o;
	wisp_options_default(&o);
	o.workers = (uint32_t)workers;
	o.listen = listen;
	o.n_listen = n_listen;
	o.services = services;
	o.explicit_peers = ga->explicit_peers;
	o.n_explicit_peers = ga->n_explicit;
	if (key_path) {
		unsigned mode;
		int err = wisp_privkey_read_file(&key, key_path, &mode);
		if (err) {
			fprintf(stderr, "wisp-node: key file %s: %s%s\n", key_path, wisp_strerror(err),
				err == WISP_ERR_PERM ? " (chmod 600 it)" : "");
			return EXIT_START;
		}
		o.identity = &key;
	}
	int err = wisp_node_new(&c.n, &o);
	if (key_path)
		wisp_privkey_wipe(&key);
	if (err) {
		fprintf(stderr, "wisp-node: cannot create the node: %s: %s\n", wisp_errname(err),
			wisp_node_new_errmsg());
		return EXIT_START;
	}
	for (uint32_t i = 0; i < ra->n; i++) {
		wisp_reqresp_opts ro;
		wisp_reqresp_opts_default(&ro);
		int mode = ra->mode[i] >= 0 ? ra->mode[i] : ra->respond;
		ro.serve = mode != RR_NONE;
		int idx = wisp_reqresp_register(c.n, ra->protos[i], &ro);
		if (idx < 0) {
			fprintf(stderr, "wisp-node: --reqresp %s: %s\n", ra->protos[i], wisp_strerror(idx));
			wisp_node_free(c.n);
			return EXIT_USAGE;
		}
		c.rr_mode[idx] = (uint8_t)mode;
	}
	if (ra->atlas) {
		c.atlas = atlas_demo_new(&ra->atlas_cfg);
		wisp_reqresp_opts base;
		wisp_reqresp_opts_default(&base);
		base.rate_per_peer = ra->atlas_rate;
		int first = (int)ra->n; /* registered after the --reqresp ones */
		if (!c.atlas || (err = wisp_atlas_register(c.n, &base)) != WISP_OK) {
			fprintf(stderr, "wisp-node: --atlas-demo: %s\n",
				c.atlas ? wisp_strerror(err) : "a setting is out of range (see --help)");
			atlas_demo_free(c.atlas);
			wisp_node_free(c.n);
			return EXIT_USAGE;
		}
		for (int i = 0; i < WISP_ATLAS_PROTOCOLS; i++)
			c.rr_mode[first + i] = RR_ATLAS;
	}
	if ((err = wisp_node_start(c.n)) != WISP_OK) {
		fprintf(stderr, "wisp-node: cannot start: %s: %s\n", wisp_errname(err), wisp_node_errmsg(c.n));
		atlas_demo_free(c.atlas);
		wisp_node_free(c.n);
		return EXIT_START;
	}
	c.n_listen = n_listen;
	if (n_listen == 0) {
		char me[WISP_PEER_ID_TEXT_MAX];
		if (wisp_peer_id_to_base58(wisp_node_peer_id(c.n), me, sizeof(me)) < 0)
			me[0] = 0;
		if (json)
			printf("{\"event\":\"listening\",\"peer_id\":\"%s\",\"addrs\":[],\"agent\":\"wisp/%s\"}\n", me,
			       WISP_VERSION_STRING);
		else
			printf("peer id %s (not listening)\n", me);
	}
	for (uint32_t i = 0; i < ga->n_topics; i++) {
		uint64_t cookie = ++c.next_cookie;
		c.ids[cookie % ID_SLOTS].cookie = cookie;
		c.ids[cookie % ID_SLOTS].id[0] = 0;
		if ((err = wisp_subscribe(c.n, ga->topics[i], &c.topic_opts, cookie))) {
			char msg[300];
			snprintf(msg, sizeof(msg), "--topic %.200s: %s", ga->topics[i], wisp_strerror(err));
			json_error(&c, "command", NULL, err, msg, 0);
		}
	}
	for (uint32_t i = 0; i < n_dials; i++) {
		uint64_t cookie = ++c.next_cookie;
		c.ids[cookie % ID_SLOTS].cookie = cookie;
		c.ids[cookie % ID_SLOTS].id[0] = 0;
		if ((err = wisp_dial(c.n, dials[i], cookie))) {
			char msg[300];
			snprintf(msg, sizeof(msg), "--dial %.200s: %s", dials[i], wisp_strerror(err));
			json_error(&c, "dial", NULL, err, msg, 0);
		}
	}

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	uint64_t end = duration > 0 ? now_ns() + (uint64_t)(duration * 1e9) : 0;
	static char line[64 * 1024];
	size_t have = 0;
	bool stdin_open = true;
	while (!c.quit_why) {
		wisp_event ev;
		while (wisp_node_next_event(c.n, &ev) == 1) {
			on_event(&c, &ev);
			wisp_event_release(c.n, &ev);
		}
		/* echo responses turned away by a full mailbox or pool hear no
		 * RESPOND_READY: retry them every few ms */
		echo_retry(&c, 0);
		uint32_t atlas_waiting = c.atlas ? atlas_demo_pump(c.atlas, c.n) : 0;
		int timeout = c.n_blocked || atlas_waiting ? 5 : -1;
		if (end) {
			uint64_t now = now_ns();
			if (now >= end) {
				c.quit_why = "duration";
				break;
			}
			int left = (int)((end - now) / 1000000u) + 1;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		struct pollfd p[3] = { { .fd = wisp_node_event_fd(c.n), .events = POLLIN },
				       { .fd = sfd, .events = POLLIN },
				       { .fd = stdin_open ? 0 : -1, .events = POLLIN } };
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				c.quit_why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
		}
		if (p[2].revents & (POLLIN | POLLHUP)) {
			ssize_t r = read(0, line + have, sizeof(line) - 1 - have);
			if (r <= 0) {
				stdin_open = false;
				if (!end)
					c.quit_why = "stdin closed";
			} else {
				have += (size_t)r;
				char *nl;
				while ((nl = memchr(line, '\n', have))) {
					*nl = 0;
					if (nl > line && nl[-1] == '\r')
						nl[-1] = 0;
					if (line[0])
						command(&c, line);
					size_t used = (size_t)(nl - line) + 1;
					memmove(line, nl + 1, have - used);
					have -= used;
				}
				if (have == sizeof(line) - 1) {
					json_error(&c, "command", NULL, 0, "command line longer than 64 KiB: dropped", 0);
					have = 0;
				}
			}
		}
	}
	wisp_node_stop(c.n);
	wisp_event ev;
	while (wisp_node_next_event(c.n, &ev) == 1) {
		on_event(&c, &ev);
		wisp_event_release(c.n, &ev);
	}
	for (uint32_t i = 0; i < RR_MAX_ECHO; i++)
		free(c.echo[i].copy); /* echo responses cut short by the stop */
	if (json)
		printf("{\"event\":\"quit\",\"why\":\"%s\"}\n", c.quit_why ? c.quit_why : "error");
	else
		printf("stopped (%s)\n", c.quit_why ? c.quit_why : "error");
	wisp_node_free(c.n);
	atlas_demo_free(c.atlas);
	if (sfd >= 0)
		close(sfd);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "self-check", no_argument, NULL, 's' }, { "workers", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' }, { "json", no_argument, NULL, 'j' },
		{ "key", required_argument, NULL, 'k' },       { "listen", required_argument, NULL, 'l' },
		{ "dial", required_argument, NULL, 'D' },      { "serve", required_argument, NULL, 'S' },
		{ "topic", required_argument, NULL, 'T' },     { "sign", required_argument, NULL, 'G' },
		{ "msg-id", required_argument, NULL, 'M' },    { "help", no_argument, NULL, 'h' },
		{ "compress", required_argument, NULL, 'Z' },  { "priority", required_argument, NULL, 'P' },
		{ "explicit", required_argument, NULL, 'X' },  { "reqresp", required_argument, NULL, 'R' },
		{ "respond", required_argument, NULL, 'A' },   { "atlas-demo", required_argument, NULL, 'Y' },
		{ NULL, 0, NULL, 0 },
	};
	gossip_args ga;
	memset(&ga, 0, sizeof(ga));
	static rr_args ra;
	ra.respond = RR_APP;
	wisp_topic_opts_default(&ga.opts);
	int msgid_set = 0;
	int self = 0, json = 0, c, duration_set = 0;
	long workers = 0;
	double duration = 0;
	const char *key = NULL, *listen[8], *dials[MAX_DIALS];
	uint32_t n_listen = 0, n_dials = 0, services = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's': self = 1; break;
		case 'j': json = 1; break;
		case 'k': key = optarg; break;
		case 'l':
			if (n_listen == 8) {
				fprintf(stderr, "wisp-node: at most 8 --listen\n");
				return EXIT_USAGE;
			}
			listen[n_listen++] = optarg;
			break;
		case 'D':
			if (n_dials == MAX_DIALS) {
				fprintf(stderr, "wisp-node: at most %d --dial\n", MAX_DIALS);
				return EXIT_USAGE;
			}
			dials[n_dials++] = optarg;
			break;
		case 'S': {
			char buf[64];
			snprintf(buf, sizeof(buf), "%s", optarg);
			for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
				if (!strcmp(t, "echo"))
					services |= WISP_SERVICE_ECHO;
				else if (!strcmp(t, "perf"))
					services |= WISP_SERVICE_PERF;
				else {
					fprintf(stderr, "wisp-node: --serve takes echo and/or perf, not '%s'\n", t);
					return EXIT_USAGE;
				}
			}
			break;
		}
		case 'X':
			if (ga.n_explicit == WISP_MAX_EXPLICIT_PEERS) {
				fprintf(stderr, "wisp-node: at most %d --explicit\n", WISP_MAX_EXPLICIT_PEERS);
				return EXIT_USAGE;
			}
			ga.explicit_peers[ga.n_explicit++] = optarg;
			break;
		case 'R': {
			if (ra.n == WISP_REQRESP_MAX_PROTOCOLS) {
				fprintf(stderr, "wisp-node: at most %d --reqresp\n", WISP_REQRESP_MAX_PROTOCOLS);
				return EXIT_USAGE;
			}
			/* PROTOCOL or PROTOCOL=MODE */
			const char *eq = strrchr(optarg, '=');
			int mode = -1;
			for (int m = 0; eq && m < 3; m++)
				if (!strcmp(eq + 1, rr_mode_name[m]))
					mode = m;
			size_t len = mode >= 0 ? (size_t)(eq - optarg) : strlen(optarg);
			if (len == 0 || len > WISP_REQRESP_PROTOCOL_MAX || optarg[0] != '/') {
				fprintf(stderr, "wisp-node: --reqresp takes a protocol id (/..., at most %d bytes), "
						"optionally with =echo, =app or =none, not '%s'\n",
					WISP_REQRESP_PROTOCOL_MAX, optarg);
				return EXIT_USAGE;
			}
			memcpy(ra.protos[ra.n], optarg, len);
			ra.protos[ra.n][len] = 0;
			ra.mode[ra.n++] = mode;
			break;
		}
		case 'Y':
			if (!parse_atlas_spec(optarg, &ra)) {
				fprintf(stderr, "wisp-node: --atlas-demo takes 'default' or key=value pairs (txs, height, "
						"chunks, chunk_size, senders, pending, rate), not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			ra.atlas = true;
			break;
		case 'A': {
			int mode = -1;
			for (int m = 0; m < 3; m++)
				if (!strcmp(optarg, rr_mode_name[m]))
					mode = m;
			if (mode < 0) {
				fprintf(stderr, "wisp-node: --respond takes app, echo or none, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			ra.respond = mode;
			break;
		}
		case 'T':
			if (ga.n_topics == 16) {
				fprintf(stderr, "wisp-node: at most 16 --topic\n");
				return EXIT_USAGE;
			}
			ga.topics[ga.n_topics++] = optarg;
			break;
		case 'G':
		case 'M':
		case 'Z':
		case 'P': {
			/* --sign, --msg-id, --compress, --priority: a word from a short list */
			static const struct {
				int opt;
				const char *word;
				int value;
			} words[] = {
				{ 'G', "strict", WISP_SIGN_STRICT },    { 'G', "none", WISP_SIGN_NONE },
				{ 'M', "default", WISP_MSGID_DEFAULT }, { 'M', "content", WISP_MSGID_CONTENT },
				{ 'M', "js", WISP_MSGID_KEY_SEQNO },    { 'Z', "zstd", WISP_COMPRESS_ZSTD },
				{ 'Z', "none", WISP_COMPRESS_NONE },    { 'P', "high", WISP_PRIORITY_HIGH },
				{ 'P', "normal", WISP_PRIORITY_NORMAL },
			};
			int found = -1;
			for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
				if (words[i].opt == c && !strcmp(words[i].word, optarg))
					found = words[i].value;
			if (found < 0) {
				const char *name = c == 'G' ? "--sign" : c == 'M' ? "--msg-id" : c == 'Z' ? "--compress" : "--priority";
				const char *choice = c == 'G'   ? "strict or none"
						     : c == 'M' ? "default, content or js"
						     : c == 'Z' ? "zstd or none"
								: "high or normal";
				fprintf(stderr, "wisp-node: %s takes %s, not '%s'\n", name, choice, optarg);
				return EXIT_USAGE;
			}
			if (c == 'G') {
				ga.opts.sign = (wisp_sign_policy)found;
			} else if (c == 'Z') {
				ga.opts.compress = (wisp_compression)found;
			} else if (c == 'P') {
				ga.opts.priority = (wisp_topic_priority)found;
			} else {
				ga.opts.msgid = (wisp_msgid_kind)found;
				msgid_set = 1;
			}
			break;
		}
		case 'w':
			workers = strtol(optarg, &end, 10);
			if (*end || workers < 1 || workers > 64) {
				fprintf(stderr, "wisp-node: --workers takes 1..64, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			duration = strtod(optarg, &end);
			if (*end || duration <= 0 || duration > 86400 * 365) {
				fprintf(stderr, "wisp-node: --duration takes seconds > 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			duration_set = 1;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "wisp-node: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (self) {
		if (key || n_listen || n_dials || services || ga.n_topics || ga.n_explicit || ra.n) {
			fprintf(stderr, "wisp-node: --self-check takes only --workers, --duration and --json\n");
			return EXIT_USAGE;
		}
		return self_check(workers, duration_set ? duration : 2, json);
	}
	if (ga.opts.sign == WISP_SIGN_NONE && ga.opts.msgid != WISP_MSGID_CONTENT) {
		if (msgid_set && ga.opts.msgid != WISP_MSGID_DEFAULT) {
			fprintf(stderr, "wisp-node: --sign none has no author or seqno: use --msg-id content\n");
			return EXIT_USAGE;
		}
		ga.opts.msgid = WISP_MSGID_CONTENT;
	}
	return run_node(key, listen, n_listen, dials, n_dials, duration, json, workers, services, &ga, &ra);
}
