/* What a file can make the readers do (docs/security.md, "Reading
 * untrusted files"): the decompression cap on each side of its boundary,
 * inputs refused from their first bytes, and heap dumps cut short. All
 * fast: they run in every `make test-c`. */
#include <stdint.h>
#include <unistd.h>

#include <zstd.h>

#include "format/capture_read.h"
#include "format/capture_write.h"
#include "format/chunk.h"
#include "format/heap_read.h"
#include "harness.h"
#include "heap_gen.h"
#include "util/file.h"

#define UNKNOWN_SIZED_TAG 0xF0 /* a record from a newer writer: skipped */

/* A capture: a stored HEADER chunk, then one zstd chunk (at *bomb_at)
 * whose payload is a record of `zeros` zero bytes that the reader skips,
 * compressed with zstd's defaults (128 KiB blocks, where the writers
 * use 16 KiB: compare MH_CAP_INFLATE_RATIO): a few hundred bytes of file
 * that decompress to `zeros` and a little. *raw is what that chunk
 * declares. */
static void
bomb_capture(struct mh_buf *file, size_t zeros, size_t *bomb_at, size_t *raw)
{
    struct mh_buf p, z;
    mh_buf_init(file, 1u << 20);
    mh_buf_init(&p, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&z, 1u << 20);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.pid = 1;
    h.max_depth = 64;
    h.mode = MH_MODE_TRACE;
    CHECK_EQ_INT(mh_cap_put_file_header(file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_header(&p, &h), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(file, p.data, p.len, 0, NULL), MH_OK);
    mh_buf_reset(&p);
    CHECK_EQ_INT(mh_buf_grow(&p, zeros + 16), MH_OK);
    p.data[p.len++] = UNKNOWN_SIZED_TAG;
    p.len += mh_uvarint_encode(p.data + p.len, zeros);
    memset(p.data + p.len, 0, zeros);
    p.len += zeros;
    *raw = p.len;
    CHECK_EQ_INT(mh_buf_put_uvarint(&z, p.len), MH_OK);
    CHECK_EQ_INT(mh_buf_grow(&z, 1u << 19), MH_OK);
    size_t zn = ZSTD_compress(z.data + z.len, 1u << 19, p.data, p.len, 1);
    CHECK(!ZSTD_isError(zn));
    z.len += zn;
    *bomb_at = file->len;
    CHECK_EQ_INT(mh_cap_chunk_seal(file, z.data, z.len, 0, NULL), MH_OK);
    file->data[*bomb_at + 9] = MH_CAP_CHUNK_ZSTD; /* not in the CRC */
    mh_buf_release(&p);
    mh_buf_release(&z);
}

static int
parse_with_fixed(const struct mh_buf *file, uint64_t fixed,
                 struct mh_cap_reader *r)
{
    mh_cap_reader_init(r);
    r->inflate_fixed = fixed;
    int rc = mh_cap_parse(r, file->data, file->len, NULL, NULL);
    if (rc && rc != MH_ETOOBIG)
        fprintf(stderr, "%s\n", r->error);
    return rc;
}

MH_TEST(inflate_cap_boundary)
{
    struct mh_buf file;
    size_t at, raw;
    bomb_capture(&file, 16u << 20, &at, &raw);
    uint64_t by_ratio = (uint64_t)file.len * MH_CAP_INFLATE_RATIO;
    CHECK(raw > by_ratio); /* the fixed allowance decides */
    struct mh_cap_reader r;

    /* The default allowance lets a small file hold a big chunk. */
    CHECK_EQ_INT(parse_with_fixed(&file, MH_CAP_INFLATE_FIXED, &r), MH_OK);
    CHECK_EQ_INT(r.chunks, 2);
    mh_cap_reader_release(&r);

    /* Exactly at the cap: read. */
    CHECK_EQ_INT(parse_with_fixed(&file, raw - by_ratio, &r), MH_OK);
    CHECK_EQ_INT(r.chunks, 2);
    mh_cap_reader_release(&r);

    /* One byte over: refused at that chunk, with the ratio. */
    CHECK_EQ_INT(parse_with_fixed(&file, raw - by_ratio - 1, &r), MH_ETOOBIG);
    char want[200];
    snprintf(want, sizeof(want),
             "chunk at offset %zu: the capture decompresses to more than "
             "4096 times its size (%zu bytes file, ",
             at, file.len);
    if (strncmp(r.error, want, strlen(want)))
        fprintf(stderr, "got '%s'\n", r.error);
    CHECK(strncmp(r.error, want, strlen(want)) == 0);
    CHECK(strstr(r.error, "refused as a decompression bomb"));
    CHECK_EQ_INT(r.error_offset, at);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
}

/* Many such chunks, as a crafted 2 MB capture has hundreds: refused from
 * the chunk headers alone, before any is decompressed. */
MH_TEST(inflate_cap_refuses_before_decompressing)
{
    struct mh_buf file;
    size_t at, raw;
    bomb_capture(&file, 64u << 20, &at, &raw);
    size_t one = file.len - at;
    size_t copies = 400; /* 400 x 64 MiB = 25 GiB from ~1 MB */
    struct mh_buf big;
    mh_buf_init(&big, 64u << 20);
    CHECK_EQ_INT(mh_buf_put(&big, file.data, file.len), MH_OK);
    for (size_t i = 1; i < copies; i++)
        CHECK_EQ_INT(mh_buf_put(&big, file.data + at, one), MH_OK);
    uint64_t cap =
        (uint64_t)big.len * MH_CAP_INFLATE_RATIO + MH_CAP_INFLATE_FIXED;
    size_t first_over = (size_t)(cap / raw); /* chunks that fit */
    struct mh_cap_reader r;
    double t0 = mh_test_now();
    CHECK_EQ_INT(parse_with_fixed(&big, MH_CAP_INFLATE_FIXED, &r), MH_ETOOBIG);
    double took = mh_test_now() - t0;
    CHECK_EQ_INT(r.error_offset, at + first_over * one);
    CHECK_EQ_INT(r.chunks, 0); /* not even the HEADER chunk was parsed */
    printf("%zu-byte bomb (%zu chunks of %zu MiB) refused in %.4f s\n",
           big.len, copies, raw >> 20, took);
    CHECK(took < 0.5);
    mh_cap_reader_release(&r);
    mh_buf_release(&big);
    mh_buf_release(&file);
}

/* The buffer changes between the plan and the walk (a file rewritten
 * under its mapping): each chunk is charged again as it decompresses. */
MH_TEST(inflate_cap_charged_while_walking)
{
    struct mh_buf file;
    size_t at, raw;
    bomb_capture(&file, 16u << 20, &at, &raw);
    uint64_t fixed = raw - (uint64_t)file.len * MH_CAP_INFLATE_RATIO - 1;
    struct mh_chunk_reader c;
    struct mh_chunk ch;
    mh_chunk_reader_init(&c, &mh_chunk_capture);
    c.inflate_fixed = fixed;
    file.data[at] = 'J'; /* the plan stops here... */
    CHECK_EQ_INT(mh_chunk_begin(&c, file.data, file.len), MH_OK);
    file.data[at] = MH_CAP_CHUNK_TAG; /* ...and then it is a chunk */
    CHECK_EQ_INT(mh_chunk_next(&c, &ch), 1);
    CHECK_EQ_INT(mh_chunk_next(&c, &ch), MH_ETOOBIG);
    CHECK(strstr(c.error, "refused as a decompression bomb"));
    CHECK_EQ_INT(c.error_offset, at);
    mh_chunk_reader_release(&c);
    mh_buf_release(&file);
}

/* The heap dump reader takes the same cap through its own field (the
 * cap is charged before any record, so the capture's HEADER inside does
 * not matter). */
MH_TEST(inflate_cap_heap_dump)
{
    struct mh_buf file;
    size_t at, raw;
    bomb_capture(&file, 16u << 20, &at, &raw);
    memcpy(file.data, MH_HEAP_MAGIC, MH_CAP_MAGIC_LEN);
    struct mh_heap_image d;
    mh_heap_image_init(&d, 0);
    d.inflate_fixed = raw - (uint64_t)file.len * MH_CAP_INFLATE_RATIO - 1;
    CHECK_EQ_INT(mh_heap_parse(&d, file.data, file.len), MH_ETOOBIG);
    CHECK(strstr(d.error, "the heap dump decompresses to more than 4096 "
                          "times its size"));
    CHECK_EQ_INT(d.error_offset, at);
    mh_heap_image_release(&d);
    mh_buf_release(&file);
}

/* ---- inputs checked as they arrive (test_file.c has the pipes) ---- */

/* Every prefix of a good capture passes the check, however the bytes
 * arrive; a bad chunk is caught as soon as its header is in. */
MH_TEST(stream_check_prefixes)
{
    struct mh_buf file;
    size_t at, raw;
    bomb_capture(&file, 1000, &at, &raw);
    char err[200];
    size_t next = 0;
    for (size_t len = 1; len <= file.len; len++)
        CHECK_EQ_INT(mh_chunk_check_prefix(&mh_chunk_capture, file.data, len,
                                           &next, err, sizeof(err)),
                     MH_OK);
    CHECK_EQ_INT(next, file.len);
    next = 0;
    CHECK_EQ_INT(mh_chunk_check_prefix(&mh_chunk_capture, file.data, file.len,
                                       &next, err, sizeof(err)),
                 MH_OK);
    file.data[at + 9] = 4; /* unknown chunk flags */
    next = 0;
    CHECK_EQ_INT(mh_chunk_check_prefix(&mh_chunk_capture, file.data, at + 9,
                                       &next, err, sizeof(err)),
                 MH_OK);
    CHECK_EQ_INT(mh_chunk_check_prefix(&mh_chunk_capture, file.data, at + 10,
                                       &next, err, sizeof(err)),
                 MH_EFORMAT);
    CHECK(strstr(err, "unknown chunk flags 0x04"));
    mh_buf_release(&file);
}

/* ---- heap dumps cut short ---- */

/* A dump in small chunks, cut at 10%..90%: every cut reads, keeps every
 * object of the chunks before it, and says where it was cut. */
MH_TEST(heap_dump_cut_short_keeps_what_came_before)
{
    struct hg b;
    hg_init(&b, 1, 0);
    hg_seal(&b); /* the HEADER alone first, as the agent writes it */
    b.chunk_bytes = 16u << 10;
    hg_synthetic(&b, 20000);
    hg_finish(&b);
    CHECK_EQ_INT(b.rc, MH_OK);
    struct mh_heap_image whole;
    mh_heap_image_init(&whole, 0);
    CHECK_EQ_INT(mh_heap_parse(&whole, b.file.data, b.file.len), MH_OK);
    CHECK(whole.have_end && !whole.truncated);
    for (int pct = 10; pct <= 90; pct += 20) {
        size_t cut = b.file.len * (size_t)pct / 100;
        struct mh_heap_image d;
        mh_heap_image_init(&d, 0);
        int rc = mh_heap_parse(&d, b.file.data, cut);
        if (rc)
            fprintf(stderr, "cut at %zu: %s\n", cut, d.error);
        CHECK_EQ_INT(rc, MH_OK);
        CHECK(d.truncated && !d.have_end);
        CHECK(d.truncated_at <= cut);
        /* Cut at that chunk's start instead: the same objects, whole. */
        struct mh_heap_image e;
        mh_heap_image_init(&e, 0);
        CHECK_EQ_INT(mh_heap_parse(&e, b.file.data, d.truncated_at), MH_OK);
        CHECK(!e.truncated);
        CHECK_EQ_INT(e.nobjs, d.nobjs);
        /* What is lost is the one chunk the cut falls in, at most
         * chunk_bytes of records (stored, or less once compressed). */
        CHECK(cut - d.truncated_at <= b.chunk_bytes + MH_HEAP_OBJ_MAX(8) +
                                          MH_CAP_CHUNK_HEADER_LEN + 16);
        printf("cut at %d%%: %u of %u objects, %zu bytes lost\n", pct, d.nobjs,
               whole.nobjs, cut - (size_t)d.truncated_at);
        for (uint32_t o = 0; o < d.nobjs; o++)
            CHECK(d.addr[o] == whole.addr[o]);
        mh_heap_image_release(&e);
        mh_heap_image_release(&d);
    }
    mh_heap_image_release(&whole);
    hg_release(&b);
}
