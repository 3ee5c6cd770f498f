/* The JSON writer (util/json.h): both escaping flavours byte for byte,
 * the bounded buffer's cut, and the number forms the outputs rely on. */
#include <math.h>

#include "harness.h"
#include "util/json.h"

/* s[0..n) escaped with `how`, as a NUL-terminated string in out. */
static const char *
esc(char *out, size_t cap, const char *s, size_t n, enum mh_json_escape how)
{
    struct mh_json_sink k = mh_json_sink_buf(out, cap - 1);
    mh_json_str(&k, s, n, how);
    out[k.n] = '\0';
    return out;
}

MH_TEST(json_str_utf8)
{
    char b[256];
    CHECK(!strcmp(esc(b, sizeof(b), "a\"b\\c", 5, MH_JSON_UTF8),
                  "\"a\\\"b\\\\c\""));
    CHECK(!strcmp(esc(b, sizeof(b), "\n\r\t\x01", 4, MH_JSON_UTF8),
                  "\"\\n\\r\\t\\u0001\""));
    /* valid UTF-8 passes; a lone continuation byte, an overlong form
     * and a surrogate become U+FFFD, one per byte */
    CHECK(!strcmp(esc(b, sizeof(b), "\xc3\xa9", 2, MH_JSON_UTF8),
                  "\"\xc3\xa9\""));
    CHECK(!strcmp(esc(b, sizeof(b), "x\x80y", 3, MH_JSON_UTF8),
                  "\"x\\ufffdy\""));
    CHECK(!strcmp(esc(b, sizeof(b), "\xc0\xaf", 2, MH_JSON_UTF8),
                  "\"\\ufffd\\ufffd\""));
    CHECK(!strcmp(esc(b, sizeof(b), "\xed\xa0\x80", 3, MH_JSON_UTF8),
                  "\"\\ufffd\\ufffd\\ufffd\""));
    /* a NUL inside the length is data */
    CHECK(
        !strcmp(esc(b, sizeof(b), "a\0b", 3, MH_JSON_UTF8), "\"a\\u0000b\""));
}

MH_TEST(json_str_bytes)
{
    char b[256];
    /* every control character long, every other byte as it is: the
     * guard log's and snapshot's form */
    CHECK(!strcmp(esc(b, sizeof(b), "\n\t\x1f", 3, MH_JSON_BYTES),
                  "\"\\u000a\\u0009\\u001f\""));
    CHECK(!strcmp(esc(b, sizeof(b), "p\x80q\"", 4, MH_JSON_BYTES),
                  "\"p\x80q\\\"\""));
}

MH_TEST(json_buf_cut)
{
    char b[8];
    struct mh_json_sink k = mh_json_sink_buf(b, sizeof(b));
    mh_json_write(&k, "abc", 3);
    CHECK_EQ_INT(k.n, 3);
    mh_json_printf(&k, "%d", 12345);
    CHECK_EQ_INT(k.n, 8); /* cut: n == cap */
    CHECK(!memcmp(b, "abc1234", 7));
    mh_json_write(&k, "z", 1);
    CHECK_EQ_INT(k.n, 8);
    k.n = 0;
    mh_json_str(&k, "0123456789", 10, MH_JSON_BYTES);
    CHECK_EQ_INT(k.n, 8);
    CHECK(!memcmp(b, "\"0123456", 8));
}

MH_TEST(json_numbers)
{
    char b[64];
    struct mh_json_sink k = mh_json_sink_buf(b, sizeof(b) - 1);
    mh_json_num(&k, 1.25, 1);
    mh_json_write(&k, " ", 1);
    mh_json_num(&k, NAN, 2);
    mh_json_write(&k, " ", 1);
    mh_json_int(&k, -0.4);
    mh_json_write(&k, " ", 1);
    mh_json_int(&k, INFINITY);
    mh_json_write(&k, " ", 1);
    mh_json_int(&k, 2.5e9);
    b[k.n] = '\0';
    CHECK(!strcmp(b, "1.2 null 0 0 2500000000"));
}
