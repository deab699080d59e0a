/* Keys, PublicKey/PrivateKey protobufs, peer ids and signatures.
 * The fixed vectors come from js-libp2p (@libp2p/crypto 5.1.8,
 * @libp2p/peer-id 5.1.9); tests/interop re-checks them live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <wisp/identity.h>

#include "codec/base32.h"
#include "codec/base58.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* secret = 01 02 ... 20 */
#define FIXED_PUB_PB "080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"
#define FIXED_PRIV_PB "080212200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
#define FIXED_ID_B58 "16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP"
#define FIXED_ID_CID "bafzaajiiaijccauex52wejrlxvuuaccxjdz342x2kkxdc4kvdapm4mnwmni4z75ewa"
#define FIXED_ID_HEX "0025" FIXED_PUB_PB
/* js: (await key.sign(utf8("wisp"))); RFC 6979 makes it reproducible. */
#define FIXED_SIG_WISP                                                                     \
	"304502210095e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344"       \
	"02206773ce2f38ca5f96f0eff814dfa7d91002dda1055ce969a9cfad908f145d0141"
/* The same signature with S replaced by n - S: valid ECDSA, but high-S. */
#define FIXED_SIG_WISP_HIGH_S                                                              \
	"304602210095e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344"       \
	"022100988c31d0c735a0690f1007eb205826eeb7d13be1525f3691f024cdfdbbd94000"
/* The secp256k1 group order n: not a valid secret. */
#define ORDER_HEX "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	long n = wt_unhex(hex, out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

static void fixed_secret(uint8_t s[WISP_SECRET_LEN])
{
	for (int i = 0; i < WISP_SECRET_LEN; i++)
		s[i] = (uint8_t)(i + 1);
}

static void fixed_key(wisp_privkey *key)
{
	uint8_t s[WISP_SECRET_LEN];
	fixed_secret(s);
	assert_int_equal(wisp_privkey_from_secret(key, s), 0);
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
	char hex[2 * 4096 + 1];
	assert_true(n <= 4096);
	wt_hex(p, n, hex);
	assert_string_equal(hex, want);
}

/* ---- fixed vectors ------------------------------------------------------ */

static void test_fixed_vectors(void **state)
{
	(void)state;
	wisp_privkey key;
	wisp_peer_id id, parsed;
	wisp_pubkey pub;
	uint8_t buf[128];
	char text[WISP_PEER_ID_TEXT_MAX];
	ssize_t n;

	fixed_key(&key);
	n = wisp_pubkey_encode(wisp_privkey_pubkey(&key), buf, sizeof(buf));
	assert_int_equal(n, WISP_PUBKEY_PB_LEN);
	assert_hex(buf, (size_t)n, FIXED_PUB_PB);
	n = wisp_privkey_encode(&key, buf, sizeof(buf));
	assert_int_equal(n, WISP_PRIVKEY_PB_LEN);
	assert_hex(buf, (size_t)n, FIXED_PRIV_PB);

	assert_int_equal(wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key)), 0);
	assert_hex(id.bytes, id.len, FIXED_ID_HEX);
	n = wisp_peer_id_to_base58(&id, text, sizeof(text));
	assert_int_equal(n, strlen(FIXED_ID_B58));
	assert_string_equal(text, FIXED_ID_B58);
	n = wisp_peer_id_to_cid(&id, text, sizeof(text));
	assert_int_equal(n, strlen(FIXED_ID_CID));
	assert_string_equal(text, FIXED_ID_CID);

	assert_int_equal(wisp_peer_id_parse(&parsed, FIXED_ID_B58, strlen(FIXED_ID_B58)), 0);
	assert_true(wisp_peer_id_equal(&parsed, &id));
	memset(&parsed, 0, sizeof(parsed));
	assert_int_equal(wisp_peer_id_parse(&parsed, FIXED_ID_CID, strlen(FIXED_ID_CID)), 0);
	assert_true(wisp_peer_id_equal(&parsed, &id));

	assert_int_equal(wisp_peer_id_pubkey(&parsed, &pub), 0);
	assert_true(wisp_pubkey_equal(&pub, wisp_privkey_pubkey(&key)));

	/* Deterministic nonces: byte-identical to the js signature. */
	n = wisp_privkey_sign(&key, (const uint8_t *)"wisp", 4, buf, sizeof(buf));
	assert_true(n > 0);
	assert_hex(buf, (size_t)n, FIXED_SIG_WISP);
	assert_int_equal(wisp_pubkey_verify(&pub, (const uint8_t *)"wisp", 4, buf, (size_t)n), 0);
	wisp_privkey_wipe(&key);
}

