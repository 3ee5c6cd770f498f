/* memhound's command dispatcher. */
#include <stdio.h>
#include <string.h>

#include "../util/msg.h"
#include "cli.h"

#ifndef MH_VERSION
#define MH_VERSION "0.1.0"
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", mh_cmd_run, "run a Python program with the agent and capture"},
    {"report", mh_cmd_report, "report what grew from one or more captures"},
    {"heap", mh_cmd_heap,
     "heap dumps: census, diff, why (retention paths), top-retainers"},
    {"snapshot", mh_cmd_snapshot,
     "write a heap dump of a process that is recording"},
    {"guard", mh_cmd_guard,
     "recycle bloated workers of a pre-fork server, with evidence"},
    {"top", mh_cmd_top, "live memory view of processes: RSS, USS, growth"},
    {"inspect", mh_cmd_inspect,
     "leak, retention or no growth: a live process's verdict"},
    {"trim", mh_cmd_trim, "malloc_trim in a live process: RSS before/after"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: memhound <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'memhound <command> --help' describes a command.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return MH_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("memhound %s\n", MH_VERSION);
        return MH_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    mh_errorf("unknown command '%s'; see 'memhound --help'", argv[1]);
    return MH_EXIT_USAGE;
}
