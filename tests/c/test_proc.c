/* /proc and cgroup parsers on fixed text, the readers on this process,
 * and the growth slope. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/slope.h"
#include "cli/units.h"
#include "harness.h"
#include "util/proc.h"

MH_TEST(proc_stat_parses_odd_comm)
{
    /* comm with spaces and a ')' inside, as prctl(PR_SET_NAME) allows */
    const char *line =
        "4242 (gunicorn: a) b) S 4100 4242 4242 0 -1 4194560 1200 0 0 0 "
        "57 13 0 0 20 0 1 0 987654 123456789 2048 18446744073709551615 1 "
        "1 0 0 0 0 0 16781312 134418439 0 0 0 17 1 0 0 0 0 0\n";
    struct mh_proc_stat st;
    CHECK(!mh_proc_parse_stat(line, strlen(line), &st));
    CHECK_EQ_INT(st.pid, 4242);
    CHECK_EQ_STR(st.comm, "gunicorn: a) b");
    CHECK_EQ_INT(st.state, 'S');
    CHECK_EQ_INT(st.ppid, 4100);
    CHECK_EQ_INT(st.utime, 57);
    CHECK_EQ_INT(st.stime, 13);
    CHECK_EQ_INT(st.starttime, 987654);
    CHECK_EQ_INT(st.rss_pages, 2048);
}

MH_TEST(proc_stat_rejects_garbage)
{
    struct mh_proc_stat st;
    CHECK(mh_proc_parse_stat("", 0, &st));
    CHECK(mh_proc_parse_stat("12 (x", 5, &st));
    const char *short_line = "12 (x) S 1 2 3\n";
    CHECK(mh_proc_parse_stat(short_line, strlen(short_line), &st));
}

MH_TEST(proc_reads_self_and_children)
{
    struct mh_proc_stat st;
    CHECK(!mh_proc_read_stat(getpid(), &st));
    CHECK_EQ_INT(st.pid, getpid());
    CHECK_EQ_INT(st.ppid, getppid());
    CHECK(st.rss_pages > 0);
    double up = mh_proc_uptime();
    CHECK((double)st.starttime / mh_proc_ticks_per_second() <= up + 1);

    pid_t kid = fork();
    if (kid == 0) {
        pause();
        _exit(0);
    }
    long out[16];
    size_t n = 0;
    CHECK(!mh_proc_children(getpid(), out, 16, &n));
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= out[i] == kid;
    CHECK(found);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);

    struct mh_proc_mem m;
    CHECK(!mh_proc_read_mem(getpid(), &m));
    CHECK(m.rss > 0 && m.uss > 0 && m.uss <= m.rss);

    char cmd[256];
    size_t len;
    CHECK(!mh_proc_read_cmdline(getpid(), cmd, sizeof(cmd), &len));
    CHECK(len > 0);
    CHECK(mh_proc_read_stat(999999999, &st));
}

MH_TEST(proc_smaps_sums)
{
    const char *text = "55 ---p 00000000 00:00 0  [rollup]\n"
                       "Rss:                1736 kB\n"
                       "Pss:                 211 kB\n"
                       "Shared_Clean:       1584 kB\n"
                       "Private_Clean:        40 kB\n"
                       "Private_Dirty:       112 kB\n"
                       "Swap:                  8 kB\n"
                       "SwapPss:               8 kB\n";
    struct mh_proc_mem m;
    CHECK(!mh_proc_parse_smaps(text, strlen(text), &m));
    CHECK_EQ_INT(m.rss, 1736 * 1024);
    CHECK_EQ_INT(m.pss, 211 * 1024);
    CHECK_EQ_INT(m.uss, 152 * 1024);
    CHECK_EQ_INT(m.swap, 8 * 1024);
    CHECK(mh_proc_parse_smaps("nothing\n", 8, &m));
}

MH_TEST(proc_cgroup_lines)
{
    const char *hybrid = "9:name=systemd:/\n"
                         "4:memory,foo:/process_api/8d7d\n"
                         "0::/\n";
    char out[128];
    CHECK(!mh_proc_parse_cgroup(hybrid, strlen(hybrid), 1, out, 128));
    CHECK_EQ_STR(out, "/process_api/8d7d");
    CHECK(!mh_proc_parse_cgroup(hybrid, strlen(hybrid), 2, out, 128));
    CHECK_EQ_STR(out, "/");
    const char *v2 = "0::/system.slice/app.service\n";
    CHECK(!mh_proc_parse_cgroup(v2, strlen(v2), 2, out, 128));
    CHECK_EQ_STR(out, "/system.slice/app.service");
    CHECK(mh_proc_parse_cgroup(v2, strlen(v2), 1, out, 128));
    const char *memoryless = "3:memoryx:/a\n";
    CHECK(mh_proc_parse_cgroup(memoryless, strlen(memoryless), 1, out, 128));

    uint64_t v;
    CHECK(!mh_proc_parse_cgroup_value("max\n", 4, &v));
    CHECK(v == MH_CGROUP_NO_LIMIT);
    CHECK(!mh_proc_parse_cgroup_value("536870912\n", 10, &v));
    CHECK_EQ_INT(v, 536870912);
    CHECK(mh_proc_parse_cgroup_value("12x\n", 4, &v));

    const char *stat = "anon 100\nfile 200\ninactive_file 94208\n"
                       "total_inactive_file 5\n";
    CHECK(!mh_proc_parse_memory_stat(stat, strlen(stat), "inactive_file", &v));
    CHECK_EQ_INT(v, 94208);
    CHECK(!mh_proc_parse_memory_stat(stat, strlen(stat), "total_inactive_file",
                                     &v));
    CHECK_EQ_INT(v, 5);
    CHECK(mh_proc_parse_memory_stat(stat, strlen(stat), "inactive", &v));
}

