/* Chunk framing shared by the capture and heap dump readers, and the file
 * header both writers put (chunk.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createDCtx_advanced */
#include <zstd.h>
#include <zstd_errors.h>

#include "../util/buf.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "chunk.h"
#include "heap.h"

void
mh_chunk_reader_init(struct mh_chunk_reader *c, const struct mh_chunk_kind *k)
{
    memset(c, 0, sizeof(*c));
    c->what = k->what;
    c->magic = k->magic;
    c->version = k->version;
    c->inflate_fixed = MH_CAP_INFLATE_FIXED;
}

void
mh_chunk_reader_release(struct mh_chunk_reader *c)
{
    mh_free(c->raw_);
    ZSTD_freeDCtx(c->dctx_);
    c->raw_ = NULL;
    c->raw_cap_ = 0;
    c->dctx_ = NULL;
}

static int MH_PRINTF(4, 5) fail(struct mh_chunk_reader *c, int code,
                                uint64_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    c->error_offset = off;
    return code;
}

/* The chunk at `off` is bad: "chunk at offset OFF: <why>". */
static int MH_PRINTF(4, 5) chunk_fail(struct mh_chunk_reader *c, int code,
                                      uint64_t off, const char *fmt, ...)
{
    char why[sizeof(c->error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return fail(c, code, off, "chunk at offset %llu: %s",
                (unsigned long long)off, why);
}

static void
zstd_free(void *opaque, void *p)
{
    (void)opaque;
    mh_free(p);
}

static void *
zstd_alloc(void *opaque, size_t size)
{
    (void)opaque;
    return mh_malloc(size);
}

static uint32_t
get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Charges the `raw` bytes the compressed chunk at `off` decompresses to
 * against what the file may still decompress, or refuses the file. */
static int
inflate_charge(struct mh_chunk_reader *c, uint64_t off, uint64_t raw)
{
    if (raw <= c->inflate_left_) {
        c->inflate_left_ -= raw;
        return MH_OK;
    }
    char size[32], cap[32];
    mh_size_text(size, sizeof(size), c->len_);
    mh_size_text(cap, sizeof(cap),
                 (uint64_t)c->len_ * MH_CAP_INFLATE_RATIO + c->inflate_fixed);
    return chunk_fail(c, MH_ETOOBIG, off,
                      "the %s decompresses to more than %u times its size "
                      "(%s file, %s limit): refused as a decompression bomb",
                      c->what, MH_CAP_INFLATE_RATIO, size, cap);
}

static int frame_check(struct mh_chunk_reader *c, size_t off, uint32_t *n,
                       uint8_t *flags);

/* Sets the file's decompression cap and charges to it what every whole
 * chunk declares, before anything is decompressed: a bomb is refused in
 * the time it takes to read its chunk headers. The walk charges each
 * chunk again as it decompresses it (the buffer may be a file another
 * process changes under the mapping); the framing errors themselves are
 * the walk's to report, in order. */
static int
inflate_plan(struct mh_chunk_reader *c)
{
    uint64_t len = c->len_;
    uint64_t cap = len > (UINT64_MAX - c->inflate_fixed) / MH_CAP_INFLATE_RATIO
                       ? UINT64_MAX
                       : len * MH_CAP_INFLATE_RATIO + c->inflate_fixed;
    c->inflate_left_ = cap;
    size_t off = c->off_;
    uint32_t n;
    uint8_t flags;
    while (frame_check(c, off, &n, &flags) == 1) {
        if (flags & MH_CAP_CHUNK_ZSTD) {
            struct mh_cursor cur;
            uint64_t raw;
            mh_cursor_init(&cur, c->buf_ + off + MH_CAP_CHUNK_HEADER_LEN, n);
            if (mh_cursor_uvarint(&cur, &raw) || raw > MH_CAP_CHUNK_RAW_MAX)
                break; /* the walk's error, when it gets there */
            int rc = inflate_charge(c, off, raw);
            if (rc)
                return rc;
        }
        off += MH_CAP_CHUNK_HEADER_LEN + (size_t)n;
    }
    c->error[0] = '\0';
    c->error_offset = 0;
    c->inflate_left_ = cap;
    return MH_OK;
}

/* The file header at the start of c->buf_: magic, version, flags. */
static int
header_check(struct mh_chunk_reader *c)
{
    const uint8_t *buf = c->buf_;
    size_t len = c->len_;
    size_t m = len < MH_CAP_MAGIC_LEN ? len : MH_CAP_MAGIC_LEN;
    if (len == 0)
        return fail(c, MH_ETRUNC, 0, "%s is empty", c->what);
    if (memcmp(buf, c->magic, m) != 0)
        return fail(c, MH_EFORMAT, 0,
                    "not a memhound %s (bad magic at offset 0)", c->what);
    if (len < MH_CAP_FILE_HEADER_LEN)
        return fail(c, MH_ETRUNC, len,
                    "%s ends at offset %zu, inside its %d-byte file header",
                    c->what, len, MH_CAP_FILE_HEADER_LEN);
    unsigned version = buf[8] | (unsigned)buf[9] << 8;
    unsigned flags = buf[10] | (unsigned)buf[11] << 8;
    if (version != c->version)
        return fail(c, MH_EFORMAT, 8,
                    "offset 8: unsupported format version %u (this "
                    "memhound reads version %u)",
                    version, c->version);
    if (flags != 0)
        return fail(c, MH_EFORMAT, 10, "offset 10: unknown file flags 0x%04x",
                    flags);
    return MH_OK;
}

int
mh_chunk_begin(struct mh_chunk_reader *c, const uint8_t *buf, size_t len)
{
    c->buf_ = buf;
    c->len_ = len;
    c->off_ = MH_CAP_FILE_HEADER_LEN;
    int rc = header_check(c);
    return rc ? rc : inflate_plan(c);
}

int
mh_chunk_check_prefix(const void *kind, const uint8_t *buf, size_t len,
                      size_t *next, char *err, size_t cap)
{
    struct mh_chunk_reader c;
    mh_chunk_reader_init(&c, kind);
    c.buf_ = buf;
    c.len_ = len;
    int rc = MH_OK;
    if (*next == 0) {
        rc = header_check(&c);
        if (rc == MH_ETRUNC)
            return MH_OK; /* the header is still coming */
        if (rc == MH_OK)
            *next = MH_CAP_FILE_HEADER_LEN;
    }
    uint32_t n;
    uint8_t flags;
    while (rc == MH_OK && (rc = frame_check(&c, *next, &n, &flags)) == 1) {
        *next += MH_CAP_CHUNK_HEADER_LEN + (size_t)n;
        rc = MH_OK;
    }
    if (rc < 0) {
        snprintf(err, cap, "%s", c.error);
        return rc;
    }
    return MH_OK;
}

const struct mh_chunk_kind mh_chunk_capture = {"capture", MH_CAP_MAGIC,
                                               MH_CAP_VERSION};
const struct mh_chunk_kind mh_chunk_heap = {"heap dump", MH_HEAP_MAGIC,
                                            MH_HEAP_VERSION};
const struct mh_file_check mh_chunk_capture_input = {mh_chunk_check_prefix,
                                                     &mh_chunk_capture};
const struct mh_file_check mh_chunk_heap_input = {mh_chunk_check_prefix,
                                                  &mh_chunk_heap};

/* Decompresses the payload p[0..n) of the chunk at `off` into c->raw_. */
static int
decompress(struct mh_chunk_reader *c, uint64_t off, const uint8_t *p, size_t n,
           size_t *rawlen)
{
    struct mh_cursor cur;
    uint64_t len;
    mh_cursor_init(&cur, p, n);
    if (mh_cursor_uvarint(&cur, &len))
        return chunk_fail(
            c, MH_EFORMAT, off,
            "compressed payload does not start with its decompressed length");
    if (len > MH_CAP_CHUNK_RAW_MAX)
        return chunk_fail(c, MH_EFORMAT, off,
                          "decompressed length %llu is over the %u MiB limit",
                          (unsigned long long)len, MH_CAP_CHUNK_RAW_MAX >> 20);
    int rc = inflate_charge(c, off, len);
    if (rc)
        return rc;
    p = cur.p;
    size_t zlen = mh_cursor_left(&cur);
    /* Only a plain zstd frame: no skippable frames, no legacy formats
     * (their decoders are older code, and not what a writer makes). */
    static const uint8_t zmagic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    if (zlen < 4 || memcmp(p, zmagic, 4) != 0)
        return chunk_fail(c, MH_EFORMAT, off,
                          "compressed payload is not a zstd frame");
    size_t fsize = ZSTD_findFrameCompressedSize(p, zlen);
    if (ZSTD_isError(fsize))
        return chunk_fail(c, MH_EFORMAT, off, "zstd frame is damaged: %s",
                          ZSTD_getErrorName(fsize));
    if (fsize != zlen)
        return chunk_fail(c, MH_EFORMAT, off,
                          "%zu stray bytes after the zstd frame",
                          zlen - fsize);
    unsigned long long content = ZSTD_getFrameContentSize(p, zlen);
    if (content == ZSTD_CONTENTSIZE_ERROR ||
        (content != ZSTD_CONTENTSIZE_UNKNOWN && content != len))
        return chunk_fail(
            c, MH_EFORMAT, off,
            "zstd frame does not hold the %llu bytes the chunk declares",
            (unsigned long long)len);
    if (len > c->raw_cap_) {
        uint8_t *raw = mh_realloc(c->raw_, (size_t)len);
        if (!raw)
            return chunk_fail(c, MH_ENOMEM, off,
                              "cannot decompress: out of memory");
        c->raw_ = raw;
        c->raw_cap_ = (size_t)len;
    }
    if (!c->dctx_) {
        ZSTD_customMem cmem = {zstd_alloc, zstd_free, NULL};
        c->dctx_ = ZSTD_createDCtx_advanced(cmem);
        if (!c->dctx_)
            return chunk_fail(c, MH_ENOMEM, off,
                              "cannot decompress: out of memory");
    }
    uint8_t dummy;
    size_t got = ZSTD_decompressDCtx(c->dctx_, len ? c->raw_ : &dummy,
                                     (size_t)len, p, zlen);
    if (ZSTD_isError(got)) {
        int code = ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation
                       ? MH_ENOMEM
                       : MH_EFORMAT;
        return chunk_fail(c, code, off, "cannot decompress: %s",
                          ZSTD_getErrorName(got));
    }
    if (got != len)
        return chunk_fail(
            c, MH_EFORMAT, off,
            "decompressed to %zu bytes, not the %llu the chunk declares", got,
            (unsigned long long)len);
    *rawlen = (size_t)len;
    return MH_OK;
}

/* The buffer ends inside the chunk at `off`: what came before it stands. */
static int
truncated(struct mh_chunk_reader *c, size_t off)
{
    c->truncated = 1;
    c->truncated_at = off;
    c->off_ = c->len_;
    return 0;
}

/* The framing of the chunk at `off`: 1 with its payload length and
 * flags when it is whole and well formed, 0 at the end of the buffer or
 * when the buffer cuts it, or the error (c->error set). No CRC check. */
static int
frame_check(struct mh_chunk_reader *c, size_t off, uint32_t *n, uint8_t *flags)
{
    if (off >= c->len_)
        return 0;
    const uint8_t *k = c->buf_ + off;
    size_t left = c->len_ - off;
    if (k[0] != MH_CAP_CHUNK_TAG)
        return fail(c, MH_EFORMAT, off,
                    "offset %llu: expected a chunk (tag 0x%02x), found "
                    "byte 0x%02x",
                    (unsigned long long)off, MH_CAP_CHUNK_TAG, k[0]);
    if (left < MH_CAP_CHUNK_HEADER_LEN)
        return 0;
    *n = get_u32le(k + 1);
    *flags = k[9];
    if (*n > MH_CAP_CHUNK_MAX)
        return chunk_fail(c, MH_EFORMAT, off,
                          "payload length %u is over the %u MiB limit", *n,
                          MH_CAP_CHUNK_MAX >> 20);
    if (*flags & ~MH_CAP_CHUNK_ZSTD)
        return chunk_fail(c, MH_EFORMAT, off, "unknown chunk flags 0x%02x",
                          *flags);
    return *n <= left - MH_CAP_CHUNK_HEADER_LEN;
}

int
mh_chunk_next(struct mh_chunk_reader *c, struct mh_chunk *out)
{
    size_t off = c->off_;
    uint32_t n;
    uint8_t flags;
    int rc = frame_check(c, off, &n, &flags);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return off < c->len_ ? truncated(c, off) : 0;
    const uint8_t *payload = c->buf_ + off + MH_CAP_CHUNK_HEADER_LEN;
    uint32_t crc = get_u32le(c->buf_ + off + 5);
    uint32_t got = mh_crc32(0, payload, n);
    if (got != crc)
        return chunk_fail(c, MH_EFORMAT, off,
                          "CRC mismatch (stored 0x%08x, computed 0x%08x): the "
                          "chunk is corrupt",
                          crc, got);
    out->offset = off;
    out->compressed = (flags & MH_CAP_CHUNK_ZSTD) != 0;
    out->payload = payload;
    out->len = n;
    if (out->compressed) {
        rc = decompress(c, off, payload, n, &out->len);
        if (rc)
            return rc;
        out->payload = c->raw_;
    }
    c->off_ = off + MH_CAP_CHUNK_HEADER_LEN + (size_t)n;
    return 1;
}

int
mh_parse_fail(struct mh_parse_err *e, int code, uint64_t off, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, e->cap, fmt, ap);
    va_end(ap);
    *e->offset = off;
    return code;
}

int
mh_parse_rec_fail(struct mh_parse_err *e, int code, const uint8_t *rec,
                  uint8_t tag, const char *fmt, ...)
{
    char why[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    const struct mh_rec_place *pl = &e->place;
    unsigned long long pos = (unsigned long long)(rec - pl->payload);
    unsigned long long coff = (unsigned long long)pl->chunk_off;
    if (pl->compressed)
        return mh_parse_fail(e, code, pl->chunk_off,
                             "chunk at offset %llu: record 0x%02x at byte "
                             "%llu of the decompressed payload %s",
                             coff, tag, pos, why);
    uint64_t off = pl->chunk_off + MH_CAP_CHUNK_HEADER_LEN + pos;
    return mh_parse_fail(e, code, off,
                         "chunk at offset %llu: record 0x%02x at offset "
                         "%llu %s",
                         coff, tag, (unsigned long long)off, why);
}

static const char *
field_why(int rc, int sized)
{
    if (rc == MH_EFORMAT)
        return "has a varint longer than 64 bits";
    return sized ? "is shorter than its fields"
                 : "runs past the end of its chunk";
}

int
mh_parse_field_fail(struct mh_parse_err *e, int rc, const uint8_t *rec,
                    uint8_t tag, int sized)
{
    return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag, "%s",
                             field_why(rc, sized));
}

int
mh_parse_sized(struct mh_parse_err *e, const uint8_t *rec, uint8_t tag,
               uint8_t fixed_last, uint8_t header, int have_header,
               const uint8_t **pp, const uint8_t *end, const uint8_t **bend)
{
    if (tag == 0)
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "has the invalid tag 0x00");
    if (tag <= fixed_last)
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "has an unknown fixed-layout tag, which "
                                 "cannot be skipped");
    uint64_t blen;
    int rc = mh_rd_uv(pp, end, &blen);
    if (rc)
        return mh_parse_field_fail(e, rc, rec, tag, 0);
    if (blen > (uint64_t)(end - *pp))
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "runs past the end of its chunk");
    if (tag == header && have_header)
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "is a second HEADER record");
    if (tag != header && !have_header)
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "comes before the HEADER record");
    *bend = *pp + blen;
    return MH_OK;
}

