/* What a Python source path says: which module it is, and whether it is
 * the user's own code (not the standard library, not site-packages, not
 * memhound, not synthesised code like "<frozen ...>" or "<string>").
 * The prefixes come from the capture header (sys.path and the library
 * prefixes the agent recorded). */
#ifndef MH_CODEPATH_H
#define MH_CODEPATH_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture.h"
#include "../../util/buf.h"

/* 1 when `file` is `prefix` or lies under it, the match ending at a
 * path separator; an empty prefix matches nothing. */
int mh_codepath_under(const char *file, size_t n, const struct mh_str *prefix);

/* Appends the dotted module name of `file` to `out`: the path below the
 * longest matching sys.path entry, without ".py" and "/__init__.py",
 * '/' turned into '.'; "<frozen X>" gives X; a path under no entry gives
 * its file name without the extension (or the dotted path, when it is
 * relative); other "<...>" names are kept. MH_ETOOBIG, MH_ENOMEM. */
int mh_codepath_module(const struct mh_str *sys_path, uint32_t npath,
                       const char *file, size_t n,
                       struct mh_buf *out) MH_MUST_USE;

/* 1 when `file` is the user's own code: not under a library prefix, not
 * a "<...>" name, not one of memhound's own Python files (a file in a
 * python/memhound/ or python/bootstrap/ directory, as in the build tree
 * and the installed lib/memhound/python/). */
int mh_codepath_is_user(const struct mh_str *lib_prefixes, uint32_t nlib,
                        const char *file, size_t n);

/* What a code object is, by its file and function name. */
enum mh_codekind {
    MH_CODE_USER = 1, /* the user's own code */
    MH_CODE_LIB,      /* stdlib, site-/dist-packages, "<...>" */
    MH_CODE_MEMHOUND, /* memhound's own Python files: never displayed */
    MH_CODE_WRAPPER,  /* a console-script wrapper: code in a file outside
                         the library dirs whose name has no ".py" suffix,
                         when it is the file's "<module>" or the file is in
                         a bin/, sbin/ or Scripts/ directory (/usr/bin/gunicorn
                         and its easy-install load_entry_point function,
                         venv/bin/uvicorn, ~/.local/bin/celery); user code
                         only as the innermost frame, never as a caller */
    MH_CODE_LOOP,     /* an event loop running a callback: asyncio's
                         Handle._run (asyncio/events.py in a library
                         dir), which runs every task step of an asyncio
                         server (uvicorn, aiohttp, asyncio.start_server).
                         Library code; the frames beyond it drove the
                         loop, they did not call what runs in it */
};

/* The kind of a code object named `func` (`fn` bytes) in `file`. */
enum mh_codekind mh_codepath_kind(const struct mh_str *lib_prefixes,
                                  uint32_t nlib, const char *file, size_t n,
                                  const char *func, size_t fn);

/* 1 when a frame of kind `kind` is the user's own: user code, or a
 * wrapper's line as the innermost frame (`innermost` nonzero). */
int mh_codepath_user_frame(enum mh_codekind kind, int innermost);

/* 1 when the search for a stack's first user frame, walking outwards,
 * stops at a frame of kind `kind` that is not the innermost: what runs
 * inside an event loop's callback was not called by the frames that
 * started the loop (an aiohttp app's `web.run_app(app)` line does not
 * keep what aiohttp allocates for each request). */
int mh_codepath_ends_callers(enum mh_codekind kind);

#endif
