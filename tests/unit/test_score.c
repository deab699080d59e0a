/* Peer scoring core: each component alone with hand-computed values, the
 * thresholds, retention, P6 with shared addresses, validation, bounds, the
 * mailbox form of events, and a long randomized run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/scoring/score.h"

#define S(x) ((wisp_tstamp)(x) * WISP_NS_PER_S)
#define MS(x) ((wisp_tstamp)(x) * WISP_NS_PER_MS)
/* Start the clock far from 0 so no test leans on time 0. */
#define T0 S(1000)

#define assert_near(got, want)                                                                  \
	do {                                                                                    \
		double g_ = (got), w_ = (want);                                                 \
		double tol_ = 1e-9 * (fabs(w_) > 1 ? fabs(w_) : 1);                             \
		if (!(fabs(g_ - w_) <= tol_))                                                   \
			fail_msg("%s = %.12g, want %.12g", #got, g_, w_);                       \
	} while (0)

static wisp_peer_id mk_id(unsigned n)
{
	wisp_peer_id id;
	memset(&id, 0, sizeof(id));
	id.len = 34;
	id.bytes[0] = 0x12;
	id.bytes[1] = 0x20;
	for (unsigned i = 2; i < id.len; i++)
		id.bytes[i] = (uint8_t)(n * 31 + i);
	id.bytes[2] = (uint8_t)n;
	id.bytes[3] = (uint8_t)(n >> 8);
	return id;
}

static void ip4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	out[12] = a;
	out[13] = b;
	out[14] = c;
	out[15] = d;
}

static void ip6(uint8_t out[16], uint16_t g0, uint16_t g3, uint16_t g7)
{
	memset(out, 0, 16);
	out[0] = (uint8_t)(g0 >> 8);
	out[1] = (uint8_t)g0;
	out[6] = (uint8_t)(g3 >> 8);
	out[7] = (uint8_t)g3;
	out[14] = (uint8_t)(g7 >> 8);
	out[15] = (uint8_t)g7;
}

/* Global parameters with every global component off, so a test turns on
 * only what it looks at. */
static void quiet_params(wisp_score_params *p)
{
	wisp_score_params_default(p);
	p->topic_score_cap = 0;
	p->app_specific_weight = 0;
	p->ip_colocation_factor_weight = 0;
	p->behaviour_penalty_weight = 0;
	p->decay_to_zero = 0.1;
	p->max_peers = 16;
	p->max_retained = 16;
	p->max_topics = 4;
}

/* A topic with every component off (P4 decay must still be valid). */
static void quiet_topic(wisp_score_topic_params *tp)
{
	memset(tp, 0, sizeof(*tp));
	tp->topic_weight = 1;
	tp->time_in_mesh_quantum_ms = 1000;
	tp->invalid_message_deliveries_decay = 0.5;
}

static wisp_score *mk(const wisp_score_params *p)
{
	wisp_score *s = NULL;
	assert_int_equal(wisp_score_new(&s, NULL, p, T0), WISP_OK);
	assert_non_null(s);
	return s;
}

static void add(wisp_score *s, uint32_t peer, unsigned idn, const uint8_t *ip, wisp_tstamp now)
{
	wisp_peer_id id = mk_id(idn);
	assert_int_equal(wisp_score_add_peer(s, peer, &id, ip, now), WISP_OK);
}

/* Run decay until exactly `rounds` rounds have been applied from the next tick. */
static void decay_rounds(wisp_score *s, unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++)
		assert_int_equal(wisp_score_handle_expiry(s, wisp_score_expiry(s)), 1);
}

/* ---- P1 --------------------------------------------------------------- */

static void test_p1_time_in_mesh(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	quiet_topic(&tp);
	tp.topic_weight = 2;
	tp.time_in_mesh_weight = 0.5;
	tp.time_in_mesh_quantum_ms = 2000;
	tp.time_in_mesh_cap = 10;
	assert_int_equal(wisp_score_set_topic(s, 1, &tp), WISP_OK);
	add(s, 3, 3, NULL, T0);

	assert_near(wisp_score_get(s, 3, T0 + S(50)), 0); /* not in the mesh */
	assert_int_equal(wisp_score_graft(s, 3, 1, T0), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + MS(1999)), 0);
	assert_near(wisp_score_get(s, 3, T0 + S(2)), 1 * 0.5 * 2);   /* one whole quantum */
	assert_near(wisp_score_get(s, 3, T0 + MS(7900)), 3 * 0.5 * 2); /* whole quanta only */
	assert_near(wisp_score_get(s, 3, T0 + S(20)), 10 * 0.5 * 2);   /* at the cap */
	assert_near(wisp_score_get(s, 3, T0 + S(500)), 10 * 0.5 * 2);  /* capped */
	/* a second GRAFT while in the mesh keeps the first graft time */
	assert_int_equal(wisp_score_graft(s, 3, 1, T0 + S(10)), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + S(12)), 6 * 0.5 * 2);
	/* decay does not touch P1 */
	assert_true(wisp_score_handle_expiry(s, T0 + S(12)) > 0);
	assert_near(wisp_score_get(s, 3, T0 + S(12)), 6 * 0.5 * 2);
	/* out of the mesh: P1 is gone; a new GRAFT starts from 0 */
	assert_int_equal(wisp_score_prune(s, 3, 1, T0 + S(12)), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + S(13)), 0);
	assert_int_equal(wisp_score_graft(s, 3, 1, T0 + S(13)), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + S(17)), 2 * 0.5 * 2);
	/* a topic without parameters scores nothing, though mesh state is kept */
	assert_int_equal(wisp_score_graft(s, 3, 2, T0), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + S(17)), 2 * 0.5 * 2);
	tp.topic_weight = 1;
	assert_int_equal(wisp_score_set_topic(s, 2, &tp), WISP_OK);
	assert_near(wisp_score_get(s, 3, T0 + S(17)), 2 * 0.5 * 2 + 8 * 0.5);
	wisp_score_free(s);
}

/* ---- P2 --------------------------------------------------------------- */

static void test_p2_first_deliveries(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	quiet_topic(&tp);
	tp.topic_weight = 0.5;
	tp.first_message_deliveries_weight = 2;
	tp.first_message_deliveries_decay = 0.5;
	tp.first_message_deliveries_cap = 5;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	add(s, 0, 0, NULL, T0);

	for (int i = 0; i < 3; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 3 * 2 * 0.5);
	for (int i = 0; i < 10; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 5 * 2 * 0.5); /* capped at increment */
	/* 5 -> 2.5 -> 1.25 -> 0.625 -> 0.3125 -> 0.15625 -> 0 (below decay_to_zero 0.1) */
	decay_rounds(s, 1);
	assert_near(wisp_score_get(s, 0, T0), 2.5);
	decay_rounds(s, 4);
	assert_near(wisp_score_get(s, 0, T0), 0.15625);
	decay_rounds(s, 1);
	assert_true(wisp_score_get(s, 0, T0) == 0.0);
	/* lowering the cap re-caps the counter (as go) */
	for (int i = 0; i < 5; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	tp.first_message_deliveries_cap = 2;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 2 * 2 * 0.5);
	/* unscoring the topic zeroes its counters; scoring it again starts over */
	assert_int_equal(wisp_score_set_topic(s, 0, NULL), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 0);
	assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK); /* ignored */
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 0);
	wisp_score_free(s);
}

/* ---- P3 --------------------------------------------------------------- */

static void p3_topic(wisp_score_topic_params *tp)
{
	quiet_topic(tp);
	tp->mesh_message_deliveries_weight = -1;
	tp->mesh_message_deliveries_decay = 0.5;
	tp->mesh_message_deliveries_threshold = 4;
	tp->mesh_message_deliveries_cap = 6;
	tp->mesh_message_deliveries_activation_ms = 5000;
	tp->mesh_message_deliveries_window_ms = 10;
}

