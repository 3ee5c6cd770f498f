/* The heap dump reader: round trips through the agent's encoders,
 * truncation at every byte, corruption, the format's rules, memory
 * bounds, allocation failure at every step, and the v1 fixtures. */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/format/chunk.h"
#include "../../src/format/heap_read.h"
#include "../../src/util/file.h"
#include "faulty.h"
#include "harness.h"
#include "heap_gen.h"

/* A small dump with every record kind, in `nchunks` chunks or so. */
static void
small_dump(struct hg *b, int level, int split)
{
    hg_init(b, level, 512 * 1024);
    uint64_t t_dict = hg_type(b, "dict", 1);
    uint64_t t_str = hg_type(b, "str", 0);
    uint64_t t_user = hg_type(b, "app.models.User", 1);
    uint64_t s_mods = hg_string(b, "sys.modules");
    uint64_t s_app = hg_string(b, "'app'");
    uint64_t s_name = hg_string(b, "name");
    uint64_t s_frame = hg_string(b, "thread 1 [MainThread] app.py:3 in f: x");
    hg_root(b, 0, s_mods, 0x1000);
    hg_root(b, 3, s_frame, 0x3000);
    if (split)
        hg_seal(b);
    uint64_t t1[] = {0x2000}, l1[] = {hg_label(s_app, 2)};
    hg_object(b, 0x1000, t_dict, 232, 2, 1, t1, l1, 1);
    uint64_t t2[] = {0x3000, 0x4000, 0x3000},
             l2[] = {hg_label(s_name, 1), hg_label(0, 3), hg_label(0, 3)};
    hg_object(b, 0x2000, t_user, 48, 1, 1, t2, l2, 3);
    if (split)
        hg_seal(b);
    hg_object(b, 0x3000, t_str, 53, 3, 0, NULL, NULL, 0);
    uint64_t t4[] = {0x9999}, l4[] = {hg_label(0, 0)};
    hg_object(b, 0x4000, t_dict, 64, 1, 1, t4, l4, 1);
    hg_alloc(b, 0x3000 - 16, 53, 7, 0x3000, 0);
    hg_alloc(b, 0x8000, 32, 9, 0, t_str);
    hg_finish(b);
    CHECK_EQ_INT(b->rc, MH_OK);
}

static int
parse(struct mh_heap_image *d, const uint8_t *p, size_t n)
{
    mh_heap_image_init(d, 0);
    /* A copy exactly n long, so reading past it is caught by ASan. */
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    int rc = mh_heap_parse(d, copy, n);
    free(copy);
    return rc;
}

static void
check_small(const struct mh_heap_image *d)
{
    CHECK(d->have_header && d->have_end);
    CHECK_EQ_INT(d->header.pid, 4242);
    CHECK_EQ_INT(d->header.sample_interval, 512 * 1024);
    CHECK_EQ_STR(d->header.capture.s, "/tmp/app.mhc");
    CHECK_EQ_INT(d->nobjs, 4);
    CHECK_EQ_INT(d->nedges, 5);
    CHECK_EQ_INT(d->dangling, 1);
    CHECK_EQ_INT(d->end_objects, 4);
    CHECK_EQ_INT(d->addr[1], 0x2000);
    CHECK_EQ_STR(mh_heap_type_name(d, 1), "app.models.User");
    CHECK_EQ_INT(d->size[1], 48);
    CHECK_EQ_INT(d->refcnt[2], 3);
    CHECK_EQ_INT(d->flags[0], 1);
    CHECK_EQ_INT(d->edge_start[1], 1);
    CHECK_EQ_INT(d->edge_start[2], 4);
    CHECK_EQ_INT(d->edge_to[0], 1);
    CHECK_EQ_INT(d->edge_to[1], 2);
    CHECK_EQ_INT(d->edge_to[2], 3);
    CHECK_EQ_INT(d->edge_to[4], MH_HEAP_NONE);
    CHECK_EQ_INT(mh_heap_label_kind(d->edge_label[1]), MH_EDGE_ATTR);
    CHECK_EQ_STR(mh_heap_str(d, mh_heap_label_name(d->edge_label[1])), "name");
    CHECK_EQ_INT(mh_heap_label_name(d->edge_label[2]), 0);
    CHECK_EQ_INT(d->nroots, 2);
    CHECK_EQ_INT(d->roots[0].obj, 0);
    CHECK_EQ_INT(d->roots[1].obj, 2);
    CHECK_EQ_INT(d->roots[1].kind, MH_ROOT_FRAME);
    CHECK_EQ_INT(d->nallocs, 2);
    CHECK_EQ_INT(d->allocs[0].obj, 2);
    CHECK_EQ_INT(d->allocs[0].stack, 7);
    CHECK_EQ_INT(d->allocs[1].obj, MH_HEAP_NONE);
    CHECK_EQ_STR(mh_heap_str(d, d->types[d->allocs[1].type].name), "str");
    CHECK_EQ_INT(mh_heap_find(d, 0x4000), 3);
    CHECK_EQ_INT(mh_heap_find(d, 0x4001), MH_HEAP_NONE);
    CHECK_EQ_INT(mh_heap_find(d, 0), MH_HEAP_NONE);
}

