/* The capture builder of cap_gen.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cap_gen.h"
#include "render/json.h"
#include "render/text.h"
#include "harness.h"

const struct mh_str t_lib[2] = {{"/usr/lib/python3.11", 19},
                                {"/usr/lib/python3/dist-packages", 30}};
const struct mh_str t_path[4] = {{"/srv/app", 8},
                                 {"/usr/lib/python3.11", 19},
                                 {"/usr/lib/python3/dist-packages", 30},
                                 {"", 0}};
static const struct mh_str t_argv[] = {{"app.py", 6}, {"--serve", 7}};

void
tcap_init(struct tcap *c, const struct topts *o)
{
    memset(c, 0, sizeof(*c));
    mh_buf_init(&c->file, (size_t)1 << 34);
    mh_buf_init(&c->chunk, MH_CAP_CHUNK_MAX);
    mh_buf_init(&c->scratch, MH_CAP_CHUNK_MAX * 2);
    c->zstd = o->zstd;
    c->id_base = o->id_base ? o->id_base : 10;
    OK(mh_cap_put_file_header(&c->file));
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.pid = o->pid ? o->pid : 4242;
    h.ppid = 1;
    h.start_ns = o->start_ns ? o->start_ns : 1700000000000000000ull;
    h.mode = o->mode;
    h.interval = o->interval;
    h.max_depth = 128;
    h.python = (struct mh_str){"3.11.2", 6};
    h.executable = (struct mh_str){"/usr/bin/python3", 16};
    h.argc = 2;
    h.argv = t_argv;
    h.nlib = 2;
    h.lib_prefixes = t_lib;
    h.npath = 4;
    h.sys_path = t_path;
    OK(mh_cap_put_header(&c->chunk, &h));
}

void
tcap_init_trace(struct tcap *c)
{
    struct topts o = {.mode = MH_MODE_TRACE};
    tcap_init(c, &o);
}

void
tcap_release(struct tcap *c)
{
    mh_buf_release(&c->file);
    mh_buf_release(&c->chunk);
    mh_buf_release(&c->scratch);
}

static uint32_t
tcap_str(struct tcap *c, const char *s)
{
    for (uint32_t i = 0; i < c->nstr; i++)
        if (!strcmp(c->strs[i], s))
            return c->id_base + 3 * i;
    CHECK(c->nstr < 256);
    c->strs[c->nstr] = s;
    uint32_t id = c->id_base + 3 * c->nstr++;
    OK(mh_cap_put_string(&c->chunk, id, s, strlen(s)));
    return id;
}

static uint32_t
tcap_frame(struct tcap *c, const struct tframe *f)
{
    uint32_t file = tcap_str(c, f->file), name = tcap_str(c, f->func);
    uint32_t code = 0;
    for (uint32_t i = 0; i < c->ncode && !code; i++)
        if (c->codes[i].file == file && c->codes[i].name == name)
            code = c->id_base + 3 * i;
    if (!code) {
        CHECK(c->ncode < 256);
        code = c->id_base + 3 * c->ncode;
        c->codes[c->ncode].file = file;
        c->codes[c->ncode++].name = name;
        OK(mh_cap_put_code(&c->chunk, code, file, name, 1));
    }
    for (uint32_t i = 0; i < c->nframe; i++)
        if (c->frames[i].code == code && c->frames[i].line == f->line)
            return c->id_base + 3 * i;
    CHECK(c->nframe < 512);
    uint32_t id = c->id_base + 3 * c->nframe;
    c->frames[c->nframe].code = code;
    c->frames[c->nframe++].line = f->line;
    OK(mh_cap_put_frame(&c->chunk, id, code, f->line, f->line * 2));
    return id;
}

/* Defines a stack of n frames, innermost first; returns its id. */
uint32_t
tcap_stack(struct tcap *c, int n, const struct tframe *frames)
{
    uint32_t ids[64];
    CHECK(n > 0 && n <= 64);
    for (int i = 0; i < n; i++)
        ids[i] = tcap_frame(c, &frames[i]);
    uint32_t id = c->id_base + 3 * c->nstack++;
    OK(mh_cap_put_stack(&c->chunk, id, (uint32_t)n, ids));
    return id;
}

void
tcap_flush(struct tcap *c)
{
    if (!c->chunk.len)
        return;
    OK(mh_cap_chunk_seal(&c->file, c->chunk.data, c->chunk.len,
                         c->zstd ? 3 : 0, &c->scratch));
    mh_buf_reset(&c->chunk);
    c->enc.last_addr = 0;
    c->enc.last_request = 0;
}

void
tcap_alloc(struct tcap *c, uint32_t stack, uint64_t size, uint64_t addr)
{
    OK(mh_cap_put_alloc(&c->chunk, &c->enc, MH_DOMAIN_OBJ, stack, size, addr));
    if (c->chunk.len > (1u << 20))
        tcap_flush(c);
}

void
tcap_free(struct tcap *c, uint64_t addr)
{
    OK(mh_cap_put_free(&c->chunk, &c->enc, addr));
}

void
tcap_tick(struct tcap *c, uint64_t t_ns, uint64_t rss)
{
    struct mh_cap_timeline t = {t_ns, rss, 0, 0, 0, 0};
    OK(mh_cap_put_timeline(&c->chunk, &t));
}

void
tcap_end(struct tcap *c, uint64_t t_ns)
{
    OK(mh_cap_put_end(&c->chunk, t_ns, 0, 0, 0));
    tcap_flush(c);
}

void
tcap_tag(struct tcap *c, uint64_t request)
{
    OK(mh_cap_put_tag(&c->chunk, &c->enc, request));
}

void
tcap_request(struct tcap *c, uint64_t id, uint64_t t_begin_ns,
             uint64_t t_end_ns, const char *endpoint)
{
    struct mh_cap_request r = {
        id, t_begin_ns, t_end_ns, {endpoint, strlen(endpoint)}};
    OK(mh_cap_put_request(&c->chunk, &r));
}

void
tcap_finding(struct tcap *c, uint64_t request, const char *id,
             const char *file, uint32_t line, const char *function,
             uint64_t count, uint64_t bytes, const char *detail)
{
    struct mh_cap_finding f;
    memset(&f, 0, sizeof(f));
    f.request = request;
    f.id = (struct mh_str){id, strlen(id)};
    f.file = (struct mh_str){file, strlen(file)};
    f.line = line;
    f.function = (struct mh_str){function, strlen(function)};
    f.count = count;
    f.bytes = bytes;
    f.detail = (struct mh_str){detail, strlen(detail)};
    OK(mh_cap_put_finding(&c->chunk, &f));
}

char *
render_to_string(const struct mh_analysis *a, int json)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    CHECK(f);
    OK(json ? mh_json_render(f, a) : mh_text_render(f, a));
    fclose(f);
    return p;
}

/* Runs python3 on the JSON with a check script; returns its status. */
int
python_check(const char *json, const char *script)
{
    char path[] = "/tmp/mh-test-json-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
    char cmd[16384];
    int n = snprintf(cmd, sizeof(cmd),
                     "/usr/bin/python3 -c 'import json,sys\n"
                     "d = json.load(open(sys.argv[1], encoding=\"utf-8\"))\n"
                     "%s' %s",
                     script, path);
    CHECK(n > 0 && (size_t)n < sizeof(cmd));
    int st = system(cmd);
    unlink(path);
    return st;
}

void
check_near(double got, double want, double tol)
{
    if (fabs(got - want) > tol) {
        fprintf(stderr, "got %.6f, want %.6f (+-%g)\n", got, want, tol);
        exit(1);
    }
}