static void test_p3_mesh_deliveries(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	p3_topic(&tp);
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	add(s, 0, 0, NULL, T0);
	add(s, 1, 1, NULL, T0);

	/* deliveries outside the mesh do not count for P3 */
	assert_int_equal(wisp_score_first_delivery(s, 1, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_duplicate(s, 1, 0, WISP_SCORE_VALIDATING, T0), WISP_OK);

	assert_int_equal(wisp_score_graft(s, 0, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_graft(s, 1, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0 + S(1)), WISP_OK); /* counter 1 */

	/* the activation window: nothing until strictly after 5 s in the mesh */
	assert_near(wisp_score_get(s, 0, T0 + S(4)), 0);
	assert_near(wisp_score_get(s, 0, T0 + S(5)), 0);
	assert_near(wisp_score_get(s, 0, T0 + S(5) + 1), -(3.0 * 3.0)); /* (4 - 1)^2 */
	assert_near(wisp_score_get(s, 1, T0 + S(5) + 1), -(4.0 * 4.0)); /* nothing counted */

	/* near-first duplicates: within 10 ms of validation, or while validating */
	wisp_tstamp v = T0 + S(6);
	assert_int_equal(wisp_score_duplicate(s, 0, 0, v, v + MS(10)), WISP_OK); /* 2 */
	assert_near(wisp_score_get(s, 0, v + S(1)), -(2.0 * 2.0));
	assert_int_equal(wisp_score_duplicate(s, 0, 0, v, v + MS(11)), WISP_OK); /* too late */
	assert_near(wisp_score_get(s, 0, v + S(1)), -(2.0 * 2.0));
	assert_int_equal(wisp_score_duplicate(s, 0, 0, WISP_SCORE_VALIDATING, v + S(5)), WISP_OK); /* 3 */
	assert_near(wisp_score_get(s, 0, v + S(1)), -1.0);
	/* at the threshold the deficit is 0; the counter is capped at 6 */
	for (int i = 0; i < 10; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, v), WISP_OK);
	assert_near(wisp_score_get(s, 0, v + S(1)), 0);
	/* decay: 6 -> 3: deficit 1; 3 -> 1.5: deficit 2.5 */
	decay_rounds(s, 1);
	assert_near(wisp_score_get(s, 0, v + S(1)), -1.0);
	decay_rounds(s, 1);
	assert_near(wisp_score_get(s, 0, v + S(1)), -(2.5 * 2.5));
	/* pruned: P3 stops applying (P3b is off in this topic) */
	assert_int_equal(wisp_score_prune(s, 0, 0, v + S(1)), WISP_OK);
	assert_near(wisp_score_get(s, 0, v + S(1)), 0);
	/* re-grafted: a fresh activation window */
	assert_int_equal(wisp_score_graft(s, 0, 0, v + S(2)), WISP_OK);
	assert_near(wisp_score_get(s, 0, v + S(7)), 0);
	assert_near(wisp_score_get(s, 0, v + S(7) + 1), -(2.5 * 2.5));
	/* topic weight multiplies, P3 weight scales */
	tp.topic_weight = 3;
	tp.mesh_message_deliveries_weight = -0.5;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	assert_near(wisp_score_get(s, 0, v + S(8)), -(2.5 * 2.5) * 0.5 * 3);
	wisp_score_free(s);
}

static void test_p3b_mesh_failure(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	p3_topic(&tp);
	tp.mesh_message_deliveries_activation_ms = 1000;
	tp.mesh_failure_penalty_weight = -2;
	tp.mesh_failure_penalty_decay = 0.5;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	add(s, 0, 0, NULL, T0);

	/* pruned before activation: no failure penalty */
	assert_int_equal(wisp_score_graft(s, 0, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_prune(s, 0, 0, T0 + MS(999)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(1)), 0);

	/* pruned with an active deficit of 3: P3b += 9, sticky after the prune */
	assert_int_equal(wisp_score_graft(s, 0, 0, T0 + S(1)), WISP_OK);
	assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0 + S(1)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(3)), -9.0); /* P3 while in the mesh */
	assert_int_equal(wisp_score_prune(s, 0, 0, T0 + S(3)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(3)), -9.0 * 2); /* P3b only */
	/* a prune while not in the mesh adds nothing */
	assert_int_equal(wisp_score_prune(s, 0, 0, T0 + S(3)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(3)), -9.0 * 2);
	/* P3b accumulates: the counter decayed to 0.5, deficit 3.5 */
	decay_rounds(s, 1); /* P3b 4.5, mesh counter 0.5 */
	assert_near(wisp_score_get(s, 0, T0 + S(3)), -4.5 * 2);
	assert_int_equal(wisp_score_graft(s, 0, 0, T0 + S(3)), WISP_OK);
	assert_int_equal(wisp_score_prune(s, 0, 0, T0 + S(5)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(5)), -(4.5 + 3.5 * 3.5) * 2);
	/* and decays to zero */
	for (int i = 0; i < 20; i++)
		decay_rounds(s, 1);
	assert_true(wisp_score_get(s, 0, T0 + S(5)) == 0.0);
	wisp_score_free(s);
}

/* ---- P4 --------------------------------------------------------------- */

static void test_p4_invalid(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	quiet_topic(&tp);
	tp.topic_weight = 2;
	tp.invalid_message_deliveries_weight = -3;
	tp.invalid_message_deliveries_decay = 0.5;
	assert_int_equal(wisp_score_set_topic(s, 2, &tp), WISP_OK);
	add(s, 5, 5, NULL, T0);

	assert_int_equal(wisp_score_invalid(s, 5, 2, T0), WISP_OK);
	assert_near(wisp_score_get(s, 5, T0), -3.0 * 2);
	assert_int_equal(wisp_score_invalid(s, 5, 2, T0), WISP_OK);
	assert_int_equal(wisp_score_invalid(s, 5, 2, T0), WISP_OK);
	assert_near(wisp_score_get(s, 5, T0), -9.0 * 3 * 2); /* squared */
	decay_rounds(s, 1);                                   /* 1.5 */
	assert_near(wisp_score_get(s, 5, T0), -2.25 * 3 * 2);
	/* invalid messages in an unscored topic count nothing */
	assert_int_equal(wisp_score_invalid(s, 5, 1, T0), WISP_OK);
	assert_near(wisp_score_get(s, 5, T0), -2.25 * 3 * 2);
	wisp_score_free(s);
}

/* ---- topic weights and the topic cap ------------------------------- */

static void test_topic_weights_and_cap(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.topic_score_cap = 10;
	p.app_specific_weight = 1;
	wisp_score *s = mk(&p);
	wisp_score_topic_params a, b;
	quiet_topic(&a);
	a.topic_weight = 2;
	a.first_message_deliveries_weight = 1;
	a.first_message_deliveries_decay = 0.5;
	a.first_message_deliveries_cap = 100;
	a.invalid_message_deliveries_weight = -2;
	b = a;
	b.topic_weight = 0.5;
	assert_int_equal(wisp_score_set_topic(s, 0, &a), WISP_OK);
	assert_int_equal(wisp_score_set_topic(s, 3, &b), WISP_OK);
	add(s, 0, 0, NULL, T0);

	for (int i = 0; i < 4; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	for (int i = 0; i < 6; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 3, T0), WISP_OK);
	/* 4*1*2 + 6*1*0.5 = 11, capped to 10 */
	assert_near(wisp_score_get(s, 0, T0), 10);
	wisp_score_breakdown bd;
	assert_int_equal(wisp_score_explain(s, 0, T0, &bd), WISP_OK);
	assert_near(bd.topics, 10);
	/* an invalid message in topic 0: (4 - 2) * 2 + 3 = 7, under the cap */
	assert_int_equal(wisp_score_invalid(s, 0, 0, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 7);
	/* P5 comes after the cap: the cap bounds topics only */
	for (int i = 0; i < 10; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 3, T0), WISP_OK);
	assert_int_equal(wisp_score_app_specific(s, 0, 5), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 10 + 5); /* 4 + 8 = 12 -> 10, + 5 */
	wisp_score_free(s);
}

