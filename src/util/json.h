/* The one JSON writer (report, heap, joined report, guard log, snapshot):
 * strings escaped and numbers formatted the way memhound's JSON outputs
 * print them, into a stream or a caller's fixed buffer. Keys and
 * separators stay with each output: their spacing differs ("k": v, in
 * the report, "k":v in the guard log) and is part of each format. */
#ifndef MH_UTIL_JSON_H
#define MH_UTIL_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "msg.h"

/* Where JSON text goes: a stream, or (f NULL) the bounded buffer s of
 * cap bytes, n bytes used. A write that does not fit is cut and leaves
 * n == cap, so the caller can tell a cut text by n alone. Not
 * NUL-terminated. */
struct mh_json_sink {
    FILE *f;
    char *s;
    size_t cap, n;
};

static inline struct mh_json_sink
mh_json_sink_file(FILE *f)
{
    return (struct mh_json_sink){.f = f};
}

static inline struct mh_json_sink
mh_json_sink_buf(char *s, size_t cap)
{
    return (struct mh_json_sink){.s = s, .cap = cap};
}

void mh_json_write(struct mh_json_sink *k, const char *s, size_t n);
void mh_json_printf(struct mh_json_sink *k, const char *fmt, ...)
    MH_PRINTF(2, 3);

/* How mh_json_str escapes. Both escape '"', '\\' and control
 * characters. MH_JSON_UTF8 (the report and heap outputs): \n, \r, \t
 * short, valid UTF-8 passed through, every byte that is not part of
 * valid UTF-8 replaced by U+FFFD. MH_JSON_BYTES (guard log, snapshot):
 * every control character as \u00XX, all other bytes passed through. */
enum mh_json_escape { MH_JSON_BYTES, MH_JSON_UTF8 };

/* Writes s[0..n) as a JSON string, quotes included. */
void mh_json_str(struct mh_json_sink *k, const char *s, size_t n,
                 enum mh_json_escape how);

/* Writes x with `decimals` decimals; NaN and infinity as null. */
void mh_json_num(struct mh_json_sink *k, double x, int decimals);

/* Writes x rounded to an integer; NaN and infinity as 0, never "-0". */
void mh_json_int(struct mh_json_sink *k, double x);

/* Stream shorthands for the report's renderers: mh_json_str with
 * MH_JSON_UTF8, and mh_json_int. */
void mh_json_put_str(FILE *out, const char *s, size_t n);
void mh_json_put_int(FILE *out, double x);

#endif
