/* libFuzzer target: the identity decoders fed arbitrary bytes.
 *
 * The same input goes to the key file decoder (PrivateKey protobuf), the
 * PublicKey decoder, the peer id text parser, the binary peer id parser and
 * (split as key || signature) the signature verifier. Whatever is accepted
 * must round-trip: re-encoding gives bytes that decode to the same value, and
 * an accepted text form is exactly the canonical one.
 */
#include <wisp/identity.h>

#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c))                                                                        \
			abort();                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pubkey(const wisp_pubkey *pub)
{
	uint8_t pb[WISP_PUBKEY_PB_LEN];
	wisp_pubkey again, from_id;
	wisp_peer_id id, parsed;
	char text[WISP_PEER_ID_TEXT_MAX];
	ssize_t n;

	n = wisp_pubkey_encode(pub, pb, sizeof(pb));
	CHECK(n == WISP_PUBKEY_PB_LEN);
	CHECK(wisp_pubkey_decode(&again, pb, (size_t)n) == 0);
	CHECK(wisp_pubkey_equal(&again, pub));
	CHECK(wisp_peer_id_from_pubkey(&id, pub) == 0);
	CHECK(wisp_peer_id_pubkey(&id, &from_id) == 0);
	CHECK(wisp_pubkey_equal(&from_id, pub));
	n = wisp_peer_id_to_base58(&id, text, sizeof(text));
	CHECK(n > 0 && wisp_peer_id_parse(&parsed, text, (size_t)n) == 0);
	CHECK(wisp_peer_id_equal(&parsed, &id));
	n = wisp_peer_id_to_cid(&id, text, sizeof(text));
	CHECK(n > 0 && wisp_peer_id_parse(&parsed, text, (size_t)n) == 0);
	CHECK(wisp_peer_id_equal(&parsed, &id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wisp_privkey key, again;
	wisp_pubkey pub, pub2;
	wisp_peer_id id, id2;
	uint8_t buf[WISP_PRIVKEY_PB_LEN];
	char text[WISP_PEER_ID_TEXT_MAX];
	ssize_t n;

	/* Key file bytes. */
	if (wisp_privkey_decode(&key, data, size) == 0) {
		n = wisp_privkey_encode(&key, buf, sizeof(buf));
		CHECK(n == WISP_PRIVKEY_PB_LEN);
		CHECK(wisp_privkey_decode(&again, buf, (size_t)n) == 0);
		CHECK(memcmp(&again, &key, sizeof(key)) == 0);
		check_pubkey(wisp_privkey_pubkey(&key));
		wisp_privkey_wipe(&again);
	}
	wisp_privkey_wipe(&key);

	/* PublicKey protobuf. */
	if (wisp_pubkey_decode(&pub, data, size) == 0)
		check_pubkey(&pub);

	/* Peer id text: accepted text is the canonical spelling of one form. */
	if (wisp_peer_id_parse(&id, (const char *)data, size) == 0) {
		int same = 0;
		n = wisp_peer_id_to_base58(&id, text, sizeof(text));
		CHECK(n > 0);
		same |= (size_t)n == size && memcmp(text, data, size) == 0;
		CHECK(wisp_peer_id_parse(&id2, text, (size_t)n) == 0 && wisp_peer_id_equal(&id, &id2));
		n = wisp_peer_id_to_cid(&id, text, sizeof(text));
		CHECK(n > 0);
		same |= (size_t)n == size && memcmp(text, data, size) == 0;
		CHECK(wisp_peer_id_parse(&id2, text, (size_t)n) == 0 && wisp_peer_id_equal(&id, &id2));
		CHECK(same);
		CHECK(wisp_peer_id_from_bytes(&id2, id.bytes, id.len) == 0);
		if (wisp_peer_id_pubkey(&id, &pub) == 0) {
			CHECK(wisp_peer_id_from_pubkey(&id2, &pub) == 0);
			CHECK(wisp_peer_id_equal(&id, &id2));
		}
	}

	/* Binary peer id: accepted bytes are kept verbatim. */
	if (wisp_peer_id_from_bytes(&id, data, size) == 0) {
		CHECK(id.len == size && memcmp(id.bytes, data, size) == 0);
		n = wisp_peer_id_to_cid(&id, text, sizeof(text));
		CHECK(n > 0 && wisp_peer_id_parse(&id2, text, (size_t)n) == 0);
		CHECK(wisp_peer_id_equal(&id, &id2));
	}

	/* 33-byte key || DER signature over a fixed message. */
	if (size > WISP_PUBKEY_LEN && wisp_pubkey_from_bytes(&pub2, data, WISP_PUBKEY_LEN) == 0) {
		int rc = wisp_pubkey_verify(&pub2, (const uint8_t *)"fuzz", 4, data + WISP_PUBKEY_LEN,
					    size - WISP_PUBKEY_LEN);
		CHECK(rc == 0 || rc == WISP_ERR_BAD_SIGNATURE);
	}
	return 0;
}
