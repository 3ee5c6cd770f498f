/* Interned byte strings with small integer ids.
 *
 * The report merges sites from several captures, whose readers are
 * released one after the other, so it keeps the names it needs (files,
 * functions, modules, whole stacks as bytes) here: each distinct string
 * once, id 0 being the empty string. Ids are stable and compare equal
 * exactly when the bytes do. The pool has a byte cap and fails cleanly
 * at it. */
#ifndef MH_STRPOOL_H
#define MH_STRPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "msg.h"

struct mh_strpool {
    struct mh_buf bytes; /* per string: the bytes, then a NUL */
    size_t *offset;      /* id -> offset in bytes */
    uint32_t *len;       /* id -> length */
    uint32_t count;      /* ids in use, including 0 */
    uint32_t cap;        /* room in offset[] and len[] */
    uint32_t *table;     /* hash slots holding ids; 0 = empty */
    size_t table_size;   /* power of two */
};

/* Sets up an empty pool holding at most `max_bytes` of string data. */
void mh_strpool_init(struct mh_strpool *p, size_t max_bytes);
/* Frees everything; strings and ids from the pool become invalid. */
void mh_strpool_release(struct mh_strpool *p);

/* Stores *id for the string s[0..n) (which may hold any bytes), adding it
 * when new. MH_ETOOBIG past the cap, MH_ENOMEM. */
int mh_strpool_intern(struct mh_strpool *p, const void *s, size_t n,
                      uint32_t *id) MH_MUST_USE;

/* The string with that id, NUL-terminated; valid until the next intern
 * (which may move the bytes) or the release. */
static inline const char *
mh_strpool_get(const struct mh_strpool *p, uint32_t id)
{
    return id < p->count ? (const char *)p->bytes.data + p->offset[id] : "";
}

static inline size_t
mh_strpool_len(const struct mh_strpool *p, uint32_t id)
{
    return id < p->count ? p->len[id] : 0;
}

#endif
