#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/multihash.h"

static void test_sha256(void **state)
{
	(void)state;
	uint8_t out[40], want[40];
	long n = wt_unhex("1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want,
			  sizeof(want));
	assert_int_equal(n, 34);
	assert_int_equal(wisp_multihash_sha256((const uint8_t *)"abc", 3, out, sizeof(out)), 34);
	assert_memory_equal(out, want, 34);
	n = wt_unhex("1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want,
		     sizeof(want));
	assert_int_equal(wisp_multihash_sha256(NULL, 0, out, 34), 34);
	assert_memory_equal(out, want, 34);
	assert_int_equal(wisp_multihash_sha256(NULL, 0, out, 33), WISP_ERR_NOBUF);

	wisp_multihash mh;
	assert_int_equal(wisp_multihash_decode(out, 34, &mh), 0);
	assert_true(mh.code == WISP_MH_SHA2_256);
	assert_int_equal(mh.len, 32);
	assert_ptr_equal(mh.digest, out + 2);
}

static void test_encode(void **state)
{
	(void)state;
	uint8_t out[64], d[32];
	memset(d, 0xab, sizeof(d));
	assert_int_equal(wisp_multihash_encode(WISP_MH_SHA2_256, d, 32, out, 34), 34);
	assert_int_equal(out[0], 0x12);
	assert_int_equal(out[1], 0x20);
	assert_memory_equal(out + 2, d, 32);
	assert_int_equal(wisp_multihash_encode(WISP_MH_SHA2_256, d, 32, out, 33), WISP_ERR_NOBUF);
	assert_int_equal(wisp_multihash_encode(WISP_MH_SHA2_256, d, 31, out, 64),
			 WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_multihash_encode(0x13, d, 32, out, 64), WISP_ERR_INVALID_ARG);
	/* identity of a 37-byte key, as peer ids of small keys use (0x00 0x25) */
	uint8_t key[37];
	memset(key, 7, sizeof(key));
	assert_int_equal(wisp_multihash_encode(WISP_MH_IDENTITY, key, 37, out, sizeof(out)), 39);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0x25);
	wisp_multihash mh;
	assert_int_equal(wisp_multihash_decode(out, 39, &mh), 0);
	assert_true(mh.code == WISP_MH_IDENTITY);
	assert_int_equal(mh.len, 37);
	/* identity of nothing is valid */
	assert_int_equal(wisp_multihash_encode(WISP_MH_IDENTITY, NULL, 0, out, 2), 2);
	assert_int_equal(wisp_multihash_decode(out, 2, &mh), 0);
	assert_int_equal(mh.len, 0);
}

static void expect_decode(const char *hex, int err)
{
	uint8_t b[64];
	long n = wt_unhex(hex, b, sizeof(b));
	assert_true(n >= 0);
	wisp_multihash mh = { 0 };
	assert_int_equal(wisp_multihash_decode(b, (size_t)n, &mh), err);
}

static void test_decode_errors(void **state)
{
	(void)state;
	expect_decode("", WISP_ERR_TRUNCATED);
	expect_decode("12", WISP_ERR_TRUNCATED);
	expect_decode("1220abcd", WISP_ERR_TRUNCATED);
	expect_decode("0003aabb", WISP_ERR_TRUNCATED);
	expect_decode("0002aabbcc", WISP_ERR_TRAILING);
	expect_decode("1201aa", WISP_ERR_MALFORMED);
	expect_decode("1300", WISP_ERR_UNKNOWN_CODE);
	expect_decode("b24001aa", WISP_ERR_UNKNOWN_CODE); /* unknown code 0x2032 */
	expect_decode("8000", WISP_ERR_VARINT);
	expect_decode("008000", WISP_ERR_VARINT);
	expect_decode("00ffffffffffffffffff01", WISP_ERR_VARINT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
