/* Encoding heap dump records (docs/heap-format.md); the OBJECT encoder is
 * inline in the header. Sized records are reserved whole and then written
 * with the mh_rec_* helpers of chunk.h, as capture_write.c does, so a
 * record is either appended whole or not at all. */
#include "chunk.h"
#include "heap_write.h"

int
mh_heap_put_file_header(struct mh_buf *b)
{
    return mh_rec_put_file_header(b, MH_HEAP_MAGIC, MH_HEAP_VERSION);
}

int
mh_heap_put_header(struct mh_buf *b, const struct mh_heap_info *h)
{
    if (h->python.n > MH_HEAP_STR_MAX || h->capture.n > MH_HEAP_STR_MAX ||
        (h->python.n && !h->python.s) || (h->capture.n && !h->capture.s))
        return MH_EINVAL;
    size_t body = mh_rec_uv_len(h->pid) + mh_rec_uv_len(h->time_ns) +
                  mh_rec_uv_len(h->pause_ns) + mh_rec_str_len(h->python.n) +
                  mh_rec_str_len(h->capture.n) +
                  mh_rec_uv_len(h->sample_interval);
    int rc = mh_rec_begin(b, MH_HREC_HEADER, body);
    if (rc)
        return rc;
    mh_rec_w_uv(b, h->pid);
    mh_rec_w_uv(b, h->time_ns);
    mh_rec_w_uv(b, h->pause_ns);
    mh_rec_w_str(b, h->python.s, h->python.n);
    mh_rec_w_str(b, h->capture.s, h->capture.n);
    mh_rec_w_uv(b, h->sample_interval);
    return MH_OK;
}

int
mh_heap_put_string(struct mh_buf *b, uint64_t id, const char *s, size_t n)
{
    if (id == 0 || n > MH_HEAP_STR_MAX || (n && !s))
        return MH_EINVAL;
    return mh_rec_put_uvs_str(b, MH_HREC_STRING, &id, 1, s, n);
}

int
mh_heap_put_type(struct mh_buf *b, uint64_t id, uint64_t addr, uint64_t name,
                 uint64_t preheader, uint64_t flags)
{
    if (id == 0 || name == 0)
        return MH_EINVAL;
    const uint64_t v[] = {id, addr, name, preheader, flags};
    return mh_rec_put_uvs(b, MH_HREC_TYPE, v, 5);
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
    const uint64_t v[] = {objects, edges, walk_ns};
    return mh_rec_put_uvs(b, MH_HREC_END, v, 3);
}
