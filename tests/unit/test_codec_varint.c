#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/varint.h"

static void check_vector(uint64_t v, const char *hex)
{
	uint8_t want[16], got[16];
	long n = wt_unhex(hex, want, sizeof(want));
	assert_true(n > 0);
	assert_int_equal(wisp_uvarint_len(v), n);
	assert_int_equal(wisp_uvarint_put(got, v), n);
	assert_memory_equal(got, want, (size_t)n);
	uint64_t back = ~v;
	assert_int_equal(wisp_uvarint_get(want, want + n, &back), n);
	assert_true(back == v);
}

static void test_spec_vectors(void **state)
{
	(void)state;
	check_vector(0, "00");
	check_vector(1, "01");
	check_vector(127, "7f");
	check_vector(128, "8001");
	check_vector(255, "ff01");
	check_vector(300, "ac02");
	check_vector(16384, "808001");
	check_vector(WISP_UVARINT_MAX, "ffffffffffffffff7f");
}

static void expect_get(const char *hex, ssize_t want)
{
	uint8_t b[16];
	long n = wt_unhex(hex, b, sizeof(b));
	assert_true(n >= 0);
	uint64_t v = 12345;
	assert_int_equal(wisp_uvarint_get(b, b + n, &v), want);
	assert_true(v == 12345);
}

static void test_errors(void **state)
{
	(void)state;
	expect_get("", WISP_ERR_TRUNCATED);
	expect_get("80", WISP_ERR_TRUNCATED);
	expect_get("ff8080", WISP_ERR_TRUNCATED);
	expect_get("ffffffffffffffff", WISP_ERR_TRUNCATED);
	/* non-minimal */
	expect_get("8000", WISP_ERR_VARINT);
	expect_get("ff00", WISP_ERR_VARINT);
	expect_get("818000", WISP_ERR_VARINT);
	/* ninth byte still continues: over the 9-byte / 63-bit limit */
	expect_get("ffffffffffffffffff01", WISP_ERR_VARINT);
	expect_get("808080808080808080", WISP_ERR_VARINT);
	/* a 10-byte encoding of 2^63 */
	expect_get("80808080808080808001", WISP_ERR_VARINT);
	/* values above 2^63-1 cannot be written */
	uint8_t out[16] = { 0 };
	assert_int_equal(wisp_uvarint_len(UINT64_C(1) << 63), 0);
	assert_int_equal(wisp_uvarint_put(out, UINT64_C(1) << 63), 0);
	assert_int_equal(out[0], 0);
	/* decoding stops at the end pointer, not at the buffer's last byte */
	uint8_t b[2] = { 0xac, 0x02 };
	uint64_t v;
	assert_int_equal(wisp_uvarint_get(b, b + 1, &v), WISP_ERR_TRUNCATED);
	/* trailing bytes are the caller's: only the varint is consumed */
	uint8_t t[3] = { 0x01, 0xff, 0xff };
	assert_int_equal(wisp_uvarint_get(t, t + 3, &v), 1);
	assert_true(v == 1);
}

static void test_pbvarint(void **state)
{
	(void)state;
	uint8_t b[16];
	uint64_t v;
	assert_int_equal(wisp_pbvarint_put(b, UINT64_MAX), 10);
	uint8_t want[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	assert_memory_equal(b, want, 10);
	assert_int_equal(wisp_pbvarint_get(b, b + 10, &v), 10);
	assert_true(v == UINT64_MAX);
	/* tenth byte carrying more than bit 63 overflows */
	b[9] = 0x02;
	assert_int_equal(wisp_pbvarint_get(b, b + 10, &v), WISP_ERR_VARINT);
	/* eleven bytes */
	memset(b, 0xff, 11);
	b[10] = 0x01;
	assert_int_equal(wisp_pbvarint_get(b, b + 11, &v), WISP_ERR_VARINT);
	/* uvarint refuses what protobuf accepts */
	assert_int_equal(wisp_uvarint_get(want, want + 10, &v), WISP_ERR_VARINT);
	uint8_t nm[2] = { 0x80, 0x00 };
	assert_int_equal(wisp_pbvarint_get(nm, nm + 2, &v), WISP_ERR_VARINT);
}

static void test_roundtrip(void **state)
{
	(void)state;
	wt_rng_seed("varint");
	for (int i = 0; i < 100000; i++) {
		/* Spread over all lengths: random value shifted by a random amount. */
		uint64_t v = wt_rng() >> (wt_rng() % 64);
		uint8_t b[WISP_PBVARINT_MAX_LEN];
		uint64_t back;
		size_t n = wisp_pbvarint_put(b, v);
		assert_int_equal(n, wisp_pbvarint_len(v));
		assert_int_equal(wisp_pbvarint_get(b, b + n, &back), (ssize_t)n);
		assert_true(back == v);
		if (n > 1)
			assert_int_equal(wisp_pbvarint_get(b, b + n - 1, &back), WISP_ERR_TRUNCATED);
		if (v <= WISP_UVARINT_MAX) {
			assert_int_equal(wisp_uvarint_put(b, v), n);
			assert_int_equal(wisp_uvarint_get(b, b + n, &back), (ssize_t)n);
			assert_true(back == v);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_vectors),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_pbvarint),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
