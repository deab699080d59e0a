/* Allocator hooks. Every object that allocates takes a wisp_mem at creation
 * and uses it for all its memory, so tests can fail the Nth allocation and
 * embedders can route memory to their own allocator. */
#ifndef WISP_MEM_H
#define WISP_MEM_H

#include <wisp/common.h>

typedef struct wisp_mem {
	void *user; /* passed back to every hook */
	void *(*malloc)(size_t size, void *user);
	void (*free)(void *ptr, void *user);
	void *(*calloc)(size_t nmemb, size_t size, void *user);
	void *(*realloc)(void *ptr, size_t size, void *user);
} wisp_mem;

/* The C library's allocator. Never NULL. */
WISP_API const wisp_mem *wisp_mem_default(void);

#endif
