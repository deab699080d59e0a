#include "peerset/idtab.h"

#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"

static uint32_t hash_id(const wisp_peer_id *id)
{
	uint32_t h = 2166136261u;
	for (uint8_t i = 0; i < id->len; i++)
		h = (h ^ id->bytes[i]) * 16777619u;
	return h;
}

static wisp_peer_id *at(const wisp_idtab *t, uint32_t i)
{
	return (wisp_peer_id *)(void *)(t->slots + (size_t)i * t->esize);
}

int wisp_idtab_init(wisp_idtab *t, const wisp_mem *mem, size_t esize, uint32_t max_entries)
{
	memset(t, 0, sizeof(*t));
	t->esize = esize;
	t->cap = 64;
	while (t->cap < max_entries * 2u && t->cap < (1u << 24))
		t->cap <<= 1;
	t->slots = wisp_calloc(mem, t->cap, esize);
	return t->slots ? WISP_OK : WISP_ERR_NOMEM;
}

void wisp_idtab_fini(wisp_idtab *t, const wisp_mem *mem)
{
	wisp_free(mem, t->slots);
	t->slots = NULL;
}

void *wisp_idtab_get(wisp_idtab *t, const wisp_peer_id *id, bool create)
{
	uint32_t mask = t->cap - 1;
	for (uint32_t i = hash_id(id) & mask, probes = 0; probes < t->cap; i = (i + 1) & mask, probes++) {
		wisp_peer_id *e = at(t, i);
		if (e->len == 0) {
			if (!create || t->count * 4 >= t->cap * 3)
				return NULL;
			memset(e, 0, t->esize);
			*e = *id;
			t->count++;
			return e;
		}
		if (wisp_peer_id_equal(e, id))
			return e;
	}
	return NULL;
}

void wisp_idtab_remove(wisp_idtab *t, void *entry)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = (uint32_t)(((uint8_t *)entry - t->slots) / t->esize);
	at(t, i)->len = 0;
	t->count--;
	/* Move later members of the probe run back into the hole. */
	for (uint32_t j = (i + 1) & mask; at(t, j)->len; j = (j + 1) & mask) {
		uint32_t home = hash_id(at(t, j)) & mask;
		bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (between)
			continue;
		memcpy(at(t, i), at(t, j), t->esize);
		at(t, j)->len = 0;
		i = j;
	}
}
