"""The golden set: every report and heap output, byte for byte, on frozen
captures and heap dumps (issue 13: a restructuring must change no output).

tests/data/golden/MANIFEST lists the command lines (`NAME: ARGS`); each
runs as `build/memhound ARGS` from tests/data/golden/ (so the paths it
prints are relative and fixed) with TZ=UTC (reports print local times),
LC_ALL=C, no terminal, and a minimal environment; its stdout, stderr and
exit status must equal tests/data/golden/expected/NAME.out. The inputs
(tests/data/golden/inputs/, made by tests/data/golden/make-golden) are
never regenerated here: a difference is a change of the code's output.

To accept a deliberate change of output, rewrite the expectations:
    MEMHOUND_GOLDEN_UPDATE=1 /usr/bin/python3 -m pytest -q tests/py/test_golden.py
and review the diff of tests/data/golden/expected/ before committing it.
"""

import difflib
import os
import shlex
import subprocess

import pytest

from conftest import MEMHOUND, ROOT

GOLDEN = ROOT / "tests" / "data" / "golden"
EXPECTED = GOLDEN / "expected"
UPDATE = os.environ.get("MEMHOUND_GOLDEN_UPDATE") == "1"

pytestmark = pytest.mark.skipif(not MEMHOUND.exists(),
                                reason="memhound is not built")


def manifest():
    """[(name, argv)] in the order of MANIFEST."""
    out = []
    for n, line in enumerate((GOLDEN / "MANIFEST").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, args = line.partition(": ")
        assert sep and name and "/" not in name, \
            "MANIFEST line %d: expected 'NAME: ARGS': %r" % (n, line)
        out.append((name, shlex.split(args)))
    return out


CASES = manifest()


def run(argv):
    """What the command printed and returned, as one byte string."""
    env = {"PATH": "/usr/bin:/bin", "TZ": "UTC", "LC_ALL": "C",
           "HOME": str(GOLDEN)}
    p = subprocess.run([str(MEMHOUND)] + argv, cwd=GOLDEN, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    return (p.stdout + b"--- stderr ---\n" + p.stderr +
            b"--- exit %d ---\n" % p.returncode)


def test_manifest_names_are_unique():
    names = [name for name, _ in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 60


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_golden(name, argv):
    got = run(argv)
    path = EXPECTED / (name + ".out")
    if UPDATE:
        EXPECTED.mkdir(exist_ok=True)
        path.write_bytes(got)
        return
    assert path.exists(), \
        "no expectation for %s: run with MEMHOUND_GOLDEN_UPDATE=1" % name
    want = path.read_bytes()
    if got != want:
        diff = difflib.unified_diff(
            want.decode("utf-8", "replace").splitlines(keepends=True),
            got.decode("utf-8", "replace").splitlines(keepends=True),
            "expected/%s.out" % name, "memhound %s" % shlex.join(argv))
        pytest.fail("output of 'memhound %s' changed:\n%s"
                    % (shlex.join(argv), "".join(diff)), pytrace=False)


def test_no_stale_expectations():
    """Every expected/*.out belongs to a MANIFEST line."""
    names = {name + ".out" for name, _ in CASES}
    stale = sorted(p.name for p in EXPECTED.glob("*.out")
                   if p.name not in names)
    assert not stale, "expectations without a MANIFEST line: %s" % stale
