/* Messages to the user, in one voice:
 *   memhound: cannot open 'x.mhc': No such file or directory
 * lowercase, subject quoted, what failed first, the cause last, no period. */
#ifndef MH_MSG_H
#define MH_MSG_H

#include <stddef.h>

#define MH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define MH_MUST_USE __attribute__((warn_unused_result))

/* Error codes returned by C functions (0 = success). */
enum {
    MH_OK = 0,
    MH_ENOMEM = -1,  /* allocation failed */
    MH_ETOOBIG = -2, /* a buffer or table hit its cap */
    MH_EFORMAT = -3, /* malformed input */
    MH_EIO = -4,     /* a system call failed; errno says why */
    MH_EINVAL = -5,  /* bad argument */
    MH_ETRUNC = -6,  /* input ends early */
};

/* Text for an error code, e.g. "out of memory". */
const char *mh_strerror(int code);

/* A byte count for a message, rounded to one decimal in binary units:
 * "300 bytes", "12.0 GiB". Returns `out`. */
const char *mh_size_text(char *out, size_t n, unsigned long long v);

void mh_errorf(const char *fmt, ...) MH_PRINTF(1, 2);
void mh_warnf(const char *fmt, ...) MH_PRINTF(1, 2);

#include "banned.h"

#endif
