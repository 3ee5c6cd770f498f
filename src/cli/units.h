/* Sizes and durations on the command line and in output, shared by the
 * commands that take them (guard, top; run's --sample-interval takes a
 * whole number with the same suffixes):
 *   sizes      "512m", "1.5G", "800MiB", "4096" (binary multiples)
 *   durations  "500ms", "30s", "30", "5m", "1.5h", "2d"
 * Each parser takes the whole string and rejects anything after the
 * unit. */
#ifndef MH_CLI_UNITS_H
#define MH_CLI_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"

/* Reads a binary-multiple suffix at *p: "k", "M", "G", "T" (times 2^10
 * to 2^40), each optionally followed by "i", then an optional "B" or "b"
 * ("64KiB", "1m", "512B"). Returns the multiple, 1 when there is none,
 * and moves *p past what it read. A letter for a multiple above `max` is
 * not read, so the caller rejects it as trailing text. */
uint64_t mh_units_take_multiple(const char **p, uint64_t max);
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