static void test_roundtrip_generated(void **state)
{
	(void)state;
	for (int i = 0; i < 32; i++) {
		wisp_privkey key, back;
		wisp_pubkey pub;
		wisp_peer_id id, parsed;
		uint8_t pb[64];
		char text[WISP_PEER_ID_TEXT_MAX];
		ssize_t n;

		assert_int_equal(wisp_privkey_generate(&key), 0);
		n = wisp_privkey_encode(&key, pb, sizeof(pb));
		assert_int_equal(n, WISP_PRIVKEY_PB_LEN);
		assert_int_equal(wisp_privkey_decode(&back, pb, (size_t)n), 0);
		assert_memory_equal(&back, &key, sizeof(key));

		n = wisp_pubkey_encode(&key.pub, pb, sizeof(pb));
		assert_int_equal(n, WISP_PUBKEY_PB_LEN);
		assert_int_equal(wisp_pubkey_decode(&pub, pb, (size_t)n), 0);
		assert_true(wisp_pubkey_equal(&pub, &key.pub));

		assert_int_equal(wisp_peer_id_from_pubkey(&id, &pub), 0);
		assert_int_equal(id.len, 2 + WISP_PUBKEY_PB_LEN);
		n = wisp_peer_id_to_base58(&id, text, sizeof(text));
		assert_true(n > 0);
		assert_memory_equal(text, "16Uiu2", 6);
		assert_int_equal(wisp_peer_id_parse(&parsed, text, (size_t)n), 0);
		assert_true(wisp_peer_id_equal(&parsed, &id));
		n = wisp_peer_id_to_cid(&id, text, sizeof(text));
		assert_true(n > 0);
		assert_memory_equal(text, "bafzaa", 6);
		assert_int_equal(wisp_peer_id_parse(&parsed, text, (size_t)n), 0);
		assert_true(wisp_peer_id_equal(&parsed, &id));
		assert_int_equal(wisp_peer_id_pubkey(&parsed, &pub), 0);
		assert_true(wisp_pubkey_equal(&pub, &key.pub));
		wisp_privkey_wipe(&key);
		wisp_privkey_wipe(&back);
	}
}

/* ---- secrets ---------------------------------------------------------- */

static void test_bad_secrets(void **state)
{
	(void)state;
	uint8_t s[WISP_SECRET_LEN];
	wisp_privkey key;

	memset(s, 0, sizeof(s));
	memset(&key, 0xaa, sizeof(key));
	assert_int_equal(wisp_privkey_from_secret(&key, s), WISP_ERR_BAD_KEY);
	for (size_t i = 0; i < sizeof(key); i++)
		assert_int_equal(((uint8_t *)&key)[i], 0); /* wiped */
	unhex(ORDER_HEX, s, sizeof(s));
	assert_int_equal(wisp_privkey_from_secret(&key, s), WISP_ERR_BAD_KEY);
	memset(s, 0xff, sizeof(s));
	assert_int_equal(wisp_privkey_from_secret(&key, s), WISP_ERR_BAD_KEY);
	s[0] = 0x7f; /* below n */
	assert_int_equal(wisp_privkey_from_secret(&key, s), 0);
	wisp_privkey_wipe(&key);
}

/* ---- PublicKey decoding ------------------------------------------------- */

static int decode_pub_hex(const char *hex)
{
	uint8_t buf[256];
	wisp_pubkey pub;
	size_t n = unhex(hex, buf, sizeof(buf));
	return wisp_pubkey_decode(&pub, buf, n);
}

