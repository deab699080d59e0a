/* wisp error space.
 *
 * One space for the whole library: 0 is success, every error is a negative
 * WISP_ERR_* code. Functions that return a size return it as a value >= 0 and
 * an error as a value < 0 (ssize_t-like).
 *
 * Three classes, told apart by range so callers (and peer scoring) can act on
 * the class without a table:
 *   -1   .. -99   local conditions: misuse, backpressure, system calls, files;
 *   -100 .. -199  the peer (or the bytes) violated a format or protocol:
 *                 wisp_err_is_peer() is true, and the offending connection or
 *                 stream is closed and the peer can be penalized;
 *   <= -500       fatal: the object that returned it cannot continue.
 */
#ifndef WISP_ERROR_H
#define WISP_ERROR_H

#include <wisp/common.h>

enum {
	WISP_OK = 0,

	/* local */
	WISP_ERR_INVALID_ARG = -1,  /* the caller broke the API contract */
	WISP_ERR_AGAIN = -2,        /* a bounded queue or mailbox is full: retry later */
	WISP_ERR_CLOSED = -3,       /* the object is stopped or closed */
	WISP_ERR_STATE = -4,        /* not valid in the object's current state */
	WISP_ERR_NOBUF = -5,        /* the caller's output buffer is too small */
	WISP_ERR_LIMIT = -6,        /* a configured local limit was reached */
	WISP_ERR_IO = -7,           /* a system call failed (errno is in the detail) */
	WISP_ERR_IO_URING = -8,     /* io_uring is unavailable (disabled, seccomp, too old) */
	WISP_ERR_PERM = -9,         /* a file's permissions are unsafe (key readable by others) */
	WISP_ERR_NOTFOUND = -10,    /* no such file, peer, topic or entry */
	WISP_ERR_TIMEOUT = -11,     /* a deadline passed */
	WISP_ERR_CRYPTO = -12,      /* the crypto library failed locally (not the peer's fault) */
	WISP_ERR_UNSUPPORTED = -13, /* a feature this build or kernel does not have */
	WISP_ERR_EXISTS = -14,      /* the file or entry already exists */
	WISP_ERR_REFUSED = -15,     /* the peer declined: no common protocol, connection refused */
	WISP_ERR_RESET = -16,       /* the peer reset the stream or closed the connection */
	WISP_ERR_CANCELED = -17,    /* the caller canceled it */

	/* the peer or the input is at fault */
	WISP_ERR_PEER_FIRST = -100,
	WISP_ERR_TRUNCATED = -100,    /* input ended inside a value or frame */
	WISP_ERR_VARINT = -101,       /* varint too long, overflowing or not minimally encoded */
	WISP_ERR_TOO_LARGE = -102,    /* a declared length is over the allowed maximum */
	WISP_ERR_WIRE_TYPE = -103,    /* protobuf field with an unexpected or invalid wire type */
	WISP_ERR_TRAILING = -104,     /* bytes left over after a complete value */
	WISP_ERR_MALFORMED = -105,    /* structurally invalid input */
	WISP_ERR_BAD_CHAR = -106,     /* a character outside the encoding's alphabet */
	WISP_ERR_UNKNOWN_CODE = -107, /* unknown multicodec, multiaddr protocol or key type */
	WISP_ERR_BAD_KEY = -108,      /* a key that does not parse or is not on the curve */
	WISP_ERR_BAD_SIGNATURE = -109,/* a signature that does not verify or is not low-S DER */
	WISP_ERR_DECOMPRESS = -110,   /* corrupt compressed data, or over the size limit */
	WISP_ERR_PROTOCOL = -111,     /* a protocol rule was broken */
	WISP_ERR_PEER_ID = -112,      /* the remote identity is not the peer id that was dialed */
	WISP_ERR_DECRYPT = -113,      /* an encrypted frame failed authentication */
	WISP_ERR_FLOW_CONTROL = -114, /* the peer sent more than its flow-control window */
	WISP_ERR_STREAM_LIMIT = -115, /* the peer opened more streams than allowed */
	WISP_ERR_HANDSHAKE = -116,    /* the peer broke the handshake (unexpected message or payload) */
	WISP_ERR_BAD_CONTENT = -117,  /* content that failed its check (a chunk not matching its hash) */
	WISP_ERR_PEER_LAST = -199,

	/* fatal */
	WISP_ERR_FATAL = -500,
	WISP_ERR_NOMEM = -501,    /* an allocation failed */
	WISP_ERR_INTERNAL = -502, /* an invariant broke: a wisp bug */
};

/* A static, human-readable description of err. Never NULL; any thread. */
WISP_API const char *wisp_strerror(int err);

/* The symbolic name of err ("WISP_ERR_AGAIN"); "WISP_ERR_?" for unknown codes. */
WISP_API const char *wisp_errname(int err);

/* True when err says the peer or its bytes broke a rule. */
static inline int wisp_err_is_peer(int err)
{
	return err <= WISP_ERR_PEER_FIRST && err >= WISP_ERR_PEER_LAST;
}

/* True when err is fatal for the object that returned it. */
static inline int wisp_err_is_fatal(int err)
{
	return err <= WISP_ERR_FATAL;
}

#endif
