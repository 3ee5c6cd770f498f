/* Capture format constants shared by the writer (agent) and the reader
 * (CLI). docs/capture-format.md is the specification. */
#ifndef MH_CAPTURE_H
#define MH_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#define MH_CAP_MAGIC "\x89MHC\r\n\x1a\n"
#define MH_CAP_MAGIC_LEN 8
#define MH_CAP_VERSION 1
#define MH_CAP_FILE_HEADER_LEN 12 /* magic + version + flags */

#define MH_CAP_CHUNK_TAG 0x4B
#define MH_CAP_CHUNK_HEADER_LEN 10 /* tag, u32 len, u32 crc, u8 flags */
#define MH_CAP_CHUNK_ZSTD 0x01
#define MH_CAP_CHUNK_MAX (64u << 20)
#define MH_CAP_CHUNK_RAW_MAX (256u << 20)
/* The most a reader decompresses from one file (captures and heap dumps
 * alike): MH_CAP_INFLATE_RATIO times the file's size, plus
 * MH_CAP_INFLATE_FIXED so a small file may hold one whole chunk of the
 * largest a writer makes. No file memhound writes comes near it: its
 * compressor's 16 KiB window (capture_write.c) makes a zstd block of at
 * most 16 KiB cost at least 4 bytes, so 4096 is the writers' ceiling,
 * which chunk and frame headers keep them under; real captures and dumps
 * reach 1100 as a whole and 1300 in one chunk (trace-all of a loop that
 * makes and drops one object; a list of 2 million Nones). A larger
 * window in the writer must raise this. The cap is what bounds the CPU a
 * crafted file costs, since decompressing is what a bomb makes the
 * reader do (docs/capture-format.md, "Rules a reader enforces"). */
#define MH_CAP_INFLATE_RATIO 4096u
#define MH_CAP_INFLATE_FIXED ((uint64_t)MH_CAP_CHUNK_MAX)

#define MH_CAP_STR_MAX (64u << 10)
#define MH_CAP_DEPTH_MAX 1024
#define MH_CAP_ID_MAX (1u << 24)

enum mh_cap_tag {
    MH_REC_ALLOC_RAW = 0x01,
    MH_REC_ALLOC_MEM = 0x02,
    MH_REC_ALLOC_OBJ = 0x03,
    MH_REC_FREE = 0x04,
    MH_REC_FIXED_LAST = 0x3F,
    MH_REC_HEADER = 0x40,
    MH_REC_STRING = 0x41,
    MH_REC_CODE = 0x42,
    MH_REC_FRAME = 0x43,
    MH_REC_STACK = 0x44,
    MH_REC_TIMELINE = 0x45,
    MH_REC_MARKER = 0x46,
    MH_REC_END = 0x47,
    MH_REC_REQUEST = 0x48, /* a finished web request (or job) */
    MH_REC_TAG = 0x49,     /* ALLOCs after it in the chunk belong to a
                              request; reset to 0 at each chunk start */
    MH_REC_FINDING = 0x4A, /* a problem observed in the running program */
};

enum mh_domain { MH_DOMAIN_RAW = 0, MH_DOMAIN_MEM = 1, MH_DOMAIN_OBJ = 2 };

enum mh_mode { MH_MODE_SAMPLE = 0, MH_MODE_TRACE = 1 };

enum mh_marker_kind {
    MH_MARK_USER = 0,
    MH_MARK_HEAP_DUMP = 1,
    MH_MARK_REQUEST_BEGIN = 2,
    MH_MARK_REQUEST_END = 3,
    MH_MARK_FORKED = 4,
    MH_MARK_FORK_CHILD = 5,
    MH_MARK_EXEC = 6,      /* replaced by exec (text: the program) */
    MH_MARK_SIGNAL = 7,    /* ended by a signal (text: its number) */
    MH_MARK_DISK_FULL = 8, /* a write failed, disk full (text: why) */
    MH_MARK_LAST = MH_MARK_DISK_FULL,
};

/* A string as (pointer, length); not NUL-terminated in the reader, where
 * it points into the parsed buffer. */
struct mh_str {
    const char *s;
    size_t n;
};

struct mh_cap_header {
    uint64_t pid, ppid;
    uint64_t start_ns; /* Unix epoch */
    uint32_t mode;     /* enum mh_mode */
    uint64_t interval; /* R in bytes; 0 in trace-all */
    uint32_t max_depth;
    uint64_t fork_parent;
    struct mh_str python;
    struct mh_str executable;
    uint32_t argc;
    const struct mh_str *argv;
    uint32_t nlib;
    const struct mh_str *lib_prefixes;
    uint32_t npath;
    const struct mh_str *sys_path;
    /* The run this process belongs to (appended to the record's body by
     * later writers): every process `memhound run` starts, and every
     * child forked from a process that called memhound.start(), shares
     * it. 0 = none (a capture from before run ids). */
    uint64_t run_id;
};

/* `alloc` (appended to the record's body in a later writer; 0 when
 * absent) says which allocator fields follow: MH_TL_PYMALLOC the pymalloc
 * arena bytes and the free bytes inside them, MH_TL_MALLOC glibc's
 * mallinfo2() fields. Fields a flag does not name are 0. */
enum { MH_TL_PYMALLOC = 1, MH_TL_MALLOC = 2 };

struct mh_cap_timeline {
    uint64_t t_ns, rss, live, samples, frees, dropped;
    uint64_t alloc;                    /* MH_TL_* flags */
    uint64_t arena_bytes, arena_free;  /* pymalloc */
    uint64_t malloc_arena, malloc_inuse, malloc_free, malloc_mmap;
    /* mallinfo2(): arena, uordblks, fordblks, hblkhd */
};

/* A request that ended: ALLOC records tagged with its id (TAG) were
 * made while it was current in their thread or asyncio task. Times are ns
 * since the header's start. */
struct mh_cap_request {
    uint64_t id; /* positive, unique per capture */
    uint64_t t_begin_ns, t_end_ns;
    struct mh_str endpoint; /* route pattern, never a raw URL */
};

/* A finding (docs/findings.md): `id` names the rule (e.g.
 * "django-queryset-truthiness"); file:line is the user's line it points
 * at; count and bytes are the rule's numbers (rows fetched, bytes
 * allocated), 0 when not applicable; detail is free text. */
struct mh_cap_finding {
    uint64_t t_ns;
    uint64_t request; /* current request id, 0 = none */
    struct mh_str id, file, function, detail;
    uint32_t line;
    uint64_t count, bytes;
};

/* CRC-32 (IEEE) as zlib computes it; `crc` starts at 0. */
uint32_t mh_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