/* ---- P5 --------------------------------------------------------------- */

static void test_p5_app_specific(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.app_specific_weight = 2;
	wisp_score *s = mk(&p);
	add(s, 0, 0, NULL, T0);
	assert_int_equal(wisp_score_app_specific(s, 0, -3), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), -6);
	assert_int_equal(wisp_score_app_specific(s, 0, 1.5), WISP_OK); /* set, not added */
	assert_near(wisp_score_get(s, 0, T0), 3);
	assert_int_equal(wisp_score_app_specific(s, 0, NAN), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_app_specific(s, 0, INFINITY), WISP_ERR_INVALID_ARG);
	assert_near(wisp_score_get(s, 0, T0), 3);
	assert_int_equal(wisp_score_app_specific(s, 0, -1e300), WISP_OK); /* clamped */
	assert_near(wisp_score_get(s, 0, T0), -WISP_SCORE_APP_MAX * 2);
	/* decay leaves P5 alone */
	decay_rounds(s, 3);
	assert_near(wisp_score_get(s, 0, T0), -WISP_SCORE_APP_MAX * 2);
	assert_int_equal(wisp_score_app_specific(s, 1, 1), WISP_ERR_NOTFOUND);
	wisp_score_free(s);
}

/* ---- P6 --------------------------------------------------------------- */

static void test_p6_ip_colocation(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.ip_colocation_factor_weight = -1;
	p.ip_colocation_factor_threshold = 2;
	p.retain_score_ms = 10000;
	/* 10.9.0.0/16 is whitelisted */
	p.n_ip_whitelist = 1;
	ip4(p.ip_whitelist[0].addr, 10, 9, 0, 0);
	p.ip_whitelist[0].prefix_len = 96 + 16;
	wisp_score *s = mk(&p);

	uint8_t a[16], b[16], lo[16], wl[16];
	ip4(a, 10, 0, 0, 1);
	ip4(b, 10, 0, 0, 2);
	ip4(lo, 127, 0, 0, 1);
	ip4(wl, 10, 9, 3, 4);

	add(s, 0, 0, a, T0);
	add(s, 1, 1, a, T0);
	assert_near(wisp_score_get(s, 0, T0), 0); /* 2 peers: at the threshold */
	add(s, 2, 2, a, T0);
	for (uint32_t i = 0; i < 3; i++)
		assert_near(wisp_score_get(s, i, T0), -1); /* surplus 1, squared */
	add(s, 3, 3, a, T0);
	for (uint32_t i = 0; i < 4; i++)
		assert_near(wisp_score_get(s, i, T0), -4); /* surplus 2 */
	add(s, 4, 4, b, T0);
	assert_near(wisp_score_get(s, 4, T0), 0);
	wisp_score_breakdown bd;
	assert_int_equal(wisp_score_explain(s, 3, T0, &bd), WISP_OK);
	assert_near(bd.ip, -4);

	/* a retained peer (score -4 <= 0) still counts until it expires, as in
	 * go: sybils cannot lower the count by disconnecting and coming back */
	assert_int_equal(wisp_score_remove_peer(s, 3, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(1)), -4);
	assert_true(wisp_score_handle_expiry(s, T0 + S(11)) > 0);
	assert_near(wisp_score_get(s, 0, T0 + S(11)), -1);
	/* a peer that reconnects from another address moves its count */
	assert_int_equal(wisp_score_remove_peer(s, 2, T0 + S(11)), WISP_OK); /* retained, -1 */
	add(s, 2, 2, b, T0 + S(12));
	assert_near(wisp_score_get(s, 0, T0 + S(12)), 0);
	assert_near(wisp_score_get(s, 4, T0 + S(12)), 0);

	/* loopback, unspecified, unknown and whitelisted addresses never count */
	uint8_t zero[16] = { 0 };
	add(s, 5, 5, lo, T0);
	add(s, 6, 6, lo, T0);
	add(s, 7, 7, lo, T0);
	add(s, 8, 8, wl, T0);
	add(s, 9, 9, wl, T0);
	add(s, 10, 10, wl, T0);
	add(s, 11, 11, zero, T0);
	add(s, 12, 12, NULL, T0);
	add(s, 13, 13, NULL, T0);
	add(s, 14, 14, NULL, T0);
	for (uint32_t i = 5; i < 15; i++)
		assert_near(wisp_score_get(s, i, T0 + S(12)), 0);
	wisp_score_free(s);

	/* IPv6: an address counts under itself and under its /64 */
	p.n_ip_whitelist = 0;
	p.ip_colocation_factor_threshold = 1;
	s = mk(&p);
	uint8_t x1[16], x2[16], y[16], v6lo[16] = { 0 };
	v6lo[15] = 1;
	ip6(x1, 0x2001, 0x0001, 0x0001);
	ip6(x2, 0x2001, 0x0001, 0x0002); /* same /64, another address */
	ip6(y, 0x2001, 0x0002, 0x0001);  /* another /64 */
	add(s, 0, 0, x1, T0);
	add(s, 1, 1, x2, T0);
	assert_near(wisp_score_get(s, 0, T0), -1); /* /64 shared by 2: surplus 1 */
	add(s, 2, 2, x1, T0);
	/* x1 itself: 2 peers (surplus 1); its /64: 3 peers (surplus 2) */
	assert_near(wisp_score_get(s, 0, T0), -(1.0 + 4.0));
	assert_near(wisp_score_get(s, 1, T0), -4.0);
	add(s, 3, 3, y, T0);
	assert_near(wisp_score_get(s, 3, T0), 0);
	add(s, 4, 4, v6lo, T0);
	add(s, 5, 5, v6lo, T0);
	assert_near(wisp_score_get(s, 4, T0), 0);
	/* a retained peer keeps counting; a forgotten one (no retention) does not */
	assert_int_equal(wisp_score_remove_peer(s, 2, T0), WISP_OK); /* score -5: retained */
	assert_near(wisp_score_get(s, 0, T0), -(1.0 + 4.0));
	wisp_score_free(s);

	p.retain_score_ms = 0;
	s = mk(&p);
	add(s, 0, 0, x1, T0);
	add(s, 1, 1, x1, T0);
	assert_near(wisp_score_get(s, 0, T0), -2.0);
	assert_int_equal(wisp_score_remove_peer(s, 1, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 0);
	wisp_score_free(s);
}

/* ---- P7 --------------------------------------------------------------- */

static void test_p7_behaviour(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.behaviour_penalty_weight = -1;
	p.behaviour_penalty_threshold = 2;
	p.behaviour_penalty_decay = 0.5;
	wisp_score *s = mk(&p);
	add(s, 0, 0, NULL, T0);
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, 2, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), 0); /* at the threshold */
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, 3, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0), -9); /* (5 - 2)^2 */
	decay_rounds(s, 1);                          /* 2.5 */
	assert_near(wisp_score_get(s, 0, T0), -0.25);
	decay_rounds(s, 1); /* 1.25: under the threshold */
	assert_near(wisp_score_get(s, 0, T0), 0);
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, -1, T0), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, NAN, T0), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, INFINITY, T0), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_behaviour_penalty(s, 7, 1, T0), WISP_ERR_NOTFOUND);
	/* huge counts are clamped: the score stays finite */
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, 1e300, T0), WISP_OK);
	assert_int_equal(wisp_score_behaviour_penalty(s, 0, 1e300, T0), WISP_OK);
	assert_true(isfinite(wisp_score_get(s, 0, T0)));
	wisp_score_free(s);
}

