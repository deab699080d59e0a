#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/pb.h"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	long n = wt_unhex(hex, out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

/* Reads hex and expects its first field to fail with err. */
static void expect_err(const char *hex, size_t max_len, int err)
{
	uint8_t b[64];
	size_t n = unhex(hex, b, sizeof(b));
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, max_len), err);
	assert_ptr_equal(r.p, b);
}

static void test_read_known_message(void **state)
{
	(void)state;
	/* PublicKey{Type=Secp256k1(2), Data=<3 bytes>} plus an unknown fixed64
	 * field 9 and fixed32 field 10, as protoc would encode them. */
	uint8_t b[64];
	size_t n = unhex("0802" "1203aabbcc" "490102030405060708" "550a0b0c0d", b, sizeof(b));
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pb_reader_init(&r, b, n);

	assert_int_equal(wisp_pb_next(&r, &f, 100), 1);
	assert_int_equal(f.num, 1);
	assert_int_equal(f.wire, WISP_PB_VARINT);
	assert_true(f.u64 == 2);
	assert_int_equal(wisp_pb_expect(&f, WISP_PB_VARINT), 0);
	assert_int_equal(wisp_pb_expect(&f, WISP_PB_LEN), WISP_ERR_WIRE_TYPE);

	assert_int_equal(wisp_pb_next(&r, &f, 100), 1);
	assert_int_equal(f.num, 2);
	assert_int_equal(f.wire, WISP_PB_LEN);
	assert_int_equal(f.len, 3);
	assert_ptr_equal(f.data, b + 4);

	assert_int_equal(wisp_pb_next(&r, &f, 100), 1);
	assert_int_equal(f.num, 9);
	assert_int_equal(f.wire, WISP_PB_I64);
	assert_true(f.u64 == UINT64_C(0x0807060504030201));

	assert_int_equal(wisp_pb_next(&r, &f, 100), 1);
	assert_int_equal(f.num, 10);
	assert_int_equal(f.wire, WISP_PB_I32);
	assert_true(f.u64 == 0x0d0c0b0a);

	assert_int_equal(wisp_pb_next(&r, &f, 100), 0);
	assert_int_equal(wisp_pb_next(&r, &f, 100), 0);
}

static void test_empty_and_nested(void **state)
{
	(void)state;
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pb_reader_init(&r, NULL, 0);
	assert_int_equal(wisp_pb_next(&r, &f, 10), 0);

	/* field 3 holds a message with field 1 = 150 (the protobuf docs' example) */
	uint8_t b[16];
	size_t n = unhex("1a03089601", b, sizeof(b));
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, 10), 1);
	wisp_pb_reader sub;
	wisp_pb_field g;
	wisp_pb_reader_init(&sub, f.data, f.len);
	assert_int_equal(wisp_pb_next(&sub, &g, 10), 1);
	assert_int_equal(g.num, 1);
	assert_true(g.u64 == 150);
	assert_int_equal(wisp_pb_next(&sub, &g, 10), 0);

	/* an inner LEN field running past its parent is truncated, not read */
	n = unhex("1a020a05" "0000000000", b, sizeof(b));
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, 10), 1);
	wisp_pb_reader_init(&sub, f.data, f.len);
	assert_int_equal(wisp_pb_next(&sub, &g, 10), WISP_ERR_TRUNCATED);
}

