/* The framing captures and heap dumps share (docs/capture-format.md,
 * "File" and "Chunk"): a 12-byte file header (magic, version, flags),
 * then chunks (tag 'K', u32 length, u32 CRC-32, u8 flags, payload; zstd
 * optional). This module checks the header, walks the chunks, verifies
 * each CRC and decompresses; the format readers parse the payloads. It
 * also holds what the two record writers share: the file header and the
 * layout of a sized record (see "Writing records" below).
 *
 * Like the readers it serves it does no I/O and trusts nothing: a chunk
 * cut by the end of the buffer ends the walk as "truncated" (what a crash
 * or a full disk leaves), anything else malformed is an error naming the
 * offset and the reason. It holds at most one decompressed payload
 * (MH_CAP_CHUNK_RAW_MAX) at a time. */
#ifndef MH_CHUNK_H
#define MH_CHUNK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../util/arena.h"
#include "../util/budget.h"
#include "../util/buf.h"
#include "../util/file.h"
#include "../util/idmap.h"
#include "../util/msg.h"
#include "capture.h"

struct mh_chunk {
    uint64_t offset;        /* file offset of the chunk's tag byte */
    const uint8_t *payload; /* decompressed when the chunk was compressed;
                               valid until the next mh_chunk_next() */
    size_t len;
    int compressed; /* offsets inside the payload are then not file
                       offsets: errors name the chunk's */
};

struct mh_chunk_reader {
    const char *what;  /* "capture", "heap dump": for messages */
    const char *magic; /* MH_CAP_MAGIC_LEN bytes */
    unsigned version;

    /* Decompressed bytes allowed on top of MH_CAP_INFLATE_RATIO times the
     * buffer's size: MH_CAP_INFLATE_FIXED unless the owner lowers it
     * before mh_chunk_begin() (the fuzz targets do, to keep their pace). */
    uint64_t inflate_fixed;

    int truncated;         /* the buffer ends inside a chunk */
    uint64_t truncated_at; /* that chunk's offset */
    uint64_t error_offset;
    char error[200]; /* why mh_chunk_begin()/mh_chunk_next() failed */

    /* private */
    const uint8_t *buf_;
    size_t len_, off_;
    uint8_t *raw_;
    size_t raw_cap_;
    void *dctx_; /* ZSTD_DCtx, made on the first compressed chunk */
    uint64_t inflate_left_; /* decompressed bytes still allowed */
};

/* A kind of file in this framing: what the messages call it, its magic
 * (MH_CAP_MAGIC_LEN bytes) and the version this memhound reads. */
struct mh_chunk_kind {
    const char *what;
    const char *magic;
    unsigned version;
};

extern const struct mh_chunk_kind mh_chunk_capture, mh_chunk_heap;

/* Whether buf[0..len), the first bytes of a stream still arriving, can
 * begin a file of `kind` (a struct mh_chunk_kind): its file header as far as
 * it goes, then the framing of each chunk (tag, length and flags; no CRC,
 * nothing decompressed). Call again as the buffer grows, with the same *next
 * (0 at first: the offset of the next chunk to check). Returns MH_OK, or
 * MH_EFORMAT with the reason in err[0..cap), worded as the readers word
 * it. What a stream that is not a capture costs is then its first bytes,
 * not a read to the input's cap. */
int mh_chunk_check_prefix(const void *kind, const uint8_t *buf, size_t len,
                          size_t *next, char *err, size_t cap) MH_MUST_USE;
/* For mh_file_map(): inputs that must be a capture, a heap dump. */
extern const struct mh_file_check mh_chunk_capture_input, mh_chunk_heap_input;

/* Sets up a reader for files of `kind`, which must outlive it. Nothing
 * is allocated yet. */
void mh_chunk_reader_init(struct mh_chunk_reader *c,
                          const struct mh_chunk_kind *kind);
/* Frees the decompression buffer and context. */
void mh_chunk_reader_release(struct mh_chunk_reader *c);

/* Checks the file header of buf[0..len) (which must outlive the walk),
 * and what its whole chunks declare they decompress to against the cap
 * (MH_CAP_INFLATE_RATIO times len, plus c->inflate_fixed), before any of
 * them is decompressed. Returns MH_OK, MH_ETRUNC (empty, or cut inside
 * the header), MH_EFORMAT, or MH_ETOOBIG (over the cap: the error names
 * the chunk that passes it), with c->error and c->error_offset set. */
