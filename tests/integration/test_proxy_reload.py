#!/usr/bin/env python3
"""Acceptance 7: SIGHUP under a running wrk load: zero socket errors, zero non-2xx; a target removed
by the reload drains its in-flight requests; a bad config is refused and the old one keeps serving."""
import threading
from harness import *

t = Tap()
a, b, c = Backend("a", log=False), Backend("b", log=False), Backend("c", log=False)
lp = free_port()
cfg = basic_config(lp, [a.addr, b.addr])
cfg["target_groups"][0]["deregistration_delay_s"] = 10
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 2), "targets healthy")

# A slow request in flight on a target that the reload removes.
slow_result = {}


def slow():
    slow_result["r"] = http_request("127.0.0.1", lp, path="/slow?ms=2000", timeout=20)


# Route the slow request to a: a has it alone for a moment.
p.admin("PUT", "/v1/target-groups/web/targets", {"targets": [{"address": a.addr}]})
th_slow = threading.Thread(target=slow)
th_slow.start()
time.sleep(0.3)
p.admin("PUT", "/v1/target-groups/web/targets", {"targets": [{"address": a.addr}, {"address": b.addr}]})
t.ok(wait_healthy(p, "web", 2), "both targets healthy again")

result = {}
th = threading.Thread(target=lambda: result.update(wrk=run_wrk(lp, 5, conns=16)))
th.start()
time.sleep(1.0)
# Reload 1: a out, c in.
cfg2 = basic_config(lp, [b.addr, c.addr])
cfg2["target_groups"][0]["deregistration_delay_s"] = 10
p.rewrite(cfg2)
p.reload()
time.sleep(1.0)
# Reload 2: a broken config is refused.
with open(p.config_path, "w") as f:
    f.write('{"listeners": [}')
p.reload()
time.sleep(1.0)
# Reload 3: the good config again (no change), under load.
p.rewrite(cfg2)
p.reload()
th.join(60)
th_slow.join(30)
check_wrk_clean(t, result["wrk"], "across three reloads")
t.is_(slow_result.get("r", (None,))[0], 200, "the in-flight request on the removed target completed")
t.is_(slow_result["r"][2], b"a", "and it was served by the removed target")
states = p.target_states("web")
t.ok(a.addr not in states and b.addr in states and c.addr in states, "targets follow the reloaded config", states)
log = p.log()
t.ok("reload refused, still serving the previous config" in log and ".json:1:" in log,
     "the bad config was refused with file:line:column", log[-1500:])
t.ok(log.count("reloaded ") == 2, "two reloads applied")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
