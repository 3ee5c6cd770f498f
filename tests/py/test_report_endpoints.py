"""`memhound report --by endpoint` on a capture written here byte by byte
(docs/capture-format.md), so the command line, the file mapping and both
output formats are checked without an agent: two endpoints whose requests
run at once (TAG switching), one keeping 4 KiB per request, one with a
transient 1 MiB peak and a finding at its view line.
"""

import json
import struct
import subprocess
import zlib

import pytest

from conftest import MEMHOUND, clean_env


def uv(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sv(n):
    return uv((n << 1) ^ (n >> 63) if n >= 0 else ((-n) << 1) - 1)


def s(text):
    b = text.encode()
    return uv(len(b)) + b


def sized(tag, body):
    return bytes([tag]) + uv(len(body)) + body


def chunk(payload):
    return (b"K" + struct.pack("<II", len(payload), zlib.crc32(payload)) +
            b"\x00" + payload)


MS = 1000000
VIEWS = "/srv/app/views.py"


def web_capture(rounds=50):
    p = bytearray()
    p += sized(0x40, uv(777) + uv(1) + uv(1700000000 * 10**9) + uv(1) +
               uv(0) + uv(64) + uv(0) + s("3.11.2") + s("/usr/bin/python3") +
               uv(0) + uv(0) + uv(0))
    p += sized(0x41, uv(1) + s(VIEWS))
    p += sized(0x41, uv(2) + s("leak_view"))
    p += sized(0x41, uv(3) + s("report_view"))
    p += sized(0x42, uv(1) + uv(1) + uv(2) + uv(10))
    p += sized(0x42, uv(2) + uv(1) + uv(3) + uv(20))
    p += sized(0x43, uv(1) + uv(1) + uv(12) + uv(0))
    p += sized(0x43, uv(2) + uv(2) + uv(25) + uv(0))
    p += sized(0x44, uv(1) + uv(1) + uv(1))
    p += sized(0x44, uv(2) + uv(1) + uv(2))
    chunks = [bytes(p)]
    p = bytearray()
    last = 0

    def alloc(stack, size, addr):
        nonlocal last
        p.extend(b"\x03" + uv(stack) + uv(size) + sv(addr - last))
        last = addr

    def free(addr):
        nonlocal last
        p.extend(b"\x04" + sv(addr - last))
        last = addr

    for i in range(rounds):
        t = i * 100 * MS
        leak, rep = 2 * i + 1, 2 * i + 2
        p += sized(0x45, uv(t) + uv(64 << 20) + uv(0) * 4)
        p += sized(0x49, uv(leak))
        alloc(1, 4096, 0x100000 + i * 0x2000)
        p += sized(0x49, uv(rep))
        alloc(2, 1 << 19, 0x900000)
        p += sized(0x49, uv(leak))
        p += sized(0x49, uv(rep))
        alloc(2, 1 << 19, 0xa00000)
        p += sized(0x4A, uv(t) + uv(rep) + s("django-queryset-truthiness") +
                   s(VIEWS) + uv(25) + s("report_view") + uv(20000) +
                   uv(1 << 20) + s(""))
        free(0x900000)
        free(0xa00000)
        p += sized(0x48, uv(leak) + uv(t) + uv(t + 10 * MS) +
                   s("leak/<int:id>/"))
        p += sized(0x48, uv(rep) + uv(t) + uv(t + 20 * MS) +
                   s("reports/<int:year>/"))
        if i % 10 == 9:
            chunks.append(bytes(p))
            p = bytearray()
            last = 0
    p += sized(0x47, uv(rounds * 100 * MS) + uv(0) * 3)
    chunks.append(bytes(p))
    return (b"\x89MHC\r\n\x1a\n" + struct.pack("<HH", 1, 0) +
            b"".join(chunk(c) for c in chunks))


def report(path, *options):
    if not MEMHOUND.exists():
        pytest.fail("%s is not built: run make" % MEMHOUND)
    return subprocess.run([str(MEMHOUND), "report", *options, str(path)],
                          capture_output=True, text=True, timeout=60,
                          env=clean_env())


def test_report_by_endpoint(tmp_path):
    path = tmp_path / "web.mhc"
    path.write_bytes(web_capture())
    r = report(path, "--by", "endpoint", "--format", "json", "--warmup",
               "0")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["summary"]["by"] == "endpoint"
    assert d["summary"]["requests"] == 100
    eps = d["endpoints"]
    assert [e["endpoint"] for e in eps] == ["leak/<int:id>/",
                                           "reports/<int:year>/"]
    leak, rep = eps
    assert leak["retained_bytes_per_request"] == 4096
    assert leak["slope_bytes_per_1000_requests"] == 4096000
    assert leak["slope_r2"] == 1
    assert leak["sites"][0]["line"] == 12
    assert rep["peak_bytes_p95"] == 1 << 20
    assert rep["retained_bytes_per_request"] == 0
    (f,) = d["findings"]
    assert (f["file"], f["line"], f["occurrences"]) == (VIEWS, 25, 50)
    assert f["endpoints"] == ["reports/<int:year>/"]

    r = report(path, "--by", "endpoint", "--sort", "peak", "--warmup", "0")
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("endpoints by peak")[1]
    assert table.index("reports/<int:year>/") < table.index("leak/<int:id>/")
    assert "top sites of reports/<int:year>/" in r.stdout
    assert "\nfindings (1)\n" in r.stdout
    assert "docs/findings.md#django-queryset-truthiness" in r.stdout

    # Every --by has the findings; JSON always has both lists.
    r = report(path, "--by", "module")
    assert r.returncode == 0, r.stderr
    assert "\nfindings (1)\n" in r.stdout
    assert "memhound report --by endpoint" in r.stdout

    r = report(path, "--sort", "size")
    assert r.returncode == 2
    assert "invalid --sort 'size'" in r.stderr


def test_damaged_request_record_names_its_offset(tmp_path):
    data = bytearray(web_capture(5))
    # The first REQUEST record: its id becomes 0, the CRC is made right.
    first = 12 + 10 + struct.unpack_from("<I", data, 13)[0]
    rec = sized(0x48, uv(1) + uv(0) + uv(10 * MS) + s("leak/<int:id>/"))
    at = data.index(rec, first + 10)
    data[at + 2] = 0
    n = struct.unpack_from("<I", data, first + 1)[0]
    struct.pack_into("<I", data, first + 5,
                     zlib.crc32(bytes(data[first + 10:first + 10 + n])))
    path = tmp_path / "bad.mhc"
    path.write_bytes(bytes(data))
    r = report(path, "--by", "endpoint")
    assert r.returncode == 1
    assert "chunk at offset %d: record 0x48 at offset %d" % (first, at) \
        in r.stderr, r.stderr
    assert "request with id 0" in r.stderr
