/* The gossip actor's check of a PX entry (wisp_gossip_px_record): which
 * records it dials, which it refuses and how it says so, and which address
 * it picks. The loopback test (test_rt_gossip_px.c) runs the whole path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <wisp/error.h>

#include "actors/gossip/actor.h"
#include "codec/multiaddr.h"
#include "codec/pb.h"
#include "codec/peer_record.h"

static void key_of(wisp_privkey *k, wisp_peer_id *id, uint8_t seed)
{
	uint8_t s[WISP_SECRET_LEN];
	memset(s, seed, sizeof(s));
	assert_int_equal(wisp_privkey_from_secret(k, s), 0);
	assert_int_equal(wisp_peer_id_from_pubkey(id, wisp_privkey_pubkey(k)), 0);
}

/* key's record of the text addresses */
static size_t record(const wisp_privkey *key, const char *const *texts, size_t n, uint8_t *out, size_t cap)
{
	static uint8_t bin[8][128];
	wisp_peer_record_addr addrs[8];
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		ssize_t l = wisp_multiaddr_from_text(texts[i], strlen(texts[i]), bin[i], sizeof(bin[i]));
		assert_true(l > 0);
		addrs[i] = (wisp_peer_record_addr){ bin[i], (size_t)l };
	}
	ssize_t len = wisp_peer_record_seal(key, 1, addrs, n, out, cap);
	assert_true(len > 0);
	return (size_t)len;
}

static uint16_t port_of(const wisp_dial_req *r)
{
	return r->addr.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&r->addr)->sin_port)
					    : ntohs(((const struct sockaddr_in6 *)&r->addr)->sin6_port);
}

static void test_dial(void **state)
{
	(void)state;
	wisp_privkey c;
	wisp_peer_id idc;
	key_of(&c, &idc, 3);
	uint8_t rec[2048];
	wisp_dial_req req;

	/* loopback first in the record, a routable address after it: the
	 * routable one is dialed, naming the record's peer */
	const char *both[] = { "/ip4/127.0.0.1/tcp/1000", "/dns4/c.example/tcp/1001", "/ip4/192.0.2.9/tcp/1002" };
	size_t n = record(&c, both, 3, rec, sizeof(rec));
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_DIAL);
	assert_true(req.has_peer && wisp_peer_id_equal(&req.peer, &idc));
	assert_int_equal(req.addr.ss_family, AF_INET);
	assert_int_equal(req.addr_len, sizeof(struct sockaddr_in));
	assert_int_equal(port_of(&req), 1002);

	/* only loopback (nodes on one host): that one */
	const char *local[] = { "/ip6/::1/tcp/2000", "/ip4/127.0.0.1/tcp/2001" };
	n = record(&c, local, 2, rec, sizeof(rec));
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_DIAL);
	assert_int_equal(req.addr.ss_family, AF_INET6);
	assert_int_equal(port_of(&req), 2000);

	/* nothing wisp dials */
	const char *none[] = { "/dns4/c.example/tcp/1", "/ip4/192.0.2.9/udp/2" };
	n = record(&c, none, 2, rec, sizeof(rec));
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_NO_ADDR);
	assert_int_equal(wisp_gossip_px_record(&idc, NULL, 0, &req), WISP_PX_NO_RECORD);
	wisp_privkey_wipe(&c);
}

static void test_refused(void **state)
{
	(void)state;
	wisp_privkey c, d;
	wisp_peer_id idc, idd;
	key_of(&c, &idc, 3);
	key_of(&d, &idd, 4);
	uint8_t rec[2048];
	wisp_dial_req req;
	const char *addr[] = { "/ip4/192.0.2.9/tcp/1002" };

	/* D's valid record passed off as C's */
	size_t n = record(&d, addr, 1, rec, sizeof(rec));
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_BAD_RECORD);
	assert_int_equal(wisp_gossip_px_record(&idd, rec, n, &req), WISP_PX_DIAL);
	/* C's record with a flipped signature byte, or cut short */
	n = record(&c, addr, 1, rec, sizeof(rec));
	rec[n - 3] ^= 0x10;
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_BAD_RECORD);
	rec[n - 3] ^= 0x10;
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n - 1, &req), WISP_PX_BAD_RECORD);
	assert_int_equal(wisp_gossip_px_record(&idc, rec, n, &req), WISP_PX_DIAL);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff };
	assert_int_equal(wisp_gossip_px_record(&idc, junk, sizeof(junk), &req), WISP_PX_BAD_RECORD);

	/* an Ed25519 signer: not verified, so not dialed, and said apart */
	uint8_t env[256];
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, env, sizeof(env));
	uint8_t ed[36] = { 0x08, 0x01, 0x12, 0x20 };
	wisp_pb_put_bytes(&w, 1, ed, sizeof(ed));
	wisp_pb_put_bytes(&w, 2, "\x03\x01", 2);
	wisp_pb_put_bytes(&w, 3, "\x0a\x00", 2);
	wisp_pb_put_bytes(&w, 5, "\x01", 1);
	ssize_t el = wisp_pb_writer_finish(&w);
	assert_true(el > 0);
	assert_int_equal(wisp_gossip_px_record(&idc, env, (size_t)el, &req), WISP_PX_UNSUPPORTED_KEY);
	wisp_privkey_wipe(&c);
	wisp_privkey_wipe(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dial),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
