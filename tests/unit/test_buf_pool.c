/* Pooled buffers: size classes, sharing, the byte bound, reuse, and
 * allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include <wisp/error.h>

#include "runtime/buf.h"
#include "tests/testlib.h"

static void test_classes_and_sharing(void **state)
{
	(void)state;
	wisp_pool *p;
	assert_int_equal(wisp_pool_new(&p, wisp_mem_default(), 8 << 20), WISP_OK);
	wisp_buf *small = wisp_buf_alloc(p, 10), *mid = wisp_buf_alloc(p, 5000);
	assert_non_null(small);
	assert_non_null(mid);
	assert_int_equal(small->len, 10);
	assert_true(small->cap >= 10 && small->cap < 5000);
	assert_true(mid->cap >= 5000);
	assert_int_equal((uintptr_t)small->data % 16, 0);
	memset(mid->data, 0xab, 5000);

	/* One buffer shared by three holders: freed by the last. */
	wisp_buf_ref(mid);
	wisp_buf_ref(mid);
	wisp_pool_stats st;
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.in_use, 2);
	wisp_buf_unref(mid);
	wisp_buf_unref(mid);
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.in_use, 2);
	wisp_buf_unref(mid);
	wisp_buf_unref(small);
	wisp_buf_unref(NULL);
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.high, 2);

	assert_null(wisp_buf_alloc(p, wisp_pool_max_len(p) + 1));
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.too_large, 1);
	wisp_pool_free(p);
}

static void test_byte_bound_and_reuse(void **state)
{
	(void)state;
	wisp_pool *p;
	size_t bound = 4u << 20;
	assert_int_equal(wisp_pool_new(&p, wisp_mem_default(), bound), WISP_OK);
	enum { MAX = 1024 };
	wisp_buf *held[MAX];
	int n = 0;
	while (n < MAX && (held[n] = wisp_buf_alloc(p, 60000)))
		n++;
	/* 64 KiB buffers: the bound allows 63 of them, not one more. */
	assert_int_equal(n, (int)(bound / (65536 + sizeof(wisp_buf))));
	wisp_pool_stats st;
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.exhausted, 1);
	assert_true(st.bytes <= bound);
	uint64_t bytes_full = st.bytes;
	for (int i = 0; i < n; i++)
		wisp_buf_unref(held[i]);
	/* Released buffers are reused: allocating again grows nothing. */
	for (int i = 0; i < n; i++)
		assert_non_null(held[i] = wisp_buf_alloc(p, 60000));
	wisp_pool_stats_get(p, &st);
	assert_int_equal(st.bytes, bytes_full);
	for (int i = 0; i < n; i++)
		wisp_buf_unref(held[i]);
	wisp_pool_free(p);
}

static void test_allocation_failures(void **state)
{
	(void)state;
	for (unsigned long fail_at = 1;; fail_at++) {
		wt_failmem fm;
		wt_failmem_init(&fm, fail_at);
		wisp_pool *p;
		int err = wisp_pool_new(&p, &fm.mem, 4 << 20);
		if (err) {
			assert_int_equal(err, WISP_ERR_NOMEM);
			continue;
		}
		wisp_buf *b = wisp_buf_alloc(p, 100);
		if (b)
			wisp_buf_unref(b);
		else {
			wisp_pool_stats st;
			wisp_pool_stats_get(p, &st);
			assert_int_equal(st.exhausted, 1); /* counted, not lost */
		}
		wisp_pool_free(p);
		if (fm.calls < fail_at)
			break;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes_and_sharing),
		cmocka_unit_test(test_byte_bound_and_reuse),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
