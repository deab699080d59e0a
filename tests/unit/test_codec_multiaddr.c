#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "codec/base58.h"
#include "codec/multiaddr.h"

#define PEER_B58 "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
#define PEER_CID "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
#define PEER_HEX "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9"

/* text -> binary == hex, binary -> text == canonical (text if NULL). */
static void check(const char *text, const char *hex, const char *canonical)
{
	uint8_t want[256], bin[256];
	char out[512];
	long n = wt_unhex(hex, want, sizeof(want));
	assert_true(n > 0);
	assert_int_equal(wisp_multiaddr_from_text(text, strlen(text), bin, sizeof(bin)), n);
	assert_memory_equal(bin, want, (size_t)n);
	assert_int_equal(wisp_multiaddr_from_text(text, strlen(text), bin, (size_t)n), n);
	assert_int_equal(wisp_multiaddr_from_text(text, strlen(text), bin, (size_t)n - 1),
			 WISP_ERR_NOBUF);
	assert_int_equal(wisp_multiaddr_validate(want, (size_t)n), 0);
	const char *c = canonical ? canonical : text;
	assert_int_equal(wisp_multiaddr_to_text(want, (size_t)n, out, sizeof(out)), strlen(c));
	assert_string_equal(out, c);
	assert_int_equal(wisp_multiaddr_to_text(want, (size_t)n, out, strlen(c) + 1), strlen(c));
	assert_int_equal(wisp_multiaddr_to_text(want, (size_t)n, out, strlen(c)), WISP_ERR_NOBUF);
}

static void test_spec_vectors(void **state)
{
	(void)state;
	check("/ip4/127.0.0.1/udp/1234", "047f000001910204d2", NULL);
	check("/ip4/127.0.0.1/tcp/4001", "047f000001060fa1", NULL);
	check("/ip4/0.0.0.0/tcp/0", "0400000000060000", NULL);
	check("/ip6/::1/tcp/4001", "2900000000000000000000000000000001060fa1", NULL);
	check("/ip6/2001:db8::1/udp/65535", "2920010db8000000000000000000000001" "9102ffff", NULL);
	check("/ip6/2001:DB8:0:0:0:0:0:1/tcp/1", "2920010db8000000000000000000000001" "060001",
	      "/ip6/2001:db8::1/tcp/1");
	check("/dns4/example.com/tcp/443", "360b6578616d706c652e636f6d0601bb", NULL);
	check("/dns6/a/tcp/443", "3701610601bb", NULL);
	check("/ip4/1.2.3.4/tcp/4001/p2p/" PEER_B58, "0401020304060fa1a50322" PEER_HEX, NULL);
	check("/p2p/" PEER_B58, "a50322" PEER_HEX, NULL);
	check("/p2p/" PEER_CID, "a50322" PEER_HEX, "/p2p/" PEER_B58);
	check("/ipfs/" PEER_B58, "a50322" PEER_HEX, "/p2p/" PEER_B58);
}

static void expect_text(const char *text, int err)
{
	uint8_t bin[512];
	assert_int_equal(wisp_multiaddr_from_text(text, strlen(text), bin, sizeof(bin)), err);
}

/* The p2p text of the given multihash bytes must fail with err. */
static void expect_p2p(const char *hex, int err)
{
	uint8_t mh[64];
	char text[128] = "/p2p/";
	long n = wt_unhex(hex, mh, sizeof(mh));
	assert_true(wisp_base58_encode(mh, (size_t)n, text + 5, sizeof(text) - 5) > 0);
	expect_text(text, err);
}

