/* The joined leak report (src/analysis/report/heap_section.h): a capture whose
 * markers name heap dumps, the dumps on disk, and what the join makes of
 * them; its renderers; allocation failure at every step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/analysis/report/heap_section.h"
#include "../../src/format/capture_write.h"
#include "../../src/cli/cli.h"
#include "../../src/render/heap_section.h"
#include "../../src/util/mem.h"
#include "faulty.h"
#include "harness.h"
#include "heap_gen.h"

#define PID 4242 /* heap_gen.c's dumps say so */
#define OLD_STRS 100
#define NEW_STRS 250
#define OLD_LEAKS 10
#define NEW_LEAKS 70

struct fixture {
    char dir[64];
    char old_path[128], new_path[128], gone_path[128];
    uint8_t *cap;
    size_t cap_len;
};

/* A heap: sys.modules -> module dict -> 'cache' list -> n strs (each
 * allocated at stack 1), `leaks` strs no walk found (stack 2), and as
 * many lists nothing references (stack 2, refcount 1). Trace-all: the
 * ALLOC records stand for themselves. */
static void
write_dump(const char *path, uint32_t n, uint32_t leaks)
{
    struct hg b;
    hg_init(&b, 3, 0);
    uint64_t t_dict = hg_type(&b, "dict", 1);
    uint64_t t_list = hg_type(&b, "list", 1);
    uint64_t t_str = hg_type(&b, "str", 0);
    uint64_t s_mods = hg_string(&b, "sys.modules");
    uint64_t s_cache = hg_string(&b, "'cache'");
    hg_root(&b, 0, s_mods, 0x100000);
    uint64_t t1[] = {0x200000}, l1[] = {hg_label(s_cache, 2)};
    hg_object(&b, 0x100000, t_dict, 232, 1, 1, t1, l1, 1);
    uint64_t *targets = calloc(n, sizeof(uint64_t));
    uint64_t *labels = calloc(n, sizeof(uint64_t));
    CHECK(targets && labels);
    for (uint32_t i = 0; i < n; i++) {
        targets[i] = 0x300000 + (uint64_t)i * 0x100;
        labels[i] = hg_label(0, 3);
    }
    hg_object(&b, 0x200000, t_list, 56 + 8 * n, 1, 1, targets, labels, n);
    for (uint32_t i = 0; i < n; i++) {
        hg_object(&b, targets[i], t_str, 100, 1, 0, NULL, NULL, 0);
        hg_alloc(&b, targets[i], 100, 1, targets[i], 0);
    }
    for (uint32_t i = 0; i < leaks; i++) {
        uint64_t lst = 0x800000 + (uint64_t)i * 0x100;
        hg_object(&b, lst, t_list, 56, 1, 1, NULL, NULL, 0);
        hg_alloc(&b, lst - 16, 72, 2, lst, 0);
        hg_alloc(&b, 0x900000 + (uint64_t)i * 0x100, 250, 2, 0, t_str);
    }
    hg_finish(&b);
    CHECK_EQ_INT(b.rc, MH_OK);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK_EQ_INT(fwrite(b.file.data, 1, b.file.len, f), b.file.len);
    fclose(f);
    hg_release(&b);
    free(targets);
    free(labels);
}

#define PUT(x) CHECK_EQ_INT((x), MH_OK)

static void
seal(struct mh_buf *file, struct mh_buf *chunk, struct mh_buf *scratch)
{
    PUT(mh_cap_chunk_seal(file, chunk->data, chunk->len, 0, scratch));
    mh_buf_reset(chunk);
}

/* A capture of pid PID with stacks 1 (app.py:10 in fill, from
 * main.py:3) and 2 (ext.py:20 in leak), naming three dumps. */
