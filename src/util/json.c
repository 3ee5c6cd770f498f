/* The one JSON writer (json.h): string escaping and number formatting
 * shared by every JSON output, over a stream or a bounded buffer. */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void
mh_json_write(struct mh_json_sink *k, const char *s, size_t n)
{
    if (k->f) {
        fwrite(s, 1, n, k->f);
        return;
    }
    if (k->n >= k->cap)
        return;
    size_t room = k->cap - k->n;
    memcpy(k->s + k->n, s, n < room ? n : room);
    k->n = n < room ? k->n + n : k->cap; /* cut: n == cap */
}

void
mh_json_printf(struct mh_json_sink *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (k->f) {
        vfprintf(k->f, fmt, ap);
        va_end(ap);
        return;
    }
    if (k->n >= k->cap) {
        va_end(ap);
        return;
    }
    int w = vsnprintf(k->s + k->n, k->cap - k->n, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    k->n += (size_t)w;
    if (k->n >= k->cap)
        k->n = k->cap; /* cut */
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* A control character: short forms only for the report's flavour. */
static void
put_control(struct mh_json_sink *k, unsigned char c, enum mh_json_escape how)
{
    if (how == MH_JSON_UTF8) {
        switch (c) {
        case '\n':
            mh_json_write(k, "\\n", 2);
            return;
        case '\r':
            mh_json_write(k, "\\r", 2);
            return;
        case '\t':
            mh_json_write(k, "\\t", 2);
            return;
        default:
            break;
        }
    }
    mh_json_printf(k, "\\u%04x", c);
}

void
mh_json_str(struct mh_json_sink *k, const char *str, size_t n,
            enum mh_json_escape how)
{
    const unsigned char *s = (const unsigned char *)str;
    mh_json_write(k, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            mh_json_write(k, esc, 2);
            i++;
        } else if (c < 0x20) {
            put_control(k, c, how);
            i++;
        } else if (c < 0x80 || how == MH_JSON_BYTES) {
            /* A run of bytes that pass as they are, in one write. */
            size_t j = i + 1;
            while (j < n && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' &&
                   (s[j] < 0x80 || how == MH_JSON_BYTES))
                j++;
            mh_json_write(k, (const char *)s + i, j - i);
            i = j;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                mh_json_write(k, "\\ufffd", 6);
                i++;
            } else {
                mh_json_write(k, (const char *)s + i, len);
                i += len;
            }
        }
    }
    mh_json_write(k, "\"", 1);
}

void
mh_json_num(struct mh_json_sink *k, double x, int decimals)
{
    if (isfinite(x))
        mh_json_printf(k, "%.*f", decimals, x);
    else
        mh_json_write(k, "null", 4);
}

void
mh_json_int(struct mh_json_sink *k, double x)
{
    if (!isfinite(x))
        x = 0;
    x = nearbyint(x);
    if (x == 0)
        x = 0; /* no "-0" */
    mh_json_printf(k, "%.0f", x);
}

void
mh_json_put_str(FILE *out, const char *s, size_t n)
{
    struct mh_json_sink k = mh_json_sink_file(out);
    mh_json_str(&k, s, n, MH_JSON_UTF8);
}

void
mh_json_put_int(FILE *out, double x)
{
    struct mh_json_sink k = mh_json_sink_file(out);
    mh_json_int(&k, x);
}
