/* Happens-before annotations for ThreadSanitizer.
 *
 * Concurrency Kit publishes ring slots with volatile accesses and inline
 * assembly fences that TSan cannot see, so the hand-over of a message (and
 * of the buffer it points at) through a ck_ring is invisible to it. Each
 * producer releases the slot it filled before committing it, and the
 * consumer acquires the slot after taking it: TSan then sees the same edge
 * the hardware provides. No-ops in every other build. */
#ifndef WISP_RUNTIME_TSAN_H
#define WISP_RUNTIME_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define WISP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WISP_TSAN 1
#endif
#endif

#ifdef WISP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define WISP_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define WISP_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define WISP_TSAN_ACQUIRE(p) ((void)(p))
#define WISP_TSAN_RELEASE(p) ((void)(p))
#endif

#endif
