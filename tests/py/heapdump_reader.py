"""A small, slow, independent reader of heap dumps (docs/heap-format.md)
for the walker's tests: it checks the agent's output against the spec
without going through the CLI's reader. Compressed chunks are inflated
with libzstd through ctypes."""
import ctypes
import ctypes.util
import struct
import zlib

MAGIC = b"\x89MHH\r\n\x1a\n"

_zstd = None


def _unzstd(data, size):
    global _zstd
    if _zstd is None:
        _zstd = ctypes.CDLL(ctypes.util.find_library("zstd") or "libzstd.so.1")
        _zstd.ZSTD_decompress.restype = ctypes.c_size_t
        _zstd.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                          ctypes.c_void_p, ctypes.c_size_t]
        _zstd.ZSTD_isError.argtypes = [ctypes.c_size_t]
    out = ctypes.create_string_buffer(size)
    n = _zstd.ZSTD_decompress(out, size, data, len(data))
    if _zstd.ZSTD_isError(n) or n != size:
        raise ValueError("bad zstd frame")
    return out.raw[:size]


class DumpError(Exception):
    pass


class Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.p = 0

    def u8(self):
        v = self.buf[self.p]
        self.p += 1
        return v

    def uv(self):
        v = 0
        shift = 0
        while True:
            b = self.buf[self.p]
            self.p += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v
            shift += 7

    def sv(self):
        v = self.uv()
        return (v >> 1) ^ -(v & 1)

    def s(self):
        n = self.uv()
        v = self.buf[self.p:self.p + n]
        self.p += n
        return v.decode("utf-8")


class Obj:
    __slots__ = ("addr", "type", "size", "refcnt", "flags", "edges")

    def __init__(self, addr, type, size, refcnt, flags, edges):
        self.addr, self.type, self.size = addr, type, size
        self.refcnt, self.flags, self.edges = refcnt, flags, edges

    def named(self, kind, name):
        return [t for t, k, n in self.edges if k == kind and n == name]


class Dump:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        if data[:8] != MAGIC:
            raise DumpError("bad magic")
        self.header = None
        self.strings = {0: ""}
        self.types = {}  # id -> (addr, name, preheader, flags)
        self.objects = {}  # addr -> Obj
        self.roots = []  # (kind, name, addr)
        self.allocs = []  # (addr, size, stack, object, type name)
        self.end = None
        self.truncated = False
        off = 12
        while off < len(data):
            if off + 10 > len(data):
                self.truncated = True
                break
            tag, n, crc, flags = struct.unpack_from("<BIIB", data, off)
            if tag != 0x4B:
                raise DumpError("bad chunk tag at %d" % off)
            if off + 10 + n > len(data):
                self.truncated = True
                break
            payload = data[off + 10:off + 10 + n]
            if zlib.crc32(payload) != crc:
                raise DumpError("crc mismatch at %d" % off)
            if flags & 1:
                c = Cursor(payload)
                size = c.uv()
                payload = _unzstd(payload[c.p:], size)
            self._records(payload)
            off += 10 + n

    def _records(self, buf):
        c = Cursor(buf)
        last = 0
        while c.p < len(buf):
            tag = c.u8()
            if tag == 0x01:
                addr = last + c.sv()
                last = addr
                t, size, refcnt, flags, ne = (c.uv(), c.uv(), c.uv(),
                                              c.uv(), c.uv())
                edges = []
                for _ in range(ne):
                    target = addr + c.sv()
                    label = c.uv()
                    edges.append((target, label & 7,
                                  self.strings[label >> 3]))
                if addr in self.objects:
                    raise DumpError("object 0x%x twice" % addr)
                self.objects[addr] = Obj(addr, self.types[t][1], size,
                                         refcnt, flags, edges)
            elif tag == 0x02:
                kind, name = c.uv(), c.uv()
                addr = last + c.sv()
                last = addr
                self.roots.append((kind, self.strings[name], addr))
            elif tag == 0x03:
                addr, size, stack, obj, t = (c.uv(), c.uv(), c.uv(), c.uv(),
                                             c.uv())
                self.allocs.append((addr, size, stack, obj,
                                    self.types[t][1] if t else None))
            elif tag >= 0x40:
                n = c.uv()
                body = Cursor(buf[c.p:c.p + n])
                c.p += n
                if tag == 0x40:
                    self.header = dict(pid=body.uv(), time=body.uv(),
                                       pause_ns=body.uv(), python=body.s(),
                                       capture=body.s(),
                                       interval=body.uv())
                elif tag == 0x41:
                    i = body.uv()
                    if i in self.strings:
                        raise DumpError("string %d twice" % i)
                    self.strings[i] = body.s()
                elif tag == 0x42:
                    i, addr, name, pre, fl = (body.uv(), body.uv(),
                                              body.uv(), body.uv(),
                                              body.uv())
                    self.types[i] = (addr, self.strings[name], pre, fl)
                elif tag == 0x43:
                    self.end = dict(objects=body.uv(), edges=body.uv(),
                                    walk_ns=body.uv())
            else:
                raise DumpError("unknown fixed tag 0x%x" % tag)

    # --- helpers for tests ---

    def by_type(self, name):
        return [o for o in self.objects.values() if o.type == name]

    def get(self, addr):
        return self.objects.get(addr)
