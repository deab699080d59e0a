/* wisp-keygen: write a new secp256k1 key file and print its peer id. */
#include "tools/key-cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { EXIT_EXISTS = 3 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wisp-keygen [--cid] FILE\n"
		"\n"
		"Creates FILE with a new secp256k1 key in the libp2p PrivateKey protobuf\n"
		"format (mode 0600; an existing FILE is never replaced) and prints the\n"
		"peer id (base58btc) on stdout.\n"
		"\n"
		"  --cid       also print the peer id as a CIDv1 (bafz...) on a second line\n"
		"  -h, --help  show this help\n"
		"\n"
		"exit status: 0 written, 1 error (see stderr), 2 usage error,\n"
		"             3 FILE already exists\n");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int want_cid = 0, rc;
	wisp_privkey key;
	wisp_peer_id id;

	rc = key_cli_parse(argc, argv, "wisp-keygen", usage, &path, &want_cid);
	if (rc >= 0)
		return rc;

	rc = wisp_privkey_generate(&key);
	if (rc != 0) {
		fprintf(stderr, "wisp-keygen: cannot generate a key: %s\n", wisp_strerror(rc));
		return EXIT_FAIL;
	}
	rc = wisp_privkey_write_file(&key, path);
	if (rc == 0)
		rc = wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key));
	wisp_privkey_wipe(&key);
	if (rc == WISP_ERR_EXISTS) {
		fprintf(stderr, "wisp-keygen: %s already exists; not replacing it\n", path);
		return EXIT_EXISTS;
	}
	if (rc == WISP_ERR_IO || rc == WISP_ERR_NOTFOUND) {
		fprintf(stderr, "wisp-keygen: cannot write %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	if (rc != 0) {
		fprintf(stderr, "wisp-keygen: %s: %s\n", path, wisp_strerror(rc));
		return EXIT_FAIL;
	}
	return key_cli_print("wisp-keygen", &id, want_cid);
}
