/* /proc and cgroup readers (proc.h). Files are small and read whole into
 * a stack buffer; every read is bounded by that buffer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP2_MAGIC 0x63677270
/* v1 reports "no limit" as PAGE_COUNTER_MAX pages, about 2^63; any
 * limit this large is none. */
#define V1_NO_LIMIT (UINT64_C(1) << 62)

/* Reads up to n - 1 bytes of `path` into buf, NUL-terminated. */
static int
read_small(const char *path, char *buf, size_t n, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MH_EIO;
    size_t got = 0;
    while (got < n - 1) {
        ssize_t k = read(fd, buf + got, n - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int err = errno;
            close(fd);
            errno = err;
            return MH_EIO;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return MH_OK;
}

/* read_small() on /proc/<pid>/<name>. */
static int
read_pid_file(long pid, const char *name, char *buf, size_t n, size_t *len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/%s", pid, name);
    return read_small(path, buf, n, len);
}

/* Parses an unsigned decimal at *p, moving past it. */
static int
take_ull(const char **p, const char *end, unsigned long long *v)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return MH_EFORMAT;
    unsigned long long x = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (x > (~0ULL - d) / 10)
            return MH_EFORMAT;
        x = x * 10 + d;
        s++;
    }
    *p = s;
    *v = x;
    return MH_OK;
}

/* Skips one space-separated field (which may be negative). */
static int
skip_field(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s >= end)
        return MH_EFORMAT;
    while (s < end && *s != ' ' && *s != '\n')
        s++;
    *p = s;
    return MH_OK;
}

int
mh_proc_exists(long pid)
{
    return !kill((pid_t)pid, 0) || errno != ESRCH;
}

int
mh_proc_parse_stat(const char *text, size_t len, struct mh_proc_stat *st)
{
    const char *end = text + len;
    const char *open = memchr(text, '(', len);
    const char *close = NULL;
    for (const char *q = end; q > text; q--)
        if (q[-1] == ')') {
            close = q - 1;
            break;
        }
    if (!open || !close || close < open)
        return MH_EFORMAT;
    memset(st, 0, sizeof(*st));
    unsigned long long v;
    const char *p = text;
    if (take_ull(&p, open, &v))
        return MH_EFORMAT;
    st->pid = (long)v;
    size_t cn = (size_t)(close - open - 1);
    if (cn >= sizeof(st->comm))
        cn = sizeof(st->comm) - 1;
    memcpy(st->comm, open + 1, cn);
    st->comm[cn] = '\0';
    p = close + 1;
    while (p < end && *p == ' ')
        p++;
    if (p >= end)
        return MH_EFORMAT;
    st->state = *p++;
    /* Fields 4 on; the ones we keep are all non-negative. */
    for (int field = 4; field <= 24; field++) {
        switch (field) {
        case 4:
        case 14:
        case 15:
        case 22:
        case 24:
            if (take_ull(&p, end, &v))
                return MH_EFORMAT;
            break;
        default:
            if (skip_field(&p, end))
                return MH_EFORMAT;
            continue;
        }
        if (field == 4)
            st->ppid = (long)v;
        else if (field == 14)
            st->utime = v;
        else if (field == 15)
            st->stime = v;
        else if (field == 22)
            st->starttime = v;
        else
            st->rss_pages = v;
    }
    return MH_OK;
}

int
mh_proc_read_stat(long pid, struct mh_proc_stat *st)
{
    char buf[1024];
    size_t len;
    int rc = read_pid_file(pid, "stat", buf, sizeof(buf), &len);
    if (rc)
        return rc;
    return mh_proc_parse_stat(buf, len, st);
}

int
mh_proc_parse_smaps(const char *text, size_t len, struct mh_proc_mem *m)
{
    static const struct {
        const char *key;
        int which; /* 0 rss, 1 pss, 2 uss, 3 swap */
    } keys[] = {{"Rss:", 0},
                {"Pss:", 1},
                {"Private_Clean:", 2},
                {"Private_Dirty:", 2},
                {"Swap:", 3}};
    uint64_t sum[4] = {0, 0, 0, 0};
    int found = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            size_t k = strlen(keys[i].key);
            if ((size_t)(eol - p) > k && !memcmp(p, keys[i].key, k)) {
                const char *q = p + k;
                unsigned long long kb;
                if (take_ull(&q, eol, &kb))
                    return MH_EFORMAT;
                sum[keys[i].which] += (uint64_t)kb * 1024;
                found = 1;
                break;
            }
        }
        p = eol + 1;
    }
    if (!found)
        return MH_EFORMAT;
    m->rss = sum[0];
    m->pss = sum[1];
    m->uss = sum[2];
    m->swap = sum[3];
    return MH_OK;
}

