/* wisp-peerid: print the peer id of a key file. */
#include <wisp/identity.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNSAFE = 3 };

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
			fprintf(stderr, "wisp-peerid: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!path) {
			path = argv[i];
		} else {
			fprintf(stderr, "wisp-peerid: one FILE only\n");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!path) {
		usage(stderr);
		return EXIT_USAGE;
	}

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
	if (rc != 0 || wisp_peer_id_to_base58(&id, text, sizeof(text)) < 0 ||
	    wisp_peer_id_to_cid(&id, cid, sizeof(cid)) < 0) {
		fprintf(stderr, "wisp-peerid: cannot format the peer id\n");
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	if (want_cid)
		printf("%s\n", cid);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