static void
fixture_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/mh-test-joined-XXXXXX");
    CHECK(mkdtemp(fx->dir));
    snprintf(fx->old_path, sizeof(fx->old_path), "%s/a.heap1.mhh", fx->dir);
    snprintf(fx->new_path, sizeof(fx->new_path), "%s/a.heap2.mhh", fx->dir);
    snprintf(fx->gone_path, sizeof(fx->gone_path), "%s/a.heap3.mhh", fx->dir);
    write_dump(fx->old_path, OLD_STRS, OLD_LEAKS);
    write_dump(fx->new_path, NEW_STRS, NEW_LEAKS);

    struct mh_buf file, chunk, scratch;
    mh_buf_init(&file, 1u << 24);
    mh_buf_init(&chunk, 1u << 24);
    mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
    static const struct mh_str lib = {"/usr/lib/python3", 16};
    struct mh_cap_header h = {
        .pid = PID,
        .ppid = 1,
        .start_ns = 1700000000000000000ull,
        .mode = MH_MODE_TRACE,
        .interval = 0,
        .max_depth = 128,
        .python = {"3.11.7", 6},
        .executable = {"/usr/bin/python3", 16},
        .nlib = 1,
        .lib_prefixes = &lib,
    };
    PUT(mh_cap_put_file_header(&file));
    PUT(mh_cap_put_header(&chunk, &h));
    static const char *const strs[] = {"/srv/app.py",
                                       "fill",
                                       "/srv/main.py",
                                       "<module>",
                                       "/usr/lib/python3/ext.py",
                                       "leak"};
    for (uint32_t i = 0; i < 6; i++)
        PUT(mh_cap_put_string(&chunk, i + 1, strs[i], strlen(strs[i])));
    PUT(mh_cap_put_code(&chunk, 1, 1, 2, 5));
    PUT(mh_cap_put_code(&chunk, 2, 3, 4, 1));
    PUT(mh_cap_put_code(&chunk, 3, 5, 6, 15));
    PUT(mh_cap_put_frame(&chunk, 1, 1, 10, 20));
    PUT(mh_cap_put_frame(&chunk, 2, 2, 3, 8));
    PUT(mh_cap_put_frame(&chunk, 3, 3, 20, 4));
    uint32_t s1[] = {1, 2}, s2[] = {3, 2};
    PUT(mh_cap_put_stack(&chunk, 1, 2, s1));
    PUT(mh_cap_put_stack(&chunk, 2, 2, s2));
    seal(&file, &chunk, &scratch);
    const char *paths[] = {fx->old_path, fx->new_path, fx->gone_path};
    for (int i = 0; i < 3; i++) {
        PUT(mh_cap_put_marker(&chunk, (uint64_t)(i + 1) * 1000000000ull,
                              MH_MARK_HEAP_DUMP, paths[i], strlen(paths[i])));
        PUT(mh_cap_put_marker(&chunk, 1, MH_MARK_USER, "not a dump", 10));
        seal(&file, &chunk, &scratch);
    }
    PUT(mh_cap_put_end(&chunk, 4000000000ull, 0, 0, 0));
    seal(&file, &chunk, &scratch);
    fx->cap = mh_buf_take(&file, &fx->cap_len);
    mh_buf_release(&chunk);
    mh_buf_release(&scratch);
}

static void
fixture_release(struct fixture *fx)
{
    unlink(fx->old_path);
    unlink(fx->new_path);
    rmdir(fx->dir);
    mh_free(fx->cap);
}

static const struct mh_heap_section_leak *
find_leak(const struct mh_heap_section *j,
          const struct mh_heap_section_proc *p,
          enum mh_heap_section_leak_kind kind, const char *type)
{
    for (size_t i = 0; i < p->nleaks; i++)
        if (p->leaks[i].kind == kind &&
            !strcmp(mh_heap_section_str(j, p->leaks[i].type), type))
            return &p->leaks[i];
    return NULL;
}

