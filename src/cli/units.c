/* Parsing and printing sizes and durations (units.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

#define MAX_SIZE 1125899906842624.0 /* 2^50: a PiB */
#define MAX_DURATION 3.2e7          /* about a year */

/* The number s starts with (a digit or '.' first: strtod would also take
 * a sign, "inf" and hex); *end gets what follows it. */
static int
parse_number(const char *s, double *v, char **end)
{
    if ((*s < '0' || *s > '9') && *s != '.')
        return MH_EINVAL;
    errno = 0;
    *v = strtod(s, end);
    if (errno || *end == s)
        return MH_EINVAL;
    return MH_OK;
}

uint64_t
mh_units_take_multiple(const char **p, uint64_t max)
{
    uint64_t mult = 1;
    switch (**p) {
    case 'k':
    case 'K':
        mult = UINT64_C(1) << 10;
        break;
    case 'm':
    case 'M':
        mult = UINT64_C(1) << 20;
        break;
    case 'g':
    case 'G':
        mult = UINT64_C(1) << 30;
        break;
    case 't':
    case 'T':
        mult = UINT64_C(1) << 40;
        break;
    }
    if (mult > max)
        mult = 1;
    if (mult > 1) {
        ++*p;
        if (**p == 'i')
            ++*p;
    }
    if (**p == 'b' || **p == 'B')
        ++*p;
    return mult;
}

int
mh_units_parse_size(const char *s, uint64_t *out)
{
    double v;
    char *end;
    if (parse_number(s, &v, &end))
        return MH_EINVAL;
    const char *rest = end;
    v *= (double)mh_units_take_multiple(&rest, UINT64_C(1) << 40);
    if (*rest || !(v >= 1 && v <= MAX_SIZE))
        return MH_EINVAL;
    *out = (uint64_t)v;
    return MH_OK;
}

int
mh_units_parse_duration(const char *s, double min, double *out)
{
    double v;
    char *end;
    if (parse_number(s, &v, &end))
        return MH_EINVAL;
    if (!strcmp(end, "ms"))
        v /= 1000;
    else if (!strcmp(end, "m"))
        v *= 60;
    else if (!strcmp(end, "h"))
        v *= 3600;
    else if (!strcmp(end, "d"))
        v *= 86400;
    else if (*end && strcmp(end, "s"))
        return MH_EINVAL;
    if (!(v >= min && v <= MAX_DURATION) || (v == 0 && min > 0))
        return MH_EINVAL;
    *out = v;
    return MH_OK;
}

const char *
mh_units_size(uint64_t bytes, char *out, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, n, "%.1f %s", v, unit[u]);
    return out;
}

const char *
mh_units_duration(double s, char *out, size_t n)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, n, "-");
    else if (s < 100)
        snprintf(out, n, "%.0fs", s);
    else if (s < 100 * 60)
        snprintf(out, n, "%.0fm", s / 60);
    else if (s < 48 * 3600)
        snprintf(out, n, "%.1fh", s / 3600);
    else
        snprintf(out, n, "%.1fd", s / 86400);
    return out;
}
