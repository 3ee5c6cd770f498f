/* Encoding capture records and sealing them into chunks
 * (docs/capture-format.md). The agent is the only user; the hot ALLOC and
 * FREE encoders are inline in the header, the rest are here. Sized
 * records are reserved whole and then written with the mh_rec_* helpers
 * of chunk.h, which heap_write.c uses too. */
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createCCtx_advanced: see below */
#include <zstd.h>

#include "../util/mem.h"
#include "capture_write.h"
#include "chunk.h"

/* Bounds on the compressor's tables (see compress_payload). */
#define ZSTD_WINDOW_LOG 14u
#define ZSTD_HASH_LOG 12u
/* A block of at most 2^ZSTD_WINDOW_LOG bytes costs at least 4: readers
 * refuse files past that ratio as bombs (capture.h). */
_Static_assert((1u << ZSTD_WINDOW_LOG) / 4 <= MH_CAP_INFLATE_RATIO,
               "the writers' compression ratio stays under the readers' cap");

int
mh_cap_put_file_header(struct mh_buf *b)
{
    return mh_rec_put_file_header(b, MH_CAP_MAGIC, MH_CAP_VERSION);
}

static int
strs_len(const struct mh_str *v, uint32_t n, size_t *len)
{
    if (n && !v)
        return MH_EINVAL;
    *len = mh_rec_uv_len(n);
    for (uint32_t i = 0; i < n; i++) {
        if (v[i].n > MH_CAP_STR_MAX || (v[i].n && !v[i].s))
            return MH_EINVAL;
        *len += mh_rec_str_len(v[i].n);
    }
    return MH_OK;
}

static void
w_strs(struct mh_buf *b, const struct mh_str *v, uint32_t n)
{
    mh_rec_w_uv(b, n);
    for (uint32_t i = 0; i < n; i++)
        mh_rec_w_str(b, v[i].s, v[i].n);
}

int
mh_cap_put_header(struct mh_buf *b, const struct mh_cap_header *h)
{
    if (h->python.n > MH_CAP_STR_MAX || h->executable.n > MH_CAP_STR_MAX ||
        (h->python.n && !h->python.s) || (h->executable.n && !h->executable.s))
        return MH_EINVAL;
    size_t largv, llib, lpath;
    int rc = strs_len(h->argv, h->argc, &largv);
    if (rc == MH_OK)
        rc = strs_len(h->lib_prefixes, h->nlib, &llib);
    if (rc == MH_OK)
        rc = strs_len(h->sys_path, h->npath, &lpath);
    if (rc)
        return rc;
    size_t body = mh_rec_uv_len(h->pid) + mh_rec_uv_len(h->ppid) +
                  mh_rec_uv_len(h->start_ns) + mh_rec_uv_len(h->mode) +
                  mh_rec_uv_len(h->interval) + mh_rec_uv_len(h->max_depth) +
                  mh_rec_uv_len(h->fork_parent) + mh_rec_str_len(h->python.n) +
                  mh_rec_str_len(h->executable.n) + largv + llib + lpath +
                  (h->run_id ? mh_rec_uv_len(h->run_id) : 0);
    rc = mh_rec_begin(b, MH_REC_HEADER, body);
    if (rc)
        return rc;
    mh_rec_w_uv(b, h->pid);
    mh_rec_w_uv(b, h->ppid);
    mh_rec_w_uv(b, h->start_ns);
    mh_rec_w_uv(b, h->mode);
    mh_rec_w_uv(b, h->interval);
    mh_rec_w_uv(b, h->max_depth);
    mh_rec_w_uv(b, h->fork_parent);
    mh_rec_w_str(b, h->python.s, h->python.n);
    mh_rec_w_str(b, h->executable.s, h->executable.n);
    w_strs(b, h->argv, h->argc);
    w_strs(b, h->lib_prefixes, h->nlib);
    w_strs(b, h->sys_path, h->npath);
    if (h->run_id) /* absent means 0, as older writers leave it */
        mh_rec_w_uv(b, h->run_id);
    return MH_OK;
}

