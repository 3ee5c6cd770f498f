/* analysis/capture/: the analyses of captures (.mhc): the replay of
 * their events into live blocks per stack (live_replay), sites and their
 * merge across captures (this header), the timeline, the endpoints (memory
 * per web request), the agent's findings and user-code attribution
 * (codepath). It may include format/ (the capture reader), util/ and its
 * own folder; nothing here prints or opens a file.
 *
 * The report's analysis: captures in, a plain result out.
 *
 * Each capture is replayed (live_replay.h), its stacks folded into sites by
 * the chosen key (--by), and the sites of all captures merged by key, so
 * a pre-fork server's master and workers make one report. The result is
 * plain data in struct mh_analysis that the renderers (render/) read;
 * nothing here prints. The replay also follows web requests into the
 * endpoints (endpoints.h), and FINDING records go to findings.h; both
 * merge across captures the same way.
 *
 *   mh_analysis_init(&a, &opts);
 *   for each capture: mh_analysis_add(&a, path, buf, len);
 *   mh_analysis_finish(&a);
 *   render a; mh_analysis_release(&a);
 *
 * Growth, per site and process: the estimated bytes live at the end minus
 * those live when the warm-up ended (docs/report-json.md). */
#ifndef MH_ANALYSIS_H
#define MH_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture.h"
#include "../../util/msg.h"
#include "endpoints.h"
#include "findings.h"
#include "../../util/strpool.h"
#include "timeline.h"

enum mh_by {
    MH_BY_LINE,
    MH_BY_FUNCTION,
    MH_BY_FILE,
    MH_BY_MODULE,
    MH_BY_STACK,
    MH_BY_ENDPOINT, /* the endpoints table first; sites are by line */
};

struct mh_analysis_opts {
    enum mh_by by;
    /* The warm-up: `warmup` seconds from the start of each process, or,
     * when warmup_fraction is set, that fraction (< 1) of its duration. */
    double warmup;
    int warmup_fraction;
    size_t top; /* sites per list, endpoints in the table; 0 = all */
    enum mh_ep_sort sort; /* how endpoints are ranked */
    size_t runs; /* runs the captures come from, as the caller found
                    (report --mixed merges several); 0 or 1: one */
};

/* Caps that keep a hostile or huge input from exhausting memory. */
#define MH_ANALYSIS_MAX_CAPTURES 4096
#define MH_ANALYSIS_MAX_STRINGS ((size_t)1 << 30) /* bytes of names */
#define MH_ANALYSIS_MAX_SITES ((size_t)1 << 22)   /* ~0.5 GiB of sites */
#define MH_ANALYSIS_TIMELINE_POINTS 600

/* One frame of a site, as names (ids into the analysis' string pool). */
struct mh_site_frame {
    uint32_t file, function;
    uint32_t line; /* 0 = unknown */
};

/* The lists a site's via is weighted for. */
enum mh_via_list {
    MH_VIA_GROWTH, /* by the bytes that grew */
    MH_VIA_LIVE,   /* by the bytes live at the end */
};

/* A caller is named when it is behind this share of the bytes. */
#define MH_VIA_MAJORITY 0.6

struct mh_site_via {
    int has;
    struct mh_site_frame f;
    double share; /* of the user frame's bytes, (0, 1] */
};

enum mh_site_kind {
    MH_SITE_CODE,    /* a key made of Python code locations */
    MH_SITE_NOSTACK, /* allocations without a Python stack */
};

struct mh_site {
    enum mh_site_kind kind;
    uint32_t k[3]; /* the merge key (string ids and a line) */

    /* What the key names; string ids, 0 = not part of the key. For
     * MH_BY_LINE and MH_BY_STACK the innermost frame's file, line and
     * function; MH_BY_FUNCTION file and function; MH_BY_FILE the file;
     * MH_BY_MODULE none. */
    uint32_t file, function, line;
    int has_line;
    uint32_t module; /* of the innermost file (with the first capture's
                        sys.path that named it) */
    uint32_t frames; /* MH_BY_STACK: the frames, as a string of
                        struct mh_site_frame, innermost first */
    uint32_t key;    /* display text; set by mh_analysis_finish() for
                        the sites in the lists */

    double live_bytes, live_count;     /* at the end */
    double startup_bytes, startup_count; /* ...of which allocated before
                                            the warm-up ended */
    double growth_bytes, growth_count; /* end minus warm-up end */
    double bytes_per_second;           /* growth rate, summed over
                                          processes */
    double share;                      /* of the total positive growth */
    /* The growth's sampling variance (0 when exact), its 95% interval
     * (growth +- 1.96 sd) and the significance mark
     * (mh_slope_mark(): the interval lies above zero and the growth
     * reaches the noise floor); set by mh_analysis_finish(). */
    double growth_var, growth_lo, growth_hi;
    int significant;

    /* The innermost frame in the user's own code that leads here (the
     * dominant one by growth, or by live bytes for a site that did not
     * grow); has_user is 0 when no stack reaches user code. */
    int has_user;
    int user_direct; /* that frame is the innermost one: the allocation
                        is in user code itself, not in a library it
                        called */
    struct mh_site_frame user;

