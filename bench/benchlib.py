"""What the standalone benchmarks (guard_bench.py, heap_bench.py) share:
where the tree and the CLI are, their log voice, their --output/--no-write
options, and the rewrite of their own section of docs/performance.md
(bench/run.py writes the rest of that file; each section is replaced in
place so the benchmarks can run in any order)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MEMHOUND = os.environ.get("MEMHOUND_BIN",
                          os.path.join(ROOT, "build", "memhound"))


def logger(prog):
    """A log(msg) that writes "PROG: msg" to stderr at once."""
    def log(msg):
        print("%s: %s" % (prog, msg), file=sys.stderr, flush=True)
    return log


def add_output_args(ap):
    ap.add_argument("--output", default=os.path.join(ROOT, "docs",
                                                     "performance.md"))
    ap.add_argument("--no-write", action="store_true",
                    help="print the section only")


def require_memhound(prog):
    if not os.access(MEMHOUND, os.X_OK):
        sys.exit("%s: %s is missing; run make first" % (prog, MEMHOUND))


def update_doc(path, heading, section):
    """Replaces the `heading` section ("## guard") of the Markdown file, or
    appends it; every other section stays as it is."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = ["# memhound performance", ""]
    start = next((i for i, l in enumerate(lines)
                  if l.strip().lower() == heading), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += [""] + section.splitlines()
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section.splitlines() + ([""] if end < len(lines)
                                                   else [])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