MH_TEST(joined_report_from_markers)
{
    struct fixture fx;
    fixture_init(&fx);
    struct mh_heap_section j;
    mh_heap_section_init(&j, &mh_report_dump_files);
    int rc = mh_heap_section_add(&j, "/srv/a.mhc", fx.cap, fx.cap_len, 0);
    if (rc)
        fprintf(stderr, "%s\n", j.error);
    CHECK_EQ_INT(rc, MH_OK);
    mh_heap_section_finish(&j);

    CHECK_EQ_INT(j.ndumps, 3);
    CHECK_EQ_STR(mh_heap_section_str(&j, j.dumps[0].path), fx.old_path);
    CHECK_EQ_INT(j.dumps[0].pid, PID);
    CHECK(j.dumps[0].exists && j.dumps[1].exists && !j.dumps[2].exists);
    CHECK_EQ_INT(j.dumps[0].status, MH_JDUMP_USED);
    CHECK_EQ_INT(j.dumps[1].status, MH_JDUMP_USED);
    CHECK(j.dumps[1].t > 1.99 && j.dumps[1].t < 2.01);

    CHECK_EQ_INT(j.nprocs, 1);
    const struct mh_heap_section_proc *p = &j.procs[0];
    CHECK_EQ_INT(p->pid, PID);
    CHECK_EQ_INT(p->old_dump, 0);
    CHECK_EQ_INT(p->new_dump, 1);
    CHECK(!p->sampled && p->has_allocs);

    /* What grows: str first (150 x 100 bytes), then list. */
    CHECK(p->ntypes >= 2);
    const struct mh_heap_section_type *t = &p->types[0];
    CHECK_EQ_STR(mh_heap_section_str(&j, t->name), "str");
    CHECK_EQ_INT(t->count_delta, NEW_STRS - OLD_STRS);
    CHECK_EQ_INT(t->bytes_delta, (NEW_STRS - OLD_STRS) * 100);
    /* Where: the walked strs at app.py:10 (the unwalked ones are leaks,
     * below). */
    CHECK_EQ_INT(t->nsites, 1);
    const struct mh_heap_section_site *s = &t->sites[0];
    CHECK_EQ_STR(mh_heap_section_str(&j, s->file), "/srv/app.py");
    CHECK_EQ_INT(s->line, 10);
    CHECK_EQ_STR(mh_heap_section_str(&j, s->function), "fill");
    CHECK_EQ_INT(s->user_file, 0); /* the innermost frame is user code */
    CHECK(s->growth_count == NEW_STRS - OLD_STRS);
    CHECK(s->bytes == NEW_STRS * 100);
    /* Who holds it: the new strs, in one row. */
    CHECK_EQ_INT(t->npaths, 1);
    CHECK(strstr(mh_heap_section_str(&j, t->paths[0].text), "['cache']") !=
          NULL);
    CHECK_EQ_INT(t->paths[0].count, NEW_STRS - OLD_STRS);

    /* Leaked below Python, by how much they grew. */
    const struct mh_heap_section_leak *l =
        find_leak(&j, p, MH_LEAK_UNREACHABLE, "str");
    CHECK(l != NULL);
    CHECK_EQ_INT(l->site.line, 20);
    CHECK_EQ_STR(mh_heap_section_str(&j, l->site.file),
                 "/usr/lib/python3/ext.py");
    /* ext.py is library code: the user's frame that called it */
    CHECK_EQ_STR(mh_heap_section_str(&j, l->site.user_file), "/srv/main.py");
    CHECK_EQ_INT(l->site.user_line, 3);
    CHECK(l->site.growth_count == NEW_LEAKS - OLD_LEAKS);
    CHECK(l->site.growth_bytes == (NEW_LEAKS - OLD_LEAKS) * 250);
    l = find_leak(&j, p, MH_LEAK_HIDDEN, "list");
    CHECK(l != NULL);
    CHECK(l->site.growth_count == NEW_LEAKS - OLD_LEAKS);
    CHECK(l->site.growth_bytes == (NEW_LEAKS - OLD_LEAKS) * 72);
    CHECK_EQ_INT(p->leaks[0].kind, MH_LEAK_UNREACHABLE);

    /* The renderers. */
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    CHECK_EQ_INT(mh_heap_section_text_render(f, &j), MH_OK);
    fclose(f);
    CHECK(strstr(text, "a.heap3.mhh: gone") != NULL);
    CHECK(strstr(text, "allocated at") != NULL);
    CHECK(strstr(text, "/srv/app.py:10 in fill") != NULL);
    CHECK(strstr(text, "live but unreachable at /usr/lib/python3/ext.py:20 "
                       "in leak (from /srv/main.py:3 in <module>)") != NULL);
    CHECK(strstr(text, "held by references the GC cannot see") != NULL);
    free(text);
    f = open_memstream(&text, &n);
    fputs("{", f);
    CHECK_EQ_INT(mh_heap_section_json_render(f, &j), MH_OK);
    fputs("}", f);
    fclose(f);
    CHECK(strstr(text, "\"problem\": \"gone\"") != NULL);
    CHECK(strstr(text, "\"kind\": \"unreachable\", \"type\": \"str\"") !=
          NULL);
    CHECK(strstr(text, "\"kind\": \"held_by_hidden_references\"") != NULL);
    free(text);
    mh_heap_section_release(&j);
    fixture_release(&fx);
}