MH_TEST(heap_read_round_trip)
{
    for (int level = 0; level <= 3; level += 3)
        for (int split = 0; split <= 1; split++) {
            struct hg b;
            small_dump(&b, level, split);
            struct mh_heap_image d;
            int rc = parse(&d, b.file.data, b.file.len);
            if (rc)
                fprintf(stderr, "%s\n", d.error);
            CHECK_EQ_INT(rc, MH_OK);
            CHECK(!d.truncated);
            check_small(&d);
            mh_heap_image_release(&d);
            hg_release(&b);
        }
}

/* Cutting the file anywhere gives either an error about the file header
 * or a truncated dump holding exactly the chunks before the cut. */
MH_TEST(heap_read_truncated_everywhere)
{
    for (int level = 0; level <= 3; level += 3) {
        struct hg b;
        small_dump(&b, level, 1);
        CHECK(b.nchunks >= 3);
        for (size_t cut = 0; cut < b.file.len; cut++) {
            struct mh_heap_image d;
            int rc = parse(&d, b.file.data, cut);
            if (cut < MH_CAP_FILE_HEADER_LEN) {
                CHECK_EQ_INT(rc, MH_ETRUNC);
            } else if (cut < b.chunk_end[0]) {
                /* not even the HEADER record */
                CHECK_EQ_INT(rc, MH_EFORMAT);
                CHECK(strstr(d.error, "no HEADER record"));
            } else {
                CHECK_EQ_INT(rc, MH_OK);
                size_t whole = 0;
                while (whole < b.nchunks && b.chunk_end[whole] <= cut)
                    whole++;
                CHECK_EQ_INT(d.chunks, whole);
                int boundary = cut == b.chunk_end[whole - 1];
                CHECK_EQ_INT(d.truncated, !boundary);
                if (d.truncated)
                    CHECK_EQ_INT(d.truncated_at, b.chunk_end[whole - 1]);
                CHECK(!d.have_end);
                CHECK(d.nobjs <= 4);
            }
            mh_heap_image_release(&d);
        }
        hg_release(&b);
    }
}

MH_TEST(heap_read_every_byte_flipped)
{
    struct hg b;
    small_dump(&b, 0, 1);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < b.file.len; i++)
        for (size_t m = 0; m < sizeof(masks); m++) {
            b.file.data[i] ^= masks[m];
            struct mh_heap_image d;
            int rc = parse(&d, b.file.data, b.file.len);
            CHECK(rc < 0 || d.truncated);
            if (rc < 0)
                CHECK(d.error[0] != '\0');
            mh_heap_image_release(&d);
            b.file.data[i] ^= masks[m];
        }
    hg_release(&b);
}

/* A dump whose first chunk holds the HEADER, a dict and a str type
 * (ids 1-4: "dict", type 2, "str", type 4) and the string "k" (id 5),
 * then `payload` as a second chunk with a valid CRC. */
