#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "mem.h"

void
mh_buf_init(struct mh_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void
mh_buf_release(struct mh_buf *b)
{
    mh_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *
mh_buf_take(struct mh_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int
mh_buf_grow(struct mh_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return MH_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return MH_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max)
        cap = b->max;
    uint8_t *p = mh_realloc(b->data, cap);
    if (!p)
        return MH_ENOMEM;
    b->data = p;
    b->cap = cap;
    return MH_OK;
}

int
mh_buf_put(struct mh_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return MH_OK;
    int rc = mh_buf_grow(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return MH_OK;
}

int
mh_buf_put_u8(struct mh_buf *b, uint8_t v)
{
    return mh_buf_put(b, &v, 1);
}

int
mh_buf_put_u16le(struct mh_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return mh_buf_put(b, x, 2);
}

int
mh_buf_put_u32le(struct mh_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 24)};
    return mh_buf_put(b, x, 4);
}

int
mh_buf_put_uvarint(struct mh_buf *b, uint64_t v)
{
    uint8_t x[10];
    return mh_buf_put(b, x, mh_uvarint_encode(x, v));
}

int
mh_buf_put_svarint(struct mh_buf *b, int64_t v)
{
    return mh_buf_put_uvarint(b, mh_zigzag(v));
}

int
mh_buf_put_str(struct mh_buf *b, const char *s, size_t n)
{
    size_t mark = b->len;
    int rc = mh_buf_put_uvarint(b, n);
    if (rc == MH_OK)
        rc = mh_buf_put(b, s, n);
    if (rc)
        b->len = mark;
    return rc;
}

int
mh_buf_printf(struct mh_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return MH_EINVAL;
    if ((size_t)n < sizeof(small))
        return mh_buf_put(b, small, (size_t)n);
    int rc = mh_buf_grow(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return MH_OK;
}

int
mh_cursor_u8(struct mh_cursor *c, uint8_t *v)
{
    if (c->p >= c->end)
        return MH_ETRUNC;
    *v = *c->p++;
    return MH_OK;
}

int
mh_cursor_u16le(struct mh_cursor *c, uint16_t *v)
{
    if (mh_cursor_left(c) < 2)
        return MH_ETRUNC;
    *v = (uint16_t)(c->p[0] | (c->p[1] << 8));
    c->p += 2;
    return MH_OK;
}

int
mh_cursor_u32le(struct mh_cursor *c, uint32_t *v)
{
    if (mh_cursor_left(c) < 4)
        return MH_ETRUNC;
    *v = (uint32_t)c->p[0] | ((uint32_t)c->p[1] << 8) |
         ((uint32_t)c->p[2] << 16) | ((uint32_t)c->p[3] << 24);
    c->p += 4;
    return MH_OK;
}

int
mh_cursor_uvarint(struct mh_cursor *c, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *p = c->p;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= c->end)
            return MH_ETRUNC;
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1)
            return MH_EFORMAT;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            c->p = p;
            *v = x;
            return MH_OK;
        }
    }
    return MH_EFORMAT;
}

int
mh_cursor_svarint(struct mh_cursor *c, int64_t *v)
{
    uint64_t u;
    int rc = mh_cursor_uvarint(c, &u);
    if (rc == MH_OK)
        *v = mh_unzigzag(u);
    return rc;
}

int
mh_cursor_bytes(struct mh_cursor *c, size_t n, const uint8_t **p)
{
    if (mh_cursor_left(c) < n)
        return MH_ETRUNC;
    *p = c->p;
    c->p += n;
    return MH_OK;
}

int
mh_cursor_str(struct mh_cursor *c, size_t max, const char **s, size_t *n)
{
    const uint8_t *save = c->p;
    uint64_t len;
    int rc = mh_cursor_uvarint(c, &len);
    if (rc)
        return rc;
    if (len > max) {
        c->p = save;
        return MH_EFORMAT;
    }
    const uint8_t *p;
    rc = mh_cursor_bytes(c, (size_t)len, &p);
    if (rc) {
        c->p = save;
        return rc;
    }
    *s = (const char *)p;
    *n = (size_t)len;
    return MH_OK;
}
