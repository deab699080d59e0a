/* wisp-keygen: write a new secp256k1 key file and print its peer id. */
#include <wisp/identity.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_EXISTS = 3 };

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
	char text[WISP_PEER_ID_TEXT_MAX], cid[WISP_PEER_ID_TEXT_MAX];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--cid")) {
			want_cid = 1;
		} else if (!strcmp(argv[i], "--") && i + 1 < argc && !path) {
			path = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "wisp-keygen: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!path) {
			path = argv[i];
		} else {
			fprintf(stderr, "wisp-keygen: one FILE only\n");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path) {
		usage(stderr);
		return EXIT_USAGE;
	}

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
	if (wisp_peer_id_to_base58(&id, text, sizeof(text)) < 0 ||
	    wisp_peer_id_to_cid(&id, cid, sizeof(cid)) < 0) {
		fprintf(stderr, "wisp-keygen: cannot format the peer id\n");
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	if (want_cid)
		printf("%s\n", cid);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
