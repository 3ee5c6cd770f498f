/* Building captures in memory for the tests, with the agent's encoders
 * (src/format/capture_write.h): a header like a real process's (library
 * prefixes and sys.path under /usr/lib/python3.11 and /srv/app), string,
 * code, frame and stack tables defined as first used (sparse ids), and
 * events. Every step CHECKs its encoder's result. And two helpers to
 * check the reports made of them. */
#ifndef MH_TEST_CAP_GEN_H
#define MH_TEST_CAP_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "format/capture_write.h"
#include "format/chunk.h"

#define MS 1000000ull
#define OK(x) CHECK_EQ_INT((x), MH_OK)

struct tframe {
    const char *file, *func;
    uint32_t line;
};

struct tcap {
    struct mh_buf file, chunk, scratch;
    struct mh_cap_enc enc;
    int zstd;
    /* Ids start high and step by 3 so they are sparse, as a forked
     * child's are. */
    const char *strs[256];
    uint32_t nstr;
    struct {
        uint32_t file, name;
    } codes[256];
    uint32_t ncode;
    struct {
        uint32_t code, line;
    } frames[512];
    uint32_t nframe;
    uint32_t nstack;
    uint32_t id_base;
};

struct topts {
    uint32_t mode;
    uint64_t interval;
    uint64_t start_ns;
    uint64_t pid;
    int zstd;
    uint32_t id_base;
};

/* The header's library prefixes and sys.path. */
extern const struct mh_str t_lib[2];
extern const struct mh_str t_path[4];

void tcap_init(struct tcap *c, const struct topts *o);
/* tcap_init() for a trace capture with the default options. */
void tcap_init_trace(struct tcap *c);
void tcap_release(struct tcap *c);
/* Defines a stack of n frames, innermost first; returns its id. */
uint32_t tcap_stack(struct tcap *c, int n, const struct tframe *frames);
/* Seals the chunk being built (deltas and the TAG state restart). */
void tcap_flush(struct tcap *c);
/* An ALLOC_OBJ; seals the chunk when it passes 1 MiB. */
void tcap_alloc(struct tcap *c, uint32_t stack, uint64_t size, uint64_t addr);
void tcap_free(struct tcap *c, uint64_t addr);
void tcap_tick(struct tcap *c, uint64_t t_ns, uint64_t rss);
/* END record, and the last chunk. */
void tcap_end(struct tcap *c, uint64_t t_ns);
/* The next ALLOCs belong to `request` (0 = none). */
void tcap_tag(struct tcap *c, uint64_t request);
void tcap_request(struct tcap *c, uint64_t id, uint64_t t_begin_ns,
                  uint64_t t_end_ns, const char *endpoint);
void tcap_finding(struct tcap *c, uint64_t request, const char *id,
                  const char *file, uint32_t line, const char *function,
                  uint64_t count, uint64_t bytes, const char *detail);

/* Exits with a message when |got - want| > tol. */
void check_near(double got, double want, double tol);

struct mh_analysis;
/* The finished analysis as JSON or text; the caller frees the string. */
char *render_to_string(const struct mh_analysis *a, int json);
/* Runs python3 on the JSON with a check script (`d` is the parsed
 * object); returns its status. */
int python_check(const char *json, const char *script);

#endif
