/* secp256k1 keys, the libp2p key protobufs, key files and signatures.
 * The contract is in include/wisp/identity.h. */
#include <wisp/identity.h>

#include "codec/pb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <secp256k1.h>
#include <secp256k1_preallocated.h>

_Static_assert(sizeof(secp256k1_pubkey) == sizeof(((wisp_pubkey *)0)->parsed),
	       "wisp_pubkey.parsed must hold a secp256k1_pubkey");

/* libp2p key protobufs: KeyType Type = 1; bytes Data = 2. */
enum { KEY_PB_TYPE = 1, KEY_PB_DATA = 2 };

/* ---- the shared context ------------------------------------------------ */

/* One context for the process, created on first use and never changed
 * afterwards: secp256k1 allows concurrent use of a const context. It lives in
 * static storage when it fits (it does for libsecp256k1 0.2, whose tables are
 * static), so key operations never allocate. */
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static secp256k1_context *ctx;
static alignas(max_align_t) unsigned char ctx_mem[1024];

static int os_random(uint8_t *out, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(out, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return WISP_ERR_IO;
		}
		out += got;
		n -= (size_t)got;
	}
	return 0;
}

static void ctx_init(void)
{
	secp256k1_context *c;
	uint8_t seed[32];

	if (secp256k1_context_preallocated_size(SECP256K1_CONTEXT_NONE) <= sizeof(ctx_mem))
		c = secp256k1_context_preallocated_create(ctx_mem, SECP256K1_CONTEXT_NONE);
	else
		c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	if (!c)
		return;
	/* Blinding of the signing multiplication against side channels. */
	if (os_random(seed, sizeof(seed)) != 0 || !secp256k1_context_randomize(c, seed)) {
		OPENSSL_cleanse(seed, sizeof(seed));
		if ((unsigned char *)c == ctx_mem)
			secp256k1_context_preallocated_destroy(c);
		else
			secp256k1_context_destroy(c);
		return;
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	ctx = c;
}

static const secp256k1_context *get_ctx(void)
{
	if (pthread_once(&ctx_once, ctx_init) != 0)
		return NULL;
	return ctx;
}

/* ---- keys ---------------------------------------------------------------- */

void wisp_privkey_wipe(wisp_privkey *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

const wisp_pubkey *wisp_privkey_pubkey(const wisp_privkey *key)
{
	return &key->pub;
}

static void pubkey_store(wisp_pubkey *pub, const secp256k1_context *c, const secp256k1_pubkey *pk)
{
	size_t len = WISP_PUBKEY_LEN;

	secp256k1_ec_pubkey_serialize(c, pub->compressed, &len, pk, SECP256K1_EC_COMPRESSED);
	memcpy(pub->parsed, pk->data, sizeof(pub->parsed));
}

int wisp_privkey_from_secret(wisp_privkey *key, const uint8_t secret[WISP_SECRET_LEN])
{
	const secp256k1_context *c = get_ctx();
	secp256k1_pubkey pk;

	if (!c)
		return WISP_ERR_CRYPTO;
	if (!secp256k1_ec_seckey_verify(c, secret)) {
		wisp_privkey_wipe(key);
		return WISP_ERR_BAD_KEY;
	}
	if (!secp256k1_ec_pubkey_create(c, &pk, secret)) {
		wisp_privkey_wipe(key);
		return WISP_ERR_CRYPTO;
	}
	if (key->secret != secret)
		memmove(key->secret, secret, WISP_SECRET_LEN);
	pubkey_store(&key->pub, c, &pk);
	return 0;
}

int wisp_privkey_generate(wisp_privkey *key)
{
	uint8_t secret[WISP_SECRET_LEN];
	int rc = WISP_ERR_CRYPTO;

	/* A random 256-bit string is a valid secret except with probability
	 * about 2^-128; the bound only guards against a broken source. */
	for (int tries = 0; tries < 64; tries++) {
		rc = os_random(secret, sizeof(secret));
		if (rc != 0)
			break;
		rc = wisp_privkey_from_secret(key, secret);
		if (rc != WISP_ERR_BAD_KEY)
			break;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc == WISP_ERR_BAD_KEY)
		rc = WISP_ERR_CRYPTO;
	if (rc != 0)
		wisp_privkey_wipe(key);
	return rc;
}

int wisp_pubkey_from_bytes(wisp_pubkey *pub, const uint8_t *data, size_t n)
{
	const secp256k1_context *c = get_ctx();
	secp256k1_pubkey pk;

	if (!c)
		return WISP_ERR_CRYPTO;
	/* libp2p carries secp256k1 keys compressed only: 0x02/0x03 || x. */
	if (n != WISP_PUBKEY_LEN || !data || (data[0] != 0x02 && data[0] != 0x03))
		return WISP_ERR_BAD_KEY;
	if (!secp256k1_ec_pubkey_parse(c, &pk, data, n))
		return WISP_ERR_BAD_KEY;
	pubkey_store(pub, c, &pk);
	return 0;
}

int wisp_pubkey_equal(const wisp_pubkey *a, const wisp_pubkey *b)
{
	return memcmp(a->compressed, b->compressed, WISP_PUBKEY_LEN) == 0;
}

/* ---- protobufs ------------------------------------------------------------ */

/* Writes {Type = secp256k1, Data = data} to out. */
static ssize_t key_pb_encode(const uint8_t *data, size_t n, uint8_t *out, size_t cap)
{
	wisp_pb_writer w;

	/* Type first, then Data: peer ids hash this encoding, so it must be
	 * the deterministic one every libp2p implementation produces. */
	wisp_pb_writer_init(&w, out, cap);
	wisp_pb_put_varint(&w, KEY_PB_TYPE, WISP_KEY_SECP256K1);
	wisp_pb_put_bytes(&w, KEY_PB_DATA, data, n);
	return wisp_pb_writer_finish(&w);
}

/* Finds Type and Data in a key protobuf; checks Type is secp256k1. *data
 * points into in. */
static int key_pb_decode(const uint8_t *in, size_t n, size_t max_len, const uint8_t **data,
			 size_t *len)
{
	wisp_pb_reader r;
	wisp_pb_field f;
	int have_type = 0, have_data = 0, rc;
	uint64_t type = 0;

	wisp_pb_reader_init(&r, in, n);
	while ((rc = wisp_pb_next(&r, &f, max_len)) > 0) {
		if (f.num == KEY_PB_TYPE) {
			if (f.wire != WISP_PB_VARINT)
				return WISP_ERR_WIRE_TYPE;
			type = f.u64;
			have_type = 1;
		} else if (f.num == KEY_PB_DATA) {
			if (f.wire != WISP_PB_LEN)
				return WISP_ERR_WIRE_TYPE;
			*data = f.data;
			*len = f.len;
			have_data = 1;
		}
		/* Other fields: skipped, as protobuf readers do. */
	}
	if (rc < 0)
		return rc;
	if (!have_type || !have_data)
		return WISP_ERR_MALFORMED;
	if (type != WISP_KEY_SECP256K1)
		return WISP_ERR_UNKNOWN_CODE;
	return 0;
}

ssize_t wisp_pubkey_encode(const wisp_pubkey *pub, uint8_t *out, size_t cap)
{
	if (cap < WISP_PUBKEY_PB_LEN)
		return WISP_ERR_NOBUF;
	return key_pb_encode(pub->compressed, WISP_PUBKEY_LEN, out, cap);
}

int wisp_pubkey_decode(wisp_pubkey *pub, const uint8_t *in, size_t n)
{
	const uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (n > WISP_PUBKEY_PB_MAX)
		return WISP_ERR_TOO_LARGE;
	if (n == 0)
		return WISP_ERR_MALFORMED;
	rc = key_pb_decode(in, n, WISP_PUBKEY_PB_MAX, &data, &len);
	if (rc < 0)
		return rc;
	return wisp_pubkey_from_bytes(pub, data, len);
}

ssize_t wisp_privkey_encode(const wisp_privkey *key, uint8_t *out, size_t cap)
{
	if (cap < WISP_PRIVKEY_PB_LEN)
		return WISP_ERR_NOBUF;
	return key_pb_encode(key->secret, WISP_SECRET_LEN, out, cap);
}

int wisp_privkey_decode(wisp_privkey *key, const uint8_t *in, size_t n)
{
	const uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (n > WISP_KEYFILE_MAX)
		rc = WISP_ERR_TOO_LARGE;
	else if (n == 0)
		rc = WISP_ERR_MALFORMED;
	else
		rc = key_pb_decode(in, n, WISP_KEYFILE_MAX, &data, &len);
	if (rc == 0 && len != WISP_SECRET_LEN)
		rc = WISP_ERR_BAD_KEY;
	if (rc == 0)
		return wisp_privkey_from_secret(key, data); /* wipes key on error */
	wisp_privkey_wipe(key);
	return rc;
}

/* ---- signatures ------------------------------------------------------------ */

static void digest_msg(const uint8_t *msg, size_t n, uint8_t out[32])
{
	static const uint8_t empty[1];

	SHA256(n ? msg : empty, n, out);
}

ssize_t wisp_privkey_sign(const wisp_privkey *key, const uint8_t *msg, size_t n,
			  uint8_t *sig, size_t cap)
{
	const secp256k1_context *c = get_ctx();
	secp256k1_ecdsa_signature s;
	uint8_t digest[32], der[WISP_SIG_MAX];
	size_t len = sizeof(der);
	int ok;

	if (!c)
		return WISP_ERR_CRYPTO;
	digest_msg(msg, n, digest);
	/* Default nonce function: RFC 6979, the same choice as js-libp2p and
	 * go-libp2p, and the result is already low-S. */
	ok = secp256k1_ecdsa_sign(c, &s, digest, key->secret, NULL, NULL) &&
	     secp256k1_ecdsa_signature_serialize_der(c, der, &len, &s);
	OPENSSL_cleanse(digest, sizeof(digest));
	if (!ok)
		return WISP_ERR_CRYPTO;
	if (cap < len)
		return WISP_ERR_NOBUF;
	memcpy(sig, der, len);
	return (ssize_t)len;
}

int wisp_pubkey_verify(const wisp_pubkey *pub, const uint8_t *msg, size_t n,
		       const uint8_t *sig, size_t siglen)
{
	const secp256k1_context *c = get_ctx();
	secp256k1_ecdsa_signature s;
	secp256k1_pubkey pk;
	uint8_t digest[32], der[WISP_SIG_MAX];
	size_t len = sizeof(der);

	if (!c)
		return WISP_ERR_CRYPTO;
	if (!sig || siglen == 0 || siglen > WISP_SIG_MAX)
		return WISP_ERR_BAD_SIGNATURE;
	if (!secp256k1_ecdsa_signature_parse_der(c, &s, sig, siglen))
		return WISP_ERR_BAD_SIGNATURE;
	/* Only the canonical DER form: r and s in range, minimal integers,
	 * nothing after the sequence. Re-encoding must give the input back. */
	if (!secp256k1_ecdsa_signature_serialize_der(c, der, &len, &s) || len != siglen ||
	    memcmp(der, sig, len) != 0)
		return WISP_ERR_BAD_SIGNATURE;
	/* normalize() returns 1 when S was high: refuse rather than fix it. */
	if (secp256k1_ecdsa_signature_normalize(c, NULL, &s))
		return WISP_ERR_BAD_SIGNATURE;
	digest_msg(msg, n, digest);
	memcpy(pk.data, pub->parsed, sizeof(pk.data));
	if (!secp256k1_ecdsa_verify(c, &s, digest, &pk))
		return WISP_ERR_BAD_SIGNATURE;
	return 0;
}

/* ---- key files ------------------------------------------------------------- */

static int errno_to_err(int e)
{
	switch (e) {
	case EEXIST:
		return WISP_ERR_EXISTS;
	case ENOENT:
	case ENOTDIR:
		return WISP_ERR_NOTFOUND;
	default:
		return WISP_ERR_IO;
	}
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return WISP_ERR_IO;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync the folder holding path, so the new name survives a crash. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd, rc = 0;

	if (!slash) {
		dir[0] = '.';
		len = 1;
	} else {
		len = slash == path ? 1 : (size_t)(slash - path);
		if (len >= sizeof(dir))
			return WISP_ERR_IO;
		memcpy(dir, path, len);
	}
	dir[len] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return WISP_ERR_IO;
	/* Some file systems cannot sync a folder (EINVAL): nothing to do. */
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = WISP_ERR_IO;
	close(fd);
	return rc;
}

int wisp_privkey_write_file(const wisp_privkey *key, const char *path)
{
	uint8_t buf[WISP_PRIVKEY_PB_LEN];
	ssize_t len;
	int fd, rc, saved;

	len = wisp_privkey_encode(key, buf, sizeof(buf));
	if (len < 0)
		return (int)len;
	/* O_EXCL: never replace an existing key, and never follow a symlink
	 * planted at path (O_CREAT|O_EXCL fails on any existing name). */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return errno_to_err(errno);
	}
	/* The umask can only remove bits from 0600; make sure the owner can
	 * read the key back. */
	rc = fchmod(fd, 0600) == 0 ? 0 : WISP_ERR_IO;
	if (rc == 0)
		rc = write_all(fd, buf, (size_t)len);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc == 0 && fsync(fd) != 0)
		rc = WISP_ERR_IO;
	saved = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = WISP_ERR_IO;
		saved = errno;
	}
	if (rc == 0) {
		rc = sync_parent(path);
		saved = errno;
	}
	if (rc != 0) {
		unlink(path);
		errno = saved;
	}
	return rc;
}