static void test_pubkey_decode_errors(void **state)
{
	(void)state;
	uint8_t good[WISP_PUBKEY_PB_LEN], big[WISP_PUBKEY_PB_MAX + 1];
	wisp_pubkey pub;

	unhex(FIXED_PUB_PB, good, sizeof(good));
	assert_int_equal(wisp_pubkey_decode(&pub, good, sizeof(good)), 0);

	/* Every truncation. */
	assert_int_equal(wisp_pubkey_decode(&pub, good, 0), WISP_ERR_MALFORMED);
	assert_int_equal(wisp_pubkey_decode(&pub, good, 1), WISP_ERR_TRUNCATED);
	assert_int_equal(wisp_pubkey_decode(&pub, good, 2), WISP_ERR_MALFORMED); /* no Data */
	for (size_t n = 3; n < sizeof(good); n++)
		assert_int_equal(wisp_pubkey_decode(&pub, good, n), WISP_ERR_TRUNCATED);

	/* Key types other than secp256k1. */
	assert_int_equal(decode_pub_hex("08011221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(decode_pub_hex("08001221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(decode_pub_hex("08631221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_UNKNOWN_CODE);
	/* 2 + 2^32 must not truncate to 2. */
	assert_int_equal(decode_pub_hex("088280808010" "1221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_UNKNOWN_CODE);

	/* Data of the wrong length or form. */
	assert_int_equal(decode_pub_hex("08021220" "84bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_pub_hex("08021222" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b000"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_pub_hex("08021200"), WISP_ERR_BAD_KEY);
	/* 0x04 prefix with 32 bytes, and the full uncompressed form. */
	assert_int_equal(decode_pub_hex("08021221" "0484bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_pub_hex("08021241"
					"0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
					"483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"),
			 WISP_ERR_BAD_KEY);
	/* x = 5: 5^3 + 7 is not a square mod p, so no point has it. */
	assert_int_equal(decode_pub_hex("08021221" "020000000000000000000000000000000000000000000000000000000000000005"),
			 WISP_ERR_BAD_KEY);
	/* x = p (not reduced). */
	assert_int_equal(decode_pub_hex("08021221" "02fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f"),
			 WISP_ERR_BAD_KEY);

	/* Wire types. */
	assert_int_equal(decode_pub_hex("0a0102" "1221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_WIRE_TYPE);
	assert_int_equal(decode_pub_hex("0802" "1005"), WISP_ERR_WIRE_TYPE);
	assert_int_equal(decode_pub_hex("0802" "1b"), WISP_ERR_WIRE_TYPE); /* group */
	/* Missing Type. */
	assert_int_equal(decode_pub_hex("1221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_MALFORMED);
	/* Non-minimal varint. */
	assert_int_equal(decode_pub_hex("088200" "1221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0"),
			 WISP_ERR_VARINT);

	/* Unknown fields and any field order are fine. */
	assert_int_equal(decode_pub_hex("1221" "0284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4b0" "0802"),
			 0);
	assert_int_equal(decode_pub_hex(FIXED_PUB_PB "1801" "2203616263"), 0);

	memset(big, 0, sizeof(big));
	memcpy(big, good, sizeof(good));
	assert_int_equal(wisp_pubkey_decode(&pub, big, sizeof(big)), WISP_ERR_TOO_LARGE);

	/* 33 raw bytes. */
	assert_int_equal(wisp_pubkey_from_bytes(&pub, good + 4, 33), 0);
	assert_int_equal(wisp_pubkey_from_bytes(&pub, good + 4, 32), WISP_ERR_BAD_KEY);
	assert_int_equal(wisp_pubkey_from_bytes(&pub, NULL, 0), WISP_ERR_BAD_KEY);
}

/* ---- PrivateKey (key file bytes) decoding --------------------------------- */

static int decode_priv_hex(const char *hex)
{
	uint8_t buf[256];
	wisp_privkey key;
	size_t n = unhex(hex, buf, sizeof(buf));
	int rc = wisp_privkey_decode(&key, buf, n);
	if (rc != 0) {
		for (size_t i = 0; i < sizeof(key); i++)
			assert_int_equal(((uint8_t *)&key)[i], 0); /* wiped */
	}
	wisp_privkey_wipe(&key);
	return rc;
}

static void test_privkey_decode_errors(void **state)
{
	(void)state;
	uint8_t good[WISP_PRIVKEY_PB_LEN], big[WISP_KEYFILE_MAX + 1];
	wisp_privkey key;

	assert_int_equal(decode_priv_hex(FIXED_PRIV_PB), 0);
	unhex(FIXED_PRIV_PB, good, sizeof(good));
	assert_int_equal(wisp_privkey_decode(&key, good, 0), WISP_ERR_MALFORMED);
	assert_int_equal(wisp_privkey_decode(&key, good, 1), WISP_ERR_TRUNCATED);
	assert_int_equal(wisp_privkey_decode(&key, good, 2), WISP_ERR_MALFORMED);
	for (size_t n = 3; n < sizeof(good); n++)
		assert_int_equal(wisp_privkey_decode(&key, good, n), WISP_ERR_TRUNCATED);

	/* Ed25519 and RSA key files. */
	assert_int_equal(decode_priv_hex("08011240" "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
			 WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(decode_priv_hex("08001201ff"), WISP_ERR_UNKNOWN_CODE);
	/* Wrong lengths, zero and out-of-range secrets. */
	assert_int_equal(decode_priv_hex("0802121f" "02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_priv_hex("08021221" "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_priv_hex("08021220" "0000000000000000000000000000000000000000000000000000000000000000"),
			 WISP_ERR_BAD_KEY);
	assert_int_equal(decode_priv_hex("08021220" ORDER_HEX), WISP_ERR_BAD_KEY);
	/* Wire types, missing fields. */
	assert_int_equal(decode_priv_hex("0a0102"), WISP_ERR_WIRE_TYPE);
	assert_int_equal(decode_priv_hex("08021001"), WISP_ERR_WIRE_TYPE);
	assert_int_equal(decode_priv_hex("0802"), WISP_ERR_MALFORMED);
	assert_int_equal(decode_priv_hex("12200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"),
			 WISP_ERR_MALFORMED);
	/* Unknown fields (e.g. a future header) are skipped; last value wins. */
	assert_int_equal(decode_priv_hex("2a0568656c6c6f" FIXED_PRIV_PB "3801"), 0);
	assert_int_equal(decode_priv_hex("08011200" FIXED_PRIV_PB), 0);

	memset(big, 0, sizeof(big));
	memcpy(big, good, sizeof(good));
	assert_int_equal(wisp_privkey_decode(&key, big, sizeof(big)), WISP_ERR_TOO_LARGE);
	/* Zero padding after the message is a run of field-0 keys. */
	assert_int_equal(wisp_privkey_decode(&key, big, sizeof(good) + 1), WISP_ERR_MALFORMED);
}

/* ---- peer ids ----------------------------------------------------------- */

static int parse(const char *text)
{
	wisp_peer_id id;
	return wisp_peer_id_parse(&id, text, strlen(text));
}

/* base58btc of the bytes given in hex, bypassing the peer id checks. */
static void b58_of_hex(const char *hex, char *out, size_t cap)
{
	uint8_t bin[128];
	size_t n = unhex(hex, bin, sizeof(bin));
	assert_true(wisp_base58_encode(bin, n, out, cap) > 0);
}

static void test_peer_id_parse_errors(void **state)
{
	(void)state;
	char text[WISP_PEER_ID_TEXT_MAX], longer[200];
	wisp_peer_id id;
	wisp_pubkey pub;
	size_t n;

	assert_int_equal(parse(FIXED_ID_B58), 0);
	assert_int_equal(parse(FIXED_ID_CID), 0);
	assert_int_equal(parse(""), WISP_ERR_MALFORMED);

	/* base58: characters outside the alphabet ('0', 'O', 'I', 'l', '+'). */
	snprintf(text, sizeof(text), "%s", FIXED_ID_B58);
	text[10] = '0';
	assert_int_equal(parse(text), WISP_ERR_BAD_CHAR);
	text[10] = 'l';
	assert_int_equal(parse(text), WISP_ERR_BAD_CHAR);
	/* One byte short of the declared digest. */
	b58_of_hex("0025" "080212210284bf7562262bbd6940085748f3be6afa52ae317155181ece31b66351ccffa4", text,
		   sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRUNCATED);
	/* Trailing byte after the multihash. */
	b58_of_hex(FIXED_ID_HEX "00", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRAILING);
	/* identity multihash over 42 bytes. */
	b58_of_hex("002b" "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TOO_LARGE);
	/* sha2-256 with a 31-byte digest: its text does not start with "Qm",
	 * so by the spec it is read as a multibase CID, and '2' is none. */
	b58_of_hex("121f" "00000000000000000000000000000000000000000000000000000000000000", text,
		   sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);

	/* CID: wrong multibase (upper-case base32, base58btc 'z', hex 'f'). */
	snprintf(text, sizeof(text), "%s", FIXED_ID_CID);
	text[0] = 'B';
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(parse("zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA"), WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(parse("f01720025" FIXED_PUB_PB), WISP_ERR_UNKNOWN_CODE);
	/* Upper case inside. */
	snprintf(text, sizeof(text), "%s", FIXED_ID_CID);
	text[7] = 'A';
	assert_int_equal(parse(text), WISP_ERR_BAD_CHAR);
	/* bafy... is a dag-pb / dag-cbor style CID prefix: 0x01 0x70. */
	assert_int_equal(parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
			 WISP_ERR_UNKNOWN_CODE);
	/* CIDv1 libp2p-key with a trailing byte and with bad pad bits. */
	n = strlen(FIXED_ID_CID);
	snprintf(text, sizeof(text), "%s", FIXED_ID_CID);
	text[n - 1] = 'b'; /* 'a' carried zero pad bits; 'b' sets one */
	assert_int_equal(parse(text), WISP_ERR_MALFORMED);
	/* Too long. */
	memset(longer, 'a', sizeof(longer) - 1);
	longer[0] = 'b';
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(parse(longer), WISP_ERR_TOO_LARGE);

	/* A sha2-256 id parses, but carries no key. */
	b58_of_hex("1220" "0000000000000000000000000000000000000000000000000000000000000001", text,
		   sizeof(text));
	assert_memory_equal(text, "Qm", 2);
	assert_int_equal(wisp_peer_id_parse(&id, text, strlen(text)), 0);
	assert_int_equal(wisp_peer_id_pubkey(&id, &pub), WISP_ERR_NOTFOUND);
	assert_true(wisp_peer_id_to_cid(&id, text, sizeof(text)) > 0);
	assert_int_equal(parse(text), 0);

	/* An Ed25519 id (12D3KooW...) parses; its key is not one wisp uses. */
	b58_of_hex("0024080112201111111111111111111111111111111111111111111111111111111111111111",
		   text, sizeof(text));
	assert_memory_equal(text, "12D3KooW", 8);
	assert_int_equal(wisp_peer_id_parse(&id, text, strlen(text)), 0);
	assert_int_equal(wisp_peer_id_pubkey(&id, &pub), WISP_ERR_UNKNOWN_CODE);

	/* The same secp256k1 key, encoded with an extra field: not its id. */
	b58_of_hex("0027" FIXED_PUB_PB "1801", text, sizeof(text));
	assert_int_equal(wisp_peer_id_parse(&id, text, strlen(text)), 0);
	assert_int_equal(wisp_peer_id_pubkey(&id, &pub), WISP_ERR_MALFORMED);
	/* An off-curve key inside an id. */
	b58_of_hex("0025" "08021221" "020000000000000000000000000000000000000000000000000000000000000005",
		   text, sizeof(text));
	assert_int_equal(wisp_peer_id_parse(&id, text, strlen(text)), 0);
	assert_int_equal(wisp_peer_id_pubkey(&id, &pub), WISP_ERR_BAD_KEY);

	/* Binary form. */
	{
		uint8_t bin[64];
		size_t bn = unhex(FIXED_ID_HEX, bin, sizeof(bin));
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn), 0);
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, 0), WISP_ERR_TRUNCATED);
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn - 1), WISP_ERR_TRUNCATED);
		bin[bn] = 0;
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn + 1), WISP_ERR_TRAILING);
		bin[1] = 0; /* empty identity digest */
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, 2), WISP_ERR_MALFORMED);
		bn = unhex("121f" "00000000000000000000000000000000000000000000000000000000000000",
			   bin, sizeof(bin));
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn), WISP_ERR_MALFORMED);
		bn = unhex("1302abcd", bin, sizeof(bin)); /* sha2-512 */
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn), WISP_ERR_UNKNOWN_CODE);
		bn = unhex("008000", bin, sizeof(bin)); /* non-minimal length varint */
		assert_int_equal(wisp_peer_id_from_bytes(&id, bin, bn), WISP_ERR_VARINT);
	}
}

/* 'b' + base32 of the CID bytes given in hex. */
static void cid_text_of_hex(const char *hex, char *out, size_t cap)
{
	uint8_t bin[128];
	size_t n = unhex(hex, bin, sizeof(bin));

	out[0] = 'b';
	assert_true(wisp_base32_encode(bin, n, out + 1, cap - 1) > 0);
}

static void test_cid_errors(void **state)
{
	(void)state;
	char text[2 * WISP_PEER_ID_TEXT_MAX];

	cid_text_of_hex("0172" FIXED_ID_HEX, text, sizeof(text));
	assert_string_equal(text, FIXED_ID_CID);
	/* Codec dag-pb (0x70), raw (0x55), and a 2-byte codec varint. */
	cid_text_of_hex("0170" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	cid_text_of_hex("0155" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	cid_text_of_hex("01f201" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	/* CID versions 0 and 2; a non-minimal version varint. */
	cid_text_of_hex("0072" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	cid_text_of_hex("0272" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
	cid_text_of_hex("810072" FIXED_ID_HEX, text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_VARINT);
	/* Truncated: prefix only, prefix and half a multihash. */
	cid_text_of_hex("01", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRUNCATED);
	cid_text_of_hex("0172", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRUNCATED);
	cid_text_of_hex("01720025080212", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRUNCATED);
	/* Trailing byte after the multihash. */
	cid_text_of_hex("0172" FIXED_ID_HEX "00", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_TRAILING);
	/* Unknown hash inside a well-formed CID. */
	cid_text_of_hex("01721302abcd", text, sizeof(text));
	assert_int_equal(parse(text), WISP_ERR_UNKNOWN_CODE);
}

static void test_text_buffers(void **state)
{
	(void)state;
	wisp_peer_id id, empty;
	char text[WISP_PEER_ID_TEXT_MAX];
	uint8_t buf[64];
	wisp_privkey key;

	assert_int_equal(wisp_peer_id_parse(&id, FIXED_ID_B58, strlen(FIXED_ID_B58)), 0);
	/* Exact fit and one short. */
	assert_int_equal(wisp_peer_id_to_base58(&id, text, strlen(FIXED_ID_B58) + 1),
			 strlen(FIXED_ID_B58));
	assert_int_equal(wisp_peer_id_to_base58(&id, text, strlen(FIXED_ID_B58)), WISP_ERR_NOBUF);
	assert_int_equal(wisp_peer_id_to_cid(&id, text, strlen(FIXED_ID_CID) + 1),
			 strlen(FIXED_ID_CID));
	assert_int_equal(wisp_peer_id_to_cid(&id, text, strlen(FIXED_ID_CID)), WISP_ERR_NOBUF);
	assert_int_equal(wisp_peer_id_to_cid(&id, text, 1), WISP_ERR_NOBUF);
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(wisp_peer_id_to_base58(&empty, text, sizeof(text)), WISP_ERR_INVALID_ARG);
	assert_int_equal(wisp_peer_id_to_cid(&empty, text, sizeof(text)), WISP_ERR_INVALID_ARG);

	fixed_key(&key);
	assert_int_equal(wisp_pubkey_encode(&key.pub, buf, WISP_PUBKEY_PB_LEN - 1), WISP_ERR_NOBUF);
	assert_int_equal(wisp_privkey_encode(&key, buf, WISP_PRIVKEY_PB_LEN - 1), WISP_ERR_NOBUF);
	assert_int_equal(wisp_privkey_sign(&key, buf, 0, buf, 8), WISP_ERR_NOBUF);
	wisp_privkey_wipe(&key);
}

/* ---- signatures ------------------------------------------------------- */

static void test_signatures(void **state)
{
	(void)state;
	const uint8_t *msg = (const uint8_t *)"wisp";
	uint8_t sig[128], bad[128];
	size_t n, i;
	ssize_t len;
	wisp_privkey key, other;

	fixed_key(&key);
	assert_int_equal(wisp_privkey_generate(&other), 0);
	n = unhex(FIXED_SIG_WISP, sig, sizeof(sig));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, sig, n), 0);

	/* Wrong message, wrong key. */
	assert_int_equal(wisp_pubkey_verify(&key.pub, (const uint8_t *)"wisq", 4, sig, n),
			 WISP_ERR_BAD_SIGNATURE);
	assert_int_equal(wisp_pubkey_verify(&other.pub, msg, 4, sig, n), WISP_ERR_BAD_SIGNATURE);
	/* Every single-bit flip fails. */
	for (i = 0; i < n * 8; i++) {
		memcpy(bad, sig, n);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	}
	/* High-S: mathematically valid, refused. */
	n = unhex(FIXED_SIG_WISP_HIGH_S, bad, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	/* Not DER: the 64-byte compact form r || s. */
	n = unhex("95e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344"
		  "6773ce2f38ca5f96f0eff814dfa7d91002dda1055ce969a9cfad908f145d0141",
		  bad, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	/* DER with a trailing byte, with a non-minimal S (extra 0x00), with a
	 * long-form sequence length. */
	n = unhex(FIXED_SIG_WISP "00", bad, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	n = unhex("304602210095e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344"
		  "0221006773ce2f38ca5f96f0eff814dfa7d91002dda1055ce969a9cfad908f145d0141",
		  bad, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	n = unhex("30814502210095e850b46de3a667c55a3fdeca949d621a766ee33e63f499569457d5e21dc344"
		  "02206773ce2f38ca5f96f0eff814dfa7d91002dda1055ce969a9cfad908f145d0141",
		  bad, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, n), WISP_ERR_BAD_SIGNATURE);
	/* Empty, NULL, over-long. */
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, sig, 0), WISP_ERR_BAD_SIGNATURE);
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, NULL, 0), WISP_ERR_BAD_SIGNATURE);
	memset(bad, 0x30, sizeof(bad));
	assert_int_equal(wisp_pubkey_verify(&key.pub, msg, 4, bad, WISP_SIG_MAX + 1),
			 WISP_ERR_BAD_SIGNATURE);

	/* Empty messages sign and verify (NULL allowed with 0). */
	len = wisp_privkey_sign(&other, NULL, 0, sig, sizeof(sig));
	assert_true(len > 0 && len <= WISP_SIG_MAX);
	assert_int_equal(wisp_pubkey_verify(&other.pub, NULL, 0, sig, (size_t)len), 0);
	assert_int_equal(wisp_pubkey_verify(&other.pub, msg, 4, sig, (size_t)len),
			 WISP_ERR_BAD_SIGNATURE);
	/* Many random messages: every produced signature is low-S DER. */
	for (i = 0; i < 64; i++) {
		uint8_t m[37];
		memset(m, (int)i, sizeof(m));
		len = wisp_privkey_sign(&other, m, i % sizeof(m), sig, sizeof(sig));
		assert_true(len > 0);
		assert_int_equal(wisp_pubkey_verify(&other.pub, m, i % sizeof(m), sig, (size_t)len), 0);
	}
	wisp_privkey_wipe(&key);
	wisp_privkey_wipe(&other);
}

/* ---- threads: the shared context is created once, used by all ---------- */

static void *sign_verify_thread(void *arg)
{
	wisp_privkey key;
	uint8_t sig[WISP_SIG_MAX];
	long ok = 1;

	(void)arg;
	for (int i = 0; i < 50 && ok; i++) {
		ssize_t n;
		if (wisp_privkey_generate(&key) != 0)
			ok = 0;
		n = wisp_privkey_sign(&key, (const uint8_t *)&i, sizeof(i), sig, sizeof(sig));
		if (n < 0 || wisp_pubkey_verify(&key.pub, (const uint8_t *)&i, sizeof(i), sig,
						(size_t)n) != 0)
			ok = 0;
	}
	wisp_privkey_wipe(&key);
	return (void *)ok;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, sign_verify_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_true(ret == (void *)1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads), /* first: races the lazy context */
		cmocka_unit_test(test_fixed_vectors),
		cmocka_unit_test(test_roundtrip_generated),
		cmocka_unit_test(test_bad_secrets),
		cmocka_unit_test(test_pubkey_decode_errors),
		cmocka_unit_test(test_privkey_decode_errors),
		cmocka_unit_test(test_peer_id_parse_errors),
		cmocka_unit_test(test_cid_errors),
		cmocka_unit_test(test_text_buffers),
		cmocka_unit_test(test_signatures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
