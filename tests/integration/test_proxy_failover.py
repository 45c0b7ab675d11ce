#!/usr/bin/env python3
"""Acceptance 3: killing a target under load: no 5xx for idempotent requests (retry); the target is ejected.
Also: 502 on connection refused with nothing to retry on, 504 on a target that does not answer."""
import threading
from harness import *

t = Tap()
bs = [Backend(f"b{i}", log=False) for i in range(3)]
lp = free_port()
cfg = basic_config(lp, [b.addr for b in bs], outlier_consecutive_failures=2, outlier_ejection_s=30)
# Long health-check interval: passive ejection and retries must do the work.
cfg["target_groups"][0]["health_check"].update(interval_s=30, timeout_s=1, healthy_threshold=1)
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 3), "three targets healthy")

result = {}
th = threading.Thread(target=lambda: result.update(wrk=run_wrk(lp, 4, conns=16)))
th.start()
time.sleep(1.0)
bs[1].kill()
th.join(60)
check_wrk_clean(t, result["wrk"], "while a target died")
tg = p.admin("GET", "/v1/target-groups/web")[1]
dead = [x for x in tg["targets"] if x["address"] == bs[1].addr][0]
t.ok(dead.get("ejected_for_s", 0) > 0, "the dead target is ejected", dead)
t.ok(dead["connection_errors"] >= 2, "its connection errors are counted", dead)
m = p.admin("GET", "/metrics")[1]
t.ok('berth_proxy_requests_total{target_group="web",class="5xx"} 0' in m, "metrics: zero 5xx")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())

# A single dead target: 502 (connection refused, nothing to retry on).
dead_port = free_port()
lp = free_port()
cfg = basic_config(lp, [f"127.0.0.1:{dead_port}"])
cfg["target_groups"][0]["health_check"] = {"enabled": False}
p = Proxy(cfg)
t.is_(http_request("127.0.0.1", lp)[0], 502, "502 when the only target refuses connections")

# A target that accepts but never answers: 504 after response_timeout_s.
silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(16)
st, _ = p.admin("PUT", "/v1/target-groups/web", {"targets": [{"address": "127.0.0.1:%d" % silent.getsockname()[1]}],
                                                 "health_check": {"enabled": False}, "response_timeout_s": 0.5})
t0 = time.time()
t.is_(http_request("127.0.0.1", lp)[0], 504, "504 when the target does not answer in time")
t.ok(time.time() - t0 < 3, "504 arrives after about response_timeout_s")
# A malformed response: 502.
silent.close()
bad = socket.socket()
bad.bind(("127.0.0.1", 0))
bad.listen(4)


def garbage():
    c, _ = bad.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
    c.close()


threading.Thread(target=garbage, daemon=True).start()
p.admin("PUT", "/v1/target-groups/web", {"targets": [{"address": "127.0.0.1:%d" % bad.getsockname()[1]}],
                                         "health_check": {"enabled": False}})
t.is_(http_request("127.0.0.1", lp)[0], 502, "502 on a malformed response")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