int wisp_privkey_read_file(wisp_privkey *key, const char *path, unsigned *mode_out)
{
	uint8_t buf[WISP_KEYFILE_MAX + 1];
	struct stat st;
	size_t got = 0;
	int fd, rc = 0, saved = 0;

	wisp_privkey_wipe(key);
	/* O_NONBLOCK: opening a FIFO planted at path must not hang; it has
	 * no effect on the regular file we then insist on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno_to_err(errno);
	if (fstat(fd, &st) != 0) {
		rc = WISP_ERR_IO;
		saved = errno;
	} else if (!S_ISREG(st.st_mode)) {
		rc = WISP_ERR_INVALID_ARG;
	} else {
		if (mode_out)
			*mode_out = (unsigned)(st.st_mode & 07777);
		if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
			rc = WISP_ERR_PERM; /* checked before a single byte is read */
		else if (st.st_size > WISP_KEYFILE_MAX)
			rc = WISP_ERR_TOO_LARGE;
	}
	/* Read up to one byte past the limit: the size may have changed since
	 * fstat. */
	while (rc == 0 && got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = WISP_ERR_IO;
			saved = errno;
		} else if (r == 0) {
			break;
		} else {
			got += (size_t)r;
		}
	}
	close(fd);
	if (rc == 0 && got > WISP_KEYFILE_MAX)
		rc = WISP_ERR_TOO_LARGE;
	if (rc == 0)
		rc = wisp_privkey_decode(key, buf, got);
	OPENSSL_cleanse(buf, got);
	if (rc == WISP_ERR_IO)
		errno = saved;
	return rc;
}
