/* A table keyed by peer id: open addressing, linear probing, backward-shift
 * delete. Entries are the caller's structs, each beginning with its
 * wisp_peer_id (len 0 marks an empty slot); the table holds them inline and
 * never grows: it is sized at creation and refuses new ids at 3/4 full.
 * Entry pointers stay valid until the next add or remove. One thread.
 */
#ifndef WISP_PEERSET_IDTAB_H
#define WISP_PEERSET_IDTAB_H

#include <stdbool.h>

#include <wisp/identity.h>
#include <wisp/mem.h>

typedef struct wisp_idtab {
	uint8_t *slots;
	size_t esize;
	uint32_t cap; /* power of two */
	uint32_t count;
} wisp_idtab;

/* Room for about max_entries (the capacity is the next power of two of
 * twice that, at least 64). Errors: WISP_ERR_NOMEM. */
int wisp_idtab_init(wisp_idtab *t, const wisp_mem *mem, size_t esize, uint32_t max_entries) WISP_WARN_UNUSED;
void wisp_idtab_fini(wisp_idtab *t, const wisp_mem *mem);

/* The entry for id; with create, a new zeroed one (id set) when absent.
 * NULL when absent (or full). */
void *wisp_idtab_get(wisp_idtab *t, const wisp_peer_id *id, bool create);
void wisp_idtab_remove(wisp_idtab *t, void *entry);

/* Iteration: slots 0..cap-1, NULL for empty ones. */
static inline void *wisp_idtab_slot(const wisp_idtab *t, uint32_t i)
{
	void *e = t->slots + (size_t)i * t->esize;
	return ((const wisp_peer_id *)e)->len ? e : NULL;
}

#endif