int
mh_proc_read_mem(long pid, struct mh_proc_mem *m)
{
    char path[64], buf[4096];
    size_t len;
    int rc = read_pid_file(pid, "smaps_rollup", buf, sizeof(buf), &len);
    if (!rc)
        return mh_proc_parse_smaps(buf, len, m);
    if (errno != ENOENT)
        return rc;
    /* Before 4.14: sum smaps, which may be long; read it in pieces, each
     * piece cut at its last newline. */
    snprintf(path, sizeof(path), "/proc/%ld/smaps", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return MH_EIO;
    memset(m, 0, sizeof(*m));
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        struct mh_proc_mem one;
        if (!mh_proc_parse_smaps(line, strlen(line), &one)) {
            m->rss += one.rss;
            m->pss += one.pss;
            m->uss += one.uss;
            m->swap += one.swap;
        }
    }
    fclose(f);
    return MH_OK;
}

/* Adds the pids in a task's children file ("12 34 56 ") to out. */
static int
add_children(const char *text, long *out, size_t max, size_t *n)
{
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (!*p)
            return MH_OK;
        char *e;
        long pid = strtol(p, &e, 10);
        if (e == p)
            return MH_EFORMAT;
        p = e;
        int dup = 0;
        for (size_t i = 0; i < *n && i < max && !dup; i++)
            dup = out[i] == pid;
        if (dup)
            continue;
        if (*n >= max)
            return MH_ETOOBIG;
        out[(*n)++] = pid;
    }
}

static int
children_from_tasks(long pid, long *out, size_t max, size_t *n)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return MH_EIO;
    int rc = MH_OK;
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char file[96], buf[8192];
        size_t len;
        snprintf(file, sizeof(file), "/proc/%ld/task/%.20s/children", pid,
                 e->d_name);
        if (read_small(file, buf, sizeof(buf), &len)) {
            if (errno == ENOENT || errno == ESRCH)
                continue; /* a thread that just ended */
            rc = MH_EIO;
            break;
        }
        rc = add_children(buf, out, max, n);
    }
    closedir(d);
    return rc;
}

/* Without children files: every process's stat, keeping those whose
 * parent is pid. Costs one open per process on the machine. */
static int
children_from_scan(long pid, long *out, size_t max, size_t *n)
{
    DIR *d = opendir("/proc");
    if (!d)
        return MH_EIO;
    int rc = MH_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char file[64], buf[1024];
        size_t len;
        snprintf(file, sizeof(file), "%.20s/stat", e->d_name);
        int fd = openat(dirfd(d), file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone meanwhile */
        ssize_t k;
        do
            k = read(fd, buf, sizeof(buf) - 1);
        while (k < 0 && errno == EINTR);
        close(fd);
        if (k <= 0)
            continue;
        len = (size_t)k;
        buf[len] = '\0';
        struct mh_proc_stat st;
        if (mh_proc_parse_stat(buf, len, &st) || st.ppid != pid)
            continue;
        if (*n >= max) {
            rc = MH_ETOOBIG;
            break;
        }
        out[(*n)++] = st.pid;
    }
    closedir(d);
    return rc;
}

int
mh_proc_children(long pid, long *out, size_t max, size_t *n)
{
    *n = 0;
    char path[96];
    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
    if (!access(path, R_OK))
        return children_from_tasks(pid, out, max, n);
    snprintf(path, sizeof(path), "/proc/%ld", pid);
    if (access(path, F_OK))
        return MH_EIO;
    return children_from_scan(pid, out, max, n);
}

int
mh_proc_read_cmdline(long pid, char *buf, size_t n, size_t *len)
{
    return read_pid_file(pid, "cmdline", buf, n, len);
}

double
mh_proc_uptime(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_BOOTTIME, &ts))
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long
mh_proc_ticks_per_second(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}

long
mh_proc_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? p : 4096;
}

/* ---- cgroups ---- */

int
mh_proc_parse_cgroup(const char *text, size_t len, int version, char *out,
                     size_t n)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        /* hierarchy-ID:controller-list:path */
        const char *c1 = memchr(p, ':', (size_t)(eol - p));
        const char *c2 =
            c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2) {
            int match = 0;
            if (version == 2) {
                match = c1 - p == 1 && p[0] == '0' && c2 == c1 + 1;
            } else {
                const char *w = c1 + 1;
                while (w < c2 && !match) {
                    const char *comma = memchr(w, ',', (size_t)(c2 - w));
                    const char *we = comma ? comma : c2;
                    match = we - w == 6 && !memcmp(w, "memory", 6);
                    w = we + 1;
                }
            }
            if (match) {
                size_t k = (size_t)(eol - c2 - 1);
                if (k == 0 || c2[1] != '/' || k >= n)
                    return MH_EFORMAT;
                memcpy(out, c2 + 1, k);
                out[k] = '\0';
                return MH_OK;
            }
        }
        p = eol + 1;
    }
    return MH_EFORMAT;
}