MH_TEST(proc_cgroup_of_self)
{
    struct mh_cgroup_mem m;
    if (mh_proc_cgroup_find(getpid(), &m))
        return; /* no cgroup file system here */
    CHECK(m.version == 1 || m.version == 2);
    CHECK(!mh_proc_cgroup_read(&m));
    CHECK(m.current > 0);
    CHECK(m.inactive_file <= m.current);
}

MH_TEST(slope_fits_a_line)
{
    struct mh_slope s;
    mh_slope_init(&s, 0);
    struct mh_slope_fit f;
    mh_slope_add(&s, 1e6, 5e8);
    mh_slope_add(&s, 1e6 + 1, 5e8 + 1000);
    CHECK(mh_slope_fit(&s, &f)); /* two points: no fit */
    for (int i = 2; i < 100; i++)
        mh_slope_add(&s, 1e6 + i, 5e8 + 1000.0 * i);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(fabs(f.slope - 1000) < 1e-6);
    CHECK(fabs(f.r2 - 1) < 1e-9);
    CHECK(fabs(f.last - (5e8 + 99000)) < 1e-3);
    CHECK_EQ_INT(f.n, 100);
    CHECK(fabs(f.span - 99) < 1e-9);
    CHECK(fabs(mh_slope_time_to(&f, 1000, 11000) - 10) < 1e-9);
    CHECK(mh_slope_time_to(&f, 5, 4) == 0);
}

MH_TEST(slope_noise_and_flat)
{
    struct mh_slope s;
    mh_slope_init(&s, 0);
    struct mh_slope_fit f;
    for (int i = 0; i < 50; i++)
        mh_slope_add(&s, i, 100);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(f.slope == 0 && f.r2 == 1);
    CHECK(mh_slope_time_to(&f, 100, 200) < 0);
    mh_slope_init(&s, 0);
    /* alternating up and down: no trend, a poor fit */
    for (int i = 0; i < 50; i++)
        mh_slope_add(&s, i, (i % 2) ? 200 : 0);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK(f.r2 < 0.1);
}

MH_TEST(slope_window_and_ring)
{
    struct mh_slope s;
    mh_slope_init(&s, 10);
    for (int i = 0; i < 100; i++)
        mh_slope_add(&s, i, i < 80 ? 0 : 10.0 * (i - 80));
    struct mh_slope_fit f;
    CHECK(!mh_slope_fit(&s, &f));
    CHECK_EQ_INT(f.n, 11); /* t = 89..99 */
    CHECK(fabs(f.slope - 10) < 1e-9);
    /* the ring keeps the newest MH_SLOPE_CAP points */
    mh_slope_init(&s, 0);
    for (int i = 0; i < 3 * MH_SLOPE_CAP; i++)
        mh_slope_add(&s, i, 2.0 * i);
    CHECK(!mh_slope_fit(&s, &f));
    CHECK_EQ_INT(f.n, MH_SLOPE_CAP);
    CHECK(fabs(f.slope - 2) < 1e-9);
    /* time going back starts over */
    mh_slope_add(&s, 5, 1);
    CHECK(mh_slope_fit(&s, &f));
}

MH_TEST(units_sizes_and_durations)
{
    uint64_t b;
    CHECK(!mh_units_parse_size("512m", &b));
    CHECK_EQ_INT(b, 512ull << 20);
    CHECK(!mh_units_parse_size("1.5GiB", &b));
    CHECK_EQ_INT(b, 3ull << 29);
    CHECK(!mh_units_parse_size("4096", &b));
    CHECK_EQ_INT(b, 4096);
    CHECK(mh_units_parse_size("0", &b));
    CHECK(mh_units_parse_size("12q", &b));
    CHECK(mh_units_parse_size("-1m", &b));
    double d;
    CHECK(!mh_units_parse_duration("500ms", 0.1, &d) && d == 0.5);
    CHECK(!mh_units_parse_duration("1.5h", 0.1, &d) && d == 5400);
    CHECK(!mh_units_parse_duration("2d", 0.1, &d) && d == 172800);
    CHECK(!mh_units_parse_duration("0", 0, &d) && d == 0);
    CHECK(mh_units_parse_duration("0", 0.1, &d));
    CHECK(mh_units_parse_duration("50ms", 0.1, &d));
    CHECK(mh_units_parse_duration("5x", 0.1, &d));
    char out[32];
    CHECK_EQ_STR(mh_units_duration(45, out, sizeof(out)), "45s");
    CHECK_EQ_STR(mh_units_duration(7200, out, sizeof(out)), "2.0h");
    CHECK_EQ_STR(mh_units_duration(-1, out, sizeof(out)), "-");
    CHECK_EQ_STR(mh_units_size(3ull << 20, out, sizeof(out)), "3.0 MiB");
}
