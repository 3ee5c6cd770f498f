/* A growable byte buffer with a hard cap (curl's dynbuf has `toobig`),
 * plus the varint encoders the binary formats use.
 *
 * Every append either adds all of its bytes or none and returns
 * MH_ETOOBIG past the cap or MH_ENOMEM when memory runs out; the buffer
 * stays valid either way. */
#ifndef MH_BUF_H
#define MH_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct mh_buf {
    uint8_t *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass this fail with MH_ETOOBIG */
};

/* Sets up an empty buffer that may hold at most `max` bytes. */
void mh_buf_init(struct mh_buf *b, size_t max);
/* Frees what the buffer holds and leaves it empty and reusable. */
void mh_buf_release(struct mh_buf *b);
/* Empties the buffer, keeping its memory. */
static inline void
mh_buf_reset(struct mh_buf *b)
{
    b->len = 0;
}
/* Hands the bytes to the caller, who frees them with mh_free(); the
 * buffer is left empty. *len receives the length. */
uint8_t *mh_buf_take(struct mh_buf *b, size_t *len);

int mh_buf_grow(struct mh_buf *b, size_t extra) MH_MUST_USE;
int mh_buf_put(struct mh_buf *b, const void *p, size_t n) MH_MUST_USE;
int mh_buf_put_u8(struct mh_buf *b, uint8_t v) MH_MUST_USE;
int mh_buf_put_u16le(struct mh_buf *b, uint16_t v) MH_MUST_USE;
int mh_buf_put_u32le(struct mh_buf *b, uint32_t v) MH_MUST_USE;
int mh_buf_put_uvarint(struct mh_buf *b, uint64_t v) MH_MUST_USE;
/* Zigzag-encoded signed varint. */
int mh_buf_put_svarint(struct mh_buf *b, int64_t v) MH_MUST_USE;
/* uvarint length followed by the bytes. */
int mh_buf_put_str(struct mh_buf *b, const char *s, size_t n) MH_MUST_USE;
int mh_buf_printf(struct mh_buf *b, const char *fmt, ...) MH_MUST_USE
    MH_PRINTF(2, 3);

/* Encodes v as a LEB128 varint into out (at least 10 bytes); returns the
 * length. Used where a buffer append is too slow (the agent's hot path). */
static inline size_t
mh_uvarint_encode(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t
mh_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t
mh_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A read cursor over a byte range; never reads past `end`. */
struct mh_cursor {
    const uint8_t *start; /* for offsets in error messages */
    const uint8_t *p;
    const uint8_t *end;
};

static inline void
mh_cursor_init(struct mh_cursor *c, const uint8_t *buf, size_t len)
{
    c->start = c->p = buf;
    c->end = buf + len;
}

static inline size_t
mh_cursor_left(const struct mh_cursor *c)
{
    return (size_t)(c->end - c->p);
}

static inline size_t
mh_cursor_offset(const struct mh_cursor *c)
{
    return (size_t)(c->p - c->start);
}

/* Each returns MH_OK, MH_ETRUNC at the end of the data, or MH_EFORMAT
 * for a varint longer than 10 bytes or overflowing 64 bits. On failure
 * the cursor does not move. */
int mh_cursor_u8(struct mh_cursor *c, uint8_t *v) MH_MUST_USE;
int mh_cursor_u16le(struct mh_cursor *c, uint16_t *v) MH_MUST_USE;
int mh_cursor_u32le(struct mh_cursor *c, uint32_t *v) MH_MUST_USE;
int mh_cursor_uvarint(struct mh_cursor *c, uint64_t *v) MH_MUST_USE;
int mh_cursor_svarint(struct mh_cursor *c, int64_t *v) MH_MUST_USE;
/* Points *s into the buffer (not NUL-terminated); fails with MH_EFORMAT
 * when the length exceeds max. */
int mh_cursor_str(struct mh_cursor *c, size_t max, const char **s,
                  size_t *n) MH_MUST_USE;
int mh_cursor_bytes(struct mh_cursor *c, size_t n,
                    const uint8_t **p) MH_MUST_USE;

#endif
