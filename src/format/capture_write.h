/* Encoding capture records (docs/capture-format.md) into an mh_buf.
 *
 * Used by the agent: the ALLOC/FREE encoders are on its sampled path, so
 * they are small and inline. Every function appends a whole record or
 * nothing; MH_ETOOBIG means the buffer is at its cap (the caller counts a
 * dropped sample), MH_ENOMEM that memory ran out. */
#ifndef MH_CAPTURE_WRITE_H
#define MH_CAPTURE_WRITE_H

#include <stdint.h>
#include <string.h>

#include "../util/buf.h"
#include "capture.h"

/* Per-chunk delta state for addresses; zero it when a chunk starts. */
struct mh_cap_enc {
    uint64_t last_addr;
    uint64_t last_request; /* the chunk's current TAG */
};

static inline int MH_MUST_USE
mh_cap_put_alloc(struct mh_buf *b, struct mh_cap_enc *e, enum mh_domain d,
                 uint32_t stack, uint64_t size, uint64_t addr)
{
    uint8_t rec[1 + 10 + 10 + 10];
    size_t n = 0;
    rec[n++] = (uint8_t)(MH_REC_ALLOC_RAW + d);
    n += mh_uvarint_encode(rec + n, stack);
    n += mh_uvarint_encode(rec + n, size);
    n += mh_uvarint_encode(rec + n, mh_zigzag((int64_t)(addr - e->last_addr)));
    int rc = mh_buf_put(b, rec, n);
    if (rc == MH_OK)
        e->last_addr = addr;
    return rc;
}

static inline int MH_MUST_USE
mh_cap_put_free(struct mh_buf *b, struct mh_cap_enc *e, uint64_t addr)
{
    uint8_t rec[1 + 10];
    size_t n = 0;
    rec[n++] = MH_REC_FREE;
    n += mh_uvarint_encode(rec + n, mh_zigzag((int64_t)(addr - e->last_addr)));
    int rc = mh_buf_put(b, rec, n);
    if (rc == MH_OK)
        e->last_addr = addr;
    return rc;
}

/* The length of s[0..n) cut to MH_CAP_STR_MAX on a UTF-8 boundary: what
 * writers store of a longer string. */
static inline size_t
mh_cap_str_fit(const char *s, size_t n)
{
    if (n <= MH_CAP_STR_MAX)
        return n;
    n = MH_CAP_STR_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Appends a TAG record when `request` differs from the chunk's current
 * one, so the next ALLOC belongs to it. */
int mh_cap_put_tag(struct mh_buf *b, struct mh_cap_enc *e,
                   uint64_t request) MH_MUST_USE;

/* The encoders below return MH_EINVAL for what a reader would reject: an
 * id of 0, a reference to id 0, a string over MH_CAP_STR_MAX (the agent
 * truncates long argv entries and paths itself), a stack depth outside
 * 1..MH_CAP_DEPTH_MAX. */

/* Magic, version and flags: the first 12 bytes of a capture file. */
int mh_cap_put_file_header(struct mh_buf *b) MH_MUST_USE;
int mh_cap_put_header(struct mh_buf *b,
                      const struct mh_cap_header *h) MH_MUST_USE;
int mh_cap_put_string(struct mh_buf *b, uint32_t id, const char *s,
                      size_t n) MH_MUST_USE;
int mh_cap_put_code(struct mh_buf *b, uint32_t id, uint32_t filename,
                    uint32_t name, uint32_t firstlineno) MH_MUST_USE;
int mh_cap_put_frame(struct mh_buf *b, uint32_t id, uint32_t code,
                     uint32_t line, uint32_t offset) MH_MUST_USE;
int mh_cap_put_stack(struct mh_buf *b, uint32_t id, uint32_t depth,
                     const uint32_t *frames) MH_MUST_USE;
int mh_cap_put_timeline(struct mh_buf *b,
                        const struct mh_cap_timeline *t) MH_MUST_USE;
int mh_cap_put_marker(struct mh_buf *b, uint64_t t_ns, uint32_t kind,
                      const char *text, size_t n) MH_MUST_USE;
int mh_cap_put_request(struct mh_buf *b,
                       const struct mh_cap_request *r) MH_MUST_USE;
int mh_cap_put_finding(struct mh_buf *b,
                       const struct mh_cap_finding *f) MH_MUST_USE;
int mh_cap_put_end(struct mh_buf *b, uint64_t t_ns, uint64_t samples,
                   uint64_t frees, uint64_t dropped) MH_MUST_USE;

/* Appends `payload` to `out` framed as one chunk. With zstd_level > 0 the
 * payload is compressed when that makes it smaller; `scratch` is reused
 * between calls for the compressed bytes (release it with
 * mh_buf_release(); give it a max of at least MH_CAP_CHUNK_MAX). When
 * compression fails for any reason (memory, scratch cap) the chunk is
 * stored instead. MH_ETOOBIG: the payload cannot fit a chunk. */
int mh_cap_chunk_seal(struct mh_buf *out, const uint8_t *payload, size_t n,
                      int zstd_level, struct mh_buf *scratch) MH_MUST_USE;

/* Fills the MH_CAP_CHUNK_HEADER_LEN bytes at h for the n stored bytes at
 * body. Allocates nothing: a signal handler frames the capture's last
 * chunk with it (writer.c). */
void mh_cap_chunk_header(uint8_t *h, const uint8_t *body, size_t n,
                         uint8_t flags);

/* Rewrites pending records (a chunk's payload) in place so that every
 * ALLOC naming a stack above `max_stack` names stack 0 instead: what a
 * writer that cannot define new stacks (a signal handler, which may not
 * take the GIL) can still write. The rest is kept byte for byte. Stops
 * before the first record that does not parse. Returns the new length;
 * *unstacked counts the ALLOCs rewritten, *allocs all ALLOCs kept. */
size_t mh_cap_records_unstack(uint8_t *p, size_t n, uint64_t max_stack,
                              uint64_t *unstacked, uint64_t *allocs);

#endif