int
mh_parse_str(struct mh_parse_err *e, const uint8_t **q, const uint8_t *end,
             const uint8_t *rec, uint8_t tag, size_t max, const char **s,
             size_t *n)
{
    uint64_t len;
    int rc = mh_rd_uv(q, end, &len);
    if (rc)
        return mh_parse_field_fail(e, rc, rec, tag, 1);
    if (len > max)
        return mh_parse_rec_fail(
            e, MH_EFORMAT, rec, tag,
            "has a string of %llu bytes, over the %zu KiB limit",
            (unsigned long long)len, max >> 10);
    if (len > (uint64_t)(end - *q))
        return mh_parse_field_fail(e, MH_ETRUNC, rec, tag, 1);
    *s = (const char *)*q;
    *n = (size_t)len;
    *q += len;
    return MH_OK;
}

int
mh_parse_new_id(struct mh_parse_err *e, const struct mh_idmap *m, uint64_t id,
                const char *kind, const uint8_t *rec, uint8_t tag)
{
    if (id == 0)
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "defines %s id 0 (ids start at 1)", kind);
    if (mh_idmap_get(m, id))
        return mh_parse_rec_fail(e, MH_EFORMAT, rec, tag,
                                 "defines %s %llu twice", kind,
                                 (unsigned long long)id);
    if (m->count >= MH_CAP_ID_MAX)
        return mh_parse_rec_fail(e, MH_ETOOBIG, rec, tag,
                                 "defines more than %u %s ids", MH_CAP_ID_MAX,
                                 kind);
    return MH_OK;
}

