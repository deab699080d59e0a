/* The wisp side of the identity interop test, driven by identity.mjs.
 *
 *   wisp-interop-identity peerid-secret HEX        -> base58 \n cid
 *   wisp-interop-identity parse TEXT               -> base58 \n cid
 *   wisp-interop-identity sign FILE MSGHEX         -> DER signature in hex
 *   wisp-interop-identity verify PEERID MSGHEX SIGHEX
 *
 * Exit status: 0 success (verify: the signature is valid), 1 refused (the
 * wisp error name is printed on stdout), 2 usage or local failure.
 */
#include <wisp/identity.h>

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

static long unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

static int print_id(const wisp_peer_id *id)
{
	char b58[WISP_PEER_ID_TEXT_MAX], cid[WISP_PEER_ID_TEXT_MAX];

	if (wisp_peer_id_to_base58(id, b58, sizeof(b58)) < 0 ||
	    wisp_peer_id_to_cid(id, cid, sizeof(cid)) < 0)
		return 2;
	printf("%s\n%s\n", b58, cid);
	return 0;
}

static int refused(int rc)
{
	printf("%s\n", wisp_errname(rc));
	return 1;
}

int main(int argc, char **argv)
{
	static uint8_t msg[1 << 16];
	uint8_t sig[256];
	wisp_privkey key;
	wisp_peer_id id;
	wisp_pubkey pub;
	long mlen, slen;
	ssize_t n;
	int rc;

	if (argc == 3 && !strcmp(argv[1], "peerid-secret")) {
		uint8_t secret[WISP_SECRET_LEN];
		if (unhex(argv[2], secret, sizeof(secret)) != WISP_SECRET_LEN)
			return 2;
		rc = wisp_privkey_from_secret(&key, secret);
		OPENSSL_cleanse(secret, sizeof(secret));
		if (rc != 0)
			return refused(rc);
		rc = wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key));
		wisp_privkey_wipe(&key);
		return rc != 0 ? 2 : print_id(&id);
	}
	if (argc == 3 && !strcmp(argv[1], "parse")) {
		rc = wisp_peer_id_parse(&id, argv[2], strlen(argv[2]));
		return rc != 0 ? refused(rc) : print_id(&id);
	}
	if (argc == 4 && !strcmp(argv[1], "sign")) {
		rc = wisp_privkey_read_file(&key, argv[2], NULL);
		if (rc != 0)
			return refused(rc);
		mlen = unhex(argv[3], msg, sizeof(msg));
		if (mlen < 0) {
			wisp_privkey_wipe(&key);
			return 2;
		}
		n = wisp_privkey_sign(&key, msg, (size_t)mlen, sig, sizeof(sig));
		wisp_privkey_wipe(&key);
		if (n < 0)
			return 2;
		for (ssize_t i = 0; i < n; i++)
			printf("%02x", sig[i]);
		printf("\n");
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "verify")) {
		rc = wisp_peer_id_parse(&id, argv[2], strlen(argv[2]));
		if (rc == 0)
			rc = wisp_peer_id_pubkey(&id, &pub);
		if (rc != 0)
			return refused(rc);
		mlen = unhex(argv[3], msg, sizeof(msg));
		slen = unhex(argv[4], sig, sizeof(sig));
		if (mlen < 0 || slen < 0)
			return 2;
		rc = wisp_pubkey_verify(&pub, msg, (size_t)mlen, sig, (size_t)slen);
		if (rc != 0)
			return refused(rc);
		printf("ok\n");
		return 0;
	}
	fprintf(stderr, "usage: %s peerid-secret HEX | parse TEXT | sign FILE MSGHEX |"
			" verify PEERID MSGHEX SIGHEX\n", argv[0]);
	return 2;
}
