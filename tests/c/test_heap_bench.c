/* The heap analyses at scale: a 1,000,000-object synthetic heap (500k
 * dicts + 500k str) through parse, census, diff and why, timed in
 * process. With MH_HEAP_BENCH_DIR set, the dumps are also written there
 * (old.mhh with 400k items, new.mhh with 500k) for timing the CLI. */
#include <stdlib.h>
#include <time.h>

#include "../../src/analysis/heap/census.h"
#include "../../src/analysis/heap/diff.h"
#include "../../src/analysis/heap/why.h"
#include "harness.h"
#include "heap_gen.h"

static void
gen(struct hg *b, uint32_t n)
{
    hg_init(b, 1, 0);
    b->chunk_bytes = 4u << 20;
    hg_synthetic(b, n);
    hg_finish(b);
    CHECK_EQ_INT(b->rc, MH_OK);
}

static void
save(const char *dir, const char *name, const struct mh_buf *file)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ_INT(fwrite(file->data, 1, file->len, f), file->len);
    CHECK_EQ_INT(fclose(f), 0);
    fprintf(stderr, "wrote %s (%zu bytes)\n", path, file->len);
}

MH_TEST(heap_bench_1m)
{
    struct hg old, cur;
    double t0 = mh_test_now();
    gen(&old, 400000);
    gen(&cur, 500000);
    double t1 = mh_test_now();
    const char *dir = getenv("MH_HEAP_BENCH_DIR");
    if (dir) {
        save(dir, "old.mhh", &old.file);
        save(dir, "new.mhh", &cur.file);
    }
    struct mh_heap_types types;
    struct mh_heap_session a, o;
    mh_heap_types_init(&types);
    mh_heap_session_init(&a);
    mh_heap_session_init(&o);
    double t2 = mh_test_now();
    CHECK_EQ_INT(
        mh_heap_session_load(&a, &types, cur.file.data, cur.file.len, 0),
        MH_OK);
    double t3 = mh_test_now();
    CHECK_EQ_INT(a.dump.nobjs, 1000024);
    struct mh_heap_census c;
    mh_heap_census_init(&c);
    CHECK_EQ_INT(mh_heap_census_build(&c, &a, types.n), MH_OK);
    double t4 = mh_test_now();
    CHECK_EQ_INT(
        mh_heap_session_load(&o, &types, old.file.data, old.file.len, 0),
        MH_OK);
    struct mh_heap_diff df;
    mh_heap_diff_init(&df);
    CHECK_EQ_INT(mh_heap_diff_build(&df, &o, &a, types.n), MH_OK);
    CHECK_EQ_INT(df.new_count, 200000);
    double t5 = mh_test_now();
    struct mh_heap_why w;
    mh_heap_why_init(&w);
    CHECK_EQ_INT(mh_heap_why_select_type(
                     &w, &a, mh_heap_types_find(&types, "str"), types.n),
                 MH_OK);
    CHECK_EQ_INT(mh_heap_why_build(&w, &a, &types), MH_OK);
    double t6 = mh_test_now();
    CHECK_EQ_INT(w.paths.rows[0].count, 500000);
    CHECK_EQ_STR(w.paths.rows[0].path,
                 "sys.modules['app.db'].connections._connections['default']"
                 ".queries_log[*]['sql']");
    fprintf(stderr,
            "generate %.2fs; parse+search %.3fs, census (dominators) %.3fs, "
            "load old + diff %.3fs, why --type str %.3fs\n",
            t1 - t0, t3 - t2, t4 - t3, t5 - t4, t6 - t5);
    mh_heap_why_release(&w);
    mh_heap_diff_release(&df);
    mh_heap_census_release(&c);
    mh_heap_session_release(&o);
    mh_heap_session_release(&a);
    mh_heap_types_release(&types);
    hg_release(&old);
    hg_release(&cur);
}