int
mh_parse_table_add(struct mh_budget *b, struct mh_idmap *m, void **tab,
                   size_t *cap, uint32_t n, size_t elem, uint64_t id)
{
    int rc = mh_budget_grow(b, tab, cap, (size_t)n + 1, elem);
    return rc ? rc : mh_idmap_put(m, b, id, n);
}

int
mh_rd_uv_slow(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    struct mh_cursor cur;
    mh_cursor_init(&cur, *pp, (size_t)(end - *pp));
    int rc = mh_cursor_uvarint(&cur, v);
    if (rc == MH_OK)
        *pp = cur.p;
    return rc;
}

int
mh_rec_put_file_header(struct mh_buf *b, const char *magic, unsigned version)
{
    uint8_t h[MH_CAP_FILE_HEADER_LEN];
    memcpy(h, magic, MH_CAP_MAGIC_LEN);
    h[8] = (uint8_t)version;
    h[9] = (uint8_t)(version >> 8);
    h[10] = 0; /* flags */
    h[11] = 0;
    return mh_buf_put(b, h, sizeof(h));
}

static size_t
uvs_len(const uint64_t *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += mh_rec_uv_len(v[i]);
    return len;
}

int
mh_rec_put_uvs(struct mh_buf *b, uint8_t tag, const uint64_t *v, size_t n)
{
    int rc = mh_rec_begin(b, tag, uvs_len(v, n));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        mh_rec_w_uv(b, v[i]);
    return MH_OK;
}

