/* guard: the command line (usage, option parsing) and signal names. */
#include "guard.h"

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"TERM", SIGTERM}, {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
};

const char *
mh_guard_sig_name(int sig)
{
    static char buf[16];
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (signals[i].sig == sig) {
            snprintf(buf, sizeof(buf), "SIG%s", signals[i].name);
            return buf;
        }
    snprintf(buf, sizeof(buf), "%d", sig);
    return buf;
}

static int
parse_signal(const char *s)
{
    if (!strncmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (!strcmp(s, signals[i].name))
            return signals[i].sig;
    char *end;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && v > 0 && v < NSIG)
        return (int)v;
    return 0;
}

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: memhound guard [options] -- COMMAND [ARGS...]\n"
        "       memhound guard [options] --pid MASTER\n"
        "\n"
        "Watches the workers of a pre-fork server (the children of its\n"
        "master) on a timer and recycles one that passes a limit: first a\n"
        "heap dump and a capture flush when it records with memhound, then\n"
        "the server's graceful signal, SIGKILL after the mercy period.\n"
        "With COMMAND the server is started recording, as 'memhound run'\n"
        "does; with --pid an existing master is guarded.\n"
        "\n"
        "limits (at least one):\n"
        "      --rss-limit SIZE      a worker's resident memory (512m, 1g)\n"
        "      --uss-limit SIZE      a worker's private memory (what its\n"
        "                            exit would free)\n"
        "      --limit-fraction F    when the cgroup's memory use passes F\n"
        "                            (0-1) of its limit, the largest worker\n"
        "      --max-lifetime DUR    a worker's age (30m, 12h)\n"
        "      --jitter DUR          up to this much more lifetime, "
        "random\n"
        "                            per worker, so they do not all expire\n"
        "                            together\n"
        "      --max-requests N      requests served (turns memhound's web\n"
        "                            layer on in COMMAND; with --pid, its\n"
        "                            workers must count requests)\n"
        "recycling:\n"
        "      --interval DUR        time between checks (default 1s)\n"
        "      --mercy DUR           graceful exit time before SIGKILL\n"
        "                            (default 60s)\n"
        "      --max-concurrent N    recycles at a time (default 1; never\n"
        "                            all workers)\n"
        "      --signal SIG          graceful signal (default: SIGTERM for\n"
        "                            gunicorn, SIGHUP for uWSGI, detected\n"
        "                            from the master's command line)\n"
        "      --worker-match REGEX  the master's children whose command\n"
        "                            line matches REGEX (POSIX extended)\n"
        "                            are its workers; needed for a server\n"
        "                            that is neither gunicorn nor uWSGI\n"
        "evidence and log:\n"
        "      --snapshot-dir DIR    heap dumps (and, with COMMAND, the\n"
        "                            captures) go here (default: .)\n"
        "      --dump-timeout DUR    longest wait for a heap dump (30s)\n"
        "      --no-dump             recycle without asking for evidence\n"
        "  -o, --output PATH         with COMMAND: capture path template,\n"
        "                            %%p = pid, %%r = random (default\n"
        "                            DIR/memhound.%%p.%%r.mhc)\n"
        "      --log FILE            JSON lines, one per event (default\n"
        "                            stderr); created mode 0600\n"
        "      --force               append to an existing log, replace\n"
        "                            existing captures, if they are\n"
        "                            regular files of yours\n"
        "  -h, --help                show this help\n"
        "\n"
        "Only verified workers are signalled: children of the master that\n"
        "run its program and are registered with memhound or named as\n"
        "the server names its workers (docs/guard.md); other children are\n"
        "reported, never signalled.\n"
        "\n"
        "Signals: with COMMAND, TERM, INT and QUIT are passed to the\n"
        "server, which stops, and the guard exits with its status; HUP,\n"
        "USR1, USR2, WINCH, TTIN and TTOU are passed on too. With --pid,\n"
        "TERM, INT and HUP stop the guard; the server runs on.\n");
}

/* Fills `o` from argv: 0, or the usage error args.h printed.
 * Longer than 100 lines: one flat if-chain, one branch per option in
 * the order of usage(), kept together until the option-table parser of
 * issue 13 replaces it. */
