/* mh_buf and the varint codecs: edge values, caps, the read cursor. */
#include <stdint.h>

#include "harness.h"
#include "util/buf.h"
#include "util/mem.h"

static const uint64_t edge_u[] = {
    0,
    1,
    0x7f,
    0x80,
    0x3fff,
    0x4000,
    0x1fffff,
    0x200000,
    UINT32_MAX,
    (uint64_t)UINT32_MAX + 1,
    (1ull << 56) - 1,
    1ull << 56,
    (1ull << 63) - 1,
    1ull << 63,
    UINT64_MAX,
};

static size_t
expected_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

MH_TEST(buf_uvarint_round_trip)
{
    for (size_t i = 0; i < sizeof(edge_u) / sizeof(edge_u[0]); i++) {
        struct mh_buf b;
        mh_buf_init(&b, 64);
        CHECK_EQ_INT(mh_buf_put_uvarint(&b, edge_u[i]), MH_OK);
        CHECK_EQ_INT(b.len, expected_len(edge_u[i]));
        uint8_t direct[10];
        CHECK_EQ_INT(mh_uvarint_encode(direct, edge_u[i]), b.len);
        CHECK(memcmp(direct, b.data, b.len) == 0);
        struct mh_cursor c;
        mh_cursor_init(&c, b.data, b.len);
        uint64_t v = 12345;
        CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_OK);
        CHECK(v == edge_u[i]);
        CHECK_EQ_INT(mh_cursor_left(&c), 0);
        CHECK_EQ_INT(mh_cursor_offset(&c), b.len);
        mh_buf_release(&b);
    }
    /* Known encodings. */
    uint8_t out[10];
    CHECK_EQ_INT(mh_uvarint_encode(out, 300), 2);
    CHECK_EQ_INT(out[0], 0xac);
    CHECK_EQ_INT(out[1], 0x02);
    CHECK_EQ_INT(mh_uvarint_encode(out, UINT64_MAX), 10);
    CHECK_EQ_INT(out[9], 0x01);
}

MH_TEST(buf_svarint_round_trip)
{
    static const int64_t vals[] = {
        0,   1,         -1,        63,        -64,       64,
        -65, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        CHECK(mh_unzigzag(mh_zigzag(vals[i])) == vals[i]);
        struct mh_buf b;
        mh_buf_init(&b, 64);
        CHECK_EQ_INT(mh_buf_put_svarint(&b, vals[i]), MH_OK);
        struct mh_cursor c;
        mh_cursor_init(&c, b.data, b.len);
        int64_t v;
        CHECK_EQ_INT(mh_cursor_svarint(&c, &v), MH_OK);
        CHECK(v == vals[i]);
        mh_buf_release(&b);
    }
    /* Small magnitudes stay short either way. */
    CHECK(mh_zigzag(-1) == 1);
    CHECK(mh_zigzag(1) == 2);
    CHECK(mh_zigzag(INT64_MIN) == UINT64_MAX);
}

MH_TEST(buf_uvarint_malformed)
{
    struct mh_cursor c;
    uint64_t v = 7;
    /* Truncated: continuation bit on the last byte. */
    const uint8_t cut[] = {0x80, 0x80};
    mh_cursor_init(&c, cut, sizeof(cut));
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_ETRUNC);
    CHECK_EQ_INT(mh_cursor_offset(&c), 0);
    CHECK(v == 7);
    /* Empty. */
    mh_cursor_init(&c, cut, 0);
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_ETRUNC);
    /* Eleven bytes. */
    const uint8_t eleven[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0x01};
    mh_cursor_init(&c, eleven, sizeof(eleven));
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_EFORMAT);
    CHECK_EQ_INT(mh_cursor_offset(&c), 0);
    /* Ten bytes overflowing 64 bits. */
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0x02};
    mh_cursor_init(&c, over, sizeof(over));
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_EFORMAT);
    /* Ten bytes, exactly UINT64_MAX. */
    const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                           0xff, 0xff, 0xff, 0xff, 0x01};
    mh_cursor_init(&c, max, sizeof(max));
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_OK);
    CHECK(v == UINT64_MAX);
    /* A non-minimal encoding is still a value. */
    const uint8_t padded[] = {0x81, 0x80, 0x00};
    mh_cursor_init(&c, padded, sizeof(padded));
    CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_OK);
    CHECK(v == 1);
}

