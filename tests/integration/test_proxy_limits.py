#!/usr/bin/env python3
"""Limits and timeouts not covered elsewhere: max_connections pauses accepting; connect_timeout_s gives
504 for a target that never completes the handshake; slow_start_s ramps a new target's share up."""
from harness import *

t = Tap()
be = Backend("a", log=False)

# max_connections: the 4th connection waits until one of 3 closes.
lp = free_port()
cfg = basic_config(lp, [be.addr])
cfg["listeners"][0]["max_connections"] = 3
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 1), "target healthy")
held = [socket.create_connection(("127.0.0.1", lp), 5) for _ in range(3)]
for s in held:
    t.is_(http_request("127.0.0.1", lp, sock=s)[0], 200, "a held connection is served")
extra = socket.create_connection(("127.0.0.1", lp), 5)  # completes in the kernel's backlog
extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
extra.settimeout(0.7)
try:
    extra.recv(100)
    t.ok(False, "the 4th connection waits while 3 are open")
except socket.timeout:
    t.ok(True, "the 4th connection waits while 3 are open")
held[0].close()
extra.settimeout(5)
t.ok(extra.recv(100).startswith(b"HTTP/1.1 200"), "and is served once one closes")
for s in held[1:] + [extra]:
    s.close()
t.is_(p.stop(), 0, "proxy exits 0")

# connect_timeout_s: a listener whose accept queue is full never completes new handshakes.
blackhole = socket.socket()
blackhole.bind(("127.0.0.1", 0))
blackhole.listen(0)
filler = [socket.socket() for _ in range(3)]
for f in filler:
    f.setblocking(False)
    try:
        f.connect(blackhole.getsockname())
    except BlockingIOError:
        pass
lp = free_port()
cfg = basic_config(lp, [f"127.0.0.1:{blackhole.getsockname()[1]}"], connect_timeout_s=0.3)
cfg["target_groups"][0]["health_check"] = {"enabled": False}
p = Proxy(cfg)
t0 = time.time()
st = http_request("127.0.0.1", lp)[0]
took = time.time() - t0
t.is_(st, 504, "a target that never accepts: 504")
t.ok(took < 3, f"after about connect_timeout_s (+ one retry): {took:.2f}s")
t.is_(p.stop(), 0, "proxy exits 0")
for f in filler:
    f.close()
blackhole.close()

# slow_start_s: a target that just turned healthy gets a small, growing share.
a, b = Backend("old", log=False), Backend("new", log=False)
lp = free_port()
cfg = basic_config(lp, [a.addr], slow_start_s=20)
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 1), "first target healthy")
p.admin("POST", "/v1/target-groups/web/targets", {"address": b.addr})
t.ok(wait_healthy(p, "web", 2), "second target healthy")
s = socket.create_connection(("127.0.0.1", lp))
got = [http_request("127.0.0.1", lp, sock=s)[2] for _ in range(200)]
s.close()
share = got.count(b"new") / len(got)
t.diag(f"share of the new target in its first seconds: {share:.2%}")
t.ok(share < 0.25, "a slow-starting target gets much less than an even share")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
