#include "codec/base58.h"

#include <wisp/error.h>

static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static int digit_of(unsigned char c)
{
	if (c >= 0x80)
		return -1;
	/* Holds digit + 1, so characters left out read as -1. */
	static const signed char map[128] = {
		['1'] = 1,  ['2'] = 2,  ['3'] = 3,  ['4'] = 4,  ['5'] = 5,  ['6'] = 6,
		['7'] = 7,  ['8'] = 8,  ['9'] = 9,  ['A'] = 10, ['B'] = 11, ['C'] = 12,
		['D'] = 13, ['E'] = 14, ['F'] = 15, ['G'] = 16, ['H'] = 17, ['J'] = 18,
		['K'] = 19, ['L'] = 20, ['M'] = 21, ['N'] = 22, ['P'] = 23, ['Q'] = 24,
		['R'] = 25, ['S'] = 26, ['T'] = 27, ['U'] = 28, ['V'] = 29, ['W'] = 30,
		['X'] = 31, ['Y'] = 32, ['Z'] = 33, ['a'] = 34, ['b'] = 35, ['c'] = 36,
		['d'] = 37, ['e'] = 38, ['f'] = 39, ['g'] = 40, ['h'] = 41, ['i'] = 42,
		['j'] = 43, ['k'] = 44, ['m'] = 45, ['n'] = 46, ['o'] = 47, ['p'] = 48,
		['q'] = 49, ['r'] = 50, ['s'] = 51, ['t'] = 52, ['u'] = 53, ['v'] = 54,
		['w'] = 55, ['x'] = 56, ['y'] = 57, ['z'] = 58,
	};
	return map[c] - 1;
}

static void reverse(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		uint8_t t = p[i];
		p[i] = p[n - 1 - i];
		p[n - 1 - i] = t;
	}
}

ssize_t wisp_base58_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t zeros = 0;
	while (zeros < n && in[zeros] == 0)
		zeros++;
	if (cap == 0 || zeros > cap - 1)
		return WISP_ERR_NOBUF;

	/* Base-58 digits, least significant first, built in place after the
	 * '1's; ndig never exceeds the room left, so the check is exact. */
	uint8_t *dig = (uint8_t *)out + zeros;
	size_t room = cap - 1 - zeros, ndig = 0;
	for (size_t i = zeros; i < n; i++) {
		unsigned carry = in[i];
		for (size_t j = 0; j < ndig; j++) {
			carry += (unsigned)dig[j] << 8;
			dig[j] = (uint8_t)(carry % 58);
			carry /= 58;
		}
		while (carry) {
			if (ndig == room)
				return WISP_ERR_NOBUF;
			dig[ndig++] = (uint8_t)(carry % 58);
			carry /= 58;
		}
	}
	reverse(dig, ndig);
	for (size_t j = 0; j < ndig; j++)
		out[zeros + j] = alphabet[dig[j]];
	for (size_t j = 0; j < zeros; j++)
		out[j] = '1';
	out[zeros + ndig] = 0;
	return (ssize_t)(zeros + ndig);
}

ssize_t wisp_base58_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	for (size_t i = 0; i < n; i++)
		if (digit_of((unsigned char)in[i]) < 0)
			return WISP_ERR_BAD_CHAR;

	size_t ones = 0;
	while (ones < n && in[ones] == '1')
		ones++;
	if (ones > cap)
		return WISP_ERR_NOBUF;

	/* Base-256 bytes, least significant first, after the zero bytes. */
	uint8_t *val = out + ones;
	size_t room = cap - ones, nval = 0;
	for (size_t i = ones; i < n; i++) {
		unsigned carry = (unsigned)digit_of((unsigned char)in[i]);
		for (size_t j = 0; j < nval; j++) {
			carry += (unsigned)val[j] * 58;
			val[j] = (uint8_t)carry;
			carry >>= 8;
		}
		while (carry) {
			if (nval == room)
				return WISP_ERR_NOBUF;
			val[nval++] = (uint8_t)carry;
			carry >>= 8;
		}
	}
	reverse(val, nval);
	for (size_t j = 0; j < ones; j++)
		out[j] = 0;
	return (ssize_t)(ones + nval);
}
