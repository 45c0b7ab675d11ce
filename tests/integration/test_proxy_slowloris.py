#!/usr/bin/env python3
"""Acceptance 5: 500 slowloris connections (a header byte a second) do not delay normal requests,
and each gets 408 at the header timeout."""
import selectors
from harness import *

N, HEADER_TIMEOUT = 500, 3.0
t = Tap()
be = Backend("b", log=False)
lp = free_port()
cfg = basic_config(lp, [be.addr])
cfg["listeners"][0]["header_timeout_s"] = HEADER_TIMEOUT
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 1), "target healthy")

sel = selectors.DefaultSelector()
socks = []
for i in range(N):
    s = socket.create_connection(("127.0.0.1", lp))
    s.setblocking(False)
    socks.append(s)
    sel.register(s, selectors.EVENT_READ, i)
start = time.time()
head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64
replies = [b""] * N
closed = [False] * N
sent = 0
lat = []
next_byte = start
while time.time() - start < HEADER_TIMEOUT + 2.5 and not all(closed):
    now = time.time()
    if now >= next_byte:  # one byte a second on every open connection
        for i, s in enumerate(socks):
            if not closed[i] and sent < len(head):
                try:
                    s.send(head[sent:sent + 1])
                except OSError:
                    pass
        sent += 1
        next_byte += 1.0
        # A normal request in between must not be delayed.
        t0 = time.time()
        st = http_request("127.0.0.1", lp)[0]
        lat.append((st, time.time() - t0))
    for key, _ in sel.select(0.05):
        i = key.data
        try:
            d = key.fileobj.recv(4096)
        except OSError:
            d = b""
        if d:
            replies[i] += d
        else:
            closed[i] = True
            sel.unregister(key.fileobj)
elapsed = time.time() - start
got408 = sum(1 for r in replies if r.startswith(b"HTTP/1.1 408"))
t.diag(f"normal request latencies: {[round(l, 4) for _, l in lat]}")
t.ok(all(st == 200 for st, _ in lat) and len(lat) >= 3, "normal requests answered 200 during the attack")
t.ok(max(l for _, l in lat) < 0.5, "normal requests were not delayed (max latency under 0.5 s)")
t.is_(got408, N, f"all {N} slow connections got 408")
t.is_(sum(closed), N, "and were closed")
t.ok(elapsed < HEADER_TIMEOUT + 2.5, f"within the header timeout ({elapsed:.1f}s)")
for s in socks:
    s.close()
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
