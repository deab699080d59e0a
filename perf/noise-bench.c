/* noise-bench: the cost of wisp's Noise, each figure beside a raw baseline
 * measured in the same run, so overhead reads as a ratio.
 *
 *   handshake  full XX handshakes per second, both sides in this thread
 *              (new + three messages + free of both objects), beside the
 *              primitives one handshake pair needs: 4 X25519 key pairs,
 *              6 X25519 DH, 2 secp256k1 signatures and 2 verifications;
 *   transport  seal + open of one frame (64 B, 1 KiB, and the largest
 *              frame, 65519 B of plaintext: "64 KiB") vs raw OpenSSL EVP
 *              ChaCha20-Poly1305 encrypting and decrypting the same bytes
 *              with contexts reused the same way.
 *
 * Output: one row per figure, `key=value` fields, min/median/max over
 * --runs; ratio rows compare medians. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <wisp/error.h>
#include <wisp/identity.h>

#include "net/noise.h"
#include "runtime/clock.h"

static struct {
	int runs;
	double seconds; /* per run and figure */
	const char *only;
} cfg = { .runs = 5, .seconds = 0.3 };

static char machine[128];
static wisp_privkey key_i, key_r;
static volatile uint8_t sink;

__attribute__((noreturn)) static void die(const char *what, long rc)
{
	fprintf(stderr, "noise-bench: %s failed (%ld)\n", what, rc);
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Prints a row from per-run values; returns the median. */
static double row(const char *name, const char *unit, double *v, int n, const char *extra)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	printf("bench=noise-bench name=%s unit=%s min=%.4g median=%.4g max=%.4g runs=%d%s%s %s\n", name,
	       unit, v[0], v[n / 2], v[n - 1], n, extra ? " " : "", extra ? extra : "", machine);
	return v[n / 2];
}

static void row_ratio(const char *name, double value, const char *meaning)
{
	printf("bench=noise-bench name=%s unit=ratio value=%.3f meaning=\"%s\" %s\n", name, value, meaning,
	       machine);
}

/* Runs op until cfg.seconds pass; returns operations per second. */
#define TIMED(ops_per_call, body)                                                                \
	({                                                                                       \
		uint64_t n_ = 0;                                                                 \
		wisp_tstamp t0_ = wisp_clock_now(), t_;                                          \
		do {                                                                             \
			for (int k_ = 0; k_ < 16; k_++) {                                        \
				body;                                                            \
			}                                                                        \
			n_ += 16 * (ops_per_call);                                               \
			t_ = wisp_clock_now();                                                   \
		} while (t_ - t0_ < (wisp_tstamp)(cfg.seconds * 1e9));                           \
		(double)n_ * 1e9 / (double)(t_ - t0_);                                           \
	})

/* ---- handshakes ---------------------------------------------------------- */

static const char *const muxers[] = { "/yamux/1.0.0" };

static void one_handshake(void)
{
	static uint8_t buf[2048];
	wisp_noise *i, *r;
	wisp_noise_config ci = { .identity = &key_i, .muxers = muxers, .n_muxers = 1 };
	wisp_noise_config cr = { .identity = &key_r, .muxers = muxers, .n_muxers = 1 };
	int rc;

	if ((rc = wisp_noise_new(&i, wisp_mem_default(), true, &ci)) != 0 ||
	    (rc = wisp_noise_new(&r, wisp_mem_default(), false, &cr)) != 0)
		die("wisp_noise_new", rc);
	for (int m = 0; m < 3; m++) {
		wisp_noise *from = m == 1 ? r : i, *to = m == 1 ? i : r;
		ssize_t w = wisp_noise_handshake_write(from, buf, sizeof(buf));
		if (w <= 0 || wisp_noise_handshake_read(to, buf, (size_t)w) != w)
			die("handshake", (long)w);
	}
	if (!wisp_noise_done(i) || !wisp_noise_done(r))
		die("handshake done", 0);
	wisp_noise_free(i);
	wisp_noise_free(r);
}

/* The primitives, through the same APIs wisp uses. */
static EVP_PKEY *x_a, *x_b;
static EVP_PKEY_CTX *x_ctx;

static void x25519_setup(void)
{
	x_a = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	x_b = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	x_ctx = EVP_PKEY_CTX_new_from_pkey(NULL, x_a, NULL);
	if (!x_a || !x_b || !x_ctx || EVP_PKEY_derive_init(x_ctx) != 1 ||
	    EVP_PKEY_derive_set_peer_ex(x_ctx, x_b, 0) != 1)
		die("X25519 setup", 0);
}

static void x25519_dh(void)
{
	uint8_t out[32];
	size_t len = sizeof(out);
	if (EVP_PKEY_derive(x_ctx, out, &len) != 1)
		die("X25519 derive", 0);
	sink ^= out[0];
}

