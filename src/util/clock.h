/* The one clock the CLI measures intervals with: deadlines, timeouts and
 * slopes must not jump when someone sets the wall clock, so they read
 * CLOCK_MONOTONIC. Wall-clock times (timestamps in logs) stay with their
 * callers. */
#ifndef MH_CLOCK_H
#define MH_CLOCK_H

/* Seconds on CLOCK_MONOTONIC (since an unspecified start, often boot). */
double mh_clock_mono(void);

#endif
