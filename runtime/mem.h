/* Internal allocation helpers over wisp_mem. */
#ifndef WISP_RUNTIME_MEM_H
#define WISP_RUNTIME_MEM_H

#include <wisp/mem.h>

static inline void *wisp_malloc(const wisp_mem *m, size_t n)
{
	return m->malloc(n, m->user);
}

static inline void *wisp_calloc(const wisp_mem *m, size_t k, size_t n)
{
	return m->calloc(k, n, m->user);
}

static inline void *wisp_realloc(const wisp_mem *m, void *p, size_t n)
{
	return m->realloc(p, n, m->user);
}

static inline void wisp_free(const wisp_mem *m, void *p)
{
	if (p)
		m->free(p, m->user);
}

/* Aligned allocation through a wisp_mem: over-allocates and stores the
 * original pointer just below the returned one. align is a power of two. */
void *wisp_malloc_aligned(const wisp_mem *m, size_t n, size_t align);
void wisp_free_aligned(const wisp_mem *m, void *p);

#endif