int
mh_proc_parse_cgroup_value(const char *text, size_t len, uint64_t *v)
{
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    if (len == 3 && !memcmp(text, "max", 3)) {
        *v = MH_CGROUP_NO_LIMIT;
        return MH_OK;
    }
    const char *p = text;
    unsigned long long x;
    if (take_ull(&p, text + len, &x) || p != text + len)
        return MH_EFORMAT;
    *v = x;
    return MH_OK;
}

int
mh_proc_parse_memory_stat(const char *text, size_t len, const char *key,
                          uint64_t *v)
{
    size_t k = strlen(key);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if ((size_t)(eol - p) > k + 1 && !memcmp(p, key, k) && p[k] == ' ') {
            const char *q = p + k;
            unsigned long long x;
            if (take_ull(&q, eol, &x))
                return MH_EFORMAT;
            *v = x;
            return MH_OK;
        }
        p = eol + 1;
    }
    return MH_EFORMAT;
}

static int
is_dir(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISDIR(st.st_mode);
}

int
mh_proc_cgroup_find(long pid, struct mh_cgroup_mem *m)
{
    memset(m, 0, sizeof(*m));
    m->limit = MH_CGROUP_NO_LIMIT;
    struct statfs sf;
    int v2 = !statfs(CGROUP_ROOT, &sf) && sf.f_type == CGROUP2_MAGIC;
    const char *root = v2 ? CGROUP_ROOT : CGROUP_ROOT "/memory";
    if (!is_dir(root)) {
        errno = ENOENT;
        return MH_EIO;
    }
    char text[4096], rel[400];
    size_t len;
    int rc = read_pid_file(pid, "cgroup", text, sizeof(text), &len);
    if (rc)
        return rc;
    m->version = v2 ? 2 : 1;
    if (mh_proc_parse_cgroup(text, len, m->version, rel, sizeof(rel)))
        snprintf(rel, sizeof(rel), "/");
    int k = snprintf(m->dir, sizeof(m->dir), "%s%s", root,
                     strcmp(rel, "/") ? rel : "");
    if (k < 0 || (size_t)k >= sizeof(m->dir) || !is_dir(m->dir))
        snprintf(m->dir, sizeof(m->dir), "%s", root);
    return MH_OK;
}

/* Reads a value file of the cgroup dir. */
static int
read_value(const char *dir, const char *name, uint64_t *v)
{
    char path[700], buf[64];
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = read_small(path, buf, sizeof(buf), &len);
    if (rc)
        return rc;
    return mh_proc_parse_cgroup_value(buf, len, v);
}

int
mh_proc_cgroup_read(struct mh_cgroup_mem *m)
{
    char path[700], stat[8192];
    size_t len;
    uint64_t v;
    m->limit = MH_CGROUP_NO_LIMIT;
    m->inactive_file = 0;
    snprintf(path, sizeof(path), "%s/memory.stat", m->dir);
    int have_stat = !read_small(path, stat, sizeof(stat), &len);
    if (m->version == 2) {
        if (read_value(m->dir, "memory.current", &m->current))
            return MH_EIO;
        /* memory.max of this cgroup and of each ancestor below the root
         * (the root has none). */
        char dir[sizeof(m->dir)];
        snprintf(dir, sizeof(dir), "%s", m->dir);
        size_t rootlen = strlen(CGROUP_ROOT);
        while (strlen(dir) > rootlen) {
            if (!read_value(dir, "memory.max", &v) && v < m->limit)
                m->limit = v;
            char *slash = strrchr(dir, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
        if (have_stat)
            (void)!mh_proc_parse_memory_stat(stat, len, "inactive_file",
                                             &m->inactive_file);
    } else {
        if (read_value(m->dir, "memory.usage_in_bytes", &m->current))
            return MH_EIO;
        if (!read_value(m->dir, "memory.limit_in_bytes", &v) && v < m->limit)
            m->limit = v;
        if (have_stat) {
            if (!mh_proc_parse_memory_stat(stat, len,
                                           "hierarchical_memory_limit", &v) &&
                v < m->limit)
                m->limit = v;
            if (mh_proc_parse_memory_stat(stat, len, "total_inactive_file",
                                          &m->inactive_file))
                (void)!mh_proc_parse_memory_stat(stat, len, "inactive_file",
                                                 &m->inactive_file);
        }
        if (m->limit >= V1_NO_LIMIT)
            m->limit = MH_CGROUP_NO_LIMIT;
    }
    if (m->inactive_file > m->current)
        m->inactive_file = m->current;
    return MH_OK;
}
