/* Helpers shared by the cmocka tests. Include after <setjmp.h>, <stdarg.h>,
 * <stddef.h>, <cmocka.h>. */
#ifndef WISP_TESTLIB_H
#define WISP_TESTLIB_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include <wisp/mem.h>

/* An allocator that fails the fail_at-th allocation (1-based; 0 = never) and
 * every one after it, and routes the rest through cmocka's test_malloc so a
 * leak fails the test. */
typedef struct wt_failmem {
	wisp_mem mem;
	unsigned long calls;   /* allocations attempted */
	unsigned long fail_at; /* 0: never fail */
} wt_failmem;

void wt_failmem_init(wt_failmem *f, unsigned long fail_at);

/* Hex to bytes; returns the byte count or -1. */
long wt_unhex(const char *hex, uint8_t *out, size_t cap);
/* Bytes to lower-case hex into out (2*n+1 bytes). */
void wt_hex(const uint8_t *in, size_t n, char *out);

/* Monotonic clock in ns, for deadlines in tests. */
uint64_t wt_now_ns(void);
/* The deadline timeout_ms from now, and the ms left until a deadline
 * (rounded up; 0 once it passed). */
uint64_t wt_deadline(unsigned timeout_ms);
unsigned wt_ms_left(uint64_t deadline);

/* Poll cond(arg) until it is true or timeout_ms passes, blocking in poll()
 * on fd (or -1 for none) between checks: wait for events with a deadline,
 * never a bare sleep. Returns true when cond became true. */
bool wt_wait_until(bool (*cond)(void *), void *arg, int fd, unsigned timeout_ms);

/* Several nodes in one test: hand every event of node(0..n) (NULL entries
 * skipped) to take(i, ev) and release it, until cond() holds; between
 * checks block in poll() on their event fds. False after timeout_ms. */
struct wisp_node;
struct wisp_event;
bool wt_wait_nodes(struct wisp_node *(*node)(int i), int n, void (*take)(int i, const struct wisp_event *ev),
		   bool (*cond)(void), unsigned timeout_ms);

/* Options for a node in a loopback test: the defaults with one unpinned
 * worker and, when listen, a listener on 127.0.0.1 (port chosen by the
 * kernel). */
struct wisp_options;
void wt_node_options(struct wisp_options *o, bool listen);
/* For a node already stopped: release the events still queued (they hold
 * buffers), check that every pooled buffer came back, and free it. */
void wt_node_finish(struct wisp_node *n);

/* A seeded xorshift generator for randomized round trips. wt_rng_seed()
 * seeds it from the clock (or $WISP_TEST_SEED) and prints the seed, so a
 * failing run can be repeated. */
void wt_rng_seed(const char *what);
uint64_t wt_rng(void);

/* The repository root (WISP_SOURCE_DIR from ctest, else "."). */
const char *wt_source_dir(void);

#endif
