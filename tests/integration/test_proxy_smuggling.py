#!/usr/bin/env python3
"""Acceptance 4: every request-smuggling / malformed-request vector gets its status code and a
closed connection, and nothing of it reaches the target (its request log stays empty)."""
from harness import *

t = Tap()
be = Backend("b")
lp = free_port()
cfg = basic_config(lp, [be.addr])
cfg["target_groups"][0]["health_check"] = {"enabled": False}  # keep the target's log for requests only
p = Proxy(cfg)

H = "Host: x\r\n"
vectors = [
    ("CL + TE", f"POST / HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE + CL (CL second)", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    ("duplicate Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("differing Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("Content-Length list", f"POST / HTTP/1.1\r\n{H}Content-Length: 3, 3\r\n\r\nabc", 400),
    ("malformed Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3x\r\n\r\nabc", 400),
    ("negative Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n", 400),
    ("TE not ending in chunked", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("TE chunked twice", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("unknown transfer coding", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n", 501),
    ("TE with trailing junk", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunkedx\r\n\r\n", 501),
    ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", f"GET / HTTP/1.1\r\n{H}X-A: 1\r\n  folded\r\n\r\n", 400),
    ("obs-fold on TE", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("whitespace before colon", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("bare CR in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\rX-B: 2\r\n\r\n", 400),
    ("bare LF in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\nX-B: 2\r\n\r\n", 400),
    ("NUL in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\x002\r\n\r\n", 400),
    ("bad chunk size", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size overflow", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk data too long", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),
    ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("oversized headers", f"GET / HTTP/1.1\r\n{H}X-Big: {'a' * 20000}\r\n\r\n", 431),
    ("garbage request line", "HELLO\r\n\r\n", 400),
]
for name, raw, want in vectors:
    out, closed = raw_exchange(lp, raw.encode("latin-1"))
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None
    t.is_(status, want, f"{name}: {want}")
    t.ok(closed, f"{name}: connection closed")
    t.ok(b"Connection: close" in out, f"{name}: response says Connection: close")

# The classic CL.TE smuggle: a second request hidden in a body must never reach the target.
smuggle = (f"POST / HTTP/1.1\r\n{H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           f"GET /smuggled HTTP/1.1\r\n{H}\r\n")
raw_exchange(lp, smuggle.encode())
time.sleep(0.3)
t.is_(be.requests(), [], "the target saw none of the bad requests")

# Sanity: a well-formed chunked request does pass.
good = f"POST /upload HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
out, closed = raw_exchange(lp, good.encode())
t.ok(out.startswith(b"HTTP/1.1 200"), "a valid chunked request is forwarded", out[:200])
t.is_(be.requests(), ["POST /upload HTTP/1.1"], "and only it reached the target")
st, m = p.admin("GET", "/metrics")
t.ok(f"berth_proxy_bad_requests_total {len(vectors) + 1}" in m, "bad requests are counted in /metrics")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
