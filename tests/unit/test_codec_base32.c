#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/base32.h"

static void check(const char *in, const char *text)
{
	char out[64];
	uint8_t back[64];
	size_t n = strlen(in), tl = strlen(text);
	assert_int_equal(wisp_base32_encode((const uint8_t *)in, n, out, sizeof(out)), tl);
	assert_string_equal(out, text);
	assert_int_equal(wisp_base32_encode((const uint8_t *)in, n, out, tl + 1), tl);
	assert_int_equal(wisp_base32_encode((const uint8_t *)in, n, out, tl), WISP_ERR_NOBUF);
	assert_int_equal(wisp_base32_decode(text, tl, back, sizeof(back)), n);
	assert_memory_equal(back, in, n);
	if (n)
		assert_int_equal(wisp_base32_decode(text, tl, back, n - 1), WISP_ERR_NOBUF);
}

/* RFC 4648 section 10, lower case without padding. */
static void test_rfc_vectors(void **state)
{
	(void)state;
	check("", "");
	check("f", "my");
	check("fo", "mzxq");
	check("foo", "mzxw6");
	check("foob", "mzxw6yq");
	check("fooba", "mzxw6ytb");
	check("foobar", "mzxw6ytboi");
}

static void test_strict(void **state)
{
	(void)state;
	uint8_t out[64];
	assert_int_equal(wisp_base32_decode("MZXQ", 4, out, sizeof(out)), WISP_ERR_BAD_CHAR);
	assert_int_equal(wisp_base32_decode("my======", 8, out, sizeof(out)), WISP_ERR_BAD_CHAR);
	assert_int_equal(wisp_base32_decode("m1", 2, out, sizeof(out)), WISP_ERR_BAD_CHAR);
	assert_int_equal(wisp_base32_decode("m8", 2, out, sizeof(out)), WISP_ERR_BAD_CHAR);
	/* lengths no encoder makes */
	assert_int_equal(wisp_base32_decode("m", 1, out, sizeof(out)), WISP_ERR_MALFORMED);
	assert_int_equal(wisp_base32_decode("mzx", 3, out, sizeof(out)), WISP_ERR_MALFORMED);
	assert_int_equal(wisp_base32_decode("mzxw6y", 6, out, sizeof(out)), WISP_ERR_MALFORMED);
	/* "mz" has non-zero bits after the byte ("my" is canonical) */
	assert_int_equal(wisp_base32_decode("mz", 2, out, sizeof(out)), WISP_ERR_MALFORMED);
}

static void test_roundtrip(void **state)
{
	(void)state;
	uint64_t s = wt_now_ns() | 1;
	printf("# base32 seed %llu\n", (unsigned long long)s);
	uint8_t in[40], back[40];
	char text[WISP_BASE32_ENCODED_LEN(40) + 1];
	for (int i = 0; i < 5000; i++) {
		s = s * 6364136223846793005u + 1442695040888963407u;
		size_t n = (size_t)(s >> 33) % sizeof(in);
		for (size_t j = 0; j < n; j++) {
			s = s * 6364136223846793005u + 1442695040888963407u;
			in[j] = (uint8_t)(s >> 56);
		}
		ssize_t tl = wisp_base32_encode(in, n, text, sizeof(text));
		assert_int_equal(tl, WISP_BASE32_ENCODED_LEN(n));
		assert_int_equal(wisp_base32_decode(text, (size_t)tl, back, sizeof(back)), n);
		assert_memory_equal(back, in, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_vectors),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
