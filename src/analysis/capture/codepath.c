/* Module names and user-code detection from source paths (see
 * codepath.h). Paths are byte strings; nothing here assumes UTF-8. */
#include <string.h>

#include "codepath.h"

static int
starts_with(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && memcmp(s, lit, k) == 0;
}

static int
ends_with(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && memcmp(s + n - k, lit, k) == 0;
}

/* Length of the matched prefix including its separator (the whole
 * length when file is the prefix itself), or 0. */
static size_t
match_len(const char *file, size_t n, const struct mh_str *prefix)
{
    size_t plen = prefix->n;
    if (plen == 0)
        return 0;
    while (plen > 0 && prefix->s[plen - 1] == '/')
        plen--;
    if (plen == 0) /* "/" */
        return n > 0 && file[0] == '/' ? 1 : 0;
    if (n < plen || memcmp(file, prefix->s, plen) != 0)
        return 0;
    if (n == plen)
        return plen;
    return file[plen] == '/' ? plen + 1 : 0;
}

int
mh_codepath_under(const char *file, size_t n, const struct mh_str *prefix)
{
    return match_len(file, n, prefix) > 0;
}

static const char *
basename_of(const char *s, size_t n, size_t *bn)
{
    size_t i = n;
    while (i > 0 && s[i - 1] != '/')
        i--;
    *bn = n - i;
    return s + i;
}

int
mh_codepath_module(const struct mh_str *sys_path, uint32_t npath,
                   const char *file, size_t n, struct mh_buf *out)
{
    if (starts_with(file, n, "<frozen ") && ends_with(file, n, ">") && n > 9)
        return mh_buf_put(out, file + 8, n - 9);
    if (n == 0 || file[0] == '<')
        return mh_buf_put(out, file, n);

    size_t best = 0;
    for (uint32_t i = 0; i < npath; i++) {
        size_t m = match_len(file, n, &sys_path[i]);
        if (m > best && m < n)
            best = m;
    }
    const char *r = file + best;
    size_t rn = n - best;
    if (!best) {
        if (file[0] == '/') {
            r = basename_of(file, n, &rn);
            /* /x/pkg/__init__.py names pkg. */
            if (rn == strlen("__init__.py") &&
                starts_with(r, rn, "__init__.") && r > file + 1) {
                size_t dn;
                const char *d = basename_of(file, (size_t)(r - file) - 1, &dn);
                if (dn) {
                    r = d;
                    rn = dn;
                }
            }
        }
        while (starts_with(r, rn, "./")) {
            r += 2;
            rn -= 2;
        }
    }
    static const char *const exts[] = {".py", ".pyw", ".pyc"};
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
        if (ends_with(r, rn, exts[i]) && rn > strlen(exts[i])) {
            rn -= strlen(exts[i]);
            break;
        }
    if (ends_with(r, rn, "/__init__"))
        rn -= strlen("/__init__");

    int rc = mh_buf_grow(out, rn);
    if (rc)
        return rc;
    for (size_t i = 0; i < rn; i++)
        out->data[out->len + i] = r[i] == '/' ? '.' : (uint8_t)r[i];
    out->len += rn;
    return MH_OK;
}

/* memhound's own Python files: <dir>/python/memhound/<file>.py and
 * <dir>/python/bootstrap/<file>.py. */
static int
is_memhound_file(const char *file, size_t n)
{
    size_t bn;
    const char *b = basename_of(file, n, &bn);
    if (b == file)
        return 0;
    size_t dn;
    const char *d = basename_of(file, (size_t)(b - file) - 1, &dn);
    if (!((dn == 8 && !memcmp(d, "memhound", 8)) ||
          (dn == 9 && !memcmp(d, "bootstrap", 9))))
        return 0;
    if (d == file)
        return 0;
    size_t gn;
    const char *g = basename_of(file, (size_t)(d - file) - 1, &gn);
    return gn == 6 && !memcmp(g, "python", 6);
}

int
mh_codepath_is_user(const struct mh_str *lib_prefixes, uint32_t nlib,
                    const char *file, size_t n)
{
    return mh_codepath_kind(lib_prefixes, nlib, file, n, "", 0) ==
           MH_CODE_USER;
}

/* A Python source name: ends in ".py" or ".pyw" (".pyc" for a run
 * compiled file). A console script installed by pip, setuptools or a
 * distribution package has none. */
static int
has_py_suffix(const char *file, size_t n)
{
    size_t bn;
    const char *b = basename_of(file, n, &bn);
    return ends_with(b, bn, ".py") || ends_with(b, bn, ".pyw") ||
           ends_with(b, bn, ".pyc");
}

/* A file directly in a directory of installed commands: bin/, sbin/ or
 * Scripts/ (venv/bin, ~/.local/bin, /usr/bin, /usr/local/bin). */
static int
in_bin_dir(const char *file, size_t n)
{
    size_t bn, dn;
    const char *b = basename_of(file, n, &bn);
    if (b == file)
        return 0;
    const char *d = basename_of(file, (size_t)(b - file) - 1, &dn);
    return (dn == 3 && !memcmp(d, "bin", 3)) ||
           (dn == 4 && !memcmp(d, "sbin", 4)) ||
           (dn == 7 && !memcmp(d, "Scripts", 7));
}

/* asyncio's Handle._run (3.11+ name frames by qualified name, 3.9 and
 * 3.10 by name), in a library dir: the loop runs every callback and
 * task step through it. */
static int
is_loop_dispatch(const char *file, size_t n, const char *func, size_t fn)
{
    return ends_with(file, n, "/asyncio/events.py") &&
           ((fn == 4 && !memcmp(func, "_run", 4)) ||
            (fn == 11 && !memcmp(func, "Handle._run", 11)));
}

enum mh_codekind
mh_codepath_kind(const struct mh_str *lib_prefixes, uint32_t nlib,
                 const char *file, size_t n, const char *func, size_t fn)
{
    if (n == 0 || file[0] == '<')
        return MH_CODE_LIB;
    for (uint32_t i = 0; i < nlib; i++)
        if (match_len(file, n, &lib_prefixes[i]))
            return is_loop_dispatch(file, n, func, fn) ? MH_CODE_LOOP
                                                       : MH_CODE_LIB;
    if (is_memhound_file(file, n))
        return MH_CODE_MEMHOUND;
    if (!has_py_suffix(file, n) &&
        ((fn == 8 && !memcmp(func, "<module>", 8)) || in_bin_dir(file, n)))
        return MH_CODE_WRAPPER;
    return MH_CODE_USER;
}

int
mh_codepath_user_frame(enum mh_codekind kind, int innermost)
{
    return kind == MH_CODE_USER || (kind == MH_CODE_WRAPPER && innermost);
}

int
mh_codepath_ends_callers(enum mh_codekind kind)
{
    return kind == MH_CODE_LOOP;
}
