/* A program outside the wisp tree, built against an installed wisp by
 * tests/install/run.sh (CMake package and pkg-config, shared and static).
 * It uses only the public headers and prints "consumer ok <peer id>" on
 * success; anything else on stdout, or a non-zero exit, is a failure. */
#include <wisp/error.h>
#include <wisp/identity.h>
#include <wisp/mem.h>
#include <wisp/wisp.h>

#include <stdio.h>
#include <string.h>

/* The peer id of the secret 0x01 0x02 .. 0x20 (as js-libp2p computes it). */
static const char expected_id[] = "16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP";

static int fails;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			fails++; \
		} \
	} while (0)

static void check_errors(void)
{
	CHECK(strcmp(wisp_errname(WISP_ERR_AGAIN), "WISP_ERR_AGAIN") == 0);
	CHECK(strcmp(wisp_errname(WISP_ERR_BAD_KEY), "WISP_ERR_BAD_KEY") == 0);
	CHECK(wisp_errname(-12345) != NULL);
	const char *s = wisp_strerror(WISP_ERR_NOMEM);
	CHECK(s != NULL && s[0] != '\0');
	CHECK(wisp_strerror(WISP_OK) != NULL);
	CHECK(wisp_err_is_peer(WISP_ERR_MALFORMED) && !wisp_err_is_peer(WISP_ERR_AGAIN));
	CHECK(wisp_err_is_fatal(WISP_ERR_NOMEM) && !wisp_err_is_fatal(WISP_ERR_IO));
}

/* Derives the peer id of the fixed secret into text (cap bytes); 0 or -1. */
static int check_identity(char *text, size_t cap)
{
	uint8_t secret[WISP_SECRET_LEN];
	for (int i = 0; i < WISP_SECRET_LEN; i++)
		secret[i] = (uint8_t)(i + 1);

	wisp_privkey key;
	int err = wisp_privkey_from_secret(&key, secret);
	if (err) {
		fprintf(stderr, "consumer: wisp_privkey_from_secret: %s (%s)\n", wisp_errname(err),
			wisp_strerror(err));
		fails++;
		return -1;
	}
	wisp_peer_id id;
	err = wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key));
	CHECK(err == WISP_OK);
	ssize_t len = wisp_peer_id_to_base58(&id, text, cap);
	CHECK(len > 0 && (size_t)len == strlen(text));
	if (len <= 0) {
		wisp_privkey_wipe(&key);
		return -1;
	}
	CHECK(strcmp(text, expected_id) == 0);

	/* The text parses back to the same id, which embeds the same key. */
	wisp_peer_id back;
	CHECK(wisp_peer_id_parse(&back, text, (size_t)len) == WISP_OK);
	CHECK(wisp_peer_id_equal(&back, &id) == 1);
	wisp_pubkey pub;
	CHECK(wisp_peer_id_pubkey(&back, &pub) == WISP_OK);
	CHECK(wisp_pubkey_equal(&pub, wisp_privkey_pubkey(&key)) == 1);

	/* A signature made with the key verifies with the key from the id. */
	static const uint8_t msg[] = "installed wisp";
	uint8_t sig[WISP_SIG_MAX];
	ssize_t siglen = wisp_privkey_sign(&key, msg, sizeof(msg), sig, sizeof(sig));
	CHECK(siglen > 0);
	if (siglen > 0)
		CHECK(wisp_pubkey_verify(&pub, msg, sizeof(msg), sig, (size_t)siglen) == WISP_OK);

	/* The zero secret is refused. */
	memset(secret, 0, sizeof(secret));
	CHECK(wisp_privkey_from_secret(&key, secret) == WISP_ERR_BAD_KEY);
	wisp_privkey_wipe(&key);
	return 0;
}

static void check_node(void)
{
	CHECK(wisp_mem_default() != NULL);

	wisp_options o;
	wisp_options_default(&o);
	CHECK(o.version == WISP_OPTIONS_VERSION);

	/* A bad option is refused and leaves *out NULL. */
	wisp_node *n = (wisp_node *)&o;
	o.mailbox_slots = 3;
	CHECK(wisp_node_new(&n, &o) == WISP_ERR_INVALID_ARG);
	CHECK(n == NULL);

	/* A good one allocates a node (no thread starts) that frees cleanly. */
	wisp_options_default(&o);
	o.workers = 1;
	o.mailbox_slots = 64;
	o.event_slots = 64;
	int err = wisp_node_new(&n, &o);
	if (err) {
		fprintf(stderr, "consumer: wisp_node_new: %s (%s)\n", wisp_errname(err),
			wisp_strerror(err));
		fails++;
		return;
	}
	CHECK(n != NULL);
	CHECK(wisp_node_event_fd(n) >= 0);
	CHECK(wisp_node_errmsg(n) != NULL);
	wisp_node_free(n);
	wisp_node_free(NULL);
}

int main(void)
{
	char text[WISP_PEER_ID_TEXT_MAX];
	check_errors();
	int id_ok = check_identity(text, sizeof(text)) == 0;
	check_node();
	if (fails || !id_ok) {
		fprintf(stderr, "consumer: %d check(s) failed\n", fails);
		return 1;
	}
	printf("consumer ok %s\n", text);
	return 0;
}
