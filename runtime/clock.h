/* The runtime's clock. Only runtime/ reads it; protocol cores and actors get
 * `now` as an argument. */
#ifndef WISP_RUNTIME_CLOCK_H
#define WISP_RUNTIME_CLOCK_H

#include <time.h>

#include <wisp/common.h>

static inline wisp_tstamp wisp_clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (wisp_tstamp)ts.tv_sec * WISP_NS_PER_S + (wisp_tstamp)ts.tv_nsec;
}

#endif