MH_TEST(buf_fixed_width)
{
    struct mh_buf b;
    mh_buf_init(&b, 64);
    CHECK_EQ_INT(mh_buf_put_u8(&b, 0xab), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u16le(&b, 0x1234), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u32le(&b, 0xdeadbeef), MH_OK);
    const uint8_t want[] = {0xab, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde};
    CHECK_EQ_INT(b.len, sizeof(want));
    CHECK(memcmp(b.data, want, sizeof(want)) == 0);
    struct mh_cursor c;
    mh_cursor_init(&c, b.data, b.len);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    CHECK_EQ_INT(mh_cursor_u8(&c, &u8), MH_OK);
    CHECK_EQ_INT(mh_cursor_u16le(&c, &u16), MH_OK);
    CHECK_EQ_INT(mh_cursor_u32le(&c, &u32), MH_OK);
    CHECK_EQ_INT(u8, 0xab);
    CHECK_EQ_INT(u16, 0x1234);
    CHECK(u32 == 0xdeadbeef);
    CHECK_EQ_INT(mh_cursor_u8(&c, &u8), MH_ETRUNC);
    /* Short reads leave the cursor where it was. */
    mh_cursor_init(&c, b.data, 3);
    CHECK_EQ_INT(mh_cursor_u8(&c, &u8), MH_OK);
    CHECK_EQ_INT(mh_cursor_u32le(&c, &u32), MH_ETRUNC);
    CHECK_EQ_INT(mh_cursor_offset(&c), 1);
    CHECK_EQ_INT(mh_cursor_u16le(&c, &u16), MH_OK);
    CHECK_EQ_INT(mh_cursor_u16le(&c, &u16), MH_ETRUNC);
    mh_buf_release(&b);
}

MH_TEST(buf_cap_all_or_nothing)
{
    struct mh_buf b;
    mh_buf_init(&b, 10);
    CHECK_EQ_INT(mh_buf_put(&b, "12345678", 8), MH_OK);
    CHECK_EQ_INT(mh_buf_put(&b, "abc", 3), MH_ETOOBIG);
    CHECK_EQ_INT(b.len, 8);
    CHECK_EQ_INT(mh_buf_put_u32le(&b, 1), MH_ETOOBIG);
    CHECK_EQ_INT(mh_buf_put_uvarint(&b, UINT64_MAX), MH_ETOOBIG);
    CHECK_EQ_INT(b.len, 8);
    CHECK_EQ_INT(mh_buf_put(&b, "ab", 2), MH_OK);
    CHECK_EQ_INT(b.len, 10);
    CHECK(b.cap <= 10);
    CHECK_EQ_INT(mh_buf_put_u8(&b, 1), MH_ETOOBIG);
    CHECK(memcmp(b.data, "12345678ab", 10) == 0);
    /* A zero-length append always succeeds, even at the cap. */
    CHECK_EQ_INT(mh_buf_put(&b, "", 0), MH_OK);
    /* A huge request does not overflow the size arithmetic. */
    CHECK_EQ_INT(mh_buf_grow(&b, SIZE_MAX), MH_ETOOBIG);
    mh_buf_release(&b);
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.len, 0);
    /* Released buffers are reusable with the same cap. */
    CHECK_EQ_INT(mh_buf_put(&b, "0123456789", 10), MH_OK);
    CHECK_EQ_INT(mh_buf_put(&b, "x", 1), MH_ETOOBIG);
    mh_buf_release(&b);
}

