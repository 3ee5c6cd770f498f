"""Damaged captures: `memhound report` must explain, never crash.

A capture cut short (what a killed process or a full disk leaves) is read
up to the cut with a warning naming the offset; anything else that is wrong
is an error with the offset and the reason, exit status 1. Usage errors
exit 2. Hundreds of mutated captures (with valid CRCs, so the record parser
itself is exercised) must each give exit 0 or 1, never a signal.
"""

import json
import random
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import MEMHOUND, SYSTEM_PY, clean_env
from test_core import PLANTED

FILE_HEADER = 12
CHUNK_HEADER = 10


def parse_chunks(data):
    """[(offset, payload length, flags)] of a well-formed capture."""
    out = []
    off = FILE_HEADER
    while off < len(data):
        assert data[off] == 0x4B, "no chunk at %d" % off
        n, _ = struct.unpack_from("<II", data, off + 1)
        out.append((off, n, data[off + 9]))
        off += CHUNK_HEADER + n
    assert off == len(data)
    return out


def make_chunk(payload, flags=0):
    return (b"K" + struct.pack("<II", len(payload), zlib.crc32(payload)) +
            bytes([flags]) + payload)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A real trace-all capture of several chunks, made once."""
    if not MEMHOUND.exists():
        pytest.fail("%s is not built: run make" % MEMHOUND)
    d = tmp_path_factory.mktemp("capture")
    prog = d / "prog.py"
    prog.write_text(PLANTED)
    out = d / "good.mhc"
    r = subprocess.run([str(MEMHOUND), "run", "--trace-all", "-o", str(out),
                        "--", SYSTEM_PY, str(prog), "8000", "1024", "2.4"],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env(), cwd=str(d))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    chunks = parse_chunks(data)
    assert len(chunks) >= 3, chunks
    return data, chunks


def report(tmp_path, data, name="x.mhc", fmt="json"):
    p = tmp_path / name
    p.write_bytes(data)
    r = subprocess.run([str(MEMHOUND), "report", "--format", fmt, str(p)],
                       capture_output=True, text=True, timeout=60,
                       env=clean_env(), errors="replace")
    assert r.returncode >= 0, "report died of signal %d on %s\n%s" % (
        -r.returncode, name, r.stderr[-2000:])
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, \
        r.stderr[-3000:]
    return r


def assert_error(r, offset=None, what=""):
    assert r.returncode == 1, "expected exit 1%s, got %d\n%s%s" % (
        what, r.returncode, r.stdout[-1000:], r.stderr[-1000:])
    msg = r.stderr.strip()
    assert msg.startswith("memhound"), msg
    assert "\n" not in msg or len(msg.splitlines()) <= 3, msg
    if offset is not None:
        assert re.search(r"offset %d\b" % offset, msg) or \
            re.search(r"offset 0x%x\b" % offset, msg, re.I), (
                "the message does not name offset %d: %s" % (offset, msg))


def test_good_capture_reports(tmp_path, capture):
    data, _ = capture
    r = report(tmp_path, data)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_truncated_inside_a_chunk_reports_up_to_the_cut(tmp_path, capture):
    data, chunks = capture
    for off, n, _ in chunks[1:]:
        for cut in (off + 1, off + CHUNK_HEADER - 1, off + CHUNK_HEADER,
                    off + CHUNK_HEADER + n // 2,
                    off + CHUNK_HEADER + n - 1):
            r = report(tmp_path, data[:cut], "cut%d.mhc" % cut)
            assert r.returncode == 0, (cut, r.stderr)
            assert re.search(r"\boffset %d\b" % off, r.stderr), (
                "cut at %d: the warning should name the chunk at %d: %s" % (
                    cut, off, r.stderr))
            summary = json.loads(r.stdout)["summary"]
            assert summary["truncated"] is True, summary


def test_cut_at_a_chunk_boundary_is_a_clean_prefix(tmp_path, capture):
    data, chunks = capture
    off = chunks[2][0]
    r = report(tmp_path, data[:off])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 11])
def test_truncated_file_header_is_an_error(tmp_path, capture, cut):
    data, _ = capture
    r = report(tmp_path, data[:cut], "head%d.mhc" % cut)
    assert_error(r, what=" for a %d-byte file" % cut)


def test_cut_inside_the_first_chunk_is_an_empty_truncated_report(tmp_path,
                                                                capture):
    # Like any cut (docs/capture-format.md): read up to the cut, with a
    # warning naming where; the first chunk holds the HEADER record, so
    # what is left is nothing: an empty report, marked truncated.
    data, chunks = capture
    off, n, _ = chunks[0]
    for cut in (off + 3, off + CHUNK_HEADER + n // 2):
        r = report(tmp_path, data[:cut], "first%d.mhc" % cut)
        assert r.returncode == 0, (cut, r.stderr)
        assert r.stderr.startswith("memhound: warning: capture "), r.stderr
        assert re.search(r"cut short at offset %d\b" % off, r.stderr), \
            r.stderr
        summary = json.loads(r.stdout)["summary"]
        assert summary["truncated"] is True, summary
        assert summary["live_bytes"] == 0, summary


def test_crc_mismatch_names_the_chunk_offset(tmp_path, capture):
    data, chunks = capture
    for off, n, _ in chunks[:3]:
        bad = bytearray(data)
        bad[off + CHUNK_HEADER + n // 2] ^= 0x5A
        r = report(tmp_path, bytes(bad), "crc%d.mhc" % off)
        assert_error(r, off, " for a CRC mismatch")
        assert "crc" in r.stderr.lower(), r.stderr


def test_bad_chunk_tag_names_the_offset(tmp_path, capture):
    data, chunks = capture
    off = chunks[1][0]
    bad = bytearray(data)
    bad[off] = ord("X")
    r = report(tmp_path, bytes(bad))
    assert_error(r, off, " for a bad chunk tag")


@pytest.mark.parametrize("what,patch", [
    ("magic", lambda d: b"\x89MHX" + d[4:]),
    ("version", lambda d: d[:8] + struct.pack("<H", 99) + d[10:]),
    ("flags", lambda d: d[:10] + struct.pack("<H", 1) + d[12:]),
    ("text", lambda d: b"hello, this is not a capture\n" * 10),
])
def test_bad_file_header_is_an_error(tmp_path, capture, what, patch):
    data, _ = capture
    r = report(tmp_path, patch(data), "bad-%s.mhc" % what)
    assert_error(r, what=" for a bad " + what)


def test_bad_record_with_valid_crc_names_the_offset(tmp_path, capture):
    data, chunks = capture
    first_end = chunks[0][0] + CHUNK_HEADER + chunks[0][1]
    off = first_end
    for payload in (b"\x00", b"\x3e\x01\x02", b"\x01\x7f\x10\x00",
                    b"\x44\x05\x01\x01\x01\x01\x01"):
        bad = data[:first_end] + make_chunk(payload) + data[first_end:]
        r = report(tmp_path, bad, "rec.mhc")
        # The chunk's offset, then the record's: an uncompressed chunk's
        # first record starts right after the chunk header.
        assert_error(r, off, " for payload %r" % payload)
        assert "chunk at offset %d: record 0x%02x at offset %d " % (
            off, payload[0], off + CHUNK_HEADER) in r.stderr, r.stderr


def test_missing_file_is_an_error(tmp_path):
    r = subprocess.run([str(MEMHOUND), "report", str(tmp_path / "nope.mhc")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert "nope.mhc" in r.stderr and "No such file" in r.stderr, r.stderr


@pytest.mark.parametrize("argv", [
    ["report"],
    ["report", "--format", "xml", "x.mhc"],
    ["report", "--no-such-option", "x.mhc"],
    ["report", "--top", "many", "x.mhc"],
    ["run"],
    ["run", "--trace-all"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv, tmp_path):
    r = subprocess.run([str(MEMHOUND)] + argv, capture_output=True,
                       text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 2, (argv, r.returncode, r.stderr)
    assert r.stderr.strip(), "a usage error must say something"


def _mutate(rng, data, chunks):
    """One random damage: to a chunk's payload (CRC fixed up, so the
    records themselves are parsed), to a chunk header, or anywhere."""
    kind = rng.random()
    b = bytearray(data)
    if kind < 0.7:
        off, n, flags = rng.choice(chunks)
        start = off + CHUNK_HEADER
        payload = bytearray(b[start:start + n])
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(payload)) if payload else 0
            if op < 0.5 and payload:
                payload[i] = rng.randrange(256)
            elif op < 0.7:
                payload[i:i] = bytes(rng.randrange(256)
                                     for _ in range(rng.randint(1, 8)))
            elif op < 0.85 and payload:
                del payload[i:i + rng.randint(1, 16)]
            elif payload:
                payload[i] = rng.choice([0x00, 0x01, 0x04, 0x3F, 0x40, 0x44,
                                         0x45, 0x47, 0x80, 0xFF])
        return bytes(b[:off]) + make_chunk(bytes(payload), flags) + \
            bytes(b[start + n:])
    if kind < 0.85:
        off, n, flags = rng.choice(chunks)
        i = off + rng.randrange(CHUNK_HEADER)
        b[i] = rng.randrange(256)
        return bytes(b)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def test_mutated_captures_never_crash(tmp_path, capture):
    data, chunks = capture
    rng = random.Random(2)
    outcomes = {0: 0, 1: 0}
    for k in range(300):
        bad = _mutate(rng, data, chunks)
        r = report(tmp_path, bad, "m.mhc")
        assert r.returncode in (0, 1), "mutation %d: exit %d\n%s" % (
            k, r.returncode, r.stderr[-2000:])
        if r.returncode == 1:
            assert r.stderr.startswith("memhound"), r.stderr
            assert re.search(r"offset", r.stderr), r.stderr
        outcomes[r.returncode] += 1
    assert outcomes[1] > 0, outcomes
    (Path(tmp_path) / "m.mhc").unlink()