/* ---- decay scheduling ------------------------------------------------- */

static void test_decay_schedule(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.decay_interval_ms = 2000;
	p.decay_to_zero = 0.01;
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	quiet_topic(&tp);
	tp.first_message_deliveries_weight = 1;
	tp.first_message_deliveries_decay = 0.5;
	tp.first_message_deliveries_cap = 100;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	add(s, 0, 0, NULL, T0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);

	assert_true(wisp_score_expiry(s) == T0 + S(2));
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(1)), 0); /* early: nothing */
	assert_near(wisp_score_get(s, 0, T0), 64);
	/* 3.5 intervals late: the rounds due at 2, 4, 6 and 8 s */
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(9)), 4);
	assert_near(wisp_score_get(s, 0, T0), 4);
	assert_true(wisp_score_expiry(s) == T0 + S(10));
	/* 4 -> 2 -> 1 -> .5 -> .25 -> .125 -> .0625 -> .03125 -> .015625 -> 0 */
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(24)), 8);
	assert_near(wisp_score_get(s, 0, T0), 0.015625);
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(26)), 1);
	assert_true(wisp_score_get(s, 0, T0) == 0.0);
	/* a very late call is one pass */
	for (int i = 0; i < 10; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(26) + S(86400)), 43200);
	assert_true(wisp_score_get(s, 0, T0) == 0.0);
	wisp_score_stats st;
	wisp_score_get_stats(s, &st);
	assert_true(st.decays == 4 + 8 + 1 + 43200);

	/* decay_factor: a counter of 1 reaches decay_to_zero in the given time */
	double d = wisp_score_decay_factor(60, 1000, 0.01);
	double v = 1;
	for (int i = 0; i < 60; i++)
		v *= d;
	assert_near(v, 0.01);
	d = wisp_score_decay_factor(10, 2000, 0.1);
	assert_near(d * d * d * d * d, 0.1);
	assert_true(wisp_score_decay_factor(0.1, 1000, 0.01) > 0); /* one interval at least */
	assert_near(wisp_score_decay_factor(0.1, 1000, 0.01), 0.01);
	assert_true(wisp_score_decay_factor(-1, 1000, 0.01) == 0);
	wisp_score_free(s);
}

/* ---- retention --------------------------------------------------------- */

static void test_retain_score(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.retain_score_ms = 10000;
	p.app_specific_weight = 1;
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	p3_topic(&tp);
	tp.mesh_message_deliveries_activation_ms = 1000;
	tp.mesh_failure_penalty_weight = -1;
	tp.mesh_failure_penalty_decay = 0.5;
	tp.first_message_deliveries_weight = 1;
	tp.first_message_deliveries_decay = 0.5;
	tp.first_message_deliveries_cap = 100;
	tp.invalid_message_deliveries_weight = -1;
	assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_OK);
	wisp_peer_id id7 = mk_id(7), id8 = mk_id(8);

	/* P2 3, P4 2^2: -1 in total; in the mesh with a deficit of 4 - 3 once active */
	add(s, 0, 7, NULL, T0);
	assert_int_equal(wisp_score_graft(s, 0, 0, T0), WISP_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(wisp_score_first_delivery(s, 0, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_invalid(s, 0, 0, T0), WISP_OK);
	assert_int_equal(wisp_score_invalid(s, 0, 0, T0), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(2)), 3 - 4 - 1);
	/* disconnect: P2 zeroed, P3b charged 1^2, out of the mesh */
	assert_int_equal(wisp_score_remove_peer(s, 0, T0 + S(2)), WISP_OK);
	assert_near(wisp_score_get(s, 0, T0 + S(2)), 0); /* the handle is free */
	assert_near(wisp_score_get_id(s, &id7, T0 + S(2)), -4 - 1);
	wisp_score_stats st;
	wisp_score_get_stats(s, &st);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.retained, 1);
	/* retained scores do not decay */
	assert_true(wisp_score_handle_expiry(s, T0 + S(8)) > 0);
	assert_near(wisp_score_get_id(s, &id7, T0 + S(8)), -5);
	/* back under another handle: the score comes back, and decays again */
	add(s, 5, 7, NULL, T0 + S(8));
	assert_near(wisp_score_get(s, 5, T0 + S(8)), -5);
	assert_int_equal(wisp_score_handle_expiry(s, T0 + S(9)), 1);
	assert_near(wisp_score_get(s, 5, T0 + S(9)), -1 - 0.5); /* P4 1^2, P3b 0.5 */
	/* the same id twice, or a handle in use, is refused */
	assert_int_equal(wisp_score_add_peer(s, 6, &id7, NULL, T0 + S(9)), WISP_ERR_EXISTS);
	assert_int_equal(wisp_score_add_peer(s, 5, &id8, NULL, T0 + S(9)), WISP_ERR_EXISTS);

	/* a positive score is not retained (as go and rust) */
	add(s, 1, 8, NULL, T0 + S(9));
	assert_int_equal(wisp_score_app_specific(s, 1, 2), WISP_OK);
	assert_int_equal(wisp_score_remove_peer(s, 1, T0 + S(9)), WISP_OK);
	assert_near(wisp_score_get_id(s, &id8, T0 + S(9)), 0);
	add(s, 1, 8, NULL, T0 + S(9));
	assert_near(wisp_score_get(s, 1, T0 + S(9)), 0);
	/* zero is retained */
	assert_int_equal(wisp_score_remove_peer(s, 1, T0 + S(9)), WISP_OK);
	wisp_score_get_stats(s, &st);
	assert_int_equal(st.retained, 1);

	/* expiry: reconnecting at the expiry time starts afresh, even before the
	 * purge has run */
	assert_int_equal(wisp_score_app_specific(s, 5, -3), WISP_OK);
	assert_int_equal(wisp_score_remove_peer(s, 5, T0 + S(10)), WISP_OK); /* expires T0+20 */
	assert_near(wisp_score_get_id(s, &id7, T0 + S(19)), -3 - 1 - 0.5);
	assert_near(wisp_score_get_id(s, &id7, T0 + S(20)), 0);
	add(s, 5, 7, NULL, T0 + S(20));
	assert_near(wisp_score_get(s, 5, T0 + S(20)), 0);
	/* the purge forgets the other one (expired at T0+19) */
	assert_true(wisp_score_handle_expiry(s, T0 + S(21)) > 0);
	wisp_score_get_stats(s, &st);
	assert_int_equal(st.retained, 0);
	assert_int_equal(st.connected, 1);
	assert_int_equal(wisp_score_remove_peer(s, 1, T0), WISP_ERR_NOTFOUND);
	wisp_score_free(s);
}

/* ---- thresholds and validation --------------------------------------- */

struct bad_params {
	const char *field;
	void (*mutate)(wisp_score_params *p);
};

