/* Options that take a value, process ids (args.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

int
mh_args_take_value(int argc, char **argv, int *i, const char *s,
                   const char *lng, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(lng);
    if (s && a[0] == '-' && a[1] == s[1] && a[1] != '-') {
        if (a[2]) {
            *val = a + 2;
            return 1;
        }
    } else if (!strncmp(a, lng, n) && a[n] == '=') {
        *val = a + n + 1;
        return 1;
    } else if (strcmp(a, lng)) {
        return 0;
    }
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

int
mh_args_take_listed(int argc, char **argv, int *i, const char *const *names,
                    size_t n, const char **name, const char **val)
{
    const char *a = argv[*i];
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(names[k]);
        if (!strncmp(a, names[k], len) &&
            (a[len] == '\0' || (a[len] == '=' && len > 2))) {
            *name = names[k];
            if (a[len] == '=') {
                *val = a + len + 1;
                return 1;
            }
            if (*i + 1 >= argc)
                return -1;
            *val = argv[++*i];
            return 1;
        }
    }
    return 0;
}

int
mh_args_parse_pid(const char *s, long *pid)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > INT32_MAX)
        return MH_EINVAL;
    *pid = v;
    return MH_OK;
}

int
mh_args_parse_count(const char *s, uint64_t max, uint64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno || x < 0 || (unsigned long long)x > max)
        return MH_EINVAL;
    *v = (uint64_t)x;
    return MH_OK;
}

int
mh_args_missing(const char *opt)
{
    mh_errorf("option '%s' needs a value", opt);
    return MH_EXIT_USAGE;
}

int
mh_args_bad_value(const char *opt, const char *val, const char *expected)
{
    mh_errorf("invalid %s '%s': expected %s", opt, val, expected);
    return MH_EXIT_USAGE;
}
