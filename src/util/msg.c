/* One place that prints to stderr, so every message has the same prefix. */
#include <stdarg.h>
#include <stdio.h>

#include "msg.h"

const char *
mh_strerror(int code)
{
    switch (code) {
    case MH_OK:
        return "success";
    case MH_ENOMEM:
        return "out of memory";
    case MH_ETOOBIG:
        return "size limit reached";
    case MH_EFORMAT:
        return "malformed data";
    case MH_EIO:
        return "input/output error";
    case MH_EINVAL:
        return "invalid argument";
    case MH_ETRUNC:
        return "unexpected end of data";
    }
    return "unknown error";
}

static void
vreport(const char *kind, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "memhound: %s%s\n", kind, line);
}

void
mh_errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
}

void
mh_warnf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}

const char *
mh_size_text(char *out, size_t n, unsigned long long v)
{
    if (v < 1024)
        snprintf(out, n, "%llu bytes", v);
    else if (v < (1ull << 20))
        snprintf(out, n, "%.1f KiB", v / 1024.0);
    else if (v < (1ull << 30))
        snprintf(out, n, "%.1f MiB", v / (1024.0 * 1024.0));
    else
        snprintf(out, n, "%.1f GiB", v / (1024.0 * 1024.0 * 1024.0));
    return out;
}