int
mh_guard_parse_args(int argc, char **argv, struct guard_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->interval = DEFAULT_INTERVAL;
    o->mercy = DEFAULT_MERCY;
    o->dump_timeout = DEFAULT_DUMP_TIMEOUT;
    o->max_concurrent = 1;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int r;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(MH_EXIT_OK);
        } else if (!strcmp(a, "--no-dump")) {
            o->no_dump = 1;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--rss-limit",
                                           &val)) ||
                   (r = mh_args_take_value(argc, argv, &i, NULL, "--uss-limit",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            uint64_t *dst = a[2] == 'r' ? &o->rss_limit : &o->uss_limit;
            if (mh_units_parse_size(val, dst))
                return mh_args_bad_value(a[2] == 'r' ? "--rss-limit"
                                                     : "--uss-limit",
                                         val, "a size such as 512m or 1.5g");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--limit-fraction", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->limit_fraction = strtod(val, &end);
            if (errno || end == val || *end ||
                !(o->limit_fraction > 0 && o->limit_fraction <= 1))
                return mh_args_bad_value(
                    "--limit-fraction", val,
                    "a fraction above 0, at most 1, such as 0.9");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-lifetime", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 1, &o->max_lifetime))
                return mh_args_bad_value(
                    "--max-lifetime", val,
                    "a duration of 1s or more, such as 12h");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--jitter",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0, &o->jitter))
                return mh_args_bad_value("--jitter", val,
                                         "a duration such as 10m or 0");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-requests", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            o->max_requests = strtoll(val, &end, 10);
            if (errno || end == val || *end || o->max_requests < 1)
                return mh_args_bad_value("--max-requests", val,
                                         "a positive count");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--interval",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->interval))
                return mh_args_bad_value(
                    "--interval", val,
                    "a duration of 100ms or more, such as 1s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--mercy",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->mercy))
                return mh_args_bad_value(
                    "--mercy", val,
                    "a duration of 100ms or more, such as 60s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--dump-timeout", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            if (mh_units_parse_duration(val, 0.1, &o->dump_timeout))
                return mh_args_bad_value(
                    "--dump-timeout", val,
                    "a duration of 100ms or more, such as 30s");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--max-concurrent", &val))) {
            if (r < 0)
                return mh_args_missing(a);
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end || v < 1 || v > MAX_WORKERS)
                return mh_args_bad_value("--max-concurrent", val,
                                         "a count of 1 or more");
            o->max_concurrent = (int)v;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--signal",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            o->sig = parse_signal(val);
            if (!o->sig || o->sig == SIGKILL)
                return mh_args_bad_value(
                    "--signal", val,
                    "a signal name or number such as TERM, "
                    "HUP or QUIT (KILL is not graceful)");
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--snapshot-dir", &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->snapshot_dir = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, "-o", "--output",
                                           &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->output = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--log",
                                           &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->log_path = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL,
                                           "--worker-match", &val))) {
            if (r < 0 || !*val)
                return mh_args_missing(a);
            o->worker_match = val;
        } else if ((r = mh_args_take_value(argc, argv, &i, NULL, "--pid",
                                           &val))) {
            if (r < 0)
                return mh_args_missing(a);
            /* pid 1 is a valid --pid (a server in a container), refused
             * later unless it is a recognised master. */
            if (mh_args_parse_pid(val, &o->pid) || o->pid < 1)
                return mh_args_bad_value("--pid", val, "a process id");
        } else {
            mh_errorf("unknown option '%s' for guard; see 'memhound guard "
                      "--help'",
                      a);
            return MH_EXIT_USAGE;
        }
    }
    if (i < argc)
        o->command = argv + i;
    if (!o->command == !o->pid) {
        mh_errorf("guard needs either --pid MASTER or a command, e.g. "
                  "'memhound guard --rss-limit 512m -- gunicorn app:app'");
        usage(stderr);
        return MH_EXIT_USAGE;
    }
    if (!o->rss_limit && !o->uss_limit && !o->limit_fraction &&
        !o->max_lifetime && !o->max_requests) {
        mh_errorf("guard needs a limit: --rss-limit, --uss-limit, "
                  "--limit-fraction, --max-lifetime or --max-requests");
        return MH_EXIT_USAGE;
    }
    if (o->jitter > 0 && !o->max_lifetime)
        mh_warnf("--jitter has no effect without --max-lifetime");
    if (o->output && !o->command) {
        mh_errorf("--output needs a command (with --pid the server records "
                  "as it was started)");
        return MH_EXIT_USAGE;
    }
    return MH_EXIT_OK;
}
