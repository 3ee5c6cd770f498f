/* Where a command that renders a report writes it (heap, report): stdout,
 * or the file -o names. A full disk must not pass for a short report, so
 * the close checks the flush and reports a failure of either. */
#ifndef MH_CLI_OUTPUT_H
#define MH_CLI_OUTPUT_H

#include <stdio.h>

/* Checks, before a command starts anything, that memhound may create
 * `path` (docs/security.md, "Files"): its directory passes
 * mh_file_check_dir() and is writable, and the path is absent, or with
 * `force` a regular file of this user that may be replaced. With
 * `is_template` (a capture path for the agent), a file name holding % is
 * expanded per process (%p, %r), so only its directory is checked, and
 * %p or %r in a directory is refused. Prints why and returns
 * MH_EXIT_FAIL, or returns MH_EXIT_OK. */
int mh_output_preflight(const char *path, int force, int is_template);

/* stdout when `path` is NULL or "-", else the file `path`, created mode
 * 0600 by mh_file_create_private() after mh_output_preflight(); `force`
 * replaces a regular file of this user. The caller owns it and passes it
 * to mh_output_close(). NULL after reporting why, e.g. "cannot create
 * 'PATH': the file exists; pass --force to replace it". */
FILE *mh_output_open(const char *path, int force);

/* Flushes `out`, and closes it unless it is stdout, after a render that
 * returned `rc`: MH_OK, an MH_E* code (MH_EIO with errno still set by the
 * failed write), or a positive exit code for an error the caller has
 * reported already, which is returned as it is. Otherwise reports
 * "cannot write 'PATH': ..." for the render's or the close's failure and
 * returns MH_EXIT_FAIL, or returns MH_EXIT_OK. */
int mh_output_close(FILE *out, const char *path, int rc);

#endif