static void test_text_errors(void **state)
{
	(void)state;
	expect_text("", WISP_ERR_MALFORMED);
	expect_text("/", WISP_ERR_MALFORMED);
	expect_text("//", WISP_ERR_MALFORMED);
	expect_text("ip4/1.2.3.4", WISP_ERR_MALFORMED);
	expect_text("/ip4", WISP_ERR_MALFORMED);
	expect_text("/ip4/", WISP_ERR_MALFORMED);
	expect_text("/ip4//tcp/1", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3.4/", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3.4//tcp/1", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3.4/tcp", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3.256", WISP_ERR_MALFORMED);
	expect_text("/ip4/01.2.3.4", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3", WISP_ERR_MALFORMED);
	expect_text("/ip4/1.2.3.4.5", WISP_ERR_MALFORMED);
	expect_text("/ip4/::1", WISP_ERR_MALFORMED);
	expect_text("/ip6/1.2.3.4", WISP_ERR_MALFORMED);
	expect_text("/ip6/::1%eth0", WISP_ERR_MALFORMED);
	expect_text("/ip6/::1::2", WISP_ERR_MALFORMED);
	expect_text("/ip6/0000:0000:0000:0000:0000:0000:0000:0000:0", WISP_ERR_MALFORMED);
	expect_text("/tcp/65536", WISP_ERR_MALFORMED);
	expect_text("/tcp/012", WISP_ERR_MALFORMED);
	expect_text("/tcp/123456", WISP_ERR_MALFORMED);
	expect_text("/tcp/-1", WISP_ERR_BAD_CHAR);
	expect_text("/tcp/+1", WISP_ERR_BAD_CHAR);
	expect_text("/udp/1x", WISP_ERR_BAD_CHAR);
	expect_text("/foo/1", WISP_ERR_UNKNOWN_CODE);
	expect_text("/IP4/1.2.3.4", WISP_ERR_UNKNOWN_CODE);
	expect_text("/ip4/1.2.3.4/quic-v1", WISP_ERR_UNKNOWN_CODE);
	expect_text("/dns4/a b", WISP_ERR_BAD_CHAR);
	expect_text("/dns4/a\x7f", WISP_ERR_BAD_CHAR);
	char longname[300] = "/dns4/";
	memset(longname + 6, 'a', 256);
	longname[262] = 0;
	expect_text(longname, WISP_ERR_TOO_LARGE);
	longname[261] = 0;
	expect_text(longname, 258);
	expect_text("/p2p/0abc", WISP_ERR_MALFORMED);
	expect_text("/p2p/QmI", WISP_ERR_BAD_CHAR);
	expect_p2p("0005aabbccdd", WISP_ERR_TRUNCATED);
	expect_p2p("0002aabbcc", WISP_ERR_TRAILING);
	expect_p2p("1220aabbcc", WISP_ERR_MALFORMED); /* not "1" or "Qm": no multihash */
	expect_text("/p2p/" PEER_CID "a", WISP_ERR_MALFORMED);
	expect_text("/p2p/BAFZ", WISP_ERR_MALFORMED);
	/* a CID with the raw codec (0x55) instead of libp2p-key */
	expect_text("/p2p/bafkreie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
		    WISP_ERR_UNKNOWN_CODE);
	/* CIDv0 prefix byte in a base32 CID */
	expect_text("/p2p/baaaaa", WISP_ERR_MALFORMED);
	/* a 129-byte identity multihash is over WISP_MA_P2P_MAX */
	uint8_t mh[140];
	char text[300] = "/p2p/";
	mh[0] = 0;
	mh[1] = 0x81;
	mh[2] = 0x01;
	memset(mh + 3, 1, 129);
	assert_true(wisp_base58_encode(mh, 132, text + 5, sizeof(text) - 5) > 0);
	expect_text(text, WISP_ERR_TOO_LARGE);
	/* a NUL inside the text */
	uint8_t bin[64];
	assert_int_equal(wisp_multiaddr_from_text("/ip4/1.2.3.4\0", 13, bin, sizeof(bin)),
			 WISP_ERR_MALFORMED);
	assert_int_equal(wisp_multiaddr_from_text("/ip4\0/1.2.3.4", 13, bin, sizeof(bin)),
			 WISP_ERR_UNKNOWN_CODE);
}

static void expect_bin(const char *hex, int err)
{
	uint8_t b[512];
	char out[1024];
	long n = wt_unhex(hex, b, sizeof(b));
	assert_true(n >= 0);
	assert_int_equal(wisp_multiaddr_validate(b, (size_t)n), err);
	assert_int_equal(wisp_multiaddr_to_text(b, (size_t)n, out, sizeof(out)), err);
}

static void test_binary_errors(void **state)
{
	(void)state;
	expect_bin("", WISP_ERR_MALFORMED);
	expect_bin("04", WISP_ERR_TRUNCATED);
	expect_bin("047f0000", WISP_ERR_TRUNCATED);
	expect_bin("047f000001060f", WISP_ERR_TRUNCATED);
	expect_bin("047f00000106", WISP_ERR_TRUNCATED);
	expect_bin("047f00000100", WISP_ERR_UNKNOWN_CODE);
	expect_bin("05", WISP_ERR_UNKNOWN_CODE);
	expect_bin("cc03", WISP_ERR_UNKNOWN_CODE); /* quic-v1 */
	expect_bin("8400", WISP_ERR_VARINT);
	expect_bin("91", WISP_ERR_TRUNCATED);
	expect_bin("3600", WISP_ERR_MALFORMED);
	expect_bin("360361626305", WISP_ERR_UNKNOWN_CODE);
	expect_bin("360461", WISP_ERR_TRUNCATED);
	expect_bin("36", WISP_ERR_TRUNCATED);
	expect_bin("3603612f62", WISP_ERR_BAD_CHAR);
	expect_bin("3603612062", WISP_ERR_BAD_CHAR);
	expect_bin("3603610062", WISP_ERR_BAD_CHAR);
	expect_bin("3603618062", WISP_ERR_BAD_CHAR);
	expect_bin("368002", WISP_ERR_TOO_LARGE);
	expect_bin("36808080808080808080", WISP_ERR_VARINT);
	expect_bin("a50300", WISP_ERR_MALFORMED);
	expect_bin("a5038101", WISP_ERR_TOO_LARGE);
	expect_bin("a503021201", WISP_ERR_TRUNCATED);
	expect_bin("a50303120100", WISP_ERR_MALFORMED);
	expect_bin("a50302130" "0", WISP_ERR_UNKNOWN_CODE);
	expect_bin("a5030300" "00" "00", WISP_ERR_TRAILING);
	expect_bin("a50322" PEER_HEX "00", WISP_ERR_UNKNOWN_CODE);
	expect_bin("a50323" PEER_HEX "00", WISP_ERR_TRAILING);
}

static void test_iterator(void **state)
{
	(void)state;
	uint8_t b[128];
	ssize_t n = wisp_multiaddr_from_text("/ip4/1.2.3.4/tcp/4001/p2p/" PEER_B58, 26 + 46, b,
					     sizeof(b));
	assert_int_equal(n, 8 + 3 + 34);
	wisp_ma_iter it;
	wisp_ma_component c;
	wisp_ma_iter_init(&it, b, (size_t)n);
	assert_int_equal(wisp_ma_next(&it, &c), 1);
	assert_true(c.code == WISP_MA_IP4);
	assert_int_equal(c.len, 4);
	assert_memory_equal(c.value, "\x01\x02\x03\x04", 4);
	assert_int_equal(wisp_ma_next(&it, &c), 1);
	assert_true(c.code == WISP_MA_TCP);
	assert_int_equal(wisp_ma_port(&c), 4001);
	assert_int_equal(wisp_ma_next(&it, &c), 1);
	assert_true(c.code == WISP_MA_P2P);
	assert_int_equal(c.len, 34);
	assert_ptr_equal(c.value, b + 11);
	assert_int_equal(wisp_ma_next(&it, &c), 0);

	/* an iterator stops at the bad component and stays there */
	b[n] = 0x05;
	wisp_ma_iter_init(&it, b, (size_t)n + 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(wisp_ma_next(&it, &c), 1);
	assert_int_equal(wisp_ma_next(&it, &c), WISP_ERR_UNKNOWN_CODE);
	assert_ptr_equal(it.p, b + n);
}

static void test_sockaddr(void **state)
{
	(void)state;
	uint8_t b[128];
	struct sockaddr_storage ss;
	socklen_t sl;
	ssize_t n = wisp_multiaddr_from_text("/ip4/1.2.3.4/tcp/4001/p2p/" PEER_B58, 72, b, sizeof(b));
	assert_int_equal(wisp_multiaddr_sockaddr(b, (size_t)n, WISP_MA_TCP, &ss, &sl), 8);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	assert_int_equal(sl, sizeof(*sin));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 4001);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x01020304);
	assert_int_equal(wisp_multiaddr_sockaddr(b, (size_t)n, WISP_MA_UDP, &ss, &sl),
			 WISP_ERR_UNSUPPORTED);
	assert_int_equal(wisp_multiaddr_sockaddr(b, 4, WISP_MA_TCP, &ss, &sl), WISP_ERR_TRUNCATED);
	assert_int_equal(wisp_multiaddr_sockaddr(b, 5, WISP_MA_TCP, &ss, &sl), WISP_ERR_UNSUPPORTED);
	assert_int_equal(wisp_multiaddr_sockaddr(b, 0, WISP_MA_TCP, &ss, &sl), WISP_ERR_MALFORMED);

	uint8_t back[64];
	assert_int_equal(wisp_multiaddr_from_sockaddr((struct sockaddr *)&ss, WISP_MA_TCP, back,
						      sizeof(back)),
			 8);
	assert_memory_equal(back, b, 8);
	assert_int_equal(wisp_multiaddr_from_sockaddr((struct sockaddr *)&ss, WISP_MA_TCP, back, 7),
			 WISP_ERR_NOBUF);
	assert_int_equal(wisp_multiaddr_from_sockaddr((struct sockaddr *)&ss, WISP_MA_IP4, back,
						      sizeof(back)),
			 WISP_ERR_INVALID_ARG);

	n = wisp_multiaddr_from_text("/ip6/2001:db8::7/udp/9000", 25, b, sizeof(b));
	assert_int_equal(n, 21);
	assert_int_equal(wisp_multiaddr_sockaddr(b, (size_t)n, WISP_MA_UDP, &ss, &sl), 21);
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(sl, sizeof(*sin6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 9000);
	assert_int_equal(wisp_multiaddr_from_sockaddr((struct sockaddr *)&ss, WISP_MA_UDP, back,
						      sizeof(back)),
			 21);
	assert_memory_equal(back, b, 21);

	/* dns addresses are for the resolver, not a sockaddr */
	n = wisp_multiaddr_from_text("/dns4/x/tcp/1", 13, b, sizeof(b));
	assert_int_equal(wisp_multiaddr_sockaddr(b, (size_t)n, WISP_MA_TCP, &ss, &sl),
			 WISP_ERR_UNSUPPORTED);

	/* an IPv4-mapped peer on a dual-stack socket becomes /ip4 */
	struct sockaddr_in6 m = { .sin6_family = AF_INET6, .sin6_port = htons(4001) };
	assert_int_equal(inet_pton(AF_INET6, "::ffff:1.2.3.4", &m.sin6_addr), 1);
	char text[64];
	n = wisp_multiaddr_from_sockaddr((struct sockaddr *)&m, WISP_MA_TCP, back, sizeof(back));
	assert_int_equal(n, 8);
	assert_int_equal(wisp_multiaddr_to_text(back, (size_t)n, text, sizeof(text)), 21);
	assert_string_equal(text, "/ip4/1.2.3.4/tcp/4001");
}

static void test_append(void **state)
{
	(void)state;
	uint8_t b[128], mh[34];
	long ml = wt_unhex(PEER_HEX, mh, sizeof(mh));
	ssize_t n = wisp_multiaddr_from_text("/ip4/1.2.3.4/tcp/4001", 21, b, sizeof(b));
	n = wisp_multiaddr_append(b, sizeof(b), (size_t)n, WISP_MA_P2P, mh, (size_t)ml);
	assert_int_equal(n, 45);
	char text[128];
	assert_true(wisp_multiaddr_to_text(b, (size_t)n, text, sizeof(text)) > 0);
	assert_string_equal(text, "/ip4/1.2.3.4/tcp/4001/p2p/" PEER_B58);
	assert_int_equal(wisp_multiaddr_append(b, 44, 8, WISP_MA_P2P, mh, 34), WISP_ERR_NOBUF);
	assert_int_equal(wisp_multiaddr_append(b, 128, 8, WISP_MA_P2P, mh, 33), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_multiaddr_append(b, 128, 8, WISP_MA_TCP, mh, 3), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_multiaddr_append(b, 128, 8, WISP_MA_DNS4, (const uint8_t *)"a/b", 3),
			 WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_multiaddr_append(b, 128, 8, 0x01cc, mh, 0), WISP_ERR_UNKNOWN_CODE);
}

/* Random valid multiaddrs: binary -> text -> binary is the identity. */
static void test_roundtrip(void **state)
{
	(void)state;
	wt_rng_seed("multiaddr");
	static const uint64_t codes[] = { WISP_MA_IP4, WISP_MA_IP6,  WISP_MA_TCP, WISP_MA_UDP,
					  WISP_MA_DNS4, WISP_MA_DNS6, WISP_MA_P2P };
	for (int iter = 0; iter < 3000; iter++) {
		uint8_t bin[1024], back[1024], v[64];
		char text[4096];
		size_t len = 0;
		int nc = 1 + (int)(wt_rng() % 5);
		for (int i = 0; i < nc; i++) {
			uint64_t code = codes[wt_rng() % 7];
			size_t vl;
			switch (code) {
			case WISP_MA_IP4: vl = 4; break;
			case WISP_MA_IP6: vl = 16; break;
			case WISP_MA_TCP:
			case WISP_MA_UDP: vl = 2; break;
			case WISP_MA_P2P: vl = wt_rng() % 2 ? 34 : 2 + (size_t)(wt_rng() % 40); break;
			default: vl = 1 + (size_t)(wt_rng() % 40);
			}
			for (size_t j = 0; j < vl; j++)
				v[j] = (uint8_t)wt_rng();
			if (code == WISP_MA_DNS4 || code == WISP_MA_DNS6)
				for (size_t j = 0; j < vl; j++) {
					uint8_t ch = (uint8_t)('!' + v[j] % 94);
					v[j] = ch == '/' ? 'x' : ch;
				}
			if (code == WISP_MA_P2P) {
				v[0] = vl == 34 ? 0x12 : 0x00;
				v[1] = (uint8_t)(vl - 2);
			}
			ssize_t r = wisp_multiaddr_append(bin, sizeof(bin), len, code, v, vl);
			assert_true(r > 0);
			len = (size_t)r;
		}
		ssize_t tl = wisp_multiaddr_to_text(bin, len, text, sizeof(text));
		assert_true(tl > 0);
		assert_int_equal(wisp_multiaddr_from_text(text, (size_t)tl, back, sizeof(back)), len);
		assert_memory_equal(back, bin, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_vectors),
		cmocka_unit_test(test_text_errors),
		cmocka_unit_test(test_binary_errors),
		cmocka_unit_test(test_iterator),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