static void
dump_with(struct mh_buf *file, const uint8_t *payload, size_t n)
{
    struct hg b;
    hg_init(&b, 0, 0);
    hg_type(&b, "dict", 1);
    hg_type(&b, "str", 0);
    hg_string(&b, "k");
    hg_seal(&b);
    CHECK_EQ_INT(b.rc, MH_OK);
    *file = b.file;
    memset(&b.file, 0, sizeof(b.file));
    hg_release(&b);
    CHECK_EQ_INT(mh_cap_chunk_seal(file, payload, n, 0, NULL), MH_OK);
}

static void
expect(int code, const char *msg, const uint8_t *payload, size_t n)
{
    struct mh_buf file;
    dump_with(&file, payload, n);
    struct mh_heap_image d;
    int rc = parse(&d, file.data, file.len);
    if (rc != code || (msg && !strstr(d.error, msg)))
        fprintf(stderr, "rc %d, error '%s'; wanted %d and '%s'\n", rc, d.error,
                code, msg ? msg : "");
    CHECK_EQ_INT(rc, code);
    if (msg)
        CHECK(strstr(d.error, msg) != NULL);
    if (rc < 0)
        CHECK(d.error_offset > 0 && d.error_offset <= file.len);
    mh_heap_image_release(&d);
    mh_buf_release(&file);
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__})
#define EXPECT(code, msg, ...)                                                \
    expect(code, msg, BYTES(__VA_ARGS__), sizeof(BYTES(__VA_ARGS__)))

MH_TEST(heap_read_bad_records)
{
    /* OBJECT: delta 0x10 (zigzag 0x20), type 2, size 8, refcnt 1, flags
     * 0, nedges 0 */
    EXPECT(MH_OK, NULL, 0x01, 0x20, 2, 8, 1, 0, 0);
    EXPECT(MH_EFORMAT, "is an object at address 0", 0x01, 0, 2, 8, 1, 0, 0);
    EXPECT(MH_EFORMAT, "references undefined type 3", 0x01, 0x20, 3, 8, 1, 0,
           0);
    EXPECT(MH_EFORMAT, "references undefined type 0", 0x01, 0x20, 0, 8, 1, 0,
           0);
    EXPECT(MH_EFORMAT, "defines the object at 0x10 twice", 0x01, 0x20, 2, 8, 1,
           0, 0, 0x01, 0x00, 2, 8, 1, 0, 0);
    /* edges: target delta, label */
    EXPECT(MH_OK, NULL, 0x01, 0x20, 2, 8, 1, 0, 1, 0x02, 5 << 3 | 2);
    EXPECT(MH_EFORMAT, "edge 0 of the reserved kind 7", 0x01, 0x20, 2, 8, 1, 0,
           1, 0x02, 7);
    EXPECT(MH_EFORMAT, "edge 0 of kind 3 with a name", 0x01, 0x20, 2, 8, 1, 0,
           1, 0x02, 5 << 3 | 3);
    EXPECT(MH_EFORMAT, "edge 0 naming undefined string 6", 0x01, 0x20, 2, 8, 1,
           0, 1, 0x02, 6 << 3 | 1);
    EXPECT(MH_EFORMAT, "runs past the end of its chunk", 0x01, 0x20, 2, 8, 1,
           0, 2, 0x02, 5 << 3 | 2);
    EXPECT(MH_EFORMAT, "runs past the end of its chunk", 0x01, 0x20, 2, 8);
    EXPECT(MH_EFORMAT, "varint longer than 64 bits", 0x01, 0xff, 0xff, 0xff,
           0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 2, 8, 1, 0, 0);
    /* ROOT: kind, name, delta; ALLOC: addr, size, stack, object, type */
    EXPECT(MH_OK, NULL, 0x02, 9, 0, 0x20, 0x03, 1, 2, 3, 4, 4);
    EXPECT(MH_EFORMAT, "references undefined string 9", 0x02, 0, 9, 0x20);
    EXPECT(MH_EFORMAT, "references undefined type 9", 0x03, 1, 2, 3, 4, 9);
    /* tags */
    EXPECT(MH_EFORMAT, "invalid tag 0x00", 0x00);
    EXPECT(MH_EFORMAT, "unknown fixed-layout tag", 0x3f, 0);
    EXPECT(MH_OK, NULL, 0x7e, 3, 1, 2, 3); /* unknown sized: skipped */
    EXPECT(MH_EFORMAT, "runs past the end of its chunk", 0x7e, 4, 1, 2, 3);
    EXPECT(MH_EFORMAT, "is a second HEADER record", 0x40, 0);
    /* sized records */
    EXPECT(MH_EFORMAT, "defines string 5 twice", 0x41, 3, 5, 1, 'x');
    EXPECT(MH_EFORMAT, "defines string id 0", 0x41, 3, 0, 1, 'x');
    EXPECT(MH_EFORMAT, "is shorter than its fields", 0x41, 3, 6, 5, 'x');
    EXPECT(MH_EFORMAT, "over the 64 KiB limit", 0x41, 5, 6, 0x81, 0x80, 0x04,
           'x');
    EXPECT(MH_EFORMAT, "defines type 2 twice", 0x42, 5, 2, 1, 5, 0, 0);
    EXPECT(MH_EFORMAT, "references undefined string 0", 0x42, 5, 9, 1, 0, 0,
           0);
    EXPECT(MH_OK, NULL, 0x43, 3, 0, 0, 7);
    EXPECT(MH_EFORMAT, "is shorter than its fields", 0x43, 2, 0, 0);
}