static void test_errors(void **state)
{
	(void)state;
	expect_err("08", 10, WISP_ERR_TRUNCATED);          /* varint value missing */
	expect_err("0880", 10, WISP_ERR_TRUNCATED);        /* varint value cut */
	expect_err("80", 10, WISP_ERR_TRUNCATED);          /* key cut */
	expect_err("1205aabb", 10, WISP_ERR_TRUNCATED);    /* LEN payload cut */
	expect_err("12", 10, WISP_ERR_TRUNCATED);          /* LEN length missing */
	expect_err("0901020304", 10, WISP_ERR_TRUNCATED);  /* I64 cut */
	expect_err("0d0102", 10, WISP_ERR_TRUNCATED);      /* I32 cut */
	expect_err("120b", 10, WISP_ERR_TOO_LARGE);        /* 11 > max, before truncation */
	expect_err("1203aabbcc", 2, WISP_ERR_TOO_LARGE);
	expect_err("128080808080808080807f", SIZE_MAX, WISP_ERR_VARINT); /* length overflows 64 bits */
	expect_err("088000", 10, WISP_ERR_VARINT);         /* non-minimal value */
	expect_err("8800" "01", 10, WISP_ERR_VARINT);      /* non-minimal key */
	expect_err("08ffffffffffffffffff02", 10, WISP_ERR_VARINT); /* 10th byte overflows */
	expect_err("0b", 10, WISP_ERR_WIRE_TYPE);          /* start group */
	expect_err("0c", 10, WISP_ERR_WIRE_TYPE);          /* end group */
	expect_err("0e00", 10, WISP_ERR_WIRE_TYPE);
	expect_err("0f00", 10, WISP_ERR_WIRE_TYPE);
	expect_err("0001", 10, WISP_ERR_MALFORMED);        /* field number 0 */
	expect_err("02", 10, WISP_ERR_MALFORMED);
	expect_err("8080808010" "00", 10, WISP_ERR_MALFORMED); /* key over 32 bits */

	/* a 10-byte varint value (uint64 max) is valid protobuf */
	uint8_t b[16];
	size_t n = unhex("08ffffffffffffffffff01", b, sizeof(b));
	wisp_pb_reader r;
	wisp_pb_field f;
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, 0), 1);
	assert_true(f.u64 == UINT64_MAX);
	/* the largest field number */
	n = unhex("f8ffffff0f01", b, sizeof(b));
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, 0), 1);
	assert_int_equal(f.num, WISP_PB_MAX_FIELD);
	/* a reader stays on the failing field: same error again */
	n = unhex("0801" "0b", b, sizeof(b));
	wisp_pb_reader_init(&r, b, n);
	assert_int_equal(wisp_pb_next(&r, &f, 0), 1);
	assert_int_equal(wisp_pb_next(&r, &f, 0), WISP_ERR_WIRE_TYPE);
	assert_int_equal(wisp_pb_next(&r, &f, 0), WISP_ERR_WIRE_TYPE);
}

static void test_writer(void **state)
{
	(void)state;
	uint8_t buf[64], want[64];
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, buf, sizeof(buf));
	wisp_pb_put_varint(&w, 1, 2);
	wisp_pb_put_bytes(&w, 2, "\xaa\xbb\xcc", 3);
	wisp_pb_put_fixed64(&w, 9, UINT64_C(0x0807060504030201));
	wisp_pb_put_fixed32(&w, 10, 0x0d0c0b0a);
	wisp_pb_put_bytes(&w, 3, NULL, 0);
	wisp_pb_put_varint(&w, 150, 300);
	size_t n = unhex("0802" "1203aabbcc" "490102030405060708" "550a0b0c0d" "1a00" "b009ac02",
			 want, sizeof(want));
	assert_int_equal(wisp_pb_writer_finish(&w), n);
	assert_memory_equal(buf, want, n);
	assert_int_equal(wisp_pb_varint_size(150, 300), 4);
	assert_int_equal(wisp_pb_bytes_size(2, 3), 5);

	/* exact fit, then one byte short: sticky NOBUF, len at last good field */
	wisp_pb_writer_init(&w, buf, 5);
	wisp_pb_put_varint(&w, 1, 2);
	wisp_pb_put_bytes(&w, 2, "ab", 2);
	assert_int_equal(wisp_pb_writer_finish(&w), WISP_ERR_NOBUF);
	assert_int_equal(w.len, 2);
	wisp_pb_put_varint(&w, 1, 1);
	assert_int_equal(wisp_pb_writer_finish(&w), WISP_ERR_NOBUF);
	assert_int_equal(w.len, 2);

	wisp_pb_writer_init(&w, buf, 6);
	wisp_pb_put_varint(&w, 1, 2);
	wisp_pb_put_bytes(&w, 2, "ab", 2);
	assert_int_equal(wisp_pb_writer_finish(&w), 6);

	wisp_pb_writer_init(&w, NULL, 0);
	wisp_pb_put_varint(&w, 1, 0);
	assert_int_equal(wisp_pb_writer_finish(&w), WISP_ERR_NOBUF);

	wisp_pb_writer_init(&w, buf, sizeof(buf));
	wisp_pb_put_varint(&w, 0, 1);
	assert_int_equal(wisp_pb_writer_finish(&w), WISP_ERR_INVALID_ARG);
	wisp_pb_writer_init(&w, buf, sizeof(buf));
	wisp_pb_put_bytes(&w, WISP_PB_MAX_FIELD + 1, "x", 1);
	assert_int_equal(wisp_pb_writer_finish(&w), WISP_ERR_INVALID_ARG);
	assert_int_equal(w.len, 0);
}

