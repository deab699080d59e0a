/* stream-bench: secured-stream throughput and request latency of wisp and
 * js-libp2p in one run, beside the crypto bound measured in the same run.
 *
 *   crypto     ChaCha20-Poly1305 (OpenSSL EVP, the cipher wisp's Noise uses)
 *              on full Noise frames (65519-byte payload + 16-byte tag), seal
 *              and open, in this process on one core: a secured stream
 *              cannot carry payload faster than one core seals it;
 *   pairs      two peer processes on 127.0.0.1 driven over pipes with the
 *              JSON-lines protocol of `wisp-node --json` and js-peer.mjs:
 *              wisp-wisp, js-js, wisp-js (wisp dials and drives a js
 *              listener), js-wisp. Per run and pair:
 *                perf   /perf/1.0.0 download (server -> client), MB/s from
 *                       download_us: the secured single-stream throughput;
 *                echo   /wisp/echo/1.0.0, one stream, MB/s one way from
 *                       elapsed_us (every byte crosses the link twice);
 *                rtt    size-byte requests on one echo stream, one at a time:
 *                       requests/s, p50 and p99 round trip.
 *
 * Rounds interleave the crypto runs and every pair, so machine noise falls
 * on all of them alike; a warm-up round (not counted) comes first, because
 * js's first transfer runs before the JIT and the yamux windows warm up.
 *
 * Output: `key=value` rows like ring-bench, each starting with
 * bench=stream-bench, min/median/max over --runs; then a summary for people
 * (lines starting with '#'). perf/README.md describes every row. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "perf/bench.h"

#ifndef WISP_SOURCE_DIR
#error "perf/CMakeLists.txt defines WISP_SOURCE_DIR (the source tree, for js-peer.mjs)"
#endif

#define MiB (1ull << 20)
#define MAX_RUNS 64
#define NOISE_PAYLOAD 65519 /* a full Noise transport frame: 65535 bytes with the tag */
#define NOISE_TAG 16

static struct {
	const char *wisp_node, *js_peer, *node, *pairs;
	int runs, wisp_workers;
	bool skip_js, warmup, split;
	uint64_t perf_bytes, echo_bytes, crypto_bytes;
	uint32_t rtt_size, rtt_count, js_rtt_count;
} cfg = {
	.node = "node",
	.pairs = "wisp-wisp,js-js,wisp-js,js-wisp",
	.runs = 5,
	.warmup = true,
	.split = true,
	.perf_bytes = 256 * MiB,
	.echo_bytes = 64 * MiB,
	.crypto_bytes = 256 * MiB,
	.rtt_size = 1024,
	.rtt_count = 10000,
	.js_rtt_count = 10000,
};

static char machine[160]; /* appended to every row, as ring-bench does */
static int failures;      /* measurements that failed: exit status 1 */

/* ---- small helpers ----------------------------------------------------- */

typedef struct stat3 {
	double min, median, max;
	int n;
} stat3;

/* min, median (the upper one for an even count, as ring-bench) and max. */
static stat3 stat_of(const double *v, int n)
{
	stat3 s = { NAN, NAN, NAN, n };
	if (n <= 0)
		return s;
	double t[MAX_RUNS];
	memcpy(t, v, (size_t)n * sizeof(*t));
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	s.min = t[0];
	s.median = t[n / 2];
	s.max = t[n - 1];
	return s;
}

/* "256M", "64K", "1G" or plain bytes; 0 on a malformed value. */
static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* Past one JSON value at p; NULL when it is cut off. */
static const char *skip_value(const char *p)
{
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (*p == '\\' && p[1])
				p++;
		return *p ? p + 1 : NULL;
	}
	if (*p == '{' || *p == '[') {
		int depth = 0;
		bool str = false;
		for (; *p; p++) {
			if (str) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '"')
					str = false;
			} else if (*p == '"') {
				str = true;
			} else if (*p == '{' || *p == '[') {
				depth++;
			} else if ((*p == '}' || *p == ']') && --depth == 0) {
				return p + 1;
			}
		}
		return NULL;
	}
	while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ')
		p++;
	return p;
}

/* Top-level field `key` of a one-line JSON object (the events of both
 * peers): a string's characters without the quotes (\" and \\ undone),
 * anything else as written (arrays and objects whole). False when absent. */
static bool jfield(const char *line, const char *key, char *out, size_t cap)
{
	const char *p = skip_ws(line);
	size_t klen = strlen(key);
	if (*p++ != '{')
		return false;
	for (;;) {
		p = skip_ws(p);
		if (*p != '"')
			return false;
		const char *k = p + 1;
		if (!(p = skip_value(p)))
			return false;
		bool hit = (size_t)(p - 1 - k) == klen && !memcmp(k, key, klen);
		p = skip_ws(p);
		if (*p++ != ':')
			return false;
		const char *v = skip_ws(p);
		if (!(p = skip_value(v)))
			return false;
		if (hit) {
			const char *a = v, *b = p;
			if (*v == '"')
				a++, b--;
			size_t n = 0;
			for (; a < b && n + 1 < cap; a++) {
				if (*v == '"' && *a == '\\' && (a[1] == '"' || a[1] == '\\'))
					a++;
				out[n++] = *a;
			}
			out[n] = 0;
			return true;
		}
		p = skip_ws(p);
		if (*p++ != ',')
			return false;
	}
}

static bool jnum(const char *line, const char *key, double *v)
{
	char t[64], *end;
	if (!jfield(line, key, t, sizeof(t)) || !t[0])
		return false;
	*v = strtod(t, &end);
	return !*end;
}

static bool jtrue(const char *line, const char *key)
{
	char t[8];
	return jfield(line, key, t, sizeof(t)) && !strcmp(t, "true");
}

/* ---- the crypto bound -------------------------------------------------- */

typedef struct crypto {
	EVP_CIPHER *alg;
	EVP_CIPHER_CTX *ctx;
	uint8_t *plain, *sealed[8], *out;
	bool ok;
	double seal[MAX_RUNS], open[MAX_RUNS];           /* MB per CPU-second of this thread: the bound */
	double seal_wall[MAX_RUNS], open_wall[MAX_RUNS]; /* MB per wall second, preemption included */
	int n;
} crypto;

