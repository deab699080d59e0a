/* Attributes and basic types shared by every public wisp header.
 *
 * Argument order rule for the whole API: the object acted on comes first,
 * then inputs, then outputs, then options; sizes follow the pointer they
 * describe.
 */
#ifndef WISP_COMMON_H
#define WISP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(WISP_BUILDING) && defined(__GNUC__)
#define WISP_API __attribute__((visibility("default")))
#else
#define WISP_API
#endif

#if defined(__GNUC__)
#define WISP_WARN_UNUSED __attribute__((warn_unused_result))
#define WISP_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define WISP_WARN_UNUSED
#define WISP_NONNULL(...)
#endif

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). Protocol cores take it as
 * an argument and never read a clock themselves. */
typedef uint64_t wisp_tstamp;

#define WISP_NS_PER_MS UINT64_C(1000000)
#define WISP_NS_PER_S UINT64_C(1000000000)

#endif
