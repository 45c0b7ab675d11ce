#!/usr/bin/env python3
"""Acceptance 1: round robin spreads evenly; least_outstanding_requests prefers the idle target."""
import threading
from harness import *

t = Tap()
bs = [Backend(f"b{i}") for i in range(3)]
lp = free_port()
p = Proxy(basic_config(lp, [b.addr for b in bs]))
t.ok(wait_healthy(p, "web", 3), "three targets turn healthy")
counts = {}
s = socket.create_connection(("127.0.0.1", lp))
for i in range(300):
    st, h, body = http_request("127.0.0.1", lp, sock=s)
    counts[body.decode()] = counts.get(body.decode(), 0) + 1
s.close()
t.is_(counts, {"b0": 100, "b1": 100, "b2": 100}, "round robin: 300 requests go 100/100/100")
t.is_(p.stop(), 0, "proxy exits 0 on SIGTERM")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())

# least_outstanding_requests: one slow target (300 ms), one fast.
slow, fast = Backend("slow", delay_ms=300), Backend("fast")
lp = free_port()
p = Proxy(basic_config(lp, [slow.addr, fast.addr], algorithm="least_outstanding_requests"))
t.ok(wait_healthy(p, "web", 2), "both targets healthy")
lock = threading.Lock()
got = {"slow": 0, "fast": 0}


def worker():
    s = socket.create_connection(("127.0.0.1", lp))
    for _ in range(25):
        st, h, body = http_request("127.0.0.1", lp, sock=s)
        with lock:
            got[body.decode()] += 1
    s.close()


ths = [threading.Thread(target=worker) for _ in range(4)]
[x.start() for x in ths]
[x.join(60) for x in ths]
t.diag(f"least outstanding: {got}")
t.is_(got["slow"] + got["fast"], 100, "all 100 requests answered")
t.ok(got["fast"] >= 4 * got["slow"], "the idle (fast) target gets at least 4x the slow one's requests", got)

# The same load with round robin splits evenly, so the difference above is the algorithm's.
p.admin("PUT", "/v1/target-groups/web", {"algorithm": "round_robin", "targets": [{"address": slow.addr}, {"address": fast.addr}],
                                         "health_check": {"path": "/health", "interval_s": 0.5, "timeout_s": 0.4}})
got = {"slow": 0, "fast": 0}
ths = [threading.Thread(target=worker) for _ in range(4)]
[x.start() for x in ths]
[x.join(60) for x in ths]
t.is_(got, {"slow": 50, "fast": 50}, "round robin under the same load splits 50/50")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