MH_TEST(heap_read_no_header)
{
    struct mh_buf file, c;
    mh_buf_init(&file, 1 << 20);
    mh_buf_init(&c, 1 << 20);
    CHECK_EQ_INT(mh_heap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_heap_put_string(&c, 1, "x", 1), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
    struct mh_heap_image d;
    CHECK_EQ_INT(parse(&d, file.data, file.len), MH_EFORMAT);
    CHECK(strstr(d.error, "comes before the HEADER record"));
    mh_heap_image_release(&d);
    /* A capture is not a heap dump, and the other way round. */
    file.data[4] = 'C';
    CHECK_EQ_INT(parse(&d, file.data, file.len), MH_EFORMAT);
    CHECK_EQ_STR(d.error, "not a memhound heap dump (bad magic at offset 0)");
    mh_heap_image_release(&d);
    CHECK_EQ_INT(parse(&d, file.data, 0), MH_ETRUNC);
    CHECK_EQ_STR(d.error, "heap dump is empty");
    mh_heap_image_release(&d);
    mh_buf_release(&file);
    mh_buf_release(&c);
}

/* A hostile count cannot make the reader allocate: nedges is bounded by
 * the bytes left, and everything by max_bytes. */
MH_TEST(heap_read_bounded)
{
    /* nedges = 2^40 in a tiny record */
    EXPECT(MH_EFORMAT, "runs past the end of its chunk", 0x01, 0x20, 2, 8, 1,
           0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x02, 5 << 3 | 2);
    struct hg b;
    hg_init(&b, 3, 0);
    hg_synthetic(&b, 20000);
    hg_finish(&b);
    CHECK_EQ_INT(b.rc, MH_OK);
    struct mh_heap_image d;
    mh_heap_image_init(&d, 1 << 20);
    CHECK_EQ_INT(mh_heap_parse(&d, b.file.data, b.file.len), MH_ETOOBIG);
    CHECK(strstr(d.error, "the reader's 1 MiB limit"));
    CHECK(d.mem <= (1 << 20));
    mh_heap_image_release(&d);
    mh_heap_image_init(&d, 0);
    CHECK_EQ_INT(mh_heap_parse(&d, b.file.data, b.file.len), MH_OK);
    CHECK_EQ_INT(d.nobjs, 40000 + 24);
    fprintf(stderr, "reader: %zu bytes for %u objects, %u edges\n", d.mem,
            d.nobjs, d.nedges);
    /* What it holds is what it counted, give or take the allocator. */
    CHECK(d.mem < 60u * d.nobjs + 16u * d.nedges + (1u << 20));
    CHECK_EQ_INT(mh_heap_parse(&d, b.file.data, b.file.len), MH_EINVAL);
    mh_heap_image_release(&d);
    hg_release(&b);
}

/* Allocation N fails, for every N: an error that says so, no leak. */
MH_TEST(heap_read_fault_injection)
{
    for (int level = 0; level <= 3; level += 3) {
        struct hg b;
        small_dump(&b, level, 1);
        long n;
        for (n = 1;; n++) {
            struct faulty f;
            faulty_install(&f, n);
            struct mh_heap_image d;
            mh_heap_image_init(&d, 0);
            int rc = mh_heap_parse(&d, b.file.data, b.file.len);
            if (rc == MH_OK)
                check_small(&d);
            else
                CHECK(strstr(d.error, "out of memory") != NULL);
            mh_heap_image_release(&d);
            faulty_remove(&f);
            CHECK(rc == MH_OK || rc == MH_ENOMEM);
            if (f.calls < n)
                break;
        }
        CHECK(n > 10);
        hg_release(&b);
    }
}

/* ------------------------------------------------------------------ */
/* Version-1 fixtures: written when missing, then read back exactly. */

static char *
data_path(char *out, size_t n, const char *name)
{
    const char *here = __FILE__;
    const char *slash = strrchr(here, '/');
    size_t dir = slash ? (size_t)(slash - here) : 0;
    snprintf(out, n, "%.*s%s../data/%s", (int)dir, here, dir ? "/" : "", name);
    return out;
}

/* The fixture's content: the small dump, or (zstd) the synthetic heap
 * with 300 items, big enough for its chunks to be compressed. */
static void
fixture_dump(struct hg *b, int level)
{
    if (!level) {
        small_dump(b, 0, 1);
        return;
    }
    hg_init(b, level, 0);
    b->chunk_bytes = 4096;
    hg_synthetic(b, 300);
    hg_finish(b);
    CHECK_EQ_INT(b->rc, MH_OK);
}

static void
check_fixture(const char *name, int level, int cut)
{
    char path[512];
    data_path(path, sizeof(path), name);
    struct hg b;
    fixture_dump(&b, level);
    size_t len = cut ? b.chunk_end[b.nchunks - 2] + 5 : b.file.len;
    struct stat st;
    if (stat(path, &st) != 0) {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        CHECK_EQ_INT(fwrite(b.file.data, 1, len, f), len);
        CHECK_EQ_INT(fclose(f), 0);
        fprintf(stderr, "wrote fixture %s\n", path);
    }
    struct mh_file f;
    int rc = mh_file_map(&f, path, 0, &mh_chunk_heap_input);
    if (rc)
        fprintf(stderr, "%s\n", f.error);
    CHECK_EQ_INT(rc, MH_OK);
    struct mh_heap_image d;
    mh_heap_image_init(&d, 0);
    rc = mh_heap_parse(&d, f.data, f.len);
    if (rc)
        fprintf(stderr, "%s: %s\n", path, d.error);
    CHECK_EQ_INT(rc, MH_OK);
    if (cut) {
        CHECK(d.truncated && !d.have_end);
        CHECK_EQ_INT(d.truncated_at, b.chunk_end[b.nchunks - 2]);
        CHECK_EQ_INT(d.nobjs, 2);
    } else if (!level) {
        CHECK(!d.truncated);
        check_small(&d);
    } else {
        CHECK(!d.truncated && d.have_end);
        CHECK_EQ_INT(d.nobjs, 624);
        CHECK_EQ_INT(d.nedges, 9 + 8 + 8 + 5 + 300 + 600);
        CHECK_EQ_INT(d.dangling, 0);
        int any = 0;
        for (size_t off = MH_CAP_FILE_HEADER_LEN; off + 10 <= f.len;) {
            any |= f.data[off + 9] & MH_CAP_CHUNK_ZSTD;
            off += 10 + (f.data[off + 1] | (size_t)f.data[off + 2] << 8 |
                         (size_t)f.data[off + 3] << 16);
        }
        CHECK(any);
    }
    mh_heap_image_release(&d);
    mh_file_unmap(&f);
    hg_release(&b);
}

MH_TEST(heap_fixtures_v1)
{
    check_fixture("heap-v1-small.mhh", 0, 0);
    check_fixture("heap-v1-zstd.mhh", 3, 0);
    check_fixture("heap-v1-truncated.mhh", 0, 1);
}
