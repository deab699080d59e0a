/* wisp-peerid: print the peer id of a key file. */
#include "tools/key-cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { EXIT_UNSAFE = 3 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wisp-peerid [--cid] FILE\n"
		"\n"
		"Reads the secp256k1 key file FILE (libp2p PrivateKey protobuf, as written\n"
		"by wisp-keygen or js/go-libp2p) and prints its peer id (base58btc).\n"
		"A key file that group or others may read or write is refused.\n"
		"\n"
		"  --cid       also print the peer id as a CIDv1 (bafz...) on a second line\n"
		"  -h, --help  show this help\n"
		"\n"
		"exit status: 0 printed, 1 error (unreadable or invalid key; see stderr),\n"
		"             2 usage error, 3 refused: FILE has unsafe permissions\n");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int want_cid = 0, rc;
	unsigned mode = 0;
	wisp_privkey key;
	wisp_peer_id id;

	rc = key_cli_parse(argc, argv, "wisp-peerid", usage, &path, &want_cid);
	if (rc >= 0)
		return rc;

	rc = wisp_privkey_read_file(&key, path, &mode);
	if (rc == WISP_ERR_PERM) {
		fprintf(stderr,
			"wisp-peerid: refusing %s: mode %04o lets group or others read or write\n"
			"the private key. Run: chmod 600 %s\n",
			path, mode, path);
		return EXIT_UNSAFE;
	}
	if (rc == WISP_ERR_IO) {
		fprintf(stderr, "wisp-peerid: cannot read %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	if (rc != 0) {
		fprintf(stderr, "wisp-peerid: %s: %s (%s)\n", path, wisp_strerror(rc),
			wisp_errname(rc));
		return EXIT_FAIL;
	}
	rc = wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key));
	wisp_privkey_wipe(&key);
	if (rc != 0) {
		fprintf(stderr, "wisp-peerid: cannot derive the peer id: %s\n", wisp_strerror(rc));
		return EXIT_FAIL;
	}
	return key_cli_print("wisp-peerid", &id, want_cid);
}
