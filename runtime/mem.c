#include "runtime/mem.h"

#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t n, void *u)
{
	(void)u;
	return malloc(n);
}

static void libc_free(void *p, void *u)
{
	(void)u;
	free(p);
}

static void *libc_calloc(size_t k, size_t n, void *u)
{
	(void)u;
	return calloc(k, n);
}

static void *libc_realloc(void *p, size_t n, void *u)
{
	(void)u;
	return realloc(p, n);
}

static const wisp_mem libc_mem = {
	.user = NULL,
	.malloc = libc_malloc,
	.free = libc_free,
	.calloc = libc_calloc,
	.realloc = libc_realloc,
};

const wisp_mem *wisp_mem_default(void)
{
	return &libc_mem;
}

void *wisp_malloc_aligned(const wisp_mem *m, size_t n, size_t align)
{
	if (n > SIZE_MAX - align - sizeof(void *))
		return NULL;
	unsigned char *raw = wisp_malloc(m, n + align + sizeof(void *));
	if (!raw)
		return NULL;
	uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
	memcpy((void *)(p - sizeof(void *)), &raw, sizeof(raw));
	return (void *)p;
}

void wisp_free_aligned(const wisp_mem *m, void *p)
{
	if (!p)
		return;
	void *raw;
	memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(raw));
	wisp_free(m, raw);
}
