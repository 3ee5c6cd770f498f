/* Allocator statistics for the timeline and `stats` (allocstats.h).
 *
 * pymalloc: _PyObject_DebugMallocStats() is what sys._debugmallocstats()
 * prints; it is exported by 3.9-3.13 (declared in internal headers from
 * 3.11 on, hence our own declaration) and reads obmalloc's state without
 * running Python code, so it cannot re-enter the target. It prints into
 * a fixed buffer (fmemopen): no allocation that grows with the heap. It
 * returns 0 without printing when pymalloc is not the allocator
 * (PYTHONMALLOC=malloc): the fields are then absent, not zero.
 *
 * It decides that by comparing the OBJ domain's malloc with pymalloc's,
 * and our hook sits there: for the call, the allocator we wrapped is put
 * back. Safe with the GIL held: the OBJ domain is only used under it,
 * and the call allocates nothing. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/fd.h"
#include "allocstats.h"
#include "tracker.h"

int _PyObject_DebugMallocStats(FILE *out);

/* The full output is ~5 KB (a line per size class); the totals we read
 * come after the size class table, well inside this. */
#define PYSTATS_BUF 32768

static struct mh_allocstats cache; /* the writer thread's */
static char pytext[PYSTATS_BUF];   /* likewise */

/* The number after the '=' on the line starting at p, ignoring ','. */
static uint64_t
value_after_eq(const char *p, const char *end)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));
    uint64_t v = 0;
    if (!eq)
        return 0;
    for (const char *q = eq + 1; q < end && *q != '\n'; q++)
        if (*q >= '0' && *q <= '9')
            v = v * 10 + (uint64_t)(*q - '0');
    return v;
}

int
mh_allocstats_parse_pymalloc(const char *text, size_t len,
                             uint64_t *arena_bytes, uint64_t *arena_free)
{
    const char *p = text, *end = text + len;
    int have_arenas = 0;
    *arena_bytes = *arena_free = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        /* Only the first block's lines: later "Total" lines are the
         * arena map's. */
        if (!have_arenas && memmem(p, n, " bytes/arena", 12)) {
            *arena_bytes = value_after_eq(p, le);
            have_arenas = 1;
        } else if (memmem(p, n, "# bytes in available blocks", 27) ||
                   memmem(p, n, " unused pools * ", 16)) {
            *arena_free += value_after_eq(p, le);
        }
        p = le + 1;
    }
    return have_arenas ? 0 : -1;
}

/* /proc/self/statm stays open, high (util/fd.h), and is read with
 * pread: opened anew every tick, it would for a moment hold one of the
 * low numbers that a program's os.closerange() + open() hands to its own
 * file, which memhound would then read from and close. Reopened in a
 * forked child (it names the process that opened it) and when the
 * program took the number. Only the writer thread calls this. */
static struct {
    int fd;
    pid_t pid;
    struct mh_fd_id id;
} statm = {.fd = -1};

static int
statm_fd(void)
{
    pid_t pid = getpid();
    if (statm.fd >= 0 && statm.pid == pid && mh_fd_is(statm.fd, &statm.id))
        return statm.fd;
    if (statm.fd >= 0 && statm.pid != pid && mh_fd_is(statm.fd, &statm.id))
        close(statm.fd); /* the parent's, inherited: ours to close */
    statm.fd = mh_fd_move_high(open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
    if (statm.fd >= 0 && mh_fd_id_get(statm.fd, &statm.id)) {
        close(statm.fd);
        statm.fd = -1;
    }
    statm.pid = pid;
    return statm.fd;
}

uint64_t
mh_allocstats_rss(void)
{
    char buf[128];
    int fd = statm_fd();
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strchr(buf, ' ');
    if (!p)
        return 0;
    return strtoull(p + 1, NULL, 10) * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void
refresh_pymalloc(void)
{
    FILE *f = fmemopen(pytext, sizeof(pytext) - 1, "w");
    if (!f)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyMemAllocatorEx cur;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur);
    int swap = mh_tracker.hooks_installed &&
               cur.malloc == mh_tracker.dom[MH_DOMAIN_OBJ].ours.malloc;
    if (swap)
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ,
                           &mh_tracker.dom[MH_DOMAIN_OBJ].prev);
    int printed = _PyObject_DebugMallocStats(f);
    if (swap)
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &cur);
    PyGILState_Release(g);
    long len = ftell(f);
    fclose(f);
    uint64_t ab, af;
    if (!printed || len <= 0 ||
        mh_allocstats_parse_pymalloc(pytext, (size_t)len, &ab, &af)) {
        cache.flags &= ~(uint64_t)MH_TL_PYMALLOC;
        cache.arena_bytes = cache.arena_free = 0;
        return;
    }
    cache.flags |= MH_TL_PYMALLOC;
    cache.arena_bytes = ab;
    cache.arena_free = af;
}

void
mh_allocstats_refresh(int with_pymalloc)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    cache.flags |= MH_TL_MALLOC;
    cache.malloc_arena = mi.arena;
    cache.malloc_inuse = mi.uordblks;
    cache.malloc_free = mi.fordblks;
    cache.malloc_mmap = mi.hblkhd;
#endif
    if (with_pymalloc && Py_IsInitialized())
        refresh_pymalloc();
}

const struct mh_allocstats *
mh_allocstats_get(void)
{
    return &cache;
}

void
mh_allocstats_fill(struct mh_cap_timeline *t)
{
    t->alloc = cache.flags;
    t->arena_bytes = cache.arena_bytes;
    t->arena_free = cache.arena_free;
    t->malloc_arena = cache.malloc_arena;
    t->malloc_inuse = cache.malloc_inuse;
    t->malloc_free = cache.malloc_free;
    t->malloc_mmap = cache.malloc_mmap;
}
