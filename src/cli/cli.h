/* One entry point per command, each in its own file under src/cli/.
 *
 * Exit codes (documented in README): 0 success; 1 the command failed (bad
 * or unreadable input, I/O error); 2 usage error. `run` exits with the
 * target's own status. */
#ifndef MH_CLI_H
#define MH_CLI_H

enum { MH_EXIT_OK = 0, MH_EXIT_FAIL = 1, MH_EXIT_USAGE = 2 };

/* argv[0] is the command name ("report"); the rest are its arguments. */
int mh_cmd_run(int argc, char **argv);
int mh_cmd_report(int argc, char **argv);

/* Directory holding the Python side (the memhound package, the agent
 * builds, bootstrap/): $MEMHOUND_PYTHONPATH, else <exe dir>/python (build
 * tree), else <exe dir>/../lib/memhound/python (installed). The caller
 * owns the returned string (mh_free). NULL when none exists. */
char *mh_cli_python_dir(void);

#endif