int
mh_cap_put_string(struct mh_buf *b, uint32_t id, const char *s, size_t n)
{
    if (id == 0 || n > MH_CAP_STR_MAX || (n && !s))
        return MH_EINVAL;
    const uint64_t v[] = {id};
    return mh_rec_put_uvs_str(b, MH_REC_STRING, v, 1, s, n);
}

int
mh_cap_put_code(struct mh_buf *b, uint32_t id, uint32_t filename,
                uint32_t name, uint32_t firstlineno)
{
    if (id == 0 || filename == 0 || name == 0)
        return MH_EINVAL;
    const uint64_t v[] = {id, filename, name, firstlineno};
    return mh_rec_put_uvs(b, MH_REC_CODE, v, 4);
}

int
mh_cap_put_frame(struct mh_buf *b, uint32_t id, uint32_t code, uint32_t line,
                 uint32_t offset)
{
    if (id == 0 || code == 0)
        return MH_EINVAL;
    const uint64_t v[] = {id, code, line, offset};
    return mh_rec_put_uvs(b, MH_REC_FRAME, v, 4);
}

int
mh_cap_put_stack(struct mh_buf *b, uint32_t id, uint32_t depth,
                 const uint32_t *frames)
{
    if (id == 0 || depth == 0 || depth > MH_CAP_DEPTH_MAX || !frames)
        return MH_EINVAL;
    size_t body = mh_rec_uv_len(id) + mh_rec_uv_len(depth);
    for (uint32_t i = 0; i < depth; i++) {
        if (frames[i] == 0)
            return MH_EINVAL;
        body += mh_rec_uv_len(frames[i]);
    }
    int rc = mh_rec_begin(b, MH_REC_STACK, body);
    if (rc)
        return rc;
    mh_rec_w_uv(b, id);
    mh_rec_w_uv(b, depth);
    for (uint32_t i = 0; i < depth; i++)
        mh_rec_w_uv(b, frames[i]);
    return MH_OK;
}

int
mh_cap_put_timeline(struct mh_buf *b, const struct mh_cap_timeline *t)
{
    const uint64_t v[] = {t->t_ns,         t->rss,          t->live,
                          t->samples,      t->frees,        t->dropped,
                          t->alloc,        t->arena_bytes,  t->arena_free,
                          t->malloc_arena, t->malloc_inuse, t->malloc_free,
                          t->malloc_mmap};
    /* The allocator fields only when there are some: a record without
     * them is byte for byte what version-1 writers wrote. */
    return mh_rec_put_uvs(b, MH_REC_TIMELINE, v,
                          t->alloc ? sizeof(v) / sizeof(v[0]) : 6);
}

int
mh_cap_put_marker(struct mh_buf *b, uint64_t t_ns, uint32_t kind,
                  const char *text, size_t n)
{
    if (n > MH_CAP_STR_MAX || (n && !text))
        return MH_EINVAL;
    const uint64_t v[] = {t_ns, kind};
    return mh_rec_put_uvs_str(b, MH_REC_MARKER, v, 2, text, n);
}

int
mh_cap_put_end(struct mh_buf *b, uint64_t t_ns, uint64_t samples,
               uint64_t frees, uint64_t dropped)
{
    const uint64_t v[] = {t_ns, samples, frees, dropped};
    return mh_rec_put_uvs(b, MH_REC_END, v, 4);
}

int
mh_cap_put_tag(struct mh_buf *b, struct mh_cap_enc *e, uint64_t request)
{
    if (request == e->last_request)
        return MH_OK;
    int rc = mh_rec_put_uvs(b, MH_REC_TAG, &request, 1);
    if (rc == MH_OK)
        e->last_request = request;
    return rc;
}

