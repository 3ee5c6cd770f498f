/* String interning for the report (see strpool.h). */
#include <string.h>

#include "mem.h"
#include "strpool.h"

/* FNV-1a: strings here are short file and function names. */
static uint64_t
hash_bytes(const void *s, size_t n)
{
    const uint8_t *p = s;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void
mh_strpool_init(struct mh_strpool *p, size_t max_bytes)
{
    memset(p, 0, sizeof(*p));
    mh_buf_init(&p->bytes, max_bytes);
}

void
mh_strpool_release(struct mh_strpool *p)
{
    size_t max = p->bytes.max;
    mh_buf_release(&p->bytes);
    mh_free(p->offset);
    mh_free(p->len);
    mh_free(p->table);
    mh_strpool_init(p, max);
}

static int
equal(const struct mh_strpool *p, uint32_t id, const void *s, size_t n)
{
    return p->len[id] == n && memcmp(p->bytes.data + p->offset[id], s, n) == 0;
}

static int
rehash(struct mh_strpool *p)
{
    size_t size = p->table_size ? p->table_size * 2 : 1024;
    uint32_t *t = mh_calloc(size, sizeof(*t));
    if (!t)
        return MH_ENOMEM;
    for (uint32_t id = 1; id < p->count; id++) {
        uint64_t h = hash_bytes(p->bytes.data + p->offset[id], p->len[id]);
        size_t j = (size_t)h & (size - 1);
        while (t[j])
            j = (j + 1) & (size - 1);
        t[j] = id;
    }
    mh_free(p->table);
    p->table = t;
    p->table_size = size;
    return MH_OK;
}

/* The empty string gets id 0 the first time anything is interned. */
static int
add(struct mh_strpool *p, const void *s, size_t n, uint32_t *id)
{
    if (n > UINT32_MAX || p->count == UINT32_MAX)
        return MH_ETOOBIG;
    if (p->count == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 256;
        if (cap < p->cap)
            cap = UINT32_MAX;
        size_t *o = mh_realloc(p->offset, (size_t)cap * sizeof(*o));
        if (!o)
            return MH_ENOMEM;
        p->offset = o;
        uint32_t *l = mh_realloc(p->len, (size_t)cap * sizeof(*l));
        if (!l)
            return MH_ENOMEM;
        p->len = l;
        p->cap = cap;
    }
    size_t at = p->bytes.len;
    int rc = mh_buf_grow(&p->bytes, n + 1);
    if (rc)
        return rc;
    if (n)
        memcpy(p->bytes.data + at, s, n);
    p->bytes.data[at + n] = '\0';
    p->bytes.len += n + 1;
    p->offset[p->count] = at;
    p->len[p->count] = (uint32_t)n;
    *id = p->count++;
    return MH_OK;
}

int
mh_strpool_intern(struct mh_strpool *p, const void *s, size_t n, uint32_t *id)
{
    int rc;
    if (p->count == 0 && (rc = add(p, "", 0, id)))
        return rc;
    if (n == 0) {
        *id = 0;
        return MH_OK;
    }
    if ((size_t)p->count * 2 >= p->table_size && (rc = rehash(p)))
        return rc;
    size_t mask = p->table_size - 1;
    size_t j = (size_t)hash_bytes(s, n) & mask;
    for (; p->table[j]; j = (j + 1) & mask)
        if (equal(p, p->table[j], s, n)) {
            *id = p->table[j];
            return MH_OK;
        }
    if ((rc = add(p, s, n, id)))
        return rc;
    p->table[j] = *id;
    return MH_OK;
}
