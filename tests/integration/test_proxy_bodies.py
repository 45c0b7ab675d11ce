#!/usr/bin/env python3
"""Acceptance 6: 200 MB upload and download through the proxy, byte-exact, with the proxy's RSS
growing by less than 10 MB (RSS is not checked under ASan, whose shadow memory and quarantine
dominate it). Chunked bodies both ways, Expect: 100-continue."""
import hashlib
from harness import *

SIZE = 200 * 1024 * 1024
PATTERN = bytes(range(256)) * 256
t = Tap()
be = Backend("b", log=False)
lp = free_port()
p = Proxy(basic_config(lp, [be.addr]))
t.ok(wait_healthy(p, "web", 1), "target healthy")
http_request("127.0.0.1", lp)
base = rss_kib(p.proc.pid)


def pattern_sha(n):
    h = hashlib.sha256()
    full, rest = divmod(n, len(PATTERN))
    for _ in range(full):
        h.update(PATTERN)
    h.update(PATTERN[:rest])
    return h.hexdigest()


want = pattern_sha(SIZE)

# Upload with Content-Length.
s = socket.create_connection(("127.0.0.1", lp), 120)
s.sendall(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n".encode())
for _ in range(SIZE // len(PATTERN)):
    s.sendall(PATTERN)
st, h, body = read_response(s)
s.close()
t.is_(st, 200, "200 MB upload answered")
t.is_(body.decode(), f"{SIZE} {want}", "upload arrived byte-exact (length and sha256)")

# Download with Content-Length, read incrementally.
s = socket.create_connection(("127.0.0.1", lp), 120)
s.sendall(f"GET /download?bytes={SIZE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
f = s.makefile("rb")
line = f.readline()
hdrs = {}
while True:
    l = f.readline()
    if l == b"\r\n":
        break
    k, v = l.decode().split(":", 1)
    hdrs[k.lower()] = v.strip()
hsh, got = hashlib.sha256(), 0
while got < SIZE:
    d = f.read(min(1 << 20, SIZE - got))
    if not d:
        break
    hsh.update(d)
    got += len(d)
s.close()
t.ok(line.startswith(b"HTTP/1.1 200"), "200 MB download answered")
t.is_((got, hsh.hexdigest()), (SIZE, want), "download arrived byte-exact")
peak = rss_kib(p.proc.pid, "VmHWM")
t.diag(f"proxy RSS: {base} KiB before, peak {peak} KiB (+{(peak - base) / 1024:.1f} MiB)")
if SANITIZED:
    t.ok(True, "RSS bound not checked under ASan # SKIP sanitizer build")
else:
    t.ok(peak - base < 10 * 1024, "proxy RSS grew by less than 10 MB")

# Chunked both ways (20 MB), with Expect: 100-continue on the upload.
n = 20 * 1024 * 1024
s = socket.create_connection(("127.0.0.1", lp), 60)
s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
interim = s.recv(4096)
t.ok(interim.startswith(b"HTTP/1.1 100"), "100 Continue relayed before the body", interim)
for _ in range(n // len(PATTERN)):
    s.sendall(b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n")
s.sendall(b"0\r\n\r\n")
st, h, body = read_response(s)
t.is_(body.decode(), f"{n} {pattern_sha(n)}", "chunked upload arrived byte-exact")
st, h, body = http_request("127.0.0.1", lp, path=f"/download?bytes={n}&chunked=1", sock=s, timeout=60)
t.is_(h.get("transfer-encoding"), "chunked", "chunked download stays chunked")
t.is_(hashlib.sha256(body).hexdigest(), pattern_sha(n), "chunked download arrived byte-exact")
s.close()
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