static void x25519_keypair(void)
{
	uint8_t s[32], pub[32];
	size_t len = sizeof(pub);
	memset(s, (int)sink + 1, sizeof(s));
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, s, sizeof(s));
	if (!k || EVP_PKEY_get_raw_public_key(k, pub, &len) != 1)
		die("X25519 keypair", 0);
	sink ^= pub[0];
	EVP_PKEY_free(k);
}

static uint8_t sig[WISP_SIG_MAX];
static size_t sig_len;
static const uint8_t sig_msg[56] = "noise-libp2p-static-key:0123456789abcdef0123456789abcdef";

static void secp_sign(void)
{
	ssize_t n = wisp_privkey_sign(&key_i, sig_msg, sizeof(sig_msg), sig, sizeof(sig));
	if (n <= 0)
		die("sign", (long)n);
	sig_len = (size_t)n;
}

static void secp_verify(void)
{
	if (wisp_pubkey_verify(wisp_privkey_pubkey(&key_i), sig_msg, sizeof(sig_msg), sig, sig_len) != 0)
		die("verify", 0);
}

static void bench_handshake(void)
{
	double hs[64], kp[64], dh[64], sg[64], vf[64];

	x25519_setup();
	secp_sign();
	for (int r = 0; r < cfg.runs; r++) {
		hs[r] = TIMED(1, one_handshake());
		kp[r] = TIMED(1, x25519_keypair());
		dh[r] = TIMED(1, x25519_dh());
		sg[r] = TIMED(1, secp_sign());
		vf[r] = TIMED(1, secp_verify());
	}
	double h = row("handshake_pair", "handshakes/s", hs, cfg.runs, "what=\"both sides, new..free\"");
	double k = row("x25519_keypair", "ops/s", kp, cfg.runs, NULL);
	double d = row("x25519_dh", "ops/s", dh, cfg.runs, NULL);
	double s = row("secp256k1_sign", "ops/s", sg, cfg.runs, NULL);
	double v = row("secp256k1_verify", "ops/s", vf, cfg.runs, NULL);
	/* What the primitives alone would allow for one handshake pair. */
	double floor_s = 4 / k + 6 / d + 2 / s + 2 / v;
	printf("bench=noise-bench name=handshake_primitive_bound unit=handshakes/s value=%.4g "
	       "what=\"4 keypairs + 6 DH + 2 sign + 2 verify\" %s\n", 1 / floor_s, machine);
	row_ratio("handshake_over_primitives", h * floor_s,
		  "handshake rate / rate the primitives alone allow (1.0 = no overhead)");
	EVP_PKEY_CTX_free(x_ctx);
	EVP_PKEY_free(x_a);
	EVP_PKEY_free(x_b);
}

/* ---- transport ------------------------------------------------------------ */

static wisp_noise *t_i, *t_r;
static uint8_t *plain, *wire;
static EVP_CIPHER_CTX *raw_enc, *raw_dec;
static EVP_CIPHER *raw_cipher;
static uint64_t raw_n;

