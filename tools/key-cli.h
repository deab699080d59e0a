/* What wisp-keygen and wisp-peerid share: the `[--cid] FILE` command line
 * and printing a peer id. Header-only: each tool is one source file. */
#ifndef WISP_TOOLS_KEY_CLI_H
#define WISP_TOOLS_KEY_CLI_H

#include <stdio.h>
#include <string.h>

#include <wisp/identity.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Parse `[--cid] [--help] [--] FILE`. Returns -1 to go on, with *path and
 * *want_cid set, or the exit status to return (help shown, usage error). */
static int key_cli_parse(int argc, char **argv, const char *prog, void (*usage)(FILE *), const char **path,
			 int *want_cid)
{
	*path = NULL;
	*want_cid = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--cid")) {
			*want_cid = 1;
		} else if (!strcmp(argv[i], "--") && i + 1 < argc && !*path) {
			*path = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!*path) {
			*path = argv[i];
		} else {
			fprintf(stderr, "%s: one FILE only\n", prog);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!*path) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

/* Print id in base58 and, with want_cid, as a CIDv1 on a second line.
 * Returns the exit status. */
static int key_cli_print(const char *prog, const wisp_peer_id *id, int want_cid)
{
	char text[WISP_PEER_ID_TEXT_MAX], cid[WISP_PEER_ID_TEXT_MAX];
	if (wisp_peer_id_to_base58(id, text, sizeof(text)) < 0 || wisp_peer_id_to_cid(id, cid, sizeof(cid)) < 0) {
		fprintf(stderr, "%s: cannot format the peer id\n", prog);
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	if (want_cid)
		printf("%s\n", cid);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

#endif