int mh_chunk_begin(struct mh_chunk_reader *c, const uint8_t *buf,
                   size_t len) MH_MUST_USE;

/* The next chunk: returns 1 with *out filled, 0 at the end of the buffer
 * (c->truncated says whether it cut a chunk), or a negative MH_E* code
 * with c->error and c->error_offset set (MH_ENOMEM when decompression
 * runs out of memory). */
int mh_chunk_next(struct mh_chunk_reader *c, struct mh_chunk *out) MH_MUST_USE;

/* Where the record being parsed sits, for error messages. */
struct mh_rec_place {
    uint64_t chunk_off;     /* file offset of its chunk */
    const uint8_t *payload; /* the chunk's payload, decompressed */
    int compressed;
};

/* Where a reader reports a parse error: its message buffer and error
 * offset, and the record being parsed. Both readers embed one. */
struct mh_parse_err {
    char *text; /* the reader's error buffer, `cap` bytes */
    size_t cap;
    uint64_t *offset;          /* the reader's error offset */
    struct mh_rec_place place; /* the record being parsed */
};

/* Formats the error at file offset `off`; returns `code`. */
int mh_parse_fail(struct mh_parse_err *e, int code, uint64_t off,
                  const char *fmt, ...) MH_PRINTF(4, 5);
/* "chunk at offset C: record 0xTT at offset O <why>" -- inside a
 * compressed chunk "at byte N of the decompressed payload", the offset
 * being the chunk's; returns `code`. */
int mh_parse_rec_fail(struct mh_parse_err *e, int code, const uint8_t *rec,
                      uint8_t tag, const char *fmt, ...) MH_PRINTF(5, 6);
/* A field of a record could not be read: `rc` from the varint decoder;
 * `sized` for records that carry their own length. MH_EFORMAT. */
int mh_parse_field_fail(struct mh_parse_err *e, int rc, const uint8_t *rec,
                        uint8_t tag, int sized);

/* What both readers check of the records they parse; each returns MH_OK
 * or the error, made with mh_parse_rec_fail(), for the record at `rec`. */

/* The body of the sized record at `rec`, its tag read and *pp just past
 * it: rejects tag 0, an unknown fixed-layout tag (up to `fixed_last`:
 * it cannot be skipped), a length past `end`, a second `header` record,
 * and any other record while `have_header` is 0. Sets *pp to the body
 * and *bend to its end. */
int mh_parse_sized(struct mh_parse_err *e, const uint8_t *rec, uint8_t tag,
                   uint8_t fixed_last, uint8_t header, int have_header,
                   const uint8_t **pp, const uint8_t *end,
                   const uint8_t **bend) MH_MUST_USE;
/* A string field at *q (uvarint length, bytes) of at most `max` bytes
 * inside the sized record at `rec`: s[0..n) points into the record, and
 * *q moves past the field. */
int mh_parse_str(struct mh_parse_err *e, const uint8_t **q, const uint8_t *end,
                 const uint8_t *rec, uint8_t tag, size_t max, const char **s,
                 size_t *n) MH_MUST_USE;
/* A new id of one `kind` ("string", "type"...) for map m: nonzero, not
 * defined before, and within MH_CAP_ID_MAX. */
int mh_parse_new_id(struct mh_parse_err *e, const struct mh_idmap *m,
                    uint64_t id, const char *kind, const uint8_t *rec,
                    uint8_t tag) MH_MUST_USE;

/* Copies s[0..n) into a reader's arena as *out (budget.h, arena.h). */
static inline int MH_MUST_USE
mh_parse_keep_str(struct mh_arena *a, struct mh_budget *b, const char *s,
                  size_t n, struct mh_str *out)
{
    int rc = mh_arena_str(a, b, s, n, &out->s);
    if (rc == MH_OK)
        out->n = n;
    return rc;
}

/* Room for entry `n` of a reader's table *tab (capacity *cap entries of
 * `elem` bytes) and id -> n in m, both charged to b: MH_ETOOBIG or
 * MH_ENOMEM, for the reader to report as the record's store failure. */
