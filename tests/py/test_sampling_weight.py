"""The agent's sampling weight (docs/capture-format.md: each sample stands
for size / (1 - exp(-size / R)) bytes, pprof's unbiased estimator), read
where a user reads it: memhound.stats()["live_bytes"] and the control
socket's `stats` reply (`live=B`, docs/verdict.md). A program keeps 64 MiB
live in 1 KiB objects; both figures must grow by the bytes kept within
20%. At a 64 KiB interval that is ~1000 samples, a standard
error of ~3%: 20% is over six of them, yet a wrong weight (a broken one
once reported 0.78 MiB for this heap) fails by far."""
import json
import textwrap

from conftest import CONTROL_CLIENT, PYDIR, clean_env, describe

KEEP = CONTROL_CLIENT + """
import json, sys
sys.path.insert(0, %r)
import memhound

def control_live(path):
    reply = control_request(path, "stats")
    words = dict(w.split("=", 1) for w in reply.split()[1:])
    return int(words["live"])

memhound.start("cap.mhc", mode=%r, sample_interval=%s)
before = memhound.stats()
before_ctl = control_live(before["control"])
kept = [bytes(1024) for _ in range(65536)]
# What the objects and the list hold, as the allocator was asked for it.
size = sum(sys.getsizeof(b) for b in kept) + sys.getsizeof(kept)
after = memhound.stats()
after_ctl = control_live(after["control"])
memhound.stop()
print(json.dumps({"kept": size, "interval": after["interval"],
                  "stats": after["live_bytes"] - before["live_bytes"],
                  "control": after_ctl - before_ctl}))
"""


def test_live_bytes_weigh_what_is_kept(py, program, procs):
    # 64 KiB, not the default 256 KiB: four times the samples, so 20% is
    # six standard errors rather than three (the weight is the same formula
    # at any interval).
    # (Trace-all mode leaves both at 0: the reader replays the events.)
    prog = program(KEEP % (str(PYDIR), "sample", 64 * 1024))
    r = procs.run([py, prog.path], env=clean_env(),
                  cwd=str(prog.path.parent))
    assert r.returncode == 0, describe(r)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    kept = out["kept"]
    assert kept > 64 << 20, out
    assert out["interval"] == 64 * 1024, out
    for where in ("stats", "control"):
        assert 0.8 * kept <= out[where] <= 1.2 * kept, \
            (where, out[where] / kept, out)