int
mh_cap_put_request(struct mh_buf *b, const struct mh_cap_request *r)
{
    if (!r->id || r->endpoint.n > MH_CAP_STR_MAX ||
        (r->endpoint.n && !r->endpoint.s))
        return MH_EINVAL;
    const uint64_t v[] = {r->id, r->t_begin_ns, r->t_end_ns};
    return mh_rec_put_uvs_str(b, MH_REC_REQUEST, v, 3, r->endpoint.s,
                              r->endpoint.n);
}

static int
str_ok(const struct mh_str *s)
{
    return s->n <= MH_CAP_STR_MAX && (!s->n || s->s);
}

int
mh_cap_put_finding(struct mh_buf *b, const struct mh_cap_finding *f)
{
    if (!f->id.n || !str_ok(&f->id) || !str_ok(&f->file) ||
        !str_ok(&f->function) || !str_ok(&f->detail))
        return MH_EINVAL;
    int rc = mh_rec_begin(
        b, MH_REC_FINDING,
        mh_rec_uv_len(f->t_ns) + mh_rec_uv_len(f->request) +
            mh_rec_str_len(f->id.n) + mh_rec_str_len(f->file.n) +
            mh_rec_uv_len(f->line) + mh_rec_str_len(f->function.n) +
            mh_rec_uv_len(f->count) + mh_rec_uv_len(f->bytes) +
            mh_rec_str_len(f->detail.n));
    if (rc)
        return rc;
    mh_rec_w_uv(b, f->t_ns);
    mh_rec_w_uv(b, f->request);
    mh_rec_w_str(b, f->id.s, f->id.n);
    mh_rec_w_str(b, f->file.s, f->file.n);
    mh_rec_w_uv(b, f->line);
    mh_rec_w_str(b, f->function.s, f->function.n);
    mh_rec_w_uv(b, f->count);
    mh_rec_w_uv(b, f->bytes);
    mh_rec_w_str(b, f->detail.s, f->detail.n);
    return MH_OK;
}

/* zstd allocates through memhound's allocator, so inside the target it
 * never touches the hooked Python allocators and tests can make it fail.
 * This needs zstd's advanced API (stable in practice, exported by the
 * shared library since 1.4). */
static void *
zstd_alloc(void *opaque, size_t size)
{
    (void)opaque;
    return mh_malloc(size);
}

static void
zstd_free(void *opaque, void *p)
{
    (void)opaque;
    mh_free(p);
}

/* Compresses payload into scratch as the compressed form of a chunk
 * payload (uvarint raw length, one zstd frame) when that is smaller than
 * n and fits a chunk. Returns the length, or 0 to store the payload as it
 * is: compression only saves space, so any failure here falls back to a
 * stored chunk rather than losing data. */
static size_t
compress_payload(const uint8_t *payload, size_t n, int level,
                 struct mh_buf *scratch)
{
    size_t room = n - 1; /* the result must be smaller than n */
    if (room > MH_CAP_CHUNK_MAX)
        room = MH_CAP_CHUNK_MAX;
    size_t hdr = mh_rec_uv_len(n);
    if (room <= hdr)
        return 0;
    mh_buf_reset(scratch);
    if (mh_buf_grow(scratch, room) != MH_OK)
        return 0;
    ZSTD_customMem cmem = {zstd_alloc, zstd_free, NULL};
    ZSTD_CCtx *cctx = ZSTD_createCCtx_advanced(cmem);
    if (!cctx)
        return 0;
    if (level > ZSTD_maxCLevel())
        level = ZSTD_maxCLevel();
    /* The context is the agent's memory while it compresses: level 1's
     * own choice for a chunk of a few KB is ~110 KB and for a large one
     * ~580 KB, 1% of a small target's RSS on its own. A 16 KB window and
     * 4K-entry hash table hold it near 100 KB for any chunk; records
     * repeat mostly within a few KB, so a large chunk comes out ~10%
     * bigger. */
    ZSTD_compressionParameters cp =
        ZSTD_getCParams(level, (unsigned long long)n, 0);
    size_t z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(z))
        z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog,
                                   (int)(cp.windowLog < ZSTD_WINDOW_LOG
                                             ? cp.windowLog
                                             : ZSTD_WINDOW_LOG));
    if (!ZSTD_isError(z))
        z = ZSTD_CCtx_setParameter(
            cctx, ZSTD_c_hashLog,
            (int)(cp.hashLog < ZSTD_HASH_LOG ? cp.hashLog : ZSTD_HASH_LOG));
    if (!ZSTD_isError(z))
        z = ZSTD_compress2(cctx, scratch->data + hdr, room - hdr, payload, n);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(z))
        return 0; /* including "did not fit": not smaller */
    mh_uvarint_encode(scratch->data, n);
    return hdr + z;
}

