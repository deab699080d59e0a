#include "codec/multihash.h"

#include <string.h>

#include <openssl/evp.h>

#include <wisp/error.h>

#include "codec/varint.h"

ssize_t wisp_multihash_encode(uint64_t code, const uint8_t *digest, size_t n, uint8_t *out,
			      size_t cap)
{
	if (code != WISP_MH_IDENTITY && code != WISP_MH_SHA2_256)
		return WISP_ERR_INVALID_ARG;
	if (code == WISP_MH_SHA2_256 && n != WISP_MH_SHA2_256_LEN)
		return WISP_ERR_INVALID_ARG;
	size_t head = wisp_uvarint_len(code) + wisp_uvarint_len(n);
	if (n > WISP_UVARINT_MAX || cap < head || n > cap - head)
		return WISP_ERR_NOBUF;
	size_t o = wisp_uvarint_put(out, code);
	o += wisp_uvarint_put(out + o, n);
	if (n)
		memcpy(out + o, digest, n);
	return (ssize_t)(o + n);
}

ssize_t wisp_multihash_sha256(const uint8_t *data, size_t n, uint8_t *out, size_t cap)
{
	if (cap < WISP_MH_SHA2_256_SIZE)
		return WISP_ERR_NOBUF;
	unsigned int mdlen = 0;
	/* OpenSSL wants a non-NULL pointer even for empty input. */
	static const uint8_t empty[1];
	if (!EVP_Digest(n ? data : empty, n, out + 2, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != WISP_MH_SHA2_256_LEN)
		return WISP_ERR_CRYPTO;
	out[0] = WISP_MH_SHA2_256;
	out[1] = WISP_MH_SHA2_256_LEN;
	return WISP_MH_SHA2_256_SIZE;
}

int wisp_multihash_decode(const uint8_t *in, size_t n, wisp_multihash *mh)
{
	const uint8_t *p = in, *end = n ? in + n : in;
	uint64_t code, len;
	ssize_t r = wisp_uvarint_get(p, end, &code);
	if (r < 0)
		return (int)r;
	p += r;
	r = wisp_uvarint_get(p, end, &len);
	if (r < 0)
		return (int)r;
	p += r;
	if (len > (size_t)(end - p))
		return WISP_ERR_TRUNCATED;
	if (len < (size_t)(end - p))
		return WISP_ERR_TRAILING;
	if (code != WISP_MH_IDENTITY && code != WISP_MH_SHA2_256)
		return WISP_ERR_UNKNOWN_CODE;
	if (code == WISP_MH_SHA2_256 && len != WISP_MH_SHA2_256_LEN)
		return WISP_ERR_MALFORMED;
	mh->code = code;
	mh->digest = p;
	mh->len = (size_t)len;
	return 0;
}