static void nonce_of(uint8_t iv[12], uint64_t n)
{
	/* Noise ChaChaPoly: 32 zero bits, then the counter little-endian */
	memset(iv, 0, 4);
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(n >> (8 * i));
}

static bool aead_seal(crypto *c, uint64_t n, uint8_t *out)
{
	uint8_t iv[12];
	int len;
	nonce_of(iv, n);
	return EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, iv, 1) == 1 &&
	       EVP_CipherUpdate(c->ctx, out, &len, c->plain, NOISE_PAYLOAD) == 1 &&
	       EVP_CipherFinal_ex(c->ctx, out + NOISE_PAYLOAD, &len) == 1 &&
	       EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_GET_TAG, NOISE_TAG, out + NOISE_PAYLOAD) == 1;
}

static bool aead_open(crypto *c, uint64_t n, const uint8_t *in)
{
	uint8_t iv[12];
	int len;
	nonce_of(iv, n);
	return EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, iv, 0) == 1 &&
	       EVP_CipherUpdate(c->ctx, c->out, &len, in, NOISE_PAYLOAD) == 1 &&
	       EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_TAG, NOISE_TAG, (void *)(in + NOISE_PAYLOAD)) == 1 &&
	       EVP_CipherFinal_ex(c->ctx, c->out + NOISE_PAYLOAD, &len) == 1;
}

static bool crypto_init(crypto *c)
{
	static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	memset(c, 0, sizeof(*c));
	/* Fetched once, as net/noise_xx.c does (an implicit fetch per init costs). */
	c->alg = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	c->ctx = EVP_CIPHER_CTX_new();
	c->plain = malloc(NOISE_PAYLOAD);
	c->out = malloc(NOISE_PAYLOAD + NOISE_TAG);
	if (!c->alg || !c->ctx || !c->plain || !c->out ||
	    EVP_CipherInit_ex(c->ctx, c->alg, NULL, key, NULL, 1) != 1)
		return false;
	for (size_t i = 0; i < NOISE_PAYLOAD; i++)
		c->plain[i] = (uint8_t)(i * 131 + 7);
	/* Open runs cycle through 8 valid frames (nonces 0..7). */
	for (int i = 0; i < 8; i++)
		if (!(c->sealed[i] = malloc(NOISE_PAYLOAD + NOISE_TAG)) || !aead_seal(c, (uint64_t)i, c->sealed[i]))
			return false;
	return c->ok = true;
}

static void crypto_fini(crypto *c)
{
	EVP_CIPHER_CTX_free(c->ctx);
	EVP_CIPHER_free(c->alg);
	free(c->plain);
	free(c->out);
	for (int i = 0; i < 8; i++)
		free(c->sealed[i]);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One seal run and one open run over cfg.crypto_bytes of payload. The bound
 * is taken per CPU-second of this thread: what one core does, whatever else
 * the machine runs meanwhile (the wall-clock rates are kept beside it). */
static void crypto_round(crypto *c, bool record)
{
	uint64_t frames = (cfg.crypto_bytes + NOISE_PAYLOAD - 1) / NOISE_PAYLOAD;
	double mb = (double)(frames * NOISE_PAYLOAD) / 1e6;
	uint64_t t0 = now_ns(), u0 = thread_cpu_ns();
	for (uint64_t i = 0; i < frames; i++)
		if (!aead_seal(c, i, c->out))
			c->ok = false;
	uint64_t t1 = now_ns(), u1 = thread_cpu_ns();
	for (uint64_t i = 0; i < frames; i++)
		if (!aead_open(c, i & 7, c->sealed[i & 7]))
			c->ok = false;
	uint64_t t2 = now_ns(), u2 = thread_cpu_ns();
	if (record && c->n < MAX_RUNS) {
		c->seal[c->n] = mb / ((u1 - u0) / 1e9);
		c->open[c->n] = mb / ((u2 - u1) / 1e9);
		c->seal_wall[c->n] = mb / ((t1 - t0) / 1e9);
		c->open_wall[c->n] = mb / ((t2 - t1) / 1e9);
		c->n++;
	}
}

/* ---- peer processes ------------------------------------------------------ */

#define BACKLOG 64

typedef struct peer {
	char name[48]; /* "wisp-js/server" */
	bool js;
	pid_t pid;
	int pidfd;
	int in, out, err; /* our ends of its stdin, stdout, stderr */
	char obuf[65536], ebuf[4096];
	size_t ohave, ehave;
	bool odrop, edrop; /* a line longer than the buffer is being skipped */
	char *backlog[BACKLOG]; /* stdout lines not taken yet, oldest first */
	int n_backlog;
	bool out_eof, err_eof, reaped;
	int status;
	int error_events;
	char peer_id[128], addr[256];
} peer;

/* Starts argv with pipes on its stdin, stdout and stderr. The child gets
 * SIGTERM if this process dies first, so no peer outlives the bench. */
/* Restrict the calling process to the lower (half 1) or upper (half 2) half
 * of the CPUs it may use. */
static void cpu_half(int half)
{
	cpu_set_t all, mine;
	if (!half || sched_getaffinity(0, sizeof(all), &all) != 0)
		return;
	int n = CPU_COUNT(&all), seen = 0;
	if (n < 2)
		return;
	CPU_ZERO(&mine);
	for (int c = 0; c < CPU_SETSIZE && seen < n; c++) {
		if (!CPU_ISSET(c, &all))
			continue;
		if ((half == 1) == (seen < n / 2))
			CPU_SET(c, &mine);
		seen++;
	}
	(void)sched_setaffinity(0, sizeof(mine), &mine);
}

static int peer_spawn(peer *p, char *const argv[], int half)
{
	int in[2], out[2], err[2];
	p->pid = -1;
	p->pidfd = -1;
	p->in = p->out = p->err = -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL); /* ignored here, and exec would keep that */
		cpu_half(half);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->pid = pid;
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 before Linux 5.3: then waitpid alone */
	return 0;
}