void
mh_cap_chunk_header(uint8_t *h, const uint8_t *body, size_t n, uint8_t flags)
{
    uint32_t crc = mh_crc32(0, body, n);
    h[0] = MH_CAP_CHUNK_TAG;
    for (int i = 0; i < 4; i++) {
        h[1 + i] = (uint8_t)((uint32_t)n >> (8 * i));
        h[5 + i] = (uint8_t)(crc >> (8 * i));
    }
    h[9] = flags;
}

size_t
mh_cap_records_unstack(uint8_t *p, size_t n, uint64_t max_stack,
                       uint64_t *unstacked, uint64_t *allocs)
{
    const uint8_t *q = p, *end = p + n;
    uint8_t *out = p;
    *unstacked = *allocs = 0;
    while (q < end) {
        const uint8_t *rec = q;
        uint8_t tag = *q++;
        uint64_t v;
        if (tag >= MH_REC_ALLOC_RAW && tag < MH_REC_FREE) {
            const uint8_t *stack = q;
            if (mh_rd_uv(&q, end, &v))
                break;
            const uint8_t *rest = q;
            uint64_t u;
            if (mh_rd_uv(&q, end, &u) || mh_rd_uv(&q, end, &u))
                break;
            *out++ = tag;
            ++*allocs;
            if (v > max_stack) {
                *out++ = 0;
                ++*unstacked;
            } else {
                memmove(out, stack, (size_t)(rest - stack));
                out += rest - stack;
            }
            memmove(out, rest, (size_t)(q - rest));
            out += q - rest;
            continue;
        }
        if (tag == MH_REC_FREE) {
            if (mh_rd_uv(&q, end, &v))
                break;
        } else if (tag > MH_REC_FIXED_LAST) {
            if (mh_rd_uv(&q, end, &v) || v > (uint64_t)(end - q))
                break;
            q += v;
        } else {
            break; /* a fixed tag this writer does not know */
        }
        memmove(out, rec, (size_t)(q - rec));
        out += q - rec;
    }
    return (size_t)(out - p);
}

int
mh_cap_chunk_seal(struct mh_buf *out, const uint8_t *payload, size_t n,
                  int zstd_level, struct mh_buf *scratch)
{
    if (n && !payload)
        return MH_EINVAL;
    if (n > MH_CAP_CHUNK_RAW_MAX)
        return MH_ETOOBIG;
    const uint8_t *body = payload;
    size_t blen = n;
    uint8_t flags = 0;
    if (zstd_level > 0 && n > 0 && scratch) {
        size_t z = compress_payload(payload, n, zstd_level, scratch);
        if (z) {
            body = scratch->data;
            blen = z;
            flags = MH_CAP_CHUNK_ZSTD;
        }
    }
    if (blen > MH_CAP_CHUNK_MAX)
        return MH_ETOOBIG;
    int rc = mh_buf_grow(out, MH_CAP_CHUNK_HEADER_LEN + blen);
    if (rc)
        return rc;
    uint8_t *h = out->data + out->len;
    mh_cap_chunk_header(h, body, blen, flags);
    if (blen)
        memcpy(h + MH_CAP_CHUNK_HEADER_LEN, body, blen);
    out->len += MH_CAP_CHUNK_HEADER_LEN + blen;
    return MH_OK;
}
