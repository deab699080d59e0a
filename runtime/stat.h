/* Counters written by one thread and read by any.
 *
 * The owner increments with a relaxed load and store (a plain add, no lock
 * prefix); readers load relaxed. Counters touched by several writers use
 * wisp_stat_add_shared (an atomic add) and belong on a rarely-taken path. */
#ifndef WISP_RUNTIME_STAT_H
#define WISP_RUNTIME_STAT_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t wisp_stat;

static inline void wisp_stat_add(wisp_stat *s, uint64_t n)
{
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void wisp_stat_add_shared(wisp_stat *s, uint64_t n)
{
	atomic_fetch_add_explicit(s, n, memory_order_relaxed);
}

static inline uint64_t wisp_stat_get(const wisp_stat *s)
{
	return atomic_load_explicit(s, memory_order_relaxed);
}

#endif
