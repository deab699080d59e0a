#include "codec/base32.h"

#include <wisp/error.h>

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static int digit_of(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

ssize_t wisp_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	if (n > (SIZE_MAX - 4) / 8)
		return WISP_ERR_NOBUF;
	size_t olen = WISP_BASE32_ENCODED_LEN(n);
	if (olen >= cap)
		return WISP_ERR_NOBUF;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8 | in[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = alphabet[(acc >> bits) & 31];
		}
	}
	if (bits)
		out[o++] = alphabet[(acc << (5 - bits)) & 31];
	out[o] = 0;
	return (ssize_t)o;
}

ssize_t wisp_base32_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	for (size_t i = 0; i < n; i++)
		if (digit_of(in[i]) < 0)
			return WISP_ERR_BAD_CHAR;
	/* A final group of 1, 3 or 6 characters cannot come from whole bytes. */
	size_t tail = n % 8;
	if (tail == 1 || tail == 3 || tail == 6)
		return WISP_ERR_MALFORMED;
	size_t olen = n / 8 * 5 + tail * 5 / 8;
	if (olen > cap)
		return WISP_ERR_NOBUF;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 5 | (uint32_t)digit_of(in[i])) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (acc & ((1u << bits) - 1))
		return WISP_ERR_MALFORMED;
	return (ssize_t)o;
}