    /* The line that keeps what the user frame allocated ("kept via"):
     * when user_direct, the user-code frame that called it (another
     * line), the one behind at least MH_VIA_MAJORITY of those bytes;
     * per list (enum mh_via_list), weighted by growing or by live
     * bytes. A library's allocation has none: its user frame is the
     * caller that keeps it. */
    struct mh_site_via via[2];
};

/* How a capture ends (docs/report-json.md, "end"). */
enum mh_end_kind {
    MH_END_CLEAN,  /* END record: recording stopped at exit or stop() */
    MH_END_SIGNAL, /* the process died of a signal; the agent wrote its
                      tail first (END follows) */
    MH_END_EXEC,   /* the process exec'd another program */
    MH_END_NONE,   /* no END record: killed (SIGKILL), crashed, or the
                      disk filled up; what followed the last flush is
                      lost */
    MH_END_CUT,    /* the file ends inside a chunk */
};
/* "clean", "signal", "exec", "none", "cut". */
const char *mh_end_kind_name(int kind);

/* How a process was recorded, as the renderers name it: the capture's
 * enum mh_mode, re-exported so that render/ needs no format/ header. */
enum mh_record_mode {
    MH_RECORD_SAMPLE = MH_MODE_SAMPLE,
    MH_RECORD_TRACE = MH_MODE_TRACE,
};

struct mh_process {
    uint32_t path;   /* the capture file */
    int have_header; /* 0: the file ends before its HEADER record */
    uint64_t pid, ppid, fork_parent;
    uint64_t run_id;   /* the header's; 0 = none */
    uint64_t start_ns; /* Unix epoch */
    uint32_t mode;     /* enum mh_record_mode */
    uint64_t interval;
    uint32_t python, executable;
    uint32_t argc;
    uint32_t *argv; /* string ids, owned */

    uint64_t duration_ns; /* the last TIMELINE/END time */
    uint64_t warmup_ns;   /* the warm-up end used */
    int warmup_past_end;  /* the capture ended first: no growth */
    uint64_t peak_rss;
    double tracked_peak, live_bytes, growth_bytes;
    double startup_bytes; /* of live_bytes, allocated before the warm-up
                             ended */
    uint64_t samples, frees, dropped;
    int clean_end;
    int truncated;
    uint64_t truncated_at;
    int end_kind;        /* enum mh_end_kind */
    uint64_t end_ns;     /* since start: the SIGNAL/EXEC marker's time */
    int end_signal;      /* MH_END_SIGNAL: which */
    uint32_t exec_path;  /* MH_END_EXEC: the program (string id) */
    uint64_t unstacked;  /* MH_END_SIGNAL: samples written stackless */
    int disk_full;       /* recording stopped on a full disk */
    uint64_t disk_full_ns; /* since start */
    uint32_t disk_full_why; /* string id */

    struct mh_timeline timeline;
    /* The allocators at the last TIMELINE that described them
     * (alloc.alloc 0: none did; only the MH_TL_* fields are used). */
    struct mh_cap_timeline alloc;
    /* ...and at the first one at or after the warm-up's end. */
    struct mh_cap_timeline alloc_warm;
};

/* The process recorded next to nothing: no header, or fewer than
 * MH_EMPTY_SAMPLES samples (each an estimate of about one sampling
 * interval: noise) and nothing live at the end -- a short-lived helper,
 * of which a test runner or a build starts hundreds. The text report
 * folds such rows into one line; JSON marks them. */
#define MH_EMPTY_SAMPLES 3
static inline int
mh_process_empty(const struct mh_process *p)
{
    return !p->have_header ||
           (p->samples < MH_EMPTY_SAMPLES && p->live_bytes < 0.5);
}

struct mh_summary {
    uint64_t start_ns;   /* the earliest process start */
    uint64_t span_ns;    /* from it to the latest end */
    uint64_t peak_rss;   /* of the summed timeline (per process: max) */
    double tracked_peak; /* likewise */
    double live_bytes;   /* at the end, summed */
    double startup_bytes; /* of it, allocated before the warm-up ended */
    /* tracked_peak is the sum of the processes' own peaks rather than
     * the peak of their sum: the processes' live bytes at their ends,
     * summed, exceed the largest sum seen at one time (they did not all
     * run at once, or allocated between the timeline's ticks). */
    int peak_summed;
    double growth_bytes; /* sum of the sites' positive growth */
    double growth_floor; /* growth below this is noise */
    int growth_found;    /* some site grew past the floor */
    uint64_t samples, frees, dropped;
    int mode; /* enum mh_record_mode; -1 when the captures differ, -2 when none
                 has a header */
    uint64_t interval;   /* the largest sampling interval, 0 if none */
    int truncated;       /* some capture ends early */
    int warmup_past_end; /* some capture ended before its warm-up */
};

struct mh_analysis_priv;