MH_TEST(joined_one_dump_or_none)
{
    struct fixture fx;
    fixture_init(&fx);
    unlink(fx.old_path); /* one dump left: listed, nothing compared */
    struct mh_heap_section j;
    mh_heap_section_init(&j, &mh_report_dump_files);
    CHECK_EQ_INT(mh_heap_section_add(&j, "a.mhc", fx.cap, fx.cap_len, 0),
                 MH_OK);
    CHECK_EQ_INT(j.ndumps, 3);
    CHECK_EQ_INT(j.nprocs, 0);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    CHECK_EQ_INT(mh_heap_section_text_render(f, &j), MH_OK);
    fclose(f);
    CHECK(strstr(text, "memhound snapshot 4242") != NULL);
    free(text);
    mh_heap_section_release(&j);

    /* A dump cut short is named as such and not used. */
    write_dump(fx.old_path, OLD_STRS, OLD_LEAKS);
    FILE *g = fopen(fx.new_path, "r+b");
    CHECK(g);
    fseek(g, 0, SEEK_END);
    long len = ftell(g);
    fclose(g);
    CHECK_EQ_INT(truncate(fx.new_path, len - 5), 0);
    mh_heap_section_init(&j, &mh_report_dump_files);
    CHECK_EQ_INT(mh_heap_section_add(&j, "a.mhc", fx.cap, fx.cap_len, 0),
                 MH_OK);
    CHECK_EQ_INT(j.nprocs, 0);
    CHECK_EQ_INT(j.dumps[1].status, MH_JDUMP_BAD);
    /* (one chunk: the reader says it is cut before its HEADER) */
    CHECK(j.dumps[1].reason != 0);
    mh_heap_section_release(&j);

    /* A capture without markers: no dumps, no text. */
    static const uint8_t none[] = "\x89MHC\r\n\x1a\n\x01\x00\x00\x00";
    mh_heap_section_init(&j, &mh_report_dump_files);
    CHECK_EQ_INT(mh_heap_section_add(&j, "b.mhc", none, 12, 0), MH_OK);
    CHECK_EQ_INT(j.ndumps, 0);
    f = open_memstream(&text, &n);
    CHECK_EQ_INT(mh_heap_section_text_render(f, &j), MH_OK);
    fclose(f);
    CHECK_EQ_INT(n, 0);
    free(text);
    mh_heap_section_release(&j);
    fixture_release(&fx);
}

/* Allocation N fails, for every N: no crash, no leak, and the join
 * either completes or says it ran out of memory. */
MH_TEST(joined_fault_injection)
{
    struct fixture fx;
    fixture_init(&fx);
    long n;
    for (n = 1;; n++) {
        struct faulty f;
        faulty_install(&f, n);
        struct mh_heap_section j;
        mh_heap_section_init(&j, &mh_report_dump_files);
        int rc = mh_heap_section_add(&j, "a.mhc", fx.cap, fx.cap_len, 0);
        mh_heap_section_finish(&j);
        size_t nprocs = j.nprocs;
        mh_heap_section_release(&j);
        faulty_remove(&f);
        CHECK(rc == MH_OK || rc == MH_ENOMEM);
        if (f.calls < n) {
            CHECK_EQ_INT(rc, MH_OK);
            CHECK_EQ_INT(nprocs, 1);
            break;
        }
    }
    CHECK(n > 20);
    fixture_release(&fx);
}