static void peer_take_line(peer *p, char *line, bool is_err)
{
	if (is_err) {
		printf("# %s stderr: %s\n", p->name, line);
		return;
	}
	char ev[32];
	if (jfield(line, "event", ev, sizeof(ev)) && !strcmp(ev, "error")) {
		p->error_events++;
		printf("# %s error event: %s\n", p->name, line);
	}
	if (p->n_backlog == BACKLOG) { /* unclaimed chatter (identify, connected): drop the oldest */
		free(p->backlog[0]);
		memmove(p->backlog, p->backlog + 1, (BACKLOG - 1) * sizeof(char *));
		p->n_backlog--;
	}
	p->backlog[p->n_backlog++] = strdup(line);
}

/* Reads what fd has and hands out complete lines. */
static void peer_read(peer *p, bool is_err)
{
	int fd = is_err ? p->err : p->out;
	char *buf = is_err ? p->ebuf : p->obuf;
	size_t cap = is_err ? sizeof(p->ebuf) : sizeof(p->obuf);
	size_t *have = is_err ? &p->ehave : &p->ohave;
	bool *drop = is_err ? &p->edrop : &p->odrop;
	ssize_t r = read(fd, buf + *have, cap - 1 - *have);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		if (*have && !*drop) {
			buf[*have] = 0;
			peer_take_line(p, buf, is_err);
		}
		*have = 0;
		close(fd);
		if (is_err) {
			p->err = -1;
			p->err_eof = true;
		} else {
			p->out = -1;
			p->out_eof = true;
		}
		return;
	}
	*have += (size_t)r;
	char *nl;
	while ((nl = memchr(buf, '\n', *have))) {
		*nl = 0;
		if (!*drop && nl > buf)
			peer_take_line(p, buf, is_err);
		*drop = false;
		size_t used = (size_t)(nl - buf) + 1;
		memmove(buf, nl + 1, *have - used);
		*have -= used;
	}
	if (*have == cap - 1) { /* longer than any event we need: skip to its end */
		*have = 0;
		*drop = true;
	}
}

/* Waits until one of the peers' pipes has something (or the deadline) and
 * reads it. Returns false at the deadline. */
static bool pump(peer **ps, int n, uint64_t deadline) /* n <= 8 */
{
	struct pollfd pf[2 * 8];
	peer *who[2 * 8];
	bool is_err[2 * 8];
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (ps[i]->out >= 0) {
			pf[k] = (struct pollfd){ .fd = ps[i]->out, .events = POLLIN };
			who[k] = ps[i];
			is_err[k++] = false;
		}
		if (ps[i]->err >= 0) {
			pf[k] = (struct pollfd){ .fd = ps[i]->err, .events = POLLIN };
			who[k] = ps[i];
			is_err[k++] = true;
		}
	}
	uint64_t now = now_ns();
	if (now >= deadline)
		return false;
	if (k == 0)
		return true;
	int timeout = (int)((deadline - now) / 1000000u) + 1;
	int r = poll(pf, (nfds_t)k, timeout);
	if (r < 0 && errno != EINTR)
		return false;
	for (int i = 0; i < k; i++)
		if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
			peer_read(who[i], is_err[i]);
	return true;
}

/* An event `event` from p (with "id" == id, or an error event with that id,
 * when id is set). Reads every peer in ps meanwhile so none blocks on a full
 * pipe. Returns the line (free it) or NULL with *why set. */
static char *peer_wait(peer *p, peer **ps, int n, const char *event, const char *id, uint64_t deadline,
		       const char **why)
{
	for (;;) {
		for (int i = 0; i < p->n_backlog; i++) {
			char *line = p->backlog[i], ev[32], got[64];
			if (!jfield(line, "event", ev, sizeof(ev)))
				continue;
			bool match = id ? jfield(line, "id", got, sizeof(got)) && !strcmp(got, id) &&
						  (!strcmp(ev, event) || !strcmp(ev, "error"))
					: !strcmp(ev, event);
			if (match) {
				memmove(p->backlog + i, p->backlog + i + 1, (size_t)(p->n_backlog - i - 1) * sizeof(char *));
				p->n_backlog--;
				return line;
			}
		}
		if (p->out_eof) {
			*why = "the peer exited";
			return NULL;
		}
		if (!pump(ps, n, deadline)) {
			*why = "timed out";
			return NULL;
		}
	}
}