int
mh_rec_put_uvs_str(struct mh_buf *b, uint8_t tag, const uint64_t *v, size_t n,
                   const char *s, size_t len)
{
    int rc = mh_rec_begin(b, tag, uvs_len(v, n) + mh_rec_str_len(len));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        mh_rec_w_uv(b, v[i]);
    mh_rec_w_str(b, s, len);
    return MH_OK;
}

void
mh_chunks_reseal(uint8_t *buf, size_t len)
{
    size_t off = MH_CAP_FILE_HEADER_LEN;
    while (off + MH_CAP_CHUNK_HEADER_LEN <= len) {
        uint32_t n = (uint32_t)buf[off + 1] | (uint32_t)buf[off + 2] << 8 |
                     (uint32_t)buf[off + 3] << 16 |
                     (uint32_t)buf[off + 4] << 24;
        if (buf[off] != MH_CAP_CHUNK_TAG ||
            n > len - off - MH_CAP_CHUNK_HEADER_LEN)
            break;
        uint32_t crc = mh_crc32(0, buf + off + MH_CAP_CHUNK_HEADER_LEN, n);
        for (int b = 0; b < 4; b++)
            buf[off + 5 + b] = (uint8_t)(crc >> (8 * b));
        off += MH_CAP_CHUNK_HEADER_LEN + n;
    }
}
