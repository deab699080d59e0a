/* The wisp side of the identity interop test, driven by identity.mjs.
 *
 *   wisp-interop-identity peerid-secret HEX        -> base58 \n cid
 *   wisp-interop-identity parse TEXT               -> base58 \n cid
 *   wisp-interop-identity sign FILE MSGHEX         -> DER signature in hex
 *   wisp-interop-identity verify PEERID MSGHEX SIGHEX
 *   wisp-interop-identity record-seal FILE SEQ [MULTIADDR...]
 *                                                  -> signed peer record (Envelope) in hex
 *   wisp-interop-identity record-open HEX          -> peer id \n seq \n one address per line
 *                                                     (text, or "?" + hex when wisp cannot
 *                                                     print it) \n "tcp N" (dialable ones)
 *
 * Exit status: 0 success (verify: the signature is valid), 1 refused (the
 * wisp error name is printed on stdout), 2 usage or local failure.
 */
#include <wisp/identity.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "codec/multiaddr.h"
#include "codec/peer_record.h"

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

static int record_seal(int argc, char **argv)
{
	static uint8_t bin[WISP_PEER_RECORD_MAX_ADDRS][WISP_PEER_RECORD_MAX_ADDR_LEN];
	static uint8_t out[WISP_PEER_RECORD_MAX];
	wisp_peer_record_addr addrs[WISP_PEER_RECORD_MAX_ADDRS];
	wisp_privkey key;
	size_t n = 0;

	if (argc - 4 > (int)WISP_PEER_RECORD_MAX_ADDRS)
		return 2;
	for (int i = 4; i < argc; i++, n++) {
		ssize_t len = wisp_multiaddr_from_text(argv[i], strlen(argv[i]), bin[n], sizeof(bin[n]));
		if (len < 0)
			return refused((int)len);
		addrs[n].data = bin[n];
		addrs[n].len = (size_t)len;
	}
	int rc = wisp_privkey_read_file(&key, argv[2], NULL);
	if (rc != 0)
		return refused(rc);
	ssize_t len = wisp_peer_record_seal(&key, strtoull(argv[3], NULL, 10), addrs, n, out, sizeof(out));
	wisp_privkey_wipe(&key);
	if (len < 0)
		return refused((int)len);
	for (ssize_t i = 0; i < len; i++)
		printf("%02x", out[i]);
	printf("\n");
	return 0;
}

static int record_open(const char *hex)
{
	static uint8_t in[2 * WISP_PEER_RECORD_MAX];
	wisp_peer_record rec;
	char text[WISP_PEER_ID_TEXT_MAX];
	long n = unhex(hex, in, sizeof(in));

	if (n < 0)
		return 2;
	int rc = wisp_peer_record_open(&rec, in, (size_t)n);
	if (rc != 0)
		return refused(rc);
	if (wisp_peer_id_to_base58(&rec.peer, text, sizeof(text)) < 0)
		return 2;
	printf("%s\n%" PRIu64 "\n", text, rec.seq);
	for (size_t i = 0; i < rec.n_addrs; i++) {
		char ma[1024];
		if (wisp_multiaddr_to_text(rec.addrs[i].data, rec.addrs[i].len, ma, sizeof(ma)) >= 0) {
			printf("%s\n", ma);
			continue;
		}
		printf("?");
		for (size_t k = 0; k < rec.addrs[i].len; k++)
			printf("%02x", rec.addrs[i].data[k]);
		printf("\n");
	}
	struct sockaddr_storage ss[WISP_PEER_RECORD_MAX_ADDRS];
	socklen_t sl[WISP_PEER_RECORD_MAX_ADDRS];
	printf("tcp %zu\n", wisp_peer_record_tcp(&rec, ss, sl, WISP_PEER_RECORD_MAX_ADDRS));
	return 0;
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
	if (argc >= 4 && !strcmp(argv[1], "record-seal"))
		return record_seal(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "record-open"))
		return record_open(argv[2]);
	fprintf(stderr, "usage: %s peerid-secret HEX | parse TEXT | sign FILE MSGHEX |"
			" verify PEERID MSGHEX SIGHEX | record-seal FILE SEQ [MULTIADDR...] |"
			" record-open HEX\n", argv[0]);
	return 2;
}
