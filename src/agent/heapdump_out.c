/* The heap walker's output: the visited set (addresses with flags), the
 * dump's chunks (sealed, compressed and written as they fill) and the
 * STRING records, one per distinct text, with their ids. */
#include "heapdump_impl.h" /* Python.h first, as CPython asks */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../format/capture_write.h"
#include "../util/mem.h"

/* ---- the visited set: addresses with flags in the low bits ---- */

static inline size_t
addr_hash(uintptr_t a)
{
    uint64_t k = (uint64_t)a >> 3;
    k *= 0x9E3779B97F4A7C15ull;
    return (size_t)(k ^ (k >> 29));
}

static int
set_grow(struct addrset *s)
{
    size_t size = s->size ? s->size * 2 : (1u << 16);
    uintptr_t *n = mh_calloc(size, sizeof(*n));
    if (!n)
        return MH_ENOMEM;
    for (size_t i = 0; i < s->size; i++) {
        uintptr_t v = s->slots[i];
        if (!v)
            continue;
        size_t j = addr_hash(v & ~(uintptr_t)SEEN_FLAGS) & (size - 1);
        while (n[j])
            j = (j + 1) & (size - 1);
        n[j] = v;
    }
    mh_free(s->slots);
    s->slots = n;
    s->size = size;
    return MH_OK;
}

/* The slot of `a`, inserted with no flags when absent (*is_new set);
 * NULL when memory ran out. */
uintptr_t *
mh_hd_set_insert(struct addrset *s, uintptr_t a, int *is_new)
{
    if ((s->count + 1) * 2 > s->size && set_grow(s))
        return NULL;
    size_t mask = s->size - 1;
    for (size_t j = addr_hash(a) & mask;; j = (j + 1) & mask) {
        uintptr_t v = s->slots[j];
        if (!v) {
            s->slots[j] = a;
            s->count++;
            *is_new = 1;
            return &s->slots[j];
        }
        if ((v & ~(uintptr_t)SEEN_FLAGS) == a) {
            *is_new = 0;
            return &s->slots[j];
        }
    }
}

int
mh_hd_set_has(const struct addrset *s, uintptr_t a)
{
    if (!s->size)
        return 0;
    size_t mask = s->size - 1;
    for (size_t j = addr_hash(a) & mask; s->slots[j]; j = (j + 1) & mask)
        if ((s->slots[j] & ~(uintptr_t)SEEN_FLAGS) == a)
            return 1;
    return 0;
}

/* ---- strings by content ---- */

static uint64_t
str_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}
int
mh_hd_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return MH_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return MH_OK;
}

/* Seals the pending records as one chunk and writes it. */
void
mh_hd_flush_chunk(struct walk *w)
{
    if (w->err || w->chunk.len == 0)
        return;
    mh_buf_reset(&w->out);
    int rc = mh_cap_chunk_seal(&w->out, w->chunk.data, w->chunk.len,
                               ZSTD_LEVEL, &w->zscratch);
    if (rc == MH_OK)
        rc = mh_hd_write_all(w->fd, w->out.data, w->out.len);
    mh_buf_reset(&w->chunk);
    w->enc.last_addr = 0;
    if (rc)
        fail(w, rc);
}

/* ---- string ids ---- */

size_t
mh_hd_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* The id of a string, writing its STRING record the first time. */
uint64_t
mh_hd_string_id(struct walk *w, const char *s, size_t n)
{
    n = mh_hd_utf8_cut(s, n, MH_HEAP_STR_MAX);
    struct strtab *t = &w->strs;
    if ((t->count + 1) * 2 > t->size) {
        size_t size = t->size ? t->size * 2 : 4096;
        struct strent *ns = mh_calloc(size, sizeof(*ns));
        if (!ns) {
            fail(w, MH_ENOMEM);
            return 0;
        }
        for (size_t i = 0; i < t->size; i++) {
            if (!t->slots[i].hash)
                continue;
            size_t j = (size_t)t->slots[i].hash & (size - 1);
            while (ns[j].hash)
                j = (j + 1) & (size - 1);
            ns[j] = t->slots[i];
        }
        mh_free(t->slots);
        t->slots = ns;
        t->size = size;
    }
    uint64_t h = str_hash(s, n);
    size_t mask = t->size - 1, j;
    for (j = (size_t)h & mask; t->slots[j].hash; j = (j + 1) & mask) {
        struct strent *e = &t->slots[j];
        if (e->hash == h && e->len == n &&
            (n == 0 || memcmp(t->arena.data + e->off, s, n) == 0))
            return e->id;
    }
    uint64_t off = t->arena.len;
    uint64_t id = ++w->next_string;
    int rc = mh_buf_put(&t->arena, s, n);
    if (rc == MH_OK)
        rc = mh_heap_put_string(&w->chunk, id, s, n);
    if (rc) {
        fail(w, rc);
        return 0;
    }
    t->slots[j] = (struct strent){h, off, (uint32_t)n, (uint32_t)id};
    t->count++;
    return id;
}

uint64_t
mh_hd_cstr_id(struct walk *w, const char *s)
{
    uint64_t id;
    if (mh_addrmap_get(&w->strcache, (uintptr_t)s | 2, &id))
        return id;
    id = mh_hd_string_id(w, s, strlen(s));
    if (id && ((uintptr_t)s & 3) == 0 &&
        mh_addrmap_put(&w->strcache, (uintptr_t)s | 2, id))
        fail(w, MH_ENOMEM);
    return id;
}
