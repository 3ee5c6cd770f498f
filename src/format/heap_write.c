/* Encoding heap dump records (docs/heap-format.md); the OBJECT encoder is
 * inline in the header. Sized records are reserved whole with one
 * mh_buf_grow() and then written, as capture_write.c does, so a record is
 * either appended whole or not at all. */
#include <string.h>

#include "heap_write.h"

static size_t
uv_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void
w_uv(struct mh_buf *b, uint64_t v)
{
    b->len += mh_uvarint_encode(b->data + b->len, v);
}

static void
w_str(struct mh_buf *b, const char *s, size_t n)
{
    w_uv(b, n);
    if (n) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
}

static int
record_begin(struct mh_buf *b, uint8_t tag, size_t body)
{
    int rc = mh_buf_grow(b, 1 + uv_len(body) + body);
    if (rc)
        return rc;
    b->data[b->len++] = tag;
    w_uv(b, body);
    return MH_OK;
}

int
mh_heap_put_file_header(struct mh_buf *b)
{
    uint8_t h[MH_CAP_FILE_HEADER_LEN];
    memcpy(h, MH_HEAP_MAGIC, MH_CAP_MAGIC_LEN);
    h[8] = (uint8_t)MH_HEAP_VERSION;
    h[9] = (uint8_t)(MH_HEAP_VERSION >> 8);
    h[10] = 0;
    h[11] = 0;
    return mh_buf_put(b, h, sizeof(h));
}

int
mh_heap_put_header(struct mh_buf *b, const struct mh_heap_info *h)
{
    if (h->python.n > MH_HEAP_STR_MAX || h->capture.n > MH_HEAP_STR_MAX ||
        (h->python.n && !h->python.s) || (h->capture.n && !h->capture.s))
        return MH_EINVAL;
    size_t body = uv_len(h->pid) + uv_len(h->time_ns) + uv_len(h->pause_ns) +
                  uv_len(h->python.n) + h->python.n + uv_len(h->capture.n) +
                  h->capture.n + uv_len(h->sample_interval);
    int rc = record_begin(b, MH_HREC_HEADER, body);
    if (rc)
        return rc;
    w_uv(b, h->pid);
    w_uv(b, h->time_ns);
    w_uv(b, h->pause_ns);
    w_str(b, h->python.s, h->python.n);
    w_str(b, h->capture.s, h->capture.n);
    w_uv(b, h->sample_interval);
    return MH_OK;
}

int
mh_heap_put_string(struct mh_buf *b, uint64_t id, const char *s, size_t n)
{
    if (id == 0 || n > MH_HEAP_STR_MAX || (n && !s))
        return MH_EINVAL;
    int rc = record_begin(b, MH_HREC_STRING, uv_len(id) + uv_len(n) + n);
    if (rc)
        return rc;
    w_uv(b, id);
    w_str(b, s, n);
    return MH_OK;
}

int
mh_heap_put_type(struct mh_buf *b, uint64_t id, uint64_t addr, uint64_t name,
                 uint64_t preheader, uint64_t flags)
{
    if (id == 0 || name == 0)
        return MH_EINVAL;
    int rc = record_begin(b, MH_HREC_TYPE,
                          uv_len(id) + uv_len(addr) + uv_len(name) +
                              uv_len(preheader) + uv_len(flags));
    if (rc)
        return rc;
    w_uv(b, id);
    w_uv(b, addr);
    w_uv(b, name);
    w_uv(b, preheader);
    w_uv(b, flags);
    return MH_OK;
}

int
mh_heap_put_root(struct mh_buf *b, struct mh_heap_enc *e, uint64_t kind,
                 uint64_t name, uint64_t addr)
{
    uint8_t rec[1 + 3 * 10];
    size_t n = 0;
    rec[n++] = MH_HREC_ROOT;
    n += mh_uvarint_encode(rec + n, kind);
    n += mh_uvarint_encode(rec + n, name);
    n += mh_uvarint_encode(rec + n, mh_zigzag((int64_t)(addr - e->last_addr)));
    int rc = mh_buf_put(b, rec, n);
    if (rc == MH_OK)
        e->last_addr = addr;
    return rc;
}

int
mh_heap_put_alloc(struct mh_buf *b, uint64_t addr, uint64_t size,
                  uint64_t stack, uint64_t object, uint64_t type)
{
    uint8_t rec[1 + 5 * 10];
    size_t n = 0;
    rec[n++] = MH_HREC_ALLOC;
    n += mh_uvarint_encode(rec + n, addr);
    n += mh_uvarint_encode(rec + n, size);
    n += mh_uvarint_encode(rec + n, stack);
    n += mh_uvarint_encode(rec + n, object);
    n += mh_uvarint_encode(rec + n, type);
    return mh_buf_put(b, rec, n);
}

int
mh_heap_put_end(struct mh_buf *b, uint64_t objects, uint64_t edges,
                uint64_t walk_ns)
{
    int rc = record_begin(b, MH_HREC_END,
                          uv_len(objects) + uv_len(edges) + uv_len(walk_ns));
    if (rc)
        return rc;
    w_uv(b, objects);
    w_uv(b, edges);
    w_uv(b, walk_ns);
    return MH_OK;
}
