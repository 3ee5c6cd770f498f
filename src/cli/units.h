/* Sizes and durations on the command line and in output, shared by the
 * commands that take them (guard, top):
 *   sizes      "512m", "1.5G", "800MiB", "4096" (binary multiples)
 *   durations  "500ms", "30s", "30", "5m", "1.5h", "2d"
 * Each parser takes the whole string and rejects anything after the
 * unit. */
#ifndef MH_CLI_UNITS_H
#define MH_CLI_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"

/* Bytes, at least 1, at most 2^50. */
int mh_units_parse_size(const char *s, uint64_t *out) MH_MUST_USE;
/* Seconds, at least `min`, at most a year; "0" only when min is 0. */
int mh_units_parse_duration(const char *s, double min,
                            double *out) MH_MUST_USE;
/* "123.4 MiB"-style text for bytes, into out. */
const char *mh_units_size(uint64_t bytes, char *out, size_t n);
/* "45s", "12m", "3.5h", "2.1d" for seconds, into out. */
const char *mh_units_duration(double seconds, char *out, size_t n);

#endif
