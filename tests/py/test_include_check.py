"""The include-direction check (.ci/check-includes) passes on the tree and
fails on a forbidden include planted in a copy of it, on a parser call
outside analysis/, on file I/O in analysis/, and on an allowlist line that
no longer matches."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / ".ci" / "check-includes"


def run_check(root):
    return subprocess.run([sys.executable, str(CHECK), "--root", str(root)],
                          capture_output=True, text=True, timeout=60)


def copy_tree(tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "src", root / "src",
                    ignore=shutil.ignore_patterns("*.o", "*.d"))
    (root / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "include-allow", root / ".ci")
    return root


def plant(path, line):
    text = path.read_text()
    # after the first include, so it is a real include line of the file
    i = text.index("#include")
    path.write_text(text[:i] + line + "\n" + text[i:])


def test_tree_passes():
    r = run_check(ROOT)
    assert r.returncode == 0, r.stderr
    assert "no new crossing" in r.stdout


def test_render_including_format_fails(tmp_path):
    root = copy_tree(tmp_path)
    assert run_check(root).returncode == 0
    plant(root / "src/render/heap_text.c", '#include "../format/heap_read.h"')
    r = run_check(root)
    assert r.returncode == 1
    assert ("src/render/heap_text.c -> format/heap_read.h: "
            "render may not include format/") in r.stderr


def test_agent_including_reader_and_analysis_io_fail(tmp_path):
    root = copy_tree(tmp_path)
    plant(root / "src/agent/stacks.c", '#include "../format/capture_read.h"')
    plant(root / "src/analysis/capture/timeline.c", '#include "../../util/file.h"')
    plant(root / "src/util/buf.c", '#include "../analysis/capture/timeline.h"')
    r = run_check(root)
    assert r.returncode == 1
    assert "src/agent/stacks.c -> format/capture_read.h: the agent links " \
        "the format writers only" in r.stderr
    assert "src/analysis/capture/timeline.c -> util/file.h: analysis does no file " \
        "I/O" in r.stderr
    assert "src/util/buf.c -> analysis/capture/timeline.h: util may not include " \
        "analysis/" in r.stderr


def test_parser_call_in_cli_fails(tmp_path):
    root = copy_tree(tmp_path)
    p = root / "src/cli/top.c"
    p.write_text(p.read_text() + "\n/* mh_heap_parse(&d, buf, len); */\n")
    r = run_check(root)
    assert r.returncode == 1
    assert "src/cli/top.c -> mh_heap_parse(): only analysis/ parses" \
        in r.stderr


def test_file_io_in_analysis_fails(tmp_path):
    root = copy_tree(tmp_path)
    p = root / "src/analysis/capture/timeline.c"
    p.write_text(p.read_text() +
                 '\nstatic void f(void) { fopen("x", "r"); }\n')
    r = run_check(root)
    assert r.returncode == 1
    assert "src/analysis/capture/timeline.c -> fopen(): analysis does no file I/O" \
        in r.stderr


def test_stale_allowlist_entry_fails(tmp_path):
    root = copy_tree(tmp_path)
    p = root / "src/cli/inspect.c"
    p.write_text(p.read_text().replace('#include "../format/chunk.h"\n',
                                       ""))
    r = run_check(root)
    assert r.returncode == 1
    assert "'src/cli/inspect.c format/chunk.h' is no longer a crossing" \
        in r.stderr