int mh_parse_table_add(struct mh_budget *b, struct mh_idmap *m, void **tab,
                       size_t *cap, uint32_t n, size_t elem,
                       uint64_t id) MH_MUST_USE;

int mh_rd_uv_slow(const uint8_t **pp, const uint8_t *end, uint64_t *v);

/* A uvarint at *pp (before end), advancing *pp: MH_OK, MH_ETRUNC, or
 * MH_EFORMAT past 64 bits. Most fields are one or two bytes: those are
 * decoded without the general loop when ten bytes are certainly there. */
static inline int
mh_rd_uv(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (__builtin_expect(p < end && *p < 0x80, 1)) {
        *v = *p;
        *pp = p + 1;
        return MH_OK;
    }
    if (__builtin_expect(end - p >= 10, 1)) {
        uint64_t x = 0;
        for (unsigned shift = 0; shift < 63; shift += 7) {
            uint8_t b = *p++;
            x |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                *v = x;
                *pp = p;
                return MH_OK;
            }
        }
        if (*p > 1)
            return MH_EFORMAT;
        *v = x | ((uint64_t)*p << 63);
        *pp = p + 1;
        return MH_OK;
    }
    return mh_rd_uv_slow(pp, end, v);
}

/* ---- Writing records (capture_write.c, heap_write.c) ----
 *
 * A sized record is laid out as tag, body length, body. Its encoder first
 * computes the body length with mh_rec_uv_len()/mh_rec_str_len(),
 * reserves the whole record with mh_rec_begin(), then writes exactly that
 * many bytes with mh_rec_w_uv()/mh_rec_w_str(): so a record is appended
 * whole or not at all, without a rollback path. Records that are only
 * uvarints, or uvarints and a string, go through mh_rec_put_uvs(_str). */

/* Sets the CRC of every complete chunk of the capture or heap dump in
 * buf to match its payload, stopping at the first bytes that are not a
 * whole chunk: for tests and fuzzing, which edit payloads in place and
 * want the parser to look past the CRC check. */
void mh_chunks_reseal(uint8_t *buf, size_t len);

/* Magic, version and flags 0: the first MH_CAP_FILE_HEADER_LEN bytes of
 * a capture or a heap dump. */
int mh_rec_put_file_header(struct mh_buf *b, const char *magic,
                           unsigned version) MH_MUST_USE;

/* Bytes of v as a uvarint. */
static inline size_t
mh_rec_uv_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Bytes of a string field of n bytes (uvarint length, then the bytes). */
static inline size_t
mh_rec_str_len(size_t n)
{
    return mh_rec_uv_len(n) + n;
}

/* Write into room reserved by mh_rec_begin(). */
static inline void
mh_rec_w_uv(struct mh_buf *b, uint64_t v)
{
    b->len += mh_uvarint_encode(b->data + b->len, v);
}

static inline void
mh_rec_w_str(struct mh_buf *b, const char *s, size_t n)
{
    mh_rec_w_uv(b, n);
    if (n) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
}

/* Reserves a whole sized record of `body` bytes and writes its tag and
 * length; the caller then writes exactly `body` bytes with mh_rec_w_*.
 * MH_ETOOBIG (the buffer's cap) or MH_ENOMEM leave b as it was. */
static inline int MH_MUST_USE
mh_rec_begin(struct mh_buf *b, uint8_t tag, size_t body)
{
    int rc = mh_buf_grow(b, 1 + mh_rec_uv_len(body) + body);
    if (rc)
        return rc;
    b->data[b->len++] = tag;
    mh_rec_w_uv(b, body);
    return MH_OK;
}

/* A sized record whose body is the n uvarints of v; with _str, followed
 * by one string field (uvarint length, then `len` bytes of s). What most
 * fixed-shape encoders of both formats come down to. */
int mh_rec_put_uvs(struct mh_buf *b, uint8_t tag, const uint64_t *v,
                   size_t n) MH_MUST_USE;
int mh_rec_put_uvs_str(struct mh_buf *b, uint8_t tag, const uint64_t *v,
                       size_t n, const char *s, size_t len) MH_MUST_USE;

#endif
