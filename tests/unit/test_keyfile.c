/* Key files: 0600 creation, O_EXCL, permission refusal, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testlib.h"

#include <wisp/identity.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* js-libp2p's PrivateKey protobuf of the secret 01 02 ... 20. */
static const uint8_t fixed_pb[WISP_PRIVKEY_PB_LEN] = {
	0x08, 0x02, 0x12, 0x20, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
	0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};
#define FIXED_ID_B58 "16Uiu2HAm4Ms862Gnqafssgvik4JJ1LuqWMcKNipq4nm2UaoLRbeP"

typedef struct fixture {
	char dir[256];
	char path[300];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/wisp-keyfile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/key", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

static void write_raw(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_write_read(void **state)
{
	fixture *f = *state;
	wisp_privkey key, back;
	struct stat st;
	unsigned mode = 0;
	mode_t old;

	assert_int_equal(wisp_privkey_generate(&key), 0);
	/* Even with an empty umask the file is created 0600. */
	old = umask(0);
	assert_int_equal(wisp_privkey_write_file(&key, f->path), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, WISP_PRIVKEY_PB_LEN);

	assert_int_equal(wisp_privkey_read_file(&back, f->path, &mode), 0);
	assert_int_equal(mode, 0600);
	assert_memory_equal(&back, &key, sizeof(key));
	assert_int_equal(wisp_privkey_read_file(&back, f->path, NULL), 0);

	/* Never overwritten. */
	assert_int_equal(wisp_privkey_write_file(&back, f->path), WISP_ERR_EXISTS);
	wisp_privkey_wipe(&back);
	assert_int_equal(wisp_privkey_read_file(&back, f->path, NULL), 0);
	assert_memory_equal(&back, &key, sizeof(key));
	wisp_privkey_wipe(&key);
	wisp_privkey_wipe(&back);
}

static void test_symlink_not_followed_on_write(void **state)
{
	fixture *f = *state;
	char target[320];
	wisp_privkey key;
	struct stat st;

	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(wisp_privkey_generate(&key), 0);
	assert_int_equal(wisp_privkey_write_file(&key, f->path), WISP_ERR_EXISTS);
	assert_int_equal(stat(target, &st), -1); /* nothing created behind the link */
	wisp_privkey_wipe(&key);
}

static void test_permissions(void **state)
{
	fixture *f = *state;
	static const struct {
		mode_t mode;
		int want;
	} cases[] = {
		{0600, 0}, {0400, 0}, {0700, 0}, {0601, 0}, {0610, 0},
		{0644, WISP_ERR_PERM}, {0640, WISP_ERR_PERM}, {0604, WISP_ERR_PERM},
		{0620, WISP_ERR_PERM}, {0602, WISP_ERR_PERM}, {0666, WISP_ERR_PERM},
		{0660, WISP_ERR_PERM}, {0444, WISP_ERR_PERM},
	};
	wisp_privkey key;
	wisp_peer_id id;
	char text[WISP_PEER_ID_TEXT_MAX];

	write_raw(f->path, fixed_pb, sizeof(fixed_pb), 0600);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned mode = 0;
		assert_int_equal(chmod(f->path, cases[i].mode), 0);
		memset(&key, 0x55, sizeof(key));
		assert_int_equal(wisp_privkey_read_file(&key, f->path, &mode), cases[i].want);
		assert_int_equal(mode, cases[i].mode);
		if (cases[i].want == 0) {
			assert_int_equal(wisp_peer_id_from_pubkey(&id, wisp_privkey_pubkey(&key)), 0);
			assert_true(wisp_peer_id_to_base58(&id, text, sizeof(text)) > 0);
			assert_string_equal(text, FIXED_ID_B58);
		} else {
			for (size_t j = 0; j < sizeof(key); j++)
				assert_int_equal(((uint8_t *)&key)[j], 0);
		}
	}
	wisp_privkey_wipe(&key);
}

static void test_missing_and_odd_files(void **state)
{
	fixture *f = *state;
	char sub[320];
	wisp_privkey key;
	uint8_t big[WISP_KEYFILE_MAX + 10];

	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_NOTFOUND);
	snprintf(sub, sizeof(sub), "%s/no/such/dir/key", f->dir);
	assert_int_equal(wisp_privkey_generate(&key), 0);
	assert_int_equal(wisp_privkey_write_file(&key, sub), WISP_ERR_NOTFOUND);
	wisp_privkey_wipe(&key);

	/* A folder and a FIFO: refused, and the FIFO open does not hang. */
	assert_int_equal(wisp_privkey_read_file(&key, f->dir, NULL), WISP_ERR_INVALID_ARG);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_INVALID_ARG);
	assert_int_equal(unlink(f->path), 0);

	/* Too large, empty, garbage. */
	memset(big, 0, sizeof(big));
	memcpy(big, fixed_pb, sizeof(fixed_pb));
	write_raw(f->path, big, sizeof(big), 0600);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_TOO_LARGE);
	assert_int_equal(unlink(f->path), 0);
	write_raw(f->path, "", 0, 0600);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_MALFORMED);
	assert_int_equal(unlink(f->path), 0);
	write_raw(f->path, fixed_pb, sizeof(fixed_pb) - 1, 0600);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_TRUNCATED);
	assert_int_equal(unlink(f->path), 0);
	/* An Ed25519 key file (libp2p default elsewhere): a typed refusal. */
	big[0] = 0x08;
	big[1] = 0x01;
	big[2] = 0x12;
	big[3] = 0x40;
	write_raw(f->path, big, 68, 0600);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_UNKNOWN_CODE);
	assert_int_equal(unlink(f->path), 0);

	/* A symlink to a good 0600 key is read; the target's mode counts. */
	snprintf(sub, sizeof(sub), "%s/real", f->dir);
	write_raw(sub, fixed_pb, sizeof(fixed_pb), 0600);
	assert_int_equal(symlink(sub, f->path), 0);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), 0);
	assert_int_equal(chmod(sub, 0644), 0);
	assert_int_equal(wisp_privkey_read_file(&key, f->path, NULL), WISP_ERR_PERM);
	wisp_privkey_wipe(&key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_not_followed_on_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_odd_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
