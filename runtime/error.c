#include <wisp/error.h>

#define WISP_ERRORS(X)                                                                    \
	X(WISP_OK, "success")                                                             \
	X(WISP_ERR_INVALID_ARG, "invalid argument")                                       \
	X(WISP_ERR_AGAIN, "queue or mailbox full, try again later")                       \
	X(WISP_ERR_CLOSED, "object is closed or stopped")                                 \
	X(WISP_ERR_STATE, "operation not valid in the current state")                     \
	X(WISP_ERR_NOBUF, "output buffer too small")                                      \
	X(WISP_ERR_LIMIT, "configured limit reached")                                     \
	X(WISP_ERR_IO, "system call failed")                                              \
	X(WISP_ERR_IO_URING, "io_uring is unavailable")                                   \
	X(WISP_ERR_PERM, "unsafe file permissions")                                       \
	X(WISP_ERR_NOTFOUND, "not found")                                                 \
	X(WISP_ERR_TIMEOUT, "timed out")                                                  \
	X(WISP_ERR_CRYPTO, "crypto library failure")                                      \
	X(WISP_ERR_UNSUPPORTED, "not supported")                                          \
	X(WISP_ERR_EXISTS, "already exists")                                              \
	X(WISP_ERR_REFUSED, "refused by the peer")                                        \
	X(WISP_ERR_RESET, "reset by the peer")                                            \
	X(WISP_ERR_CANCELED, "canceled")                                                  \
	X(WISP_ERR_TRUNCATED, "input truncated")                                          \
	X(WISP_ERR_VARINT, "invalid varint (too long, overflowing or not minimal)")       \
	X(WISP_ERR_TOO_LARGE, "declared length over the maximum")                         \
	X(WISP_ERR_WIRE_TYPE, "unexpected protobuf wire type")                            \
	X(WISP_ERR_TRAILING, "trailing bytes after a complete value")                     \
	X(WISP_ERR_MALFORMED, "malformed input")                                          \
	X(WISP_ERR_BAD_CHAR, "character outside the encoding alphabet")                   \
	X(WISP_ERR_UNKNOWN_CODE, "unknown code or type")                                  \
	X(WISP_ERR_BAD_KEY, "invalid key")                                                \
	X(WISP_ERR_BAD_SIGNATURE, "invalid signature")                                    \
	X(WISP_ERR_DECOMPRESS, "corrupt compressed data or over the size limit")          \
	X(WISP_ERR_PROTOCOL, "protocol violation")                                        \
	X(WISP_ERR_PEER_ID, "remote peer id does not match")                              \
	X(WISP_ERR_DECRYPT, "frame failed authentication")                                \
	X(WISP_ERR_FLOW_CONTROL, "flow-control window exceeded")                          \
	X(WISP_ERR_STREAM_LIMIT, "too many streams")                                      \
	X(WISP_ERR_HANDSHAKE, "handshake violation")                                      \
	X(WISP_ERR_BAD_CONTENT, "content failed its check")                               \
	X(WISP_ERR_NOMEM, "out of memory")                                                \
	X(WISP_ERR_INTERNAL, "internal error")

const char *wisp_strerror(int err)
{
	switch (err) {
#define X(code, text) \
	case code:    \
		return text;
		WISP_ERRORS(X)
#undef X
	}
	return "unknown error";
}

const char *wisp_errname(int err)
{
	switch (err) {
#define X(code, text) \
	case code:    \
		return #code;
		WISP_ERRORS(X)
#undef X
	}
	return "WISP_ERR_?";
}
