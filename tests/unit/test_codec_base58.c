#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/base58.h"

static void check(const char *hex, const char *text)
{
	uint8_t bin[128], back[128];
	char out[256];
	long n = wt_unhex(hex, bin, sizeof(bin));
	assert_true(n >= 0);
	size_t tl = strlen(text);
	assert_int_equal(wisp_base58_encode(bin, (size_t)n, out, sizeof(out)), tl);
	assert_string_equal(out, text);
	/* exact capacity works, one less does not */
	assert_int_equal(wisp_base58_encode(bin, (size_t)n, out, tl + 1), tl);
	assert_string_equal(out, text);
	assert_int_equal(wisp_base58_encode(bin, (size_t)n, out, tl), WISP_ERR_NOBUF);
	assert_int_equal(wisp_base58_decode(text, tl, back, sizeof(back)), n);
	assert_memory_equal(back, bin, (size_t)n);
	assert_int_equal(wisp_base58_decode(text, tl, back, (size_t)n), n);
	if (n > 0)
		assert_int_equal(wisp_base58_decode(text, tl, back, (size_t)n - 1), WISP_ERR_NOBUF);
}

static void test_vectors(void **state)
{
	(void)state;
	check("48656c6c6f20576f726c6421", "2NEpo7TZRRrLZSi2U"); /* "Hello World!" */
	check("54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920"
	      "646f672e",
	      "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z");
	check("0000287fb4cd", "11233QC4");
	check("", "");
	check("00", "1");
	check("00000000000000000000", "1111111111");
	check("61", "2g");
	check("626262", "a3gV");
	check("516b6fcd0f", "ABnLTmg");
	check("bf4f89001e670274dd", "3SEo3LWLoPntC");
	check("00eb15231dfceb60925886b67d065299925915aeb172c06647",
	      "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L");
	/* a sha2-256 peer id from the libp2p peer-ids spec */
	check("12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9",
	      "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
}

static void test_bad_chars(void **state)
{
	(void)state;
	uint8_t out[64];
	/* 0, O, I and l are not in the alphabet */
	static const char *bad[] = { "0", "O", "I", "l", "2NEpo7TZRRrLZSi2U+", " 2g", "2g\n",
				     "\xc3\xa9", "+" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(wisp_base58_decode(bad[i], strlen(bad[i]), out, sizeof(out)),
				 WISP_ERR_BAD_CHAR);
	/* a NUL inside the given length is a bad character, not an end */
	assert_int_equal(wisp_base58_decode("2g\0" "2", 4, out, sizeof(out)), WISP_ERR_BAD_CHAR);
	/* bad characters win over a small buffer */
	assert_int_equal(wisp_base58_decode("zzzzzzzz0", 9, out, 1), WISP_ERR_BAD_CHAR);
	assert_int_equal(wisp_base58_encode((const uint8_t *)"", 0, (char *)out, 0), WISP_ERR_NOBUF);
	assert_int_equal(wisp_base58_encode((const uint8_t *)"\0\0", 2, (char *)out, 2),
			 WISP_ERR_NOBUF);
}

static void test_roundtrip(void **state)
{
	(void)state;
	wt_rng_seed("base58");
	uint8_t in[80], back[80];
	char text[WISP_BASE58_ENCODED_MAX(80) + 1];
	for (int i = 0; i < 5000; i++) {
		size_t n = (size_t)(wt_rng() % sizeof(in));
		size_t zeros = (size_t)(wt_rng() % 4);
		for (size_t j = 0; j < n; j++)
			in[j] = j < zeros ? 0 : (uint8_t)wt_rng();
		ssize_t tl = wisp_base58_encode(in, n, text, sizeof(text));
		assert_true(tl >= 0);
		assert_true((size_t)tl <= WISP_BASE58_ENCODED_MAX(n));
		assert_int_equal(strlen(text), (size_t)tl);
		assert_int_equal(wisp_base58_decode(text, (size_t)tl, back, sizeof(back)), n);
		assert_memory_equal(back, in, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_bad_chars),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
