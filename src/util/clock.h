/* The one clock the CLI measures intervals with: deadlines, timeouts and
 * slopes must not jump when someone sets the wall clock, so they read
 * CLOCK_MONOTONIC. Wall-clock times (timestamps in logs) stay with their
 * callers. */
#ifndef MH_CLOCK_H
#define MH_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds on CLOCK_MONOTONIC (since an unspecified start, often boot). */
double mh_clock_mono(void);

/* Nanoseconds on clock `id` (the agent's timestamps and schedules);
 * inline, since the agent reads it on every request and tick. */
static inline uint64_t
mh_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
