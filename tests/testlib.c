#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "testlib.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/wisp.h>
#include <time.h>

/* cmocka's allocation tracking is not thread-safe, and runtime threads
 * allocate too: one lock around every hook. */
static pthread_mutex_t fm_lock = PTHREAD_MUTEX_INITIALIZER;

static bool failmem_should_fail(wt_failmem *f)
{
	f->calls++;
	return f->fail_at && f->calls >= f->fail_at;
}

static void *fm_malloc(size_t n, void *u)
{
	wt_failmem *f = u;
	pthread_mutex_lock(&fm_lock);
	void *p = failmem_should_fail(f) ? NULL : test_malloc(n);
	pthread_mutex_unlock(&fm_lock);
	return p;
}

static void fm_free(void *p, void *u)
{
	(void)u;
	pthread_mutex_lock(&fm_lock);
	test_free(p);
	pthread_mutex_unlock(&fm_lock);
}

static void *fm_calloc(size_t k, size_t n, void *u)
{
	wt_failmem *f = u;
	pthread_mutex_lock(&fm_lock);
	void *p = failmem_should_fail(f) ? NULL : test_calloc(k, n);
	pthread_mutex_unlock(&fm_lock);
	return p;
}

static void *fm_realloc(void *p, size_t n, void *u)
{
	wt_failmem *f = u;
	pthread_mutex_lock(&fm_lock);
	void *r = failmem_should_fail(f) ? NULL : test_realloc(p, n);
	pthread_mutex_unlock(&fm_lock);
	return r;
}

void wt_failmem_init(wt_failmem *f, unsigned long fail_at)
{
	memset(f, 0, sizeof(*f));
	f->fail_at = fail_at;
	f->mem.user = f;
	f->mem.malloc = fm_malloc;
	f->mem.free = fm_free;
	f->mem.calloc = fm_calloc;
	f->mem.realloc = fm_realloc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long wt_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

void wt_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = 0;
}

uint64_t wt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t wt_deadline(unsigned timeout_ms)
{
	return wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

unsigned wt_ms_left(uint64_t deadline)
{
	uint64_t now = wt_now_ns();
	return now >= deadline ? 0 : (unsigned)((deadline - now) / 1000000u) + 1;
}

bool wt_wait_until(bool (*cond)(void *), void *arg, int fd, unsigned timeout_ms)
{
	uint64_t deadline = wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		if (cond(arg))
			return true;
		uint64_t now = wt_now_ns();
		if (now >= deadline)
			return false;
		int left = (int)((deadline - now) / 1000000u) + 1;
		/* Block on the fd that signals progress; without one, re-check
		 * every millisecond until the deadline. */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, fd >= 0 ? left : 1);
	}
}

const char *wt_source_dir(void)
{
	const char *d = getenv("WISP_SOURCE_DIR");
	return d && *d ? d : ".";
}

static uint64_t rng_state = 1;

void wt_rng_seed(const char *what)
{
	const char *env = getenv("WISP_TEST_SEED");
	rng_state = env && *env ? strtoull(env, NULL, 10) : wt_now_ns();
	rng_state |= 1;
	printf("# %s seed %llu (WISP_TEST_SEED to repeat)\n", what, (unsigned long long)rng_state);
}

uint64_t wt_rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static void wt_drain_nodes(struct wisp_node *(*node)(int i), int n, void (*take)(int i, const struct wisp_event *ev))
{
	for (int i = 0; i < n; i++) {
		wisp_node *x = node(i);
		wisp_event ev;
		while (x && wisp_node_next_event(x, &ev) == 1) {
			take(i, &ev);
			wisp_event_release(x, &ev);
		}
	}
}

bool wt_wait_nodes(struct wisp_node *(*node)(int i), int n, void (*take)(int i, const struct wisp_event *ev),
		   bool (*cond)(void), unsigned timeout_ms)
{
	uint64_t deadline = wt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		wt_drain_nodes(node, n, take);
		if (cond())
			return true;
		uint64_t now = wt_now_ns();
		if (now >= deadline)
			return false;
		struct pollfd p[64];
		int k = 0;
		for (int i = 0; i < n && k < 64; i++)
			if (node(i))
				p[k++] = (struct pollfd){ .fd = wisp_node_event_fd(node(i)), .events = POLLIN };
		int left = (int)((deadline - now) / 1000000u) + 1;
		poll(p, (nfds_t)k, left < 20 ? left : 20);
	}
}

void wt_node_options(struct wisp_options *o, bool listen)
{
	static const char *const addrs[] = { "/ip4/127.0.0.1/tcp/0" };
	wisp_options_default(o);
	o->workers = 1;
	o->pin_workers = 0;
	if (listen) {
		o->listen = addrs;
		o->n_listen = 1;
	}
}

void wt_node_finish(struct wisp_node *n)
{
	wisp_event ev;
	while (wisp_node_next_event(n, &ev) == 1)
		wisp_event_release(n, &ev);
	wisp_stats st;
	wisp_node_stats(n, &st);
	assert_int_equal(st.pool_in_use, 0);
	wisp_node_free(n);
}
