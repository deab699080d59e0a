#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/frame.h"

static void test_multistream_message(void **state)
{
	(void)state;
	/* multistream-select: "/multistream/1.0.0\n" is 19 bytes, prefix 0x13 */
	static const char msg[] = "/multistream/1.0.0\n";
	uint8_t buf[64];
	assert_int_equal(wisp_frame_size(19), 20);
	assert_int_equal(wisp_frame_write(buf, sizeof(buf), msg, 19), 20);
	assert_int_equal(buf[0], 0x13);
	assert_memory_equal(buf + 1, msg, 19);

	const uint8_t *p;
	size_t plen, need = 0;
	/* every prefix of the frame is "need more", with the right target */
	for (size_t have = 0; have < 20; have++) {
		assert_int_equal(wisp_frame_peek(buf, have, 100, &p, &plen, &need), 0);
		assert_int_equal(need, have == 0 ? 1 : 20);
	}
	assert_int_equal(wisp_frame_peek(buf, 20, 100, &p, &plen, &need), 20);
	assert_ptr_equal(p, buf + 1);
	assert_int_equal(plen, 19);
	/* exactly at the maximum is allowed, one below is not */
	assert_int_equal(wisp_frame_peek(buf, 20, 19, &p, &plen, NULL), 20);
	assert_int_equal(wisp_frame_peek(buf, 20, 18, &p, &plen, NULL), WISP_ERR_TOO_LARGE);
	/* oversize is refused from the prefix alone */
	assert_int_equal(wisp_frame_peek(buf, 1, 18, &p, &plen, NULL), WISP_ERR_TOO_LARGE);
}

static void test_oversize_from_partial_prefix(void **state)
{
	(void)state;
	const uint8_t *p;
	size_t plen, need;
	/* 0x80: at least 128 bytes follow, whatever the next byte is */
	uint8_t one[1] = { 0x80 };
	assert_int_equal(wisp_frame_peek(one, 1, 127, &p, &plen, &need), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_frame_peek(one, 1, 128, &p, &plen, &need), 0);
	assert_int_equal(need, 2);
	/* 0xff 0xff: at least 16383 + 2^14 */
	uint8_t two[2] = { 0xff, 0xff };
	assert_int_equal(wisp_frame_peek(two, 2, 32766, &p, &plen, &need), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_frame_peek(two, 2, 32767, &p, &plen, &need), 0);
	assert_int_equal(need, 3);
	/* 4 GiB declared with a 1 MiB limit: refused before the payload */
	uint8_t big[8];
	size_t hl = (size_t)wisp_frame_put_prefix(big, sizeof(big), (size_t)1 << 32);
	assert_int_equal(hl, 5);
	for (size_t have = 1; have <= hl; have++)
		assert_int_equal(wisp_frame_peek(big, have, 1 << 20, &p, &plen, NULL),
				 have < 3 ? 0 : WISP_ERR_TOO_LARGE);
	/* an empty frame with max 0 */
	uint8_t z[1] = { 0 };
	assert_int_equal(wisp_frame_peek(z, 0, 0, &p, &plen, &need), 0);
	assert_int_equal(wisp_frame_peek(z, 1, 0, &p, &plen, &need), 1);
	assert_int_equal(plen, 0);
}

static void test_bad_prefix(void **state)
{
	(void)state;
	const uint8_t *p;
	size_t plen;
	uint8_t nm[3] = { 0x85, 0x00, 0x00 };
	assert_int_equal(wisp_frame_peek(nm, 3, SIZE_MAX, &p, &plen, NULL), WISP_ERR_VARINT);
	uint8_t ten[10];
	memset(ten, 0x80, sizeof(ten));
	assert_int_equal(wisp_frame_peek(ten, 10, SIZE_MAX, &p, &plen, NULL), WISP_ERR_VARINT);
}

static void test_reader_stream(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = 0;
	static const char *msgs[] = { "", "a", "hello", "/yamux/1.0.0\n" };
	for (size_t i = 0; i < 4; i++) {
		ssize_t n = wisp_frame_write(buf + len, sizeof(buf) - len, msgs[i], strlen(msgs[i]));
		assert_true(n > 0);
		len += (size_t)n;
	}
	/* feed the stream in growing pieces: frames come out whole and in order */
	for (size_t have = 0; have <= len; have++) {
		wisp_frame_reader r;
		wisp_frame_reader_init(&r, buf, have, 64);
		const uint8_t *p;
		size_t plen, got = 0, used = 0;
		int rc;
		while ((rc = wisp_frame_next(&r, &p, &plen)) == 1) {
			assert_int_equal(plen, strlen(msgs[got]));
			assert_memory_equal(p, msgs[got], plen);
			used += wisp_frame_size(plen);
			got++;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(wisp_frame_reader_rest(&r), have - used);
		if (have == len)
			assert_int_equal(got, 4);
	}
	/* a frame over the reader's maximum stops the stream */
	wisp_frame_reader r;
	wisp_frame_reader_init(&r, buf, len, 4);
	const uint8_t *p;
	size_t plen;
	assert_int_equal(wisp_frame_next(&r, &p, &plen), 1);
	assert_int_equal(wisp_frame_next(&r, &p, &plen), 1);
	assert_int_equal(wisp_frame_next(&r, &p, &plen), WISP_ERR_TOO_LARGE);
	assert_int_equal(wisp_frame_reader_rest(&r), len - 3);
}

static void test_writer_nobuf(void **state)
{
	(void)state;
	uint8_t buf[8];
	assert_int_equal(wisp_frame_write(buf, 6, "hello", 5), 6);
	assert_int_equal(wisp_frame_write(buf, 5, "hello", 5), WISP_ERR_NOBUF);
	assert_int_equal(wisp_frame_write(NULL, 0, NULL, 0), WISP_ERR_NOBUF);
	assert_int_equal(wisp_frame_write(buf, 1, NULL, 0), 1);
	assert_int_equal(buf[0], 0);
	assert_int_equal(wisp_frame_put_prefix(buf, 1, 128), WISP_ERR_NOBUF);
	assert_int_equal(wisp_frame_put_prefix(buf, 2, 300), 2);
	assert_int_equal(buf[0], 0xac);
	assert_int_equal(buf[1], 0x02);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multistream_message),
		cmocka_unit_test(test_oversize_from_partial_prefix),
		cmocka_unit_test(test_bad_prefix),
		cmocka_unit_test(test_reader_stream),
		cmocka_unit_test(test_writer_nobuf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
