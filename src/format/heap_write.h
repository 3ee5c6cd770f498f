/* Encoding heap dump records (docs/heap-format.md) into an mh_buf.
 *
 * Used by the agent's walker (heapdump.c) in the fork()ed child. The
 * OBJECT encoder is on the hot path (once per live object), so it is
 * inline and reserves the whole record with one mh_buf_grow(). Every
 * function appends a whole record or nothing: MH_ETOOBIG means the
 * buffer is at its cap, MH_ENOMEM that memory ran out. The chunk framing
 * is the capture's: seal payloads with mh_cap_chunk_seal(). */
#ifndef MH_HEAP_WRITE_H
#define MH_HEAP_WRITE_H

#include <stdint.h>

#include "../util/buf.h"
#include "capture.h"
#include "heap.h"

/* Per-chunk delta state: OBJECT and ROOT addresses are deltas against
 * the previous OBJECT's or ROOT's address in the chunk. Zero it when a
 * chunk starts. */
struct mh_heap_enc {
    uint64_t last_addr;
};

/* One outgoing reference of an OBJECT. */
struct mh_heap_edge {
    uint64_t target; /* address */
    uint64_t label;  /* (string id << 3) | kind */
};

struct mh_heap_obj {
    uint64_t addr, type, size, refcnt, flags;
};

/* What the HEADER record says. */
struct mh_heap_info {
    uint64_t pid;
    uint64_t time_ns;  /* Unix epoch, at the fork */
    uint64_t pause_ns; /* how long the target paused for the fork */
    struct mh_str python;
    struct mh_str capture; /* "" when there is none */
    uint64_t sample_interval;
};

/* Bytes an OBJECT record with n edges may take at most. */
#define MH_HEAP_OBJ_MAX(n) (1 + 6 * 10 + (size_t)(n)*20)

/* Appends one OBJECT record with its edges. */
static inline int MH_MUST_USE
mh_heap_put_object(struct mh_buf *b, struct mh_heap_enc *e,
                   const struct mh_heap_obj *o,
                   const struct mh_heap_edge *edges, size_t n)
{
    int rc = mh_buf_grow(b, MH_HEAP_OBJ_MAX(n));
    if (rc)
        return rc;
    uint8_t *p = b->data + b->len, *start = p;
    *p++ = MH_HREC_OBJECT;
    p += mh_uvarint_encode(p, mh_zigzag((int64_t)(o->addr - e->last_addr)));
    p += mh_uvarint_encode(p, o->type);
    p += mh_uvarint_encode(p, o->size);
    p += mh_uvarint_encode(p, o->refcnt);
    p += mh_uvarint_encode(p, o->flags);
    p += mh_uvarint_encode(p, n);
    for (size_t i = 0; i < n; i++) {
        p += mh_uvarint_encode(
            p, mh_zigzag((int64_t)(edges[i].target - o->addr)));
        p += mh_uvarint_encode(p, edges[i].label);
    }
    b->len += (size_t)(p - start);
    e->last_addr = o->addr;
    return MH_OK;
}

/* Magic, version and flags: the first 12 bytes of a dump. */
int mh_heap_put_file_header(struct mh_buf *b) MH_MUST_USE;
int mh_heap_put_header(struct mh_buf *b,
                       const struct mh_heap_info *h) MH_MUST_USE;
/* MH_EINVAL for id 0 or a string over MH_HEAP_STR_MAX. */
int mh_heap_put_string(struct mh_buf *b, uint64_t id, const char *s,
                       size_t n) MH_MUST_USE;
int mh_heap_put_type(struct mh_buf *b, uint64_t id, uint64_t addr,
                     uint64_t name, uint64_t preheader,
                     uint64_t flags) MH_MUST_USE;
int mh_heap_put_root(struct mh_buf *b, struct mh_heap_enc *e, uint64_t kind,
                     uint64_t name, uint64_t addr) MH_MUST_USE;
int mh_heap_put_alloc(struct mh_buf *b, uint64_t addr, uint64_t size,
                      uint64_t stack, uint64_t object,
                      uint64_t type) MH_MUST_USE;
int mh_heap_put_end(struct mh_buf *b, uint64_t objects, uint64_t edges,
                    uint64_t walk_ns) MH_MUST_USE;

#endif
