/* One entry point per command, each in its own file under src/cli/.
 *
 * Exit codes (documented in README): 0 success; 1 the command failed (bad
 * or unreadable input, I/O error); 2 usage error. `run` exits with the
 * target's own status. */
#ifndef MH_CLI_H
#define MH_CLI_H

#include <stdint.h>

#include "../util/msg.h"

enum { MH_EXIT_OK = 0, MH_EXIT_FAIL = 1, MH_EXIT_USAGE = 2 };

/* argv[0] is the command name ("report"); the rest are its arguments. */
int mh_cmd_run(int argc, char **argv);
int mh_cmd_report(int argc, char **argv);
int mh_cmd_heap(int argc, char **argv);
int mh_cmd_snapshot(int argc, char **argv);
int mh_cmd_guard(int argc, char **argv);
int mh_cmd_top(int argc, char **argv);
int mh_cmd_inspect(int argc, char **argv);
int mh_cmd_trim(int argc, char **argv);

/* The report's access to the heap dumps a capture names (report.c). */
struct mh_heap_section_files;
extern const struct mh_heap_section_files mh_report_dump_files;

/* Directory holding the Python side (the memhound package, the agent
 * builds, bootstrap/): $MEMHOUND_PYTHONPATH, else <exe dir>/python (build
 * tree), else <exe dir>/../lib/memhound/python (installed). The caller
 * owns the returned string (mh_free). NULL when none exists. */
char *mh_cli_python_dir(void);

/* mh_cli_python_dir() with its bootstrap/sitecustomize.py readable; on
 * failure prints why and returns NULL. The caller owns the string
 * (mh_free). */
char *mh_cli_bootstrap_dir(void);

/* What the agent of every Python process a command starts is asked to
 * do (src/cli/agentenv.c; the contract is in docs/architecture.md). */
struct mh_agent_env {
    const char *output;   /* capture path template, absolute; %p = pid,
                             %r = random, %R = the run id */
    const char *run_id;   /* 16 hex digits (mh_cli_run_id_new); NULL: a
                             new one */
    const char *registry; /* file each process lists its capture in;
                             NULL: none */
    int trace_all;
    uint64_t interval;    /* 0: the agent's default */
    long max_depth;       /* 0: the agent's default */
    double heap_every;    /* seconds between heap dumps; 0: none */
    int web;              /* instrument web frameworks (MEMHOUND_WEB) */
    int force;            /* replace files of ours (MEMHOUND_FORCE) */
};

/* A new run id into out (17 bytes): 16 lowercase hex digits of
 * getrandom(), never all zeros (0 means "no run id" in a capture). Every
 * process a command starts writes it in its capture's header, and report
 * merges only captures of one run. 0, or a negative MH_E* code. */
int mh_cli_run_id_new(char *out) MH_MUST_USE;

/* Sets PYTHONPATH (the bootstrap under `pydir` first) and the MEMHOUND_*
 * variables in this process's environment, for a command about to be
 * started; unsets inherited ones that would override a default. Prints
 * why on failure. */
int mh_cli_agent_env(const char *pydir,
                     const struct mh_agent_env *e) MH_MUST_USE;

#endif