static void transport_setup(void)
{
	static uint8_t buf[2048];
	wisp_noise_config ci = { .identity = &key_i };
	wisp_noise_config cr = { .identity = &key_r };
	uint8_t key[32];

	if (wisp_noise_new(&t_i, wisp_mem_default(), true, &ci) != 0 ||
	    wisp_noise_new(&t_r, wisp_mem_default(), false, &cr) != 0)
		die("wisp_noise_new", 0);
	for (int m = 0; m < 3; m++) {
		wisp_noise *from = m == 1 ? t_r : t_i, *to = m == 1 ? t_i : t_r;
		ssize_t w = wisp_noise_handshake_write(from, buf, sizeof(buf));
		if (w <= 0 || wisp_noise_handshake_read(to, buf, (size_t)w) != w)
			die("handshake", (long)w);
	}
	plain = malloc(WISP_NOISE_MAX_WIRE);
	wire = malloc(WISP_NOISE_MAX_WIRE);
	if (!plain || !wire)
		die("malloc", 0);
	for (size_t k = 0; k < WISP_NOISE_MAX_WIRE; k++)
		plain[k] = (uint8_t)(k * 31);

	/* The baseline: the same cipher, fetched once, one context per
	 * direction, re-nonced per frame: what a careful caller of EVP does. */
	memset(key, 0x42, sizeof(key));
	raw_cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	raw_enc = EVP_CIPHER_CTX_new();
	raw_dec = EVP_CIPHER_CTX_new();
	if (!raw_cipher || !raw_enc || !raw_dec ||
	    EVP_CipherInit_ex(raw_enc, raw_cipher, NULL, key, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(raw_dec, raw_cipher, NULL, key, NULL, 0) != 1)
		die("EVP setup", 0);
}

static void transport_teardown(void)
{
	wisp_noise_free(t_i);
	wisp_noise_free(t_r);
	EVP_CIPHER_CTX_free(raw_enc);
	EVP_CIPHER_CTX_free(raw_dec);
	EVP_CIPHER_free(raw_cipher);
	free(plain);
	free(wire);
}

static void wisp_seal_open(size_t len)
{
	uint8_t *p;
	size_t pl;
	ssize_t w = wisp_noise_seal(t_i, wire, WISP_NOISE_MAX_WIRE, plain, len);
	if (w < 0 || wisp_noise_open(t_r, wire, (size_t)w, &p, &pl) != w)
		die("seal/open", (long)w);
	sink ^= p[0];
}

static void raw_seal_open(size_t len)
{
	uint8_t iv[12] = { 0 }, tag[16];
	int outl;

	memcpy(iv + 4, &raw_n, 8); /* little-endian hosts: the Noise nonce layout */
	raw_n++;
	if (EVP_CipherInit_ex(raw_enc, NULL, NULL, NULL, iv, 1) != 1 ||
	    EVP_CipherUpdate(raw_enc, wire, &outl, plain, (int)len) != 1 ||
	    EVP_CipherFinal_ex(raw_enc, wire + len, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(raw_enc, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
		die("raw seal", 0);
	if (EVP_CipherInit_ex(raw_dec, NULL, NULL, NULL, iv, 0) != 1 ||
	    EVP_CipherUpdate(raw_dec, wire, &outl, wire, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(raw_dec, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
	    EVP_CipherFinal_ex(raw_dec, wire + len, &outl) != 1)
		die("raw open", 0);
	sink ^= wire[0];
}

static void bench_transport(void)
{
	static const struct {
		size_t len;
		const char *tag;
	} sizes[] = { { 64, "64b" }, { 1024, "1k" }, { WISP_NOISE_MAX_PLAINTEXT, "64k" } };

	transport_setup();
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = sizes[s].len;
		bool bytes = len > 4096;
		double raw[64], wisp[64];
		char name[64];
		for (int r = 0; r < cfg.runs; r++) {
			raw[r] = TIMED(1, raw_seal_open(len));
			wisp[r] = TIMED(1, wisp_seal_open(len));
			if (bytes) {
				raw[r] *= (double)len / 1e9;
				wisp[r] *= (double)len / 1e9;
			}
		}
		const char *unit = bytes ? "GB/s" : "frames/s";
		snprintf(name, sizeof(name), "raw_evp_chachapoly_seal_open_%s", sizes[s].tag);
		double rm = row(name, unit, raw, cfg.runs, NULL);
		snprintf(name, sizeof(name), "wisp_noise_seal_open_%s", sizes[s].tag);
		double wm = row(name, unit, wisp, cfg.runs, NULL);
		snprintf(name, sizeof(name), "seal_open_%s_wisp_over_raw", sizes[s].tag);
		row_ratio(name, wm / rm, "wisp seal+open / raw EVP encrypt+decrypt, same bytes");
	}
	transport_teardown();
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: noise-bench [--runs N] [--seconds S] [--only handshake|transport]\n"
		"\n"
		"Measures wisp's Noise beside raw baselines in the same run:\n"
		"  handshake  XX handshakes/s, both sides in one thread, beside the X25519 and\n"
		"             secp256k1 operations one handshake pair needs\n"
		"  transport  seal+open of 64 B, 1 KiB and 65519 B frames vs raw EVP\n"
		"             ChaCha20-Poly1305 (frames/s; GB/s of plaintext for the largest)\n"
		"Rows are key=value with min/median/max over --runs, each run about --seconds\n"
		"per figure. Defaults: --runs 5 --seconds 0.3. Exit status: 0 ok, 1 failure, 2 usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' }, { "seconds", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': cfg.runs = atoi(optarg); break;
		case 's': cfg.seconds = atof(optarg); break;
		case 'o': cfg.only = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.runs < 1 || cfg.runs > 64 || cfg.seconds < 0.01 || cfg.seconds > 60 ||
	    (cfg.only && strcmp(cfg.only, "handshake") && strcmp(cfg.only, "transport"))) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	char host[64] = "?";
	gethostname(host, sizeof(host));
	snprintf(machine, sizeof(machine), "machine=%s cpus=%ld", host, sysconf(_SC_NPROCESSORS_ONLN));

	uint8_t s[WISP_SECRET_LEN];
	for (int k = 0; k < WISP_SECRET_LEN; k++)
		s[k] = (uint8_t)(k + 1);
	if (wisp_privkey_from_secret(&key_i, s) != 0)
		die("key", 0);
	s[0] = 0x55;
	if (wisp_privkey_from_secret(&key_r, s) != 0)
		die("key", 0);
	printf("# noise-bench: %d runs, %.2f s per figure and run; %s\n", cfg.runs, cfg.seconds,
	       OpenSSL_version(OPENSSL_VERSION));
	if (!cfg.only || !strcmp(cfg.only, "handshake"))
		bench_handshake();
	if (!cfg.only || !strcmp(cfg.only, "transport"))
		bench_transport();
	wisp_privkey_wipe(&key_i);
	wisp_privkey_wipe(&key_r);
	return 0;
}
