#!/usr/bin/env python3
"""Acceptance 2: a target failing health checks stops receiving requests within
interval x unhealthy_threshold (+1 interval) and returns after healthy_threshold passes.
Also: fail open when all are unhealthy, 503 with no registered targets."""
from harness import *

INTERVAL, UNHEALTHY, HEALTHY = 0.5, 2, 2
t = Tap()
a, b = Backend("a"), Backend("b")
lp = free_port()
cfg = basic_config(lp, [a.addr, b.addr])
cfg["target_groups"][0]["health_check"].update(interval_s=INTERVAL, timeout_s=0.3, unhealthy_threshold=UNHEALTHY,
                                               healthy_threshold=HEALTHY)
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 2), "both targets healthy")


def last_seen_a(duration):
    """Sends requests every 20 ms for <duration> s; returns the time of the last answer from a."""
    start, last = time.time(), None
    s = socket.create_connection(("127.0.0.1", lp))
    while time.time() - start < duration:
        st, h, body = http_request("127.0.0.1", lp, sock=s)
        if body == b"a":
            last = time.time() - start
        time.sleep(0.02)
    s.close()
    return last


a.set_health(False)
t0 = time.time()
last = last_seen_a(3.0)
bound = INTERVAL * UNHEALTHY + INTERVAL
t.diag(f"last request to the failing target {last:.2f}s after it turned sick (bound {bound}s)")
t.ok(last is not None and last <= bound + 0.1, f"failing target stops receiving within {bound}s")
t.is_(p.target_states("web")[a.addr], "unhealthy", "state is unhealthy")
t.ok('berth_proxy_unhealthy_hosts{target_group="web"} 1' in p.admin("GET", "/metrics")[1], "metrics count 1 unhealthy host")

a.set_health(True)
t1 = time.time()
back = wait_until(lambda: p.target_states("web")[a.addr] == "healthy", 5, 0.02)
took = time.time() - t1
bound = INTERVAL * HEALTHY + INTERVAL
t.diag(f"healthy again after {took:.2f}s (bound {bound}s)")
t.ok(back and took <= bound + 0.1, f"recovers within healthy_threshold x interval + 1 interval")
seen = {http_request("127.0.0.1", lp)[2] for _ in range(4)}
t.is_(seen, {b"a", b"b"}, "recovered target receives requests again")

# Fail open: with every target unhealthy, requests still go to all of them.
a.set_health(False)
b.set_health(False)
t.ok(wait_until(lambda: set(p.target_states("web").values()) == {"unhealthy"}, 5), "all targets unhealthy")
res = [http_request("127.0.0.1", lp) for _ in range(4)]
t.is_([r[0] for r in res], [200] * 4, "fail open: requests still answered")
t.is_({r[2] for r in res}, {b"a", b"b"}, "fail open spreads over all targets")

# No registered targets: 503.
st, _ = p.admin("PUT", "/v1/target-groups/web/targets", {"targets": []})
t.is_(st, 200, "targets replaced with an empty list")
t.is_(http_request("127.0.0.1", lp)[0], 503, "503 when the group has no registered targets")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
