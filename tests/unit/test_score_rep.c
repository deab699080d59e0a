/* Request/response reputations (actors/scoring/rep.h): counts, latency,
 * penalty, decay by whole seconds, and the oldest record making room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <string.h>

#include <wisp/error.h>

#include "actors/scoring/rep.h"
#include "runtime/mem.h"

#define S 1000000000ull

static wisp_peer_id id_n(uint32_t n)
{
	wisp_peer_id id;
	memset(&id, 0, sizeof(id));
	id.len = 8;
	memcpy(id.bytes, &n, sizeof(n));
	return id;
}

static void test_counts_and_penalty(void **state)
{
	(void)state;
	wisp_reps r;
	assert_int_equal(wisp_reps_init(&r, wisp_mem_default(), 16), WISP_OK);
	wisp_peer_id a = id_n(1);
	assert_null(wisp_reps_get(&r, &a));
	assert_true(wisp_rep_reliability(NULL) == 0.5);
	assert_true(wisp_rep_penalty(NULL) == 0);
	wisp_reps_note(&r, &a, WISP_REP_OK, 10000, 1 * S);  /* 10 ms */
	wisp_reps_note(&r, &a, WISP_REP_OK, 20000, 1 * S);  /* 20 ms: the average moves a fifth of the way */
	wisp_reps_note(&r, &a, WISP_REP_FAILED, 0, 1 * S);
	const wisp_rep *p = wisp_reps_get(&r, &a);
	assert_non_null(p);
	assert_true(p->ok == 2 && p->failed == 1 && p->bad == 0);
	assert_true(p->latency_ms > 11.99 && p->latency_ms < 12.01);
	assert_true(wisp_rep_reliability(p) == 3.0 / 5.0);
	wisp_reps_note(&r, &a, WISP_REP_BAD, 0, 1 * S);
	wisp_reps_note(&r, &a, WISP_REP_BAD, 0, 1 * S);
	wisp_reps_note(&r, &a, WISP_REP_OVER_LIMIT, 0, 1 * S);
	assert_true(p->bad > 2.09 && p->bad < 2.11);
	assert_true(wisp_rep_penalty(p) < -44.0 && wisp_rep_penalty(p) > -44.2); /* -10 * 2.1^2 */
	assert_null(wisp_reps_note(&r, &a, (wisp_rep_kind)9, 0, 1 * S));
	wisp_reps_fini(&r, wisp_mem_default());
}

static void test_decay(void **state)
{
	(void)state;
	wisp_reps r;
	assert_int_equal(wisp_reps_init(&r, wisp_mem_default(), 16), WISP_OK);
	wisp_peer_id a = id_n(1), b = id_n(2);
	for (int i = 0; i < 10; i++)
		wisp_reps_note(&r, &a, WISP_REP_BAD, 0, 1 * S);
	wisp_reps_note(&r, &b, WISP_REP_FAILED, 0, 1 * S);
	assert_int_equal(wisp_reps_decay(&r, 1 * S), 2); /* the first call sets the clock */
	assert_int_equal(wisp_reps_decay(&r, 1 * S + S / 2), 2); /* half a second: nothing yet */
	assert_true(wisp_reps_get(&r, &a)->bad == 10);
	wisp_reps_decay(&r, 2 * S + S / 2); /* one whole second since */
	assert_true(wisp_reps_get(&r, &a)->bad > 9.89 && wisp_reps_get(&r, &a)->bad < 9.91);
	/* after 10 minutes b's single failure (below 0.01) is forgotten, a's
	 * ten violations are not yet (10 * 0.99^600 = 0.024) */
	assert_int_equal(wisp_reps_decay(&r, 602 * S + S / 2), 1);
	assert_null(wisp_reps_get(&r, &b));
	assert_non_null(wisp_reps_get(&r, &a));
	wisp_reps_fini(&r, wisp_mem_default());
}

static void test_full(void **state)
{
	(void)state;
	wisp_reps r;
	assert_int_equal(wisp_reps_init(&r, wisp_mem_default(), 4), WISP_OK);
	for (uint32_t i = 0; i < 4; i++) {
		wisp_peer_id id = id_n(i);
		wisp_reps_note(&r, &id, WISP_REP_OK, 1000, (i + 1) * S);
	}
	wisp_peer_id id0 = id_n(0), id9 = id_n(9);
	wisp_reps_note(&r, &id0, WISP_REP_OK, 1000, 10 * S); /* 0 is fresh again; 1 is now the oldest */
	assert_non_null(wisp_reps_note(&r, &id9, WISP_REP_BAD, 0, 11 * S));
	assert_int_equal(r.tab.count, 4);
	wisp_peer_id id1 = id_n(1);
	assert_null(wisp_reps_get(&r, &id1));
	assert_non_null(wisp_reps_get(&r, &id0));
	assert_non_null(wisp_reps_get(&r, &id9));
	wisp_reps_fini(&r, wisp_mem_default());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_penalty),
		cmocka_unit_test(test_decay),
		cmocka_unit_test(test_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
