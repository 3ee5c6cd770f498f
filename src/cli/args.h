/* Command-line pieces the commands share, beside units.h: options that
 * take a value, process ids, and the usage errors they lead to (those
 * return MH_EXIT_USAGE, for a parser to return in turn). */
#ifndef MH_CLI_ARGS_H
#define MH_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"

/* Matches argv[*i] against the short option `s` ("-o", or NULL for none)
 * and the long one `lng` ("--output"), in the forms "-oVAL", "-o VAL",
 * "--output=VAL" and "--output VAL". Returns 1 and sets *val on a match
 * (moving *i past a separate value), 0 when argv[*i] is another option,
 * -1 when the value is missing. */
int mh_args_take_value(int argc, char **argv, int *i, const char *s,
                       const char *lng, const char **val);

/* Matches argv[*i] against the long options in names[0..n-1] (a name of
 * two characters, "-o", is short), in the forms "--name VAL",
 * "--name=VAL" and "-o VAL". Returns 1 and sets *name to the entry and
 * *val (moving *i past a separate value), 0 when argv[*i] is none of
 * them, -1 with *name set when the value is missing. */
int mh_args_take_listed(int argc, char **argv, int *i,
                        const char *const *names, size_t n, const char **name,
                        const char **val);

/* A process id: all of s, a decimal number from 1 to INT32_MAX (what
 * pid_t holds). MH_OK or MH_EINVAL. */
int mh_args_parse_pid(const char *s, long *pid) MH_MUST_USE;

/* A count (--top): all of s, a decimal number from 0 to `max` (strtoll's
 * range at most). MH_OK or MH_EINVAL. */
int mh_args_parse_count(const char *s, uint64_t max, uint64_t *v) MH_MUST_USE;

/* Print "option 'OPT' needs a value" or "invalid OPT 'VAL': expected
 * WHAT", and return MH_EXIT_USAGE. */
int mh_args_missing(const char *opt);
int mh_args_bad_value(const char *opt, const char *val, const char *expected);

#endif