static bool peer_send(peer *p, const char *line)
{
	size_t len = strlen(line), off = 0;
	while (p->in >= 0 && off < len) {
		ssize_t w = write(p->in, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		off += (size_t)w;
	}
	return off == len;
}

/* Sends {"cmd":...,<fields>,"id":"cN"} and waits for `event` or an error
 * with that id. Returns the result line (free it) or NULL with a reason in
 * why (an error event's message when the peer reported one). */
static char *peer_request(peer *p, peer **ps, int n, const char *fields, const char *event, uint64_t timeout,
			  char *why, size_t why_cap)
{
	static unsigned seq;
	char id[32], line[1024];
	snprintf(id, sizeof(id), "c%u", ++seq);
	snprintf(line, sizeof(line), "{%s,\"id\":\"%s\"}\n", fields, id);
	if (!peer_send(p, line)) {
		snprintf(why, why_cap, "cannot write to the peer: %s", strerror(errno));
		return NULL;
	}
	const char *reason = NULL;
	char *got = peer_wait(p, ps, n, event, id, now_ns() + timeout, &reason);
	if (!got) {
		snprintf(why, why_cap, "%s", reason);
		return NULL;
	}
	char ev[32];
	if (jfield(got, "event", ev, sizeof(ev)) && !strcmp(ev, "error")) {
		char msg[300] = "";
		jfield(got, "message", msg, sizeof(msg));
		snprintf(why, why_cap, "error event: %s", msg);
		free(got);
		return NULL;
	}
	return got;
}

/* CPU seconds p has used so far, all its threads (user + system), from the
 * process's CPU-time clock (Linux lets any process read another's); NAN
 * when it cannot be read. */
static double peer_cpu_s(const peer *p)
{
	clockid_t clk;
	struct timespec ts;
	if (p->pid <= 0 || p->reaped || clock_getcpuclockid(p->pid, &clk) || clock_gettime(clk, &ts))
		return NAN;
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reaps p when it has exited; true once it has. */
static bool peer_reap(peer *p, bool block)
{
	if (p->reaped || p->pid <= 0)
		return true;
	int st;
	pid_t r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
	if (r == p->pid) {
		p->reaped = true;
		p->status = st;
	}
	return p->reaped;
}

/* Asks every peer to quit (quit command, then end of stdin), waits up to the
 * deadline for each to exit, kills the late ones by pid and reaps all. */
static void peers_stop(peer **ps, int n, uint64_t deadline) /* n <= 8 */
{
	for (int i = 0; i < n; i++) {
		if (ps[i]->pid <= 0)
			continue;
		peer_send(ps[i], "{\"cmd\":\"quit\"}\n");
		if (ps[i]->in >= 0)
			close(ps[i]->in);
		ps[i]->in = -1;
	}
	for (;;) {
		bool all = true;
		for (int i = 0; i < n; i++)
			if (!peer_reap(ps[i], false))
				all = false;
		if (all || now_ns() >= deadline)
			break;
		/* Wake on output, end of output or exit (pidfds), else by the deadline. */
		struct pollfd pf[3 * 8];
		peer *who[3 * 8];
		int kind[3 * 8], k = 0; /* 0 stdout, 1 stderr, 2 pidfd */
		bool pidfds = true;
		for (int i = 0; i < n; i++) {
			if (ps[i]->reaped || ps[i]->pid <= 0)
				continue;
			int fds[3] = { ps[i]->out, ps[i]->err, ps[i]->pidfd };
			for (int j = 0; j < 3; j++)
				if (fds[j] >= 0) {
					pf[k] = (struct pollfd){ .fd = fds[j], .events = POLLIN };
					who[k] = ps[i];
					kind[k++] = j;
				}
			pidfds &= ps[i]->pidfd >= 0;
		}
		uint64_t now = now_ns();
		int timeout = (int)((deadline - now) / 1000000u) + 1;
		if (!pidfds && timeout > 50)
			timeout = 50; /* no pidfd (Linux < 5.3): exits are only seen by asking waitpid */
		if (poll(pf, (nfds_t)k, timeout) <= 0)
			continue;
		for (int i = 0; i < k; i++)
			if (kind[i] < 2 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				peer_read(who[i], kind[i] == 1);
	}
	for (int i = 0; i < n; i++) {
		peer *p = ps[i];
		if (p->pid > 0 && !p->reaped) {
			printf("# %s did not exit in time: killing pid %d\n", p->name, (int)p->pid);
			kill(p->pid, SIGKILL);
			peer_reap(p, true);
		}
		if (p->pid > 0 && p->status && !(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0))
			printf("# %s exited with %s %d\n", p->name, WIFSIGNALED(p->status) ? "signal" : "status",
			       WIFSIGNALED(p->status) ? WTERMSIG(p->status) : WEXITSTATUS(p->status));
		int *fds[] = { &p->in, &p->out, &p->err, &p->pidfd };
		for (int j = 0; j < 4; j++)
			if (*fds[j] >= 0) {
				close(*fds[j]);
				*fds[j] = -1;
			}
		for (int j = 0; j < p->n_backlog; j++)
			free(p->backlog[j]);
		p->n_backlog = 0;
	}
}

/* ---- pairs ----------------------------------------------------------------- */

enum { M_PERF, M_PERF_CPU_SERVER, M_PERF_CPU_CLIENT, M_ECHO, M_RTT_RATE, M_RTT_P50, M_RTT_P99, M_COUNT };

static const struct {
	const char *name, *unit;
	bool throughput; /* compared with the crypto bound */
	bool lower_better;
} metric[M_COUNT] = {
	[M_PERF] = { "perf_download", "MB/s", true, false },
	/* payload per CPU-second of the process (all threads) during perf:
	 * the sender seals, the receiver opens; comparable with the bound */
	[M_PERF_CPU_SERVER] = { "perf_server_mb_per_cpu_s", "MB/cpu-s", true, false },
	[M_PERF_CPU_CLIENT] = { "perf_client_mb_per_cpu_s", "MB/cpu-s", true, false },
	[M_ECHO] = { "echo_one_way", "MB/s", true, false },
	[M_RTT_RATE] = { "rtt_rate", "req/s", false, false },
	[M_RTT_P50] = { "rtt_p50", "us", false, true },
	[M_RTT_P99] = { "rtt_p99", "us", false, true },
};

typedef struct pair {
	const char *name; /* client-server: the client dials and runs the commands */
	bool client_js, server_js;
	bool wanted, up;
	peer client, server;
	uint32_t rtt_count;
	double v[M_COUNT][MAX_RUNS];
	int n[M_COUNT];
	int failed;
	stat3 s[M_COUNT];
} pair;

static pair pairs[4] = {
	{ .name = "wisp-wisp" },
	{ .name = "js-js", .client_js = true, .server_js = true },
	{ .name = "wisp-js", .server_js = true },
	{ .name = "js-wisp", .client_js = true },
};

static int spawn_side(pair *pr, bool server)
{
	peer *p = server ? &pr->server : &pr->client;
	bool js = server ? pr->server_js : pr->client_js;
	snprintf(p->name, sizeof(p->name), "%s/%s", pr->name, server ? "server" : "client");
	p->js = js;
	char *argv[12];
	int k = 0;
	char workers[16];
	if (js) {
		argv[k++] = (char *)cfg.node;
		argv[k++] = (char *)cfg.js_peer;
	} else {
		argv[k++] = (char *)cfg.wisp_node;
		argv[k++] = "--json";
		if (cfg.wisp_workers) {
			snprintf(workers, sizeof(workers), "%d", cfg.wisp_workers);
			argv[k++] = "--workers";
			argv[k++] = workers;
		}
	}
	if (server) {
		argv[k++] = "--listen";
		argv[k++] = "/ip4/127.0.0.1/tcp/0";
		if (!js) {
			argv[k++] = "--serve";
			argv[k++] = "echo,perf";
		}
	}
	argv[k] = NULL;
	/* Servers on the upper half of the CPUs, clients on the lower: wisp
	 * pins its workers within the CPUs it may use, and two processes
	 * pinned to the same core would take turns on it. */
	if (peer_spawn(p, argv, cfg.split ? (server ? 2 : 1) : 0)) {
		printf("# %s: cannot start: %s\n", p->name, strerror(errno));
		return -1;
	}
	return 0;
}

static peer *all_peers[8];
static int n_all_peers;

/* Both processes of every wanted pair start at once (node takes a second to
 * start); then each client dials its server. */
static void pairs_start(void)
{
	for (int i = 0; i < 4; i++) {
		pair *pr = &pairs[i];
		if (!pr->wanted)
			continue;
		pr->up = spawn_side(pr, true) == 0 && spawn_side(pr, false) == 0;
		all_peers[n_all_peers++] = &pr->server;
		all_peers[n_all_peers++] = &pr->client;
	}
	uint64_t deadline = now_ns() + SEC(60);
	for (int i = 0; i < 4; i++) {
		pair *pr = &pairs[i];
		if (!pr->wanted || !pr->up)
			continue;
		peer *both[2] = { &pr->server, &pr->client };
		const char *why = NULL;
		for (int j = 0; j < 2 && pr->up; j++) {
			char *l = peer_wait(both[j], all_peers, n_all_peers, "listening", NULL, deadline, &why);
			char addrs[2048] = "", *a;
			if (!l) {
				printf("# %s: no listening event: %s\n", both[j]->name, why);
				pr->up = false;
				break;
			}
			jfield(l, "peer_id", both[j]->peer_id, sizeof(both[j]->peer_id));
			jfield(l, "addrs", addrs, sizeof(addrs));
			if ((a = strstr(addrs, "\"/ip4/127.0.0.1/tcp/"))) {
				char *end = strchr(a + 1, '"');
				if (end)
					snprintf(both[j]->addr, sizeof(both[j]->addr), "%.*s", (int)(end - a - 1), a + 1);
			}
			free(l);
			if (j == 0 && !strstr(both[j]->addr, "/p2p/")) {
				printf("# %s: no /ip4/127.0.0.1/tcp/.../p2p/... address in %s\n", both[j]->name, addrs);
				pr->up = false;
			}
		}
		if (!pr->up)
			continue;
		char fields[512], why2[400];
		snprintf(fields, sizeof(fields), "\"cmd\":\"dial\",\"addr\":\"%s\"", pr->server.addr);
		/* js answers a dial with "dialed", wisp with "connected" */
		char *l = peer_request(&pr->client, all_peers, n_all_peers, fields,
				       pr->client_js ? "dialed" : "connected", SEC(30), why2, sizeof(why2));
		if (!l) {
			printf("# %s: dial failed: %s\n", pr->name, why2);
			pr->up = false;
			continue;
		}
		free(l);
	}
	for (int i = 0; i < 4; i++)
		if (pairs[i].wanted && !pairs[i].up) {
			pairs[i].failed++;
			failures++;
		}
}

static void run_failed(pair *pr, const char *what, const char *why, bool warmup)
{
	printf("# %s: %s%s failed: %s\n", pr->name, what, warmup ? " (warm-up)" : "", why);
	pr->failed++;
	failures++;
	if (pr->client.out_eof || pr->server.out_eof) {
		printf("# %s: a peer exited; the pair is out of the remaining runs\n", pr->name);
		pr->up = false;
	}
}

static void record(pair *pr, int m, double v, bool warmup)
{
	if (!warmup && pr->n[m] < MAX_RUNS)
		pr->v[m][pr->n[m]++] = v;
}

/* One perf, one echo and one rtt on pr; recorded unless warm-up. */
static void pair_round(pair *pr, bool warmup)
{
	char fields[512], why[400];
	uint64_t perf_bytes = warmup ? (cfg.perf_bytes < 32 * MiB ? cfg.perf_bytes : 32 * MiB) : cfg.perf_bytes;
	uint64_t echo_bytes = warmup ? (cfg.echo_bytes < 8 * MiB ? cfg.echo_bytes : 8 * MiB) : cfg.echo_bytes;
	uint32_t rtt_count = warmup ? (pr->rtt_count < 1000 ? pr->rtt_count : 1000) : pr->rtt_count;
	const char *id = pr->server.peer_id;
	char *l;
	double a, b, c;

	/* Deadlines only catch a hung peer: 20 s plus 5 MB/s, 5 ms a request. */
	snprintf(fields, sizeof(fields), "\"cmd\":\"perf\",\"peer_id\":\"%s\",\"upload\":0,\"download\":%llu", id,
		 (unsigned long long)perf_bytes);
	double cpu_s0 = peer_cpu_s(&pr->server), cpu_c0 = peer_cpu_s(&pr->client);
	l = peer_request(&pr->client, all_peers, n_all_peers, fields, "perf_done", SEC(20) + perf_bytes * 200,
			 why, sizeof(why));
	double cpu_s = peer_cpu_s(&pr->server) - cpu_s0, cpu_c = peer_cpu_s(&pr->client) - cpu_c0;
	if (!l) {
		run_failed(pr, "perf", why, warmup);
	} else if (!jtrue(l, "ok") || !jnum(l, "download", &a) || a != (double)perf_bytes ||
		   !jnum(l, "download_us", &b) || b <= 0) {
		run_failed(pr, "perf", l, warmup);
	} else {
		record(pr, M_PERF, a / b, warmup); /* bytes/us = MB/s */
		/* The whole command (stream open, request, download) is in the
		 * CPU figures; for a big download that is the download. */
		if (cpu_s > 0) /* false for NAN */
			record(pr, M_PERF_CPU_SERVER, a / 1e6 / cpu_s, warmup);
		if (cpu_c > 0)
			record(pr, M_PERF_CPU_CLIENT, a / 1e6 / cpu_c, warmup);
	}
	free(l);
	if (!pr->up)
		return;

	snprintf(fields, sizeof(fields), "\"cmd\":\"echo\",\"peer_id\":\"%s\",\"bytes\":%llu,\"streams\":1", id,
		 (unsigned long long)echo_bytes);
	l = peer_request(&pr->client, all_peers, n_all_peers, fields, "echo_done", SEC(20) + echo_bytes * 400, why,
			 sizeof(why));
	if (!l) {
		run_failed(pr, "echo", why, warmup);
	} else if (!jtrue(l, "ok") || !jnum(l, "elapsed_us", &b) || b <= 0) {
		run_failed(pr, "echo", l, warmup);
	} else {
		record(pr, M_ECHO, (double)echo_bytes / b, warmup);
	}
	free(l);
	if (!pr->up)
		return;

	snprintf(fields, sizeof(fields), "\"cmd\":\"rtt\",\"peer_id\":\"%s\",\"size\":%u,\"count\":%u", id,
		 cfg.rtt_size, rtt_count);
	l = peer_request(&pr->client, all_peers, n_all_peers, fields, "rtt_done", SEC(20) + rtt_count * SEC(0.005),
			 why, sizeof(why));
	if (!l) {
		run_failed(pr, "rtt", why, warmup);
	} else if (!jtrue(l, "ok") || !jnum(l, "elapsed_us", &a) || a <= 0 || !jnum(l, "p50_us", &b) ||
		   !jnum(l, "p99_us", &c)) {
		run_failed(pr, "rtt", l, warmup);
	} else {
		/* from elapsed_us, not per_sec: js and wisp round per_sec differently */
		record(pr, M_RTT_RATE, rtt_count / (a / 1e6), warmup);
		record(pr, M_RTT_P50, b, warmup);
		record(pr, M_RTT_P99, c, warmup);
	}
	free(l);
}

/* ---- the js prerequisites ------------------------------------------------ */

/* Runs `node --version` (with a deadline); the version text or NULL. */
static bool node_version(char *out, size_t cap)
{
	peer p;
	memset(&p, 0, sizeof(p));
	snprintf(p.name, sizeof(p.name), "node --version");
	char *argv[] = { (char *)cfg.node, "--version", NULL };
	if (peer_spawn(&p, argv, 0))
		return false;
	close(p.in);
	p.in = -1;
	peer *ps[1] = { &p };
	uint64_t deadline = now_ns() + SEC(20);
	while (!p.out_eof && pump(ps, 1, deadline))
		;
	bool ok = p.n_backlog > 0 && p.backlog[0][0] == 'v';
	if (ok)
		snprintf(out, cap, "%s", p.backlog[0]);
	peers_stop(ps, 1, now_ns() + SEC(5));
	return ok;
}

/* Why js cannot run here, or NULL when it can. */
static const char *js_missing(char *node_ver, size_t cap)
{
	static char why[PATH_MAX + 128];
	const char *files = bench_js_files_missing(cfg.js_peer, "libp2p");
	if (files)
		return files;
	if (!node_version(node_ver, cap)) {
		snprintf(why, sizeof(why), "cannot run '%s --version' (is node installed? --node PATH)", cfg.node);
		return why;
	}
	if (atoi(node_ver + 1) < 20) {
		snprintf(why, sizeof(why), "node %s is older than 20", node_ver);
		return why;
	}
	return NULL;
}

/* ---- output ------------------------------------------------------------------ */

static void fmt_num(char *out, size_t cap, double v)
{
	if (isnan(v))
		snprintf(out, cap, "nan");
	else if (v >= 100)
		snprintf(out, cap, "%.0f", v);
	else
		snprintf(out, cap, "%.1f", v);
}

static void row_stat(const char *pair_name, const char *name, const char *unit, stat3 s, const char *extra)
{
	char a[32], b[32], c[32];
	fmt_num(a, sizeof(a), s.min);
	fmt_num(b, sizeof(b), s.median);
	fmt_num(c, sizeof(c), s.max);
	printf("bench=stream-bench pair=%s name=%s unit=%s min=%s median=%s max=%s runs=%d%s %s\n", pair_name, name, unit,
	       a, b, c, s.n, extra, machine);
}

static void machine_row(const char *node_ver, const char *js_skip)
{
	bench_host h;
	bench_host_get(&h);
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", h.name, h.cpus);
	printf("bench=stream-bench name=machine arch=%s cpu=\"%s\" nproc=%ld kernel=%s loadavg=%.2f openssl=\"%s\" "
	       "node=%s %s\n",
	       h.u.machine, h.cpu, h.cpus, h.u.release, h.load, OpenSSL_version(OPENSSL_VERSION),
	       js_skip ? "none" : node_ver, machine);
	printf("bench=stream-bench name=config runs=%d warmup=%d perf_bytes=%llu echo_bytes=%llu rtt_size=%u "
	       "rtt_count=%u js_rtt_count=%u crypto_bytes=%llu crypto_record=%d wisp_workers=%d %s\n",
	       cfg.runs, cfg.warmup, (unsigned long long)cfg.perf_bytes, (unsigned long long)cfg.echo_bytes,
	       cfg.rtt_size, cfg.rtt_count, cfg.js_rtt_count, (unsigned long long)cfg.crypto_bytes, NOISE_PAYLOAD,
	       cfg.wisp_workers, machine);
}

static void summary(const stat3 *seal, const stat3 *open, double elapsed)
{
	char v[M_COUNT][32];
	printf("#\n# stream-bench summary: medians of %d runs; MB/s = 10^6 bytes/s of payload; %s\n", cfg.runs, machine);
	printf("# crypto bound (ChaCha20-Poly1305, 64 KiB Noise frames, per CPU-second of one core): seal %.0f MB/s, "
	       "open %.0f MB/s\n",
	       seal->median, open->median);
	printf("# %-10s %10s %7s %10s %7s %9s %9s %9s %11s %11s\n", "pair", "perf MB/s", "/bound", "echo MB/s",
	       "/bound", "rtt/s", "p50 us", "p99 us", "srv MB/cpu", "cli MB/cpu");
	for (int i = 0; i < 4; i++) {
		pair *pr = &pairs[i];
		if (!pr->wanted)
			continue;
		for (int m = 0; m < M_COUNT; m++)
			fmt_num(v[m], sizeof(v[m]), pr->s[m].median);
		printf("# %-10s %10s %7.2f %10s %7.2f %9s %9s %9s %11s %11s%s\n", pr->name, v[M_PERF],
		       pr->s[M_PERF].median / seal->median, v[M_ECHO], pr->s[M_ECHO].median / seal->median,
		       v[M_RTT_RATE], v[M_RTT_P50], v[M_RTT_P99], v[M_PERF_CPU_SERVER], v[M_PERF_CPU_CLIENT],
		       pr->failed ? "  (failures, see above)" : "");
	}
	pair *w = &pairs[0], *j = &pairs[1];
	if (w->wanted && j->wanted) {
		printf("# wisp-wisp vs js-js: perf %.1fx, echo %.1fx, rtt/s %.1fx faster; p50 %.1fx, p99 %.1fx lower\n",
		       w->s[M_PERF].median / j->s[M_PERF].median, w->s[M_ECHO].median / j->s[M_ECHO].median,
		       w->s[M_RTT_RATE].median / j->s[M_RTT_RATE].median, j->s[M_RTT_P50].median / w->s[M_RTT_P50].median,
		       j->s[M_RTT_P99].median / w->s[M_RTT_P99].median);
	}
	printf("# pair = client-server: the client dials and runs the commands; perf data flows server -> client.\n"
	       "# perf is the secured single-stream throughput; echo carries each byte both ways (one way counted).\n"
	       "# /bound: over the seal bound. srv/cli MB/cpu: perf payload per CPU-second of the server (sends,\n"
	       "# seals) and of the client (receives, opens), whole process; the machine's noise mostly cancels.\n"
	       "# elapsed %.0f s\n",
	       elapsed);
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: stream-bench [--runs N] [--pairs LIST] [--skip-js] [--no-warmup]\n"
		"                    [--perf-bytes SIZE] [--echo-bytes SIZE] [--rtt-size N]\n"
		"                    [--rtt-count N] [--js-rtt-count N] [--crypto-bytes SIZE]\n"
		"                    [--wisp-node PATH] [--js-peer PATH] [--node PATH] [--wisp-workers N]\n"
		"\n"
		"Secured-stream throughput and request latency, wisp and js-libp2p, in one run, beside\n"
		"the ChaCha20-Poly1305 bound of this machine measured in the same run:\n"
		"  crypto  seal and open of 64 KiB Noise frames on one core (MB/s)\n"
		"  perf    /perf/1.0.0 download, server -> client (MB/s): secured single-stream throughput\n"
		"  echo    one /wisp/echo/1.0.0 stream (MB/s one way)\n"
		"  rtt     --rtt-size byte requests, one at a time, on one echo stream (req/s, p50, p99)\n"
		"for the pairs (client-server; the client dials and drives) wisp-wisp, js-js, wisp-js,\n"
		"js-wisp. Each of --runs rounds runs every pair once (after one warm-up round); rows are\n"
		"key=value with min/median/max over the runs, then a summary (lines starting with #).\n"
		"\n"
		"  --runs N            rounds (default 5, at most %d)\n"
		"  --pairs LIST        comma-separated subset of the pairs (default all)\n"
		"  --skip-js           wisp-wisp only (also when node or node_modules is missing)\n"
		"  --no-warmup         count from the first round\n"
		"  --no-split          do not keep servers and clients on separate halves of the CPUs\n"
		"  --perf-bytes SIZE   perf download per run (default 256M; K, M, G suffixes)\n"
		"  --echo-bytes SIZE   echo payload per run (default 64M)\n"
		"  --rtt-size N        request size (default 1024)\n"
		"  --rtt-count N       requests per run with a wisp client (default 10000)\n"
		"  --js-rtt-count N    requests per run with a js client (default 10000)\n"
		"  --crypto-bytes SIZE payload per crypto run (default 256M)\n"
		"  --wisp-node PATH    default: ../tools/wisp-node next to this binary\n"
		"  --js-peer PATH      default: %s/tests/interop/js-peer.mjs\n"
		"  --node PATH         the node binary (default: node from PATH)\n"
		"  --wisp-workers N    pass --workers N to wisp-node (default: its own, online CPUs)\n"
		"\n"
		"Exit status: 0 ok (also when js was skipped), 1 a measurement or a peer failed, 2 usage.\n",
		MAX_RUNS, WISP_SOURCE_DIR);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' },	  { "pairs", required_argument, NULL, 'P' },
		{ "skip-js", no_argument, NULL, 's' },		  { "no-split", no_argument, NULL, 'S' },		  { "no-warmup", no_argument, NULL, 'W' },
		{ "perf-bytes", required_argument, NULL, 'p' },	  { "echo-bytes", required_argument, NULL, 'e' },
		{ "rtt-size", required_argument, NULL, 'z' },	  { "rtt-count", required_argument, NULL, 'c' },
		{ "js-rtt-count", required_argument, NULL, 'C' }, { "crypto-bytes", required_argument, NULL, 'b' },
		{ "wisp-node", required_argument, NULL, 'w' },	  { "js-peer", required_argument, NULL, 'j' },
		{ "node", required_argument, NULL, 'n' },	  { "wisp-workers", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },		  { NULL, 0, NULL, 0 },
	};
	static char wisp_default[PATH_MAX + 32], js_default[PATH_MAX + 32];
	int c;
	bool bad = false;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': cfg.runs = atoi(optarg); bad |= cfg.runs < 1 || cfg.runs > MAX_RUNS; break;
		case 'P': cfg.pairs = optarg; break;
		case 's': cfg.skip_js = true; break;
		case 'S': cfg.split = false; break;
		case 'W': cfg.warmup = false; break;
		case 'p': bad |= !(cfg.perf_bytes = parse_size(optarg)); break;
		case 'e': bad |= !(cfg.echo_bytes = parse_size(optarg)); break;
		case 'b': bad |= (cfg.crypto_bytes = parse_size(optarg)) < NOISE_PAYLOAD; break;
		case 'z': cfg.rtt_size = (uint32_t)atoi(optarg); bad |= cfg.rtt_size < 1 || cfg.rtt_size > 1 << 20; break;
		case 'c': cfg.rtt_count = (uint32_t)atoi(optarg); bad |= cfg.rtt_count < 10 || cfg.rtt_count > 10000000; break;
		case 'C':
			cfg.js_rtt_count = (uint32_t)atoi(optarg);
			bad |= cfg.js_rtt_count < 10 || cfg.js_rtt_count > 10000000;
			break;
		case 'w': cfg.wisp_node = optarg; break;
		case 'j': cfg.js_peer = optarg; break;
		case 'n': cfg.node = optarg; break;
		case 'k': cfg.wisp_workers = atoi(optarg); bad |= cfg.wisp_workers < 1 || cfg.wisp_workers > 64; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (bad || optind != argc) {
		fprintf(stderr, "stream-bench: bad option value or argument\n");
		usage(stderr);
		return 2;
	}
	char names[256];
	snprintf(names, sizeof(names), "%s", cfg.pairs);
	for (char *t = strtok(names, ","); t; t = strtok(NULL, ",")) {
		int i = 0;
		while (i < 4 && strcmp(pairs[i].name, t))
			i++;
		if (i == 4) {
			fprintf(stderr, "stream-bench: unknown pair '%s' (wisp-wisp, js-js, wisp-js, js-wisp)\n", t);
			return 2;
		}
		pairs[i].wanted = true;
	}
	if (!cfg.wisp_node) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = 0;
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(wisp_default, sizeof(wisp_default), "%s/../tools/wisp-node", self);
		cfg.wisp_node = wisp_default;
	}
	if (!cfg.js_peer) {
		snprintf(js_default, sizeof(js_default), "%s/tests/interop/js-peer.mjs", WISP_SOURCE_DIR);
		cfg.js_peer = js_default;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* a peer that died must not take the bench with it */
	uint64_t t_start = now_ns();

	char node_ver[64] = "";
	bool any_js = false;
	for (int i = 1; i < 4; i++)
		any_js |= pairs[i].wanted;
	const char *js_skip = cfg.skip_js ? "--skip-js" : any_js ? js_missing(node_ver, sizeof(node_ver)) : "not asked for";
	machine_row(node_ver, js_skip);
	if (js_skip) {
		if (any_js)
			printf("bench=stream-bench name=js_skipped reason=\"%s\" %s\n", js_skip, machine);
		for (int i = 1; i < 4; i++)
			pairs[i].wanted = false;
	}
	if (pairs[0].wanted && access(cfg.wisp_node, X_OK) != 0) {
		printf("# wisp-node not found at %s (build it, or --wisp-node PATH)\n", cfg.wisp_node);
		return 1;
	}
	for (int i = 0; i < 4; i++)
		pairs[i].rtt_count = pairs[i].client_js ? cfg.js_rtt_count : cfg.rtt_count;

	crypto cr;
	if (!crypto_init(&cr))
		printf("# ChaCha20-Poly1305 is not available from OpenSSL here: no crypto bound\n");
	pairs_start();
	printf("# peers up after %.1f s; %d run%s of each pair%s\n", (now_ns() - t_start) / 1e9, cfg.runs,
	       cfg.runs == 1 ? "" : "s", cfg.warmup ? " after one warm-up round" : "");

	/* Rounds: the crypto runs and every pair, the pair order rotating. */
	int n_pairs = 0, order[4];
	for (int i = 0; i < 4; i++)
		if (pairs[i].wanted)
			order[n_pairs++] = i;
	for (int r = cfg.warmup ? -1 : 0; r < cfg.runs; r++) {
		bool warm = r < 0;
		uint64_t t0 = now_ns();
		if (cr.ok)
			crypto_round(&cr, !warm);
		for (int k = 0; k < n_pairs; k++) {
			pair *pr = &pairs[order[(k + (r < 0 ? 0 : r)) % n_pairs]];
			if (pr->up)
				pair_round(pr, warm);
		}
		printf("# %s %d done in %.1f s\n", warm ? "warm-up round" : "round", warm ? 0 : r + 1,
		       (now_ns() - t0) / 1e9);
	}
	peers_stop(all_peers, n_all_peers, now_ns() + SEC(15));
	for (int i = 0; i < n_all_peers; i++)
		if (all_peers[i]->pid > 0 && !(WIFEXITED(all_peers[i]->status) && WEXITSTATUS(all_peers[i]->status) == 0))
			failures++;

	/* Rows. */
	stat3 seal = stat_of(cr.seal, cr.n), open = stat_of(cr.open, cr.n);
	if (!cr.ok && cr.n)
		printf("# the crypto runs reported a failure (seal or open returned an error)\n");
	char extra[96];
	snprintf(extra, sizeof(extra), " record=%d clock=thread-cpu", NOISE_PAYLOAD);
	row_stat("crypto", "chacha20poly1305_seal", "MB/s", seal, extra);
	row_stat("crypto", "chacha20poly1305_open", "MB/s", open, extra);
	snprintf(extra, sizeof(extra), " record=%d clock=wall", NOISE_PAYLOAD);
	row_stat("crypto", "chacha20poly1305_seal_wall", "MB/s", stat_of(cr.seal_wall, cr.n), extra);
	row_stat("crypto", "chacha20poly1305_open_wall", "MB/s", stat_of(cr.open_wall, cr.n), extra);
	for (int i = 0; i < 4; i++) {
		pair *pr = &pairs[i];
		if (!pr->wanted)
			continue;
		for (int m = 0; m < M_COUNT; m++) {
			pr->s[m] = stat_of(pr->v[m], pr->n[m]);
			if (metric[m].throughput)
				snprintf(extra, sizeof(extra), " ratio_to_bound=%.3f", pr->s[m].median / seal.median);
			else
				snprintf(extra, sizeof(extra), " count=%u size=%u", pr->rtt_count, cfg.rtt_size);
			row_stat(pr->name, metric[m].name, metric[m].unit, pr->s[m], extra);
		}
	}
	if (pairs[0].wanted && pairs[1].wanted) {
		for (int m = 0; m < M_COUNT; m++) {
			double w = pairs[0].s[m].median, j = pairs[1].s[m].median;
			printf("bench=stream-bench name=speedup_wisp_vs_js metric=%s unit=ratio value=%.2f "
			       "meaning=\"%s\" %s\n",
			       metric[m].name, metric[m].lower_better ? j / w : w / j,
			       metric[m].lower_better ? "js-js median / wisp-wisp median (>1: wisp better)"
						      : "wisp-wisp median / js-js median (>1: wisp better)",
			       machine);
		}
	}
	double elapsed = (now_ns() - t_start) / 1e9;
	printf("bench=stream-bench name=elapsed unit=s value=%.1f failures=%d %s\n", elapsed, failures, machine);
	summary(&seal, &open, elapsed);
	crypto_fini(&cr);
	return failures ? 1 : 0;
}