struct mh_analysis {
    struct mh_analysis_opts opts;
    struct mh_strpool strings;

    struct mh_process *procs;
    size_t nprocs;

    struct mh_site *sites;
    size_t nsites;

    /* Filled by mh_analysis_finish(): site indices, best first. */
    uint32_t *growth; /* sites whose growth is positive, by growth */
    size_t ngrowth;
    uint32_t *live; /* sites with live bytes, by live bytes */
    size_t nlive;
    /* The live bytes split by when they were allocated: after the
     * warm-up (live_bytes - startup_bytes) and before it (startup_bytes),
     * each list by its own bytes. */
    uint32_t *live_recent;
    size_t nlive_recent;
    uint32_t *live_startup;
    size_t nlive_startup;
    struct mh_tl_point *timeline; /* all processes on one axis */
    size_t ntimeline;
    struct mh_summary summary;

    /* Requests and endpoints (endpoints.h), findings (findings.h), of all
     * captures. The endpoints' sites have their names filled in by
     * mh_analysis_finish() (string ids, as in the sites above). */
    struct mh_endpoints endpoints;
    struct mh_findings findings;

    char error[300]; /* why mh_analysis_add() failed */

    struct mh_analysis_priv *priv;
};

void mh_analysis_init(struct mh_analysis *a,
                      const struct mh_analysis_opts *opts);
/* Frees everything the analysis holds. */
void mh_analysis_release(struct mh_analysis *a);

/* Replays one capture held in buf[0..len) (the analysis does not keep
 * the buffer) and merges it in; `path` names it in the result. On
 * failure returns a negative code with a->error set, e.g. "chunk at
 * offset 123: crc mismatch" or "not a memhound capture"; the analysis
 * may then hold part of this capture and is only fit for release. A
 * truncated capture is not a failure (procs[i].truncated). */
int mh_analysis_add(struct mh_analysis *a, const char *path,
                    const uint8_t *buf, size_t len) MH_MUST_USE;

/* Picks the user frames, computes shares and the summary, sorts and
 * selects the lists, builds their keys and merges the timelines. Call
 * once, after the last add. */
int mh_analysis_finish(struct mh_analysis *a) MH_MUST_USE;

static inline const char *
mh_analysis_str(const struct mh_analysis *a, uint32_t id)
{
    return mh_strpool_get(&a->strings, id);
}

static inline size_t
mh_analysis_strlen(const struct mh_analysis *a, uint32_t id)
{
    return mh_strpool_len(&a->strings, id);
}

/* MH_BY_STACK: the number of frames of a site, and frame i (innermost
 * first). */
size_t mh_analysis_nframes(const struct mh_analysis *a,
                           const struct mh_site *s);
void mh_analysis_frame(const struct mh_analysis *a, const struct mh_site *s,
                       size_t i, struct mh_site_frame *out);

/* A per-request peak percentile (struct mh_endpoint) the sampling can
 * resolve: in sampling mode a request's peak estimate is 0 (no block of
 * the request sampled) or about the interval R and up, so a value below R
 * says only "less than R". Always 1 in trace-all mode. */
static inline int
mh_analysis_peak_resolved(const struct mh_analysis *a, double v)
{
    return a->summary.mode != MH_MODE_SAMPLE && a->summary.mode != -1
               ? 1
               : !(v < (double)a->summary.interval);
}

/* What the growth and live sites are keyed by: opts.by, except that
 * --by endpoint keys them by line. */
static inline enum mh_by
mh_analysis_site_by(const struct mh_analysis *a)
{
    return a->opts.by == MH_BY_ENDPOINT ? MH_BY_LINE : a->opts.by;
}

/* "line", "function", ..., "endpoint" */
const char *mh_analysis_by_name(enum mh_by by);
/* Parses a --by value; -1 when unknown. */
int mh_analysis_by_parse(const char *s);

/* The HEADER of the capture in buf[0..len), read without its events
 * (report groups captures by run before merging them): 1 with *h's plain
 * fields (its pointers, the reader's, cleared) and `command` (its argv,
 * printable, cut with "..." to fit `size`), 0 when it cannot be read
 * (mh_analysis_add() says why). */
int mh_analysis_read_header(const uint8_t *buf, size_t len,
                            struct mh_cap_header *h, char *command,
                            size_t size);

/* How a capture ends, for `memhound run`'s warning about captures that
 * end early. */
struct mh_capture_end {
    int truncated;         /* cut short: the file ends mid-chunk */
    uint64_t truncated_at; /* where, as an offset */
    int unfinished;        /* no END record and no SIGNAL/EXEC marker:
                              the process ended without the agent
                              finishing the capture */
    uint64_t last_ns;      /* the last TIMELINE/END time, since the epoch */
};

/* Reads the capture in buf[0..len) for how it ends. MH_OK with *out set,
 * or the reader's error (also MH_EFORMAT for a capture without a
 * header): the report says why later. */
int mh_analysis_capture_end(const uint8_t *buf, size_t len,
                            struct mh_capture_end *out) MH_MUST_USE;

#endif