#define BAD(name, stmt)                                        \
	static void bad_##name(wisp_score_params *p) { stmt; } \
	enum { bad_##name##_dummy }

BAD(version, p->version = 0);
BAD(gossip_pos, p->thresholds.gossip = 1);
BAD(publish_gt_gossip, p->thresholds.publish = p->thresholds.gossip + 1);
BAD(graylist_gt_publish, p->thresholds.graylist = p->thresholds.publish + 1);
BAD(gossip_nan, p->thresholds.gossip = NAN);
BAD(accept_px_neg, p->thresholds.accept_px = -1);
BAD(opp_neg, p->thresholds.opportunistic_graft = -0.5);
BAD(cap_neg, p->topic_score_cap = -1);
BAD(cap_inf, p->topic_score_cap = INFINITY);
BAD(app_neg, p->app_specific_weight = -1);
BAD(ip_pos, p->ip_colocation_factor_weight = 1);
BAD(ip_thr, p->ip_colocation_factor_threshold = 0.5);
BAD(wl_n, p->n_ip_whitelist = WISP_SCORE_IP_WHITELIST_MAX + 1);
BAD(wl_len, (p->n_ip_whitelist = 1, p->ip_whitelist[0].prefix_len = 129));
BAD(bp_pos, p->behaviour_penalty_weight = 1);
BAD(bp_decay, p->behaviour_penalty_decay = 1);
BAD(bp_thr, p->behaviour_penalty_threshold = -1);
BAD(interval, p->decay_interval_ms = 999);
BAD(dz0, p->decay_to_zero = 0);
BAD(dz1, p->decay_to_zero = 1);
BAD(peers0, p->max_peers = 0);
BAD(peers_big, p->max_peers = WISP_SCORE_MAX_PEERS_LIMIT + 1);
BAD(retained_big, p->max_retained = WISP_SCORE_MAX_PEERS_LIMIT + 1);
BAD(topics0, p->max_topics = 0);
BAD(weight_huge, p->behaviour_penalty_weight = -1e10);

static const struct bad_params bad_globals[] = {
	{ "version", bad_version },
	{ "thresholds.gossip", bad_gossip_pos },
	{ "thresholds.publish", bad_publish_gt_gossip },
	{ "thresholds.graylist", bad_graylist_gt_publish },
	{ "thresholds.gossip", bad_gossip_nan },
	{ "thresholds.accept_px", bad_accept_px_neg },
	{ "thresholds.opportunistic_graft", bad_opp_neg },
	{ "topic_score_cap", bad_cap_neg },
	{ "topic_score_cap", bad_cap_inf },
	{ "app_specific_weight", bad_app_neg },
	{ "ip_colocation_factor_weight", bad_ip_pos },
	{ "ip_colocation_factor_threshold", bad_ip_thr },
	{ "n_ip_whitelist", bad_wl_n },
	{ "prefix_len", bad_wl_len },
	{ "behaviour_penalty_weight", bad_bp_pos },
	{ "behaviour_penalty_decay", bad_bp_decay },
	{ "behaviour_penalty_threshold", bad_bp_thr },
	{ "decay_interval_ms", bad_interval },
	{ "decay_to_zero", bad_dz0 },
	{ "decay_to_zero", bad_dz1 },
	{ "max_peers", bad_peers0 },
	{ "max_peers", bad_peers_big },
	{ "max_retained", bad_retained_big },
	{ "max_topics", bad_topics0 },
	{ "behaviour_penalty_weight", bad_weight_huge },
};

struct bad_topic {
	const char *field;
	void (*mutate)(wisp_score_topic_params *tp);
};

#define BADT(name, stmt)                                               \
	static void badt_##name(wisp_score_topic_params *tp) { stmt; } \
	enum { badt_##name##_dummy }

BADT(tw, tp->topic_weight = -1);
BADT(tw_nan, tp->topic_weight = NAN);
BADT(q0, tp->time_in_mesh_quantum_ms = 0);
BADT(w1_neg, tp->time_in_mesh_weight = -1);
BADT(c1, tp->time_in_mesh_cap = 0);
BADT(w2_neg, tp->first_message_deliveries_weight = -1);
BADT(d2, tp->first_message_deliveries_decay = 1);
BADT(d2_zero, tp->first_message_deliveries_decay = 0);
BADT(c2, tp->first_message_deliveries_cap = 0);
BADT(w3_pos, tp->mesh_message_deliveries_weight = 1);
BADT(d3, tp->mesh_message_deliveries_decay = 1.5);
BADT(t3, tp->mesh_message_deliveries_threshold = 0);
BADT(c3, tp->mesh_message_deliveries_cap = 0);
BADT(c3_lt, tp->mesh_message_deliveries_cap = tp->mesh_message_deliveries_threshold / 2);
BADT(a3, tp->mesh_message_deliveries_activation_ms = 999);
BADT(w3b_pos, tp->mesh_failure_penalty_weight = 1);
BADT(d3b, tp->mesh_failure_penalty_decay = 0);
BADT(w4_pos, tp->invalid_message_deliveries_weight = 1);
BADT(d4, tp->invalid_message_deliveries_decay = 0);
BADT(d4_off, (tp->invalid_message_deliveries_weight = 0, tp->invalid_message_deliveries_decay = 1));
BADT(w2_inf, tp->first_message_deliveries_weight = INFINITY);
BADT(d3_off_bad, (tp->mesh_message_deliveries_weight = 0, tp->mesh_failure_penalty_weight = 0,
		  tp->mesh_message_deliveries_decay = 2));
BADT(c2_off_nan, (tp->first_message_deliveries_weight = 0, tp->first_message_deliveries_cap = NAN));

static const struct bad_topic bad_topics[] = {
	{ "topic_weight", badt_tw },
	{ "topic_weight", badt_tw_nan },
	{ "time_in_mesh_quantum_ms", badt_q0 },
	{ "time_in_mesh_weight", badt_w1_neg },
	{ "time_in_mesh_cap", badt_c1 },
	{ "first_message_deliveries_weight", badt_w2_neg },
	{ "first_message_deliveries_decay", badt_d2 },
	{ "first_message_deliveries_decay", badt_d2_zero },
	{ "first_message_deliveries_cap", badt_c2 },
	{ "mesh_message_deliveries_weight", badt_w3_pos },
	{ "mesh_message_deliveries_decay", badt_d3 },
	{ "mesh_message_deliveries_threshold", badt_t3 },
	{ "mesh_message_deliveries_cap", badt_c3 },
	{ "mesh_message_deliveries_cap", badt_c3_lt },
	{ "mesh_message_deliveries_activation_ms", badt_a3 },
	{ "mesh_failure_penalty_weight", badt_w3b_pos },
	{ "mesh_failure_penalty_decay", badt_d3b },
	{ "invalid_message_deliveries_weight", badt_w4_pos },
	{ "invalid_message_deliveries_decay", badt_d4 },
	{ "invalid_message_deliveries_decay", badt_d4_off },
	{ "first_message_deliveries_weight", badt_w2_inf },
	{ "mesh_message_deliveries_decay", badt_d3_off_bad },
	{ "first_message_deliveries_cap", badt_c2_off_nan },
};

static void test_validation(void **state)
{
	(void)state;
	char why[160];
	wisp_score_params p;
	wisp_score_params_default(&p);
	assert_int_equal(wisp_score_params_validate(&p, why, sizeof(why)), WISP_OK);
	assert_int_equal(wisp_score_params_validate(&p, NULL, 0), WISP_OK);

	for (size_t i = 0; i < sizeof(bad_globals) / sizeof(bad_globals[0]); i++) {
		wisp_score_params_default(&p);
		bad_globals[i].mutate(&p);
		why[0] = 0;
		assert_int_equal(wisp_score_params_validate(&p, why, sizeof(why)), WISP_ERR_INVALID_ARG);
		if (!strstr(why, bad_globals[i].field))
			fail_msg("case %zu: \"%s\" does not name %s", i, why, bad_globals[i].field);
		wisp_score *s = (wisp_score *)&p;
		assert_int_equal(wisp_score_new(&s, NULL, &p, T0), WISP_ERR_INVALID_ARG);
		assert_null(s);
	}
	/* a short buffer is truncated, not overrun */
	wisp_score_params_default(&p);
	p.decay_to_zero = 2;
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(wisp_score_params_validate(&p, tiny, 5), WISP_ERR_INVALID_ARG);
	assert_int_equal(tiny[4], 0);
	assert_int_equal(tiny[5], 'x');

	/* disabled components accept a zeroed struct, but not nonsense */
	wisp_score_params_default(&p);
	p.ip_colocation_factor_weight = 0;
	p.ip_colocation_factor_threshold = 0;
	p.behaviour_penalty_weight = 0;
	p.behaviour_penalty_decay = 0;
	assert_int_equal(wisp_score_params_validate(&p, why, sizeof(why)), WISP_OK);

	/* topic parameters: the defaults and the Atlas topics pass */
	wisp_score_topic_params tp, ok;
	wisp_score_params_default(&p);
	wisp_score_topic_default(&ok, &p);
	assert_int_equal(wisp_score_topic_params_validate(&ok, why, sizeof(why)), WISP_OK);
	quiet_topic(&tp);
	assert_int_equal(wisp_score_topic_params_validate(&tp, why, sizeof(why)), WISP_OK);
	/* a full topic to break one field at a time */
	p3_topic(&ok);
	ok.time_in_mesh_weight = 1;
	ok.time_in_mesh_cap = 10;
	ok.first_message_deliveries_weight = 1;
	ok.first_message_deliveries_decay = 0.5;
	ok.first_message_deliveries_cap = 10;
	ok.mesh_failure_penalty_weight = -1;
	ok.mesh_failure_penalty_decay = 0.5;
	ok.invalid_message_deliveries_weight = -1;
	assert_int_equal(wisp_score_topic_params_validate(&ok, why, sizeof(why)), WISP_OK);
	wisp_score_params_default(&p);
	wisp_score *s = mk(&p);
	for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
		tp = ok;
		bad_topics[i].mutate(&tp);
		why[0] = 0;
		assert_int_equal(wisp_score_topic_params_validate(&tp, why, sizeof(why)), WISP_ERR_INVALID_ARG);
		if (!strstr(why, bad_topics[i].field))
			fail_msg("topic case %zu: \"%s\" does not name %s", i, why, bad_topics[i].field);
		assert_int_equal(wisp_score_set_topic(s, 0, &tp), WISP_ERR_INVALID_ARG);
	}
	wisp_score_free(s);
}

/* The Atlas profile validates, and its thresholds are reached in the steps
 * the profile promises. */
static void test_atlas_thresholds(void **state)
{
	(void)state;
	char why[160];
	wisp_score_params p;
	wisp_score_topic_params tp[WISP_SCORE_ATLAS_TOPICS];
	wisp_score_atlas(&p, tp, NULL);
	assert_int_equal(wisp_score_params_validate(&p, why, sizeof(why)), WISP_OK);
	for (unsigned i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
		if (wisp_score_topic_params_validate(&tp[i], why, sizeof(why)) != WISP_OK)
			fail_msg("%s: %s", wisp_score_atlas_topic_name(i), why);
	assert_string_equal(wisp_score_atlas_topic_name(WISP_SCORE_ATLAS_VOTE), "atlas/vote/v1");
	assert_null(wisp_score_atlas_topic_name(WISP_SCORE_ATLAS_TOPICS));

	/* other networks validate too */
	wisp_score_atlas_net slow = { .validators = 4, .round_s = 30, .votes_per_round = 1,
				      .heartbeat_s = 60, .tx_per_s = 0.01, .mesh_d = 3 };
	wisp_score_atlas_net fast = { .validators = 10000, .round_s = 0.2, .votes_per_round = 3,
				      .heartbeat_s = 1, .tx_per_s = 100000, .mesh_d = 12 };
	const wisp_score_atlas_net *nets[] = { &slow, &fast };
	for (unsigned n = 0; n < 2; n++) {
		wisp_score_topic_params t2[WISP_SCORE_ATLAS_TOPICS];
		wisp_score_atlas(&p, t2, nets[n]);
		for (unsigned i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
			if (wisp_score_topic_params_validate(&t2[i], why, sizeof(why)) != WISP_OK)
				fail_msg("net %u %s: %s", n, wisp_score_atlas_topic_name(i), why);
	}

	wisp_score_atlas(&p, tp, NULL);
	wisp_score *s = mk(&p);
	for (uint32_t i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
		assert_int_equal(wisp_score_set_topic(s, i, &tp[i]), WISP_OK);
	const wisp_score_thresholds *th = wisp_score_thresholds_of(s);
	assert_true(th->graylist < th->publish && th->publish < th->gossip && th->gossip < 0);

	/* invalid votes: -cap * n^2 = -40 n^2 */
	add(s, 0, 0, NULL, T0);
	double want[12];
	for (int n = 1; n <= 11; n++) {
		assert_int_equal(wisp_score_invalid(s, 0, WISP_SCORE_ATLAS_VOTE, T0), WISP_OK);
		want[n] = wisp_score_get(s, 0, T0);
		assert_near(want[n], -40.0 * n * n);
	}
	assert_true(want[4] > th->gossip && want[6] < th->gossip);     /* 5 reach it */
	assert_true(want[7] > th->publish && want[8] < th->publish);
	assert_true(want[9] > th->graylist && want[11] < th->graylist); /* 10 reach it */
	assert_near(want[5], th->gossip);
	assert_near(want[10], th->graylist);

	/* a good mesh peer climbs but topics stop at the cap, under accept_px */
	add(s, 1, 1, NULL, T0);
	wisp_tstamp t = T0;
	for (uint32_t i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
		assert_int_equal(wisp_score_graft(s, 1, i, t), WISP_OK);
	for (int sec = 0; sec < 7200; sec++) {
		t += S(1);
		for (int k = 0; k < 20; k++) {
			assert_int_equal(wisp_score_first_delivery(s, 1, WISP_SCORE_ATLAS_VOTE, t), WISP_OK);
			assert_int_equal(wisp_score_first_delivery(s, 1, WISP_SCORE_ATLAS_TX, t), WISP_OK);
		}
		assert_int_equal(wisp_score_first_delivery(s, 1, WISP_SCORE_ATLAS_HEARTBEAT, t), WISP_OK);
		if (sec % 2 == 0)
			assert_int_equal(wisp_score_first_delivery(s, 1, WISP_SCORE_ATLAS_PROPOSAL, t), WISP_OK);
		wisp_score_handle_expiry(s, t);
	}
	double good = wisp_score_get(s, 1, t);
	assert_near(good, p.topic_score_cap);
	assert_true(good > th->opportunistic_graft && good < th->accept_px);
	/* the application's word (a known validator) lifts it over accept_px */
	assert_int_equal(wisp_score_app_specific(s, 1, 100), WISP_OK);
	assert_true(wisp_score_get(s, 1, t) >= th->accept_px);
	/* a silent mesh peer goes negative once P3 is active in votes */
	add(s, 2, 2, NULL, t);
	assert_int_equal(wisp_score_graft(s, 2, WISP_SCORE_ATLAS_VOTE, t), WISP_OK);
	assert_true(wisp_score_get(s, 2, t + S(60)) < 0);
	wisp_score_free(s);
}

/* ---- bounded memory --------------------------------------------------- */

static void test_bounds(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.max_peers = 4;
	p.max_topics = 2;
	p.max_retained = 2;
	p.app_specific_weight = 1;
	wisp_score *s = mk(&p);
	wisp_score_topic_params tp;
	quiet_topic(&tp);
	wisp_peer_id id = mk_id(1), empty;
	memset(&empty, 0, sizeof(empty));

	assert_int_equal(wisp_score_add_peer(s, 4, &id, NULL, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_add_peer(s, 0, &empty, NULL, T0), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_set_topic(s, 2, &tp), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_set_topic(s, 1, &tp), WISP_OK);
	for (uint32_t i = 0; i < 4; i++)
		add(s, i, 10 + i, NULL, T0);
	assert_int_equal(wisp_score_graft(s, 0, 2, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_graft(s, 9, 0, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_invalid(s, 0, 7, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_prune(s, 4, 0, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_remove_peer(s, 4, T0), WISP_ERR_LIMIT);
	assert_int_equal(wisp_score_remove_peer(s, 2, T0), WISP_OK);
	assert_int_equal(wisp_score_first_delivery(s, 2, 0, T0), WISP_ERR_NOTFOUND);
	assert_int_equal(wisp_score_duplicate(s, 2, 0, 0, T0), WISP_ERR_NOTFOUND);
	assert_near(wisp_score_get(s, 2, T0), 0);
	assert_near(wisp_score_get(s, 99, T0), 0);

	wisp_score_free(s);

	/* the retained table holds max_retained; the highest score goes first */
	double vals[4] = { -1, -5, -3, -4 };
	s = mk(&p);
	for (uint32_t i = 0; i < 4; i++) {
		add(s, i, 20 + i, NULL, T0);
		assert_int_equal(wisp_score_app_specific(s, i, vals[i]), WISP_OK);
	}
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(wisp_score_remove_peer(s, i, T0), WISP_OK);
	wisp_score_stats st;
	wisp_score_get_stats(s, &st);
	assert_int_equal(st.retained, 2);
	assert_true(st.retain_evicted == 2);
	for (uint32_t i = 0; i < 4; i++) {
		wisp_peer_id pid = mk_id(20 + i);
		double want = (vals[i] <= -4) ? vals[i] : 0; /* -5 and -4 are kept */
		assert_near(wisp_score_get_id(s, &pid, T0), want);
	}
	/* and every handle can still connect: records never run out */
	for (uint32_t i = 0; i < 4; i++)
		add(s, i, 30 + i, NULL, T0);
	wisp_score_get_stats(s, &st);
	assert_int_equal(st.connected, 4);
	assert_int_equal(st.retained, 2);
	wisp_score_free(s);

	/* max_retained 0: nothing is retained */
	p.max_retained = 0;
	s = mk(&p);
	add(s, 0, 1, NULL, T0);
	assert_int_equal(wisp_score_app_specific(s, 0, -1), WISP_OK);
	assert_int_equal(wisp_score_remove_peer(s, 0, T0), WISP_OK);
	assert_near(wisp_score_get_id(s, &id, T0), 0);
	wisp_score_free(s);
}

/* Every allocation happens in wisp_score_new; each failure is clean. */
static void test_alloc_failures(void **state)
{
	(void)state;
	wisp_score_params p;
	wisp_score_topic_params tp[WISP_SCORE_ATLAS_TOPICS];
	wisp_score_atlas(&p, tp, NULL);
	unsigned long n;
	for (n = 1;; n++) {
		wt_failmem fm;
		wt_failmem_init(&fm, n);
		wisp_score *s = (wisp_score *)&fm;
		int rc = wisp_score_new(&s, &fm.mem, &p, T0);
		if (rc == WISP_OK) {
			unsigned long calls = fm.calls;
			/* no event, query or decay allocates */
			for (uint32_t i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
				assert_int_equal(wisp_score_set_topic(s, i, &tp[i]), WISP_OK);
			uint8_t ip[16];
			ip4(ip, 1, 2, 3, 4);
			for (uint32_t i = 0; i < 50; i++) {
				add(s, i, i, ip, T0);
				assert_int_equal(wisp_score_graft(s, i, i % 4, T0), WISP_OK);
				assert_int_equal(wisp_score_invalid(s, i, i % 4, T0), WISP_OK);
			}
			for (uint32_t i = 0; i < 50; i++)
				assert_int_equal(wisp_score_remove_peer(s, i, T0 + S(1)), WISP_OK);
			wisp_score_handle_expiry(s, T0 + S(5));
			double snap[8];
			(void)wisp_score_snapshot(s, snap, 8, T0);
			assert_true(fm.calls == calls);
			wisp_score_free(s);
			break;
		}
		assert_int_equal(rc, WISP_ERR_NOMEM);
		assert_null(s);
	}
	assert_true(n > 1);
}

/* ---- events through a mailbox, snapshot ------------------------------ */

static void test_events(void **state)
{
	(void)state;
	wisp_score_params p;
	quiet_params(&p);
	p.app_specific_weight = 1;
	p.behaviour_penalty_weight = -1;
	p.behaviour_penalty_decay = 0.5;
	p.behaviour_penalty_threshold = 0;
	wisp_score *s = mk(&p), *t = mk(&p);
	wisp_score_topic_params tp;
	p3_topic(&tp);
	tp.mesh_message_deliveries_activation_ms = 1000;
	tp.time_in_mesh_weight = 1;
	tp.time_in_mesh_cap = 100;
	tp.first_message_deliveries_weight = 1;
	tp.first_message_deliveries_decay = 0.5;
	tp.first_message_deliveries_cap = 100;
	tp.mesh_failure_penalty_weight = -1;
	tp.mesh_failure_penalty_decay = 0.5;
	tp.invalid_message_deliveries_weight = -1;
	assert_int_equal(wisp_score_set_topic(s, 3, &tp), WISP_OK);
	assert_int_equal(wisp_score_set_topic(t, 3, &tp), WISP_OK);
	add(s, 9, 9, NULL, T0);
	add(t, 9, 9, NULL, T0);

	/* the same sequence, direct and packed through two words */
	wisp_score_event evs[] = {
		{ .kind = WISP_SCORE_EV_GRAFT, .peer = 9, .topic = 3 },
		{ .kind = WISP_SCORE_EV_FIRST_DELIVERY, .peer = 9, .topic = 3 },
		{ .kind = WISP_SCORE_EV_DUPLICATE, .peer = 9, .topic = 3, .u.validated_at = WISP_SCORE_VALIDATING },
		{ .kind = WISP_SCORE_EV_DUPLICATE, .peer = 9, .topic = 3, .u.validated_at = T0 },
		{ .kind = WISP_SCORE_EV_INVALID, .peer = 9, .topic = 3 },
		{ .kind = WISP_SCORE_EV_BEHAVIOUR_PENALTY, .peer = 9, .u.value = 1.5 },
		{ .kind = WISP_SCORE_EV_APP_SPECIFIC, .peer = 9, .u.value = -0.25 },
		{ .kind = WISP_SCORE_EV_PRUNE, .peer = 9, .topic = 3 },
	};
	wisp_tstamp now = T0;
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		now += S(1);
		uint64_t a, b;
		wisp_score_event back;
		assert_int_equal(wisp_score_event_pack(&evs[i], &a, &b), WISP_OK);
		assert_int_equal(wisp_score_event_unpack(&back, a, b), WISP_OK);
		assert_int_equal(back.kind, evs[i].kind);
		assert_int_equal(back.peer, evs[i].peer);
		assert_int_equal(back.topic, evs[i].topic);
		assert_int_equal(wisp_score_apply(s, &back, now), WISP_OK);
		switch (evs[i].kind) {
		case WISP_SCORE_EV_GRAFT: assert_int_equal(wisp_score_graft(t, 9, 3, now), 0); break;
		case WISP_SCORE_EV_PRUNE: assert_int_equal(wisp_score_prune(t, 9, 3, now), 0); break;
		case WISP_SCORE_EV_FIRST_DELIVERY: assert_int_equal(wisp_score_first_delivery(t, 9, 3, now), 0); break;
		case WISP_SCORE_EV_DUPLICATE:
			assert_int_equal(wisp_score_duplicate(t, 9, 3, evs[i].u.validated_at, now), 0);
			break;
		case WISP_SCORE_EV_INVALID: assert_int_equal(wisp_score_invalid(t, 9, 3, now), 0); break;
		case WISP_SCORE_EV_BEHAVIOUR_PENALTY:
			assert_int_equal(wisp_score_behaviour_penalty(t, 9, evs[i].u.value, now), 0);
			break;
		case WISP_SCORE_EV_APP_SPECIFIC: assert_int_equal(wisp_score_app_specific(t, 9, evs[i].u.value), 0); break;
		}
		assert_near(wisp_score_get(s, 9, now), wisp_score_get(t, 9, now));
	}
	/* graft +1s, one first (P2 1, P3 1), validating dup (P3 2), late dup
	 * ignored, invalid (P4 1), P7 1.5^2, P5 -0.25; prune at 7 s in the mesh
	 * with deficit 2: P3b 4 */
	assert_near(wisp_score_get(s, 9, now), 1 - 4 - 1 - 2.25 - 0.25);

	wisp_score_event bad = { .kind = 99, .peer = 9 };
	uint64_t a, b;
	assert_int_equal(wisp_score_apply(s, &bad, now), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_event_pack(&bad, &a, &b), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_score_event_unpack(&bad, 0, 0), WISP_ERR_INVALID_ARG);
	bad.kind = WISP_SCORE_EV_GRAFT;
	bad.topic = 1u << 24;
	assert_int_equal(wisp_score_event_pack(&bad, &a, &b), WISP_ERR_INVALID_ARG);
	bad.topic = 3;
	bad.peer = 1;
	assert_int_equal(wisp_score_apply(s, &bad, now), WISP_ERR_NOTFOUND);

	/* snapshot: NaN for free handles and past max_peers */
	add(s, 2, 2, NULL, now);
	assert_int_equal(wisp_score_app_specific(s, 2, 7), WISP_OK);
	double snap[20];
	assert_int_equal(wisp_score_snapshot(s, snap, 20, now), 2);
	for (int i = 0; i < 20; i++) {
		if (i == 2)
			assert_near(snap[i], 7);
		else if (i == 9)
			assert_near(snap[i], wisp_score_get(s, 9, now));
		else
			assert_true(isnan(snap[i]));
	}
	assert_int_equal(wisp_score_snapshot(s, snap, 3, now), 1);
	wisp_score_free(s);
	wisp_score_free(t);
}

/* ---- long randomized run --------------------------------------------- */

static void test_randomized(void **state)
{
	(void)state;
	wt_rng_seed("test_score randomized");
	wisp_score_params p;
	wisp_score_topic_params tp[WISP_SCORE_ATLAS_TOPICS];
	wisp_score_atlas(&p, tp, NULL);
	p.max_peers = 48;
	p.max_retained = 16;
	p.retain_score_ms = 120000;
	wisp_score *s = mk(&p);
	for (uint32_t i = 0; i < WISP_SCORE_ATLAS_TOPICS; i++)
		assert_int_equal(wisp_score_set_topic(s, i, &tp[i]), WISP_OK);
	bool up[48] = { false };
	unsigned next_id = 0;
	wisp_tstamp now = T0;
	double snap[48], lo = 0, hi = 0;

	for (int step = 0; step < 200000; step++) {
		now += (wt_rng() % 50) * WISP_NS_PER_MS;
		uint32_t peer = (uint32_t)(wt_rng() % 48), topic = (uint32_t)(wt_rng() % 4);
		unsigned r = (unsigned)(wt_rng() % 100);
		if (!up[peer]) {
			uint8_t ip[16];
			ip4(ip, 10, 0, 0, (uint8_t)(wt_rng() % 6));
			/* half the time an id seen before, so retained scores return */
			unsigned idn = (wt_rng() & 1) && next_id ? (unsigned)(wt_rng() % next_id) : next_id++;
			wisp_peer_id id = mk_id(idn);
			int rc = wisp_score_add_peer(s, peer, &id, ip, now);
			assert_true(rc == WISP_OK || rc == WISP_ERR_EXISTS);
			up[peer] = rc == WISP_OK;
			continue;
		}
		int rc = WISP_OK;
		if (r < 3) {
			rc = wisp_score_remove_peer(s, peer, now);
			up[peer] = false;
		} else if (r < 10) {
			rc = wisp_score_graft(s, peer, topic, now);
		} else if (r < 14) {
			rc = wisp_score_prune(s, peer, topic, now);
		} else if (r < 60) {
			rc = wisp_score_first_delivery(s, peer, topic, now);
		} else if (r < 85) {
			wisp_tstamp v = (wt_rng() & 1) ? WISP_SCORE_VALIDATING : now - MS(wt_rng() % 30);
			rc = wisp_score_duplicate(s, peer, topic, v, now);
		} else if (r < 92) {
			rc = wisp_score_invalid(s, peer, topic, now);
		} else if (r < 97) {
			rc = wisp_score_behaviour_penalty(s, peer, (double)(wt_rng() % 4), now);
		} else {
			rc = wisp_score_app_specific(s, peer, (double)(wt_rng() % 200) - 100.0);
		}
		assert_int_equal(rc, WISP_OK);
		if (now >= wisp_score_expiry(s))
			wisp_score_handle_expiry(s, now);
		if (step % 1000 == 0) {
			size_t n = wisp_score_snapshot(s, snap, 48, now);
			size_t want = 0;
			for (int i = 0; i < 48; i++) {
				want += up[i];
				assert_true(up[i] ? isfinite(snap[i]) : isnan(snap[i]));
				if (up[i] && snap[i] < lo)
					lo = snap[i];
				if (up[i] && snap[i] > hi)
					hi = snap[i];
			}
			assert_int_equal(n, want);
			wisp_score_stats st;
			wisp_score_get_stats(s, &st);
			assert_int_equal(st.connected, want);
			assert_true(st.retained <= p.max_retained);
		}
	}

	/* the run reached both sides: rewarded and graylisted peers */
	assert_true(hi > 0 && lo < p.thresholds.graylist);

	/* No more events: out of every mesh, P5 cleared; then hours of decay
	 * take every counter to exactly 0 and leave only P6. */
	for (uint32_t i = 0; i < 48; i++) {
		if (!up[i])
			continue;
		for (uint32_t t = 0; t < 4; t++)
			assert_int_equal(wisp_score_prune(s, i, t, now), WISP_OK);
		assert_int_equal(wisp_score_app_specific(s, i, 0), WISP_OK);
	}
	double prev[48] = { 0 };
	for (uint32_t i = 0; i < 48; i++) {
		wisp_score_breakdown b;
		if (wisp_score_explain(s, i, now, &b) == WISP_OK)
			prev[i] = fabs(b.topics) + fabs(b.behaviour);
	}
	for (int min = 0; min < 6 * 60; min++) {
		now += S(60);
		assert_true(wisp_score_handle_expiry(s, now) > 0);
		for (uint32_t i = 0; i < 48; i++) {
			wisp_score_breakdown b;
			if (wisp_score_explain(s, i, now, &b) != WISP_OK)
				continue;
			assert_true(isfinite(b.score));
			/* only negative parts remain after P2 is gone; nothing grows */
			double mag = fabs(b.topics) + fabs(b.behaviour);
			if (min > 60 && mag > prev[i] * (1 + 1e-12))
				fail_msg("peer %u grew from %g to %g at minute %d", i, prev[i], mag, min);
			prev[i] = mag;
		}
	}
	for (uint32_t i = 0; i < 48; i++) {
		wisp_score_breakdown b;
		if (wisp_score_explain(s, i, now, &b) != WISP_OK)
			continue;
		assert_true(b.topics == 0.0);
		assert_true(b.behaviour == 0.0);
		assert_true(b.app == 0.0);
		assert_true(b.score == b.ip);
	}
	wisp_score_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_p1_time_in_mesh),
		cmocka_unit_test(test_p2_first_deliveries),
		cmocka_unit_test(test_p3_mesh_deliveries),
		cmocka_unit_test(test_p3b_mesh_failure),
		cmocka_unit_test(test_p4_invalid),
		cmocka_unit_test(test_topic_weights_and_cap),
		cmocka_unit_test(test_p5_app_specific),
		cmocka_unit_test(test_p6_ip_colocation),
		cmocka_unit_test(test_p7_behaviour),
		cmocka_unit_test(test_decay_schedule),
		cmocka_unit_test(test_retain_score),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_atlas_thresholds),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_randomized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