MH_TEST(buf_str_rolls_back)
{
    struct mh_buf b;
    /* Room for the length byte but not the text: nothing is appended. */
    mh_buf_init(&b, 4);
    CHECK_EQ_INT(mh_buf_put_str(&b, "hello", 5), MH_ETOOBIG);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(mh_buf_put_str(&b, "abc", 3), MH_OK);
    CHECK_EQ_INT(b.len, 4);
    struct mh_cursor c;
    mh_cursor_init(&c, b.data, b.len);
    const char *s;
    size_t n;
    CHECK_EQ_INT(mh_cursor_str(&c, 2, &s, &n), MH_EFORMAT); /* over max */
    CHECK_EQ_INT(mh_cursor_offset(&c), 0);
    CHECK_EQ_INT(mh_cursor_str(&c, 3, &s, &n), MH_OK);
    CHECK_EQ_INT(n, 3);
    CHECK(memcmp(s, "abc", 3) == 0);
    /* A length running past the data. */
    mh_cursor_init(&c, b.data, 3);
    CHECK_EQ_INT(mh_cursor_str(&c, 100, &s, &n), MH_ETRUNC);
    CHECK_EQ_INT(mh_cursor_offset(&c), 0);
    const uint8_t *p;
    mh_cursor_init(&c, b.data, b.len);
    CHECK_EQ_INT(mh_cursor_bytes(&c, 5, &p), MH_ETRUNC);
    CHECK_EQ_INT(mh_cursor_bytes(&c, 4, &p), MH_OK);
    CHECK(p == b.data);
    mh_buf_release(&b);
}

MH_TEST(buf_printf_and_take)
{
    struct mh_buf b;
    mh_buf_init(&b, 1 << 20);
    CHECK_EQ_INT(mh_buf_printf(&b, "%s=%d", "x", 42), MH_OK);
    CHECK_EQ_INT(b.len, 4);
    /* Longer than printf's stack buffer. */
    char big[600];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(mh_buf_printf(&b, "[%s]", big), MH_OK);
    CHECK_EQ_INT(b.len, 4 + 601);
    CHECK(memcmp(b.data, "x=42[yyy", 8) == 0);
    CHECK_EQ_INT(b.data[b.len - 1], ']');
    size_t len;
    uint8_t *p = mh_buf_take(&b, &len);
    CHECK_EQ_INT(len, 605);
    CHECK(b.data == NULL && b.len == 0);
    mh_free(p);
    /* Taking from an empty buffer gives NULL and 0. */
    p = mh_buf_take(&b, &len);
    CHECK(p == NULL);
    CHECK_EQ_INT(len, 0);
    /* printf over the cap fails whole. */
    struct mh_buf small;
    mh_buf_init(&small, 8);
    CHECK_EQ_INT(mh_buf_printf(&small, "%s", "123456789"), MH_ETOOBIG);
    CHECK_EQ_INT(small.len, 0);
    CHECK_EQ_INT(mh_buf_printf(&small, "%s", big), MH_ETOOBIG);
    CHECK_EQ_INT(small.len, 0);
    mh_buf_release(&small);
    mh_buf_reset(&b);
    mh_buf_release(&b);
}

MH_TEST(buf_grows_past_initial)
{
    struct mh_buf b;
    mh_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++)
        CHECK_EQ_INT(mh_buf_put_uvarint(&b, (uint64_t)i * 977), MH_OK);
    struct mh_cursor c;
    mh_cursor_init(&c, b.data, b.len);
    for (int i = 0; i < 100000; i++) {
        uint64_t v;
        CHECK_EQ_INT(mh_cursor_uvarint(&c, &v), MH_OK);
        CHECK(v == (uint64_t)i * 977);
    }
    CHECK_EQ_INT(mh_cursor_left(&c), 0);
    mh_buf_release(&b);
}
