"""What a file can make the CLI do (docs/security.md, "Reading untrusted
files"): a decompression bomb, /dev/zero, an endless pipe or FIFO are
refused within a second with a clear message and exit status 1; a heap
dump cut short still reads, with most of its objects.

The bombs are built here by hand: zstd frames of RLE blocks (4 bytes for
each 128 KiB of zeros), which no memhound writer makes."""
import json
import os
import re
import struct
import subprocess
import threading
import time
import zlib

import pytest

from conftest import MEMHOUND, PYDIR, SYSTEM_PY, clean_env

CAP_MAGIC = b"\x89MHC\r\n\x1a\n"
HEAP_MAGIC = b"\x89MHH\r\n\x1a\n"
RATIO = 4096  # MH_CAP_INFLATE_RATIO
FAST = 1.5  # seconds: refusing is a few ms; the old reader took 22 s


def uv(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def chunk(payload, compressed=False):
    return (b"K" + struct.pack("<II", len(payload), zlib.crc32(payload)) +
            bytes([1 if compressed else 0]) + payload)


def zstd_zeros(prefix, zeros):
    """A chunk payload: declared length, then a zstd frame of `prefix`
    (a raw block) followed by `zeros` zero bytes (RLE blocks)."""
    total = len(prefix) + zeros
    # magic; frame header: 8-byte content size, single segment
    f = bytearray(b"\x28\xb5\x2f\xfd\xe0") + struct.pack("<Q", total)

    def block(last, kind, size):
        return struct.pack("<I", last | kind << 1 | size << 3)[:3]

    f += block(0, 0, len(prefix)) + prefix
    left = zeros
    while left:
        n = min(left, 1 << 17)
        left -= n
        f += block(1 if left == 0 else 0, 1, n) + b"\0"
    return uv(total) + bytes(f)


def bomb(magic, size, raw=256 << 20):
    """A file of about `size` bytes: a stored chunk with a capture HEADER
    record, then chunks that each decompress to `raw` bytes of a record
    the reader skips (an unknown sized tag)."""
    s = lambda b: uv(len(b)) + b
    header = (uv(1) + uv(1) + uv(0) + uv(1) + uv(0) + uv(64) + uv(0) +
              s(b"3.11") + s(b"python3") + uv(0) + uv(0) + uv(0))
    out = bytearray(magic + b"\x01\x00\x00\x00")
    out += chunk(b"\x40" + uv(len(header)) + header)
    body = raw - 1 - len(uv(raw))
    one = chunk(zstd_zeros(b"\xf0" + uv(body), body), compressed=True)
    while len(out) < size:
        out += one
    return bytes(out)


def memhound(args, **kw):
    t0 = time.monotonic()
    r = subprocess.run([str(MEMHOUND)] + args, capture_output=True,
                       text=True, timeout=60, env=clean_env(), **kw)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("magic,cmd,what,mib", [
    (CAP_MAGIC, ["report"], "capture", 2),
    (HEAP_MAGIC, ["heap", "census"], "heap dump", 2),
    # 64 GiB declared: refused as fast, since no chunk is inflated first
    (CAP_MAGIC, ["report"], "capture", 16),
])
def test_decompression_bomb_refused_fast(tmp_path, magic, cmd, what, mib):
    path = tmp_path / "bomb.bin"
    data = bomb(magic, mib << 20)
    path.write_bytes(data)
    r, took = memhound(cmd + [str(path)])
    assert r.returncode == 1, r
    m = re.search(r"memhound: cannot read (heap dump )?'%s': chunk at offset "
                  r"(\d+): the %s decompresses to more than 4096 times its "
                  r"size \([\d.]+ MiB file, [\d.]+ GiB limit\): refused as a "
                  r"decompression bomb" % (re.escape(str(path)), what),
                  r.stderr)
    assert m, r.stderr
    # the chunk named is the first past the cap, before any was inflated
    first = 12 + 10 + struct.unpack_from("<I", data, 13)[0]
    one = 10 + struct.unpack_from("<I", data, first + 1)[0]
    fit = (len(data) * RATIO + (64 << 20)) // (256 << 20)
    assert int(m.group(2)) == first + fit * one, (m.group(2), first, one)
    assert took < FAST, "refused after %.1f s" % took


@pytest.mark.parametrize("cmd,what", [
    (["report"], "capture"),
    (["heap", "census"], "heap dump"),
])
def test_dev_zero_refused_fast(cmd, what):
    r, took = memhound(cmd + ["/dev/zero"])
    assert r.returncode == 1, r
    assert ("memhound: cannot read '/dev/zero': not a memhound %s (bad magic "
            "at offset 0)" % what) in r.stderr, r.stderr
    assert took < FAST, "refused after %.1f s" % took


def test_endless_pipe_refused_fast():
    feeder = subprocess.Popen(["cat", "/dev/zero"], stdout=subprocess.PIPE)
    try:
        r, took = memhound(["report", "-"], stdin=feeder.stdout)
    finally:
        feeder.kill()
        feeder.wait()
    assert r.returncode == 1, r
    assert ("cannot read '<stdin>': not a memhound capture (bad magic at "
            "offset 0)") in r.stderr, r.stderr
    assert took < FAST


def test_endless_fifo_with_a_header_refused_fast(tmp_path):
    """A FIFO whose writer sends a good file header and then garbage for
    ever: refused at the first chunk, not read to the 1 GiB cap."""
    fifo = tmp_path / "endless.mhh"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed():
        try:
            with open(fifo, "wb") as f:
                f.write(HEAP_MAGIC + b"\x01\x00\x00\x00")
                block = b"x" * 65536
                while not stop.is_set():
                    f.write(block)
        except (BrokenPipeError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        r, took = memhound(["heap", "census", str(fifo)])
    finally:
        stop.set()
    t.join(10)
    assert r.returncode == 1, r
    assert ("cannot read '%s': offset 12: expected a chunk (tag 0x4b), found "
            "byte 0x78" % fifo) in r.stderr, r.stderr
    assert took < FAST


def test_capture_through_a_pipe_still_reads(tmp_path):
    """A real capture piped to `report -` passes the checks made as it
    arrives."""
    out = tmp_path / "small.mhc"
    r = subprocess.run([str(MEMHOUND), "run", "-q", "--trace-all", "-o",
                        str(out), "--", SYSTEM_PY, "-c",
                        "x = [bytearray(100) for i in range(20000)]"],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env(), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        r2, _ = memhound(["report", "--format", "json", "-"], stdin=f)
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["processes"][0]["samples"] > 20000


DUMPER = """
import sys, time
sys.path.insert(0, %r)
import _memhound
table = [{"s": "item %%d" %% i} for i in range(300000)]
_memhound.dump_heap(sys.argv[1])
"""


def census(path):
    r, _ = memhound(["heap", "census", "--format", "json", str(path)])
    return r


def test_dump_cut_short_keeps_most_objects(tmp_path):
    """A real dump (300k dicts and strs, and the list of 300k items that
    holds them) cut at 10%..90%: each cut reads, says it was cut short,
    and keeps about its share of the objects (docs/heap-format.md has the
    numbers)."""
    prog = tmp_path / "dumper.py"
    prog.write_text(DUMPER % str(PYDIR / "memhound"))
    dump = tmp_path / "whole.mhh"
    r = subprocess.run([SYSTEM_PY, str(prog), str(dump)],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env(), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    data = dump.read_bytes()
    whole = census(dump)
    assert whole.returncode == 0, whole.stderr
    total = json.loads(whole.stdout)["dump"]["objects"]
    assert total > 600000
    kept = {}
    for pct in (10, 30, 50, 70, 90):
        cut = tmp_path / ("cut%d.mhh" % pct)
        cut.write_bytes(data[:len(data) * pct // 100])
        r = census(cut)
        assert r.returncode == 0, r.stderr
        assert re.search(r"heap dump '%s' is cut short \(the walker was "
                         r"probably killed\): it ends inside the chunk at "
                         r"offset \d+, whose \d+ bytes are unusable, and has "
                         r"no END record; analysing the \d+ objects before"
                         % re.escape(str(cut)), r.stderr), r.stderr
        d = json.loads(r.stdout)["dump"]
        assert d["truncated"] and not d["complete"]
        kept[pct] = d["objects"] / total
    print("objects kept:", {p: "%.0f%%" % (k * 100) for p, k in kept.items()})
    # the list's record comes last, so the rest come nearly evenly
    assert kept[50] > 0.35 and kept[70] > 0.55 and kept[90] > 0.8, kept