/* Random messages: write, read back field by field, compare. */
static void test_roundtrip(void **state)
{
	(void)state;
	wt_rng_seed("pb");
	uint8_t buf[4096], data[64];
	for (int iter = 0; iter < 2000; iter++) {
		struct {
			uint32_t num;
			uint8_t wire;
			uint64_t v;
			size_t len;
		} fl[16];
		int nf = (int)(wt_rng() % 16);
		wisp_pb_writer w;
		wisp_pb_writer_init(&w, buf, sizeof(buf));
		for (int i = 0; i < nf; i++) {
			fl[i].num = (uint32_t)(wt_rng() % WISP_PB_MAX_FIELD) + 1;
			fl[i].v = wt_rng() >> (wt_rng() % 64);
			fl[i].len = (size_t)(wt_rng() % sizeof(data));
			static const uint8_t wires[4] = { WISP_PB_VARINT, WISP_PB_I64, WISP_PB_LEN,
							  WISP_PB_I32 };
			fl[i].wire = wires[wt_rng() % 4];
			switch (fl[i].wire) {
			case WISP_PB_VARINT:
				wisp_pb_put_varint(&w, fl[i].num, fl[i].v);
				break;
			case WISP_PB_I64:
				wisp_pb_put_fixed64(&w, fl[i].num, fl[i].v);
				break;
			case WISP_PB_I32:
				fl[i].v &= UINT32_MAX;
				wisp_pb_put_fixed32(&w, fl[i].num, (uint32_t)fl[i].v);
				break;
			default:
				for (size_t j = 0; j < fl[i].len; j++)
					data[j] = (uint8_t)(fl[i].v + j);
				wisp_pb_put_bytes(&w, fl[i].num, data, fl[i].len);
			}
		}
		ssize_t n = wisp_pb_writer_finish(&w);
		assert_true(n >= 0);
		wisp_pb_reader r;
		wisp_pb_field f;
		wisp_pb_reader_init(&r, buf, (size_t)n);
		for (int i = 0; i < nf; i++) {
			assert_int_equal(wisp_pb_next(&r, &f, sizeof(data)), 1);
			assert_int_equal(f.num, fl[i].num);
			assert_int_equal(f.wire, fl[i].wire);
			if (f.wire == WISP_PB_LEN) {
				assert_int_equal(f.len, fl[i].len);
				for (size_t j = 0; j < f.len; j++)
					assert_int_equal(f.data[j], (uint8_t)(fl[i].v + j));
			} else {
				assert_true(f.u64 == fl[i].v);
			}
		}
		assert_int_equal(wisp_pb_next(&r, &f, sizeof(data)), 0);
		/* every proper prefix that cuts a field is an error, never a field */
		if (n > 0) {
			size_t cut = (size_t)(wt_rng() % (uint64_t)n);
			wisp_pb_reader_init(&r, buf, cut);
			int rc;
			while ((rc = wisp_pb_next(&r, &f, sizeof(data))) == 1)
				;
			assert_true(rc == 0 || rc == WISP_ERR_TRUNCATED);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_known_message),
		cmocka_unit_test(test_empty_and_nested),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
