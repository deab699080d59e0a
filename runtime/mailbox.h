/* Actor mailboxes: bounded Concurrency Kit rings of typed messages.
 *
 * A mailbox has one consumer (the loop that hosts its actor) and many
 * producers. Each loop of the node gets its own single-producer lane into
 * every mailbox (a wait-free ck_ring SPSC: the hot path between workers and
 * actors); every other thread (the application's) shares one multi-producer
 * lane. Messages from one producer arrive in the order it sent them; the
 * consumer visits the lanes round-robin.
 *
 * Messages are small values copied into the ring; any payload travels as a
 * reference-counted wisp_buf the message owns.
 *
 * Sending never blocks. A full lane returns WISP_ERR_AGAIN and counts it; a
 * closed mailbox returns WISP_ERR_CLOSED. Ownership of msg->buf moves to the
 * mailbox only when the send returns WISP_OK: on error the sender still owns
 * it. After a successful send the receiving loop is woken if, and only if, it
 * is asleep.
 */
#ifndef WISP_RUNTIME_MAILBOX_H
#define WISP_RUNTIME_MAILBOX_H

#include <ck_ring.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <wisp/mem.h>

#include "runtime/buf.h"
#include "runtime/stat.h"

struct wisp_loop;

/* A message. 32 bytes: two per cache line. `type` values are defined by the
 * receiving actor's module. */
typedef struct wisp_msg {
	uint32_t type;
	uint32_t src;   /* sender-defined: producer index, worker index, ... */
	uint64_t a;
	uint64_t b;
	wisp_buf *buf;  /* owned payload or NULL */
} wisp_msg;

typedef struct wisp_lane {
	ck_ring_t ring; /* ck pads the producer and consumer indexes apart */
	struct wisp_msg *slots;
} wisp_lane;

typedef struct wisp_mailbox {
	wisp_lane shared;          /* MPSC: threads that are not loops */
	wisp_lane *lanes;          /* SPSC: lanes[loop->lane] for each loop */
	uint32_t n_lanes;
	uint32_t next_lane;        /* consumer: the lane it takes from now */
	uint32_t burst;            /* consumer: messages taken from it in a row */
	struct wisp_loop *owner;   /* the consumer's loop, woken on send; NULL: the caller wakes */
	_Atomic bool closed;
	wisp_stat full;            /* sends refused: lane full (several writers) */
	wisp_stat refused_closed;  /* sends refused: closed (several writers) */
	wisp_stat received;        /* messages taken by the consumer (one writer) */
} wisp_mailbox;

/* slots: per lane, a power of two >= 4 (a lane holds slots - 1 messages);
 * loops: how many loops get their own lane (lane indexes 0..loops-1).
 * Errors: WISP_ERR_INVALID_ARG, WISP_ERR_NOMEM (nothing to fini then). */
int wisp_mailbox_init(wisp_mailbox *mb, const wisp_mem *mem, uint32_t slots, uint32_t loops,
		      struct wisp_loop *owner);

/* Release the rings. Messages still queued are released (their buffers
 * unreferenced) and their count returned. Only when no thread sends. */
uint64_t wisp_mailbox_fini(wisp_mailbox *mb, const wisp_mem *mem);

/* Send *m. `from` is the sending loop when the caller runs on one (it then
 * uses that loop's lane, and its wakeups are batched through io_uring), NULL
 * from any other thread. Returns WISP_OK, WISP_ERR_AGAIN or WISP_ERR_CLOSED. */
int wisp_mailbox_send_mpsc(wisp_mailbox *mb, const wisp_msg *m, struct wisp_loop *from);

/* Take the next message into *m. Only the consumer. */
bool wisp_mailbox_recv_mpsc(wisp_mailbox *mb, wisp_msg *m);

/* True when some lane holds a message (exact for the consumer; a hint for
 * anyone else). */
bool wisp_mailbox_pending(wisp_mailbox *mb);

/* Refuse every later send with WISP_ERR_CLOSED. Any thread. */
static inline void wisp_mailbox_close(wisp_mailbox *mb)
{
	atomic_store_explicit(&mb->closed, true, memory_order_release);
}

#endif
