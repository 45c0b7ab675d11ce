#!/usr/bin/env python3
"""Acceptance 8 and the admin API: deregistering a target serving slow requests lets them complete
while new requests go elsewhere; registering targets and rules at run time; metrics; access log."""
import threading
from harness import *

t = Tap()
a, b = Backend("a"), Backend("b")
lp = free_port()
cfg = basic_config(lp, [a.addr, b.addr])
cfg["target_groups"][0]["deregistration_delay_s"] = 10
logf = tempfile.mktemp(prefix="berth-access-")
cfg["access_log"] = {"path": logf}
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 2), "targets healthy")

results = []
lock = threading.Lock()


def slow():
    r = http_request("127.0.0.1", lp, path="/slow?ms=1500", timeout=20)
    with lock:
        results.append(r)


ths = [threading.Thread(target=slow) for _ in range(4)]
[x.start() for x in ths]
time.sleep(0.4)
st, body = p.admin("DELETE", f"/v1/target-groups/web/targets/{a.addr}")
t.is_(st, 200, "DELETE target answers 200")
t.is_(p.target_states("web").get(a.addr), "draining", "the target is draining while requests are in flight")
after = [http_request("127.0.0.1", lp)[2] for _ in range(6)]
t.is_(set(after), {b"b"}, "new requests go to the remaining target")
[x.join(30) for x in ths]
t.is_(sorted(r[0] for r in results), [200] * 4, "all slow requests completed with 200")
t.is_(sorted(r[2] for r in results), [b"a", b"a", b"b", b"b"], "two of them were on the drained target")
t.ok(wait_until(lambda: a.addr not in p.target_states("web"), 3), "the drained target is gone once idle")

# Register one back, then replace the list.
st, body = p.admin("POST", "/v1/target-groups/web/targets", {"address": a.addr, "id": "task-a"})
t.is_(st, 201, "POST registers a target")
st, body = p.admin("POST", "/v1/target-groups/web/targets", {"address": a.addr})
t.is_(st, 409, "registering it twice is a conflict")
t.ok(wait_healthy(p, "web", 2), "it turns healthy")
st, body = p.admin("PUT", "/v1/target-groups/web/targets", {"targets": [{"address": b.addr, "id": "task-b"}]})
t.is_((st, [x["address"] for x in body["targets"] if x["state"] != "draining"]), (200, [b.addr]), "PUT replaces the list")
st, body = p.admin("PUT", "/v1/target-groups/web/targets", {"targets": [{"address": "nope"}]})
t.is_(st, 400, "a bad target is rejected")
t.ok("targets[0].address" in body["error"]["message"], "with the path of the bad field", body)
st, body = p.admin("DELETE", "/v1/target-groups/web/targets/127.0.0.1:1")
t.is_(st, 404, "deregistering an unknown target is 404")
st, body = p.admin("GET", "/v1/target-groups/nope")
t.is_((st, body["error"]["code"]), (404, "TargetGroupNotFound"), "unknown group is 404")

# A new group and a rule pointing at it, at run time.
st, body = p.admin("PUT", "/v1/target-groups/api", {"targets": [{"address": a.addr}], "health_check": {"enabled": False}})
t.is_(st, 201, "PUT creates a target group")
st, body = p.admin("PUT", "/v1/listeners/http/rules/5", {"conditions": {"path_pattern": ["/api/*"]},
                                                          "action": {"forward": [{"target_group": "api"}]}})
t.is_(st, 201, "PUT adds a rule")
t.is_(http_request("127.0.0.1", lp, path="/api/x")[2], b"a", "the rule routes to the new group")
t.is_(http_request("127.0.0.1", lp, path="/other")[2], b"b", "other paths use the default action")
st, body = p.admin("PUT", "/v1/listeners/http/rules/6", {"conditions": {"path_pattern": ["/x"]},
                                                          "action": {"forward": [{"target_group": "missing"}]}})
t.is_(st, 400, "a rule forwarding to a missing group is rejected")
st, body = p.admin("PUT", "/v1/listeners/http/rules/7", {"conditions": {"path_pattern": ["/ping"]},
                                                          "action": {"fixed_response": {"status": 200, "body": "pong"}}})
t.is_(http_request("127.0.0.1", lp, path="/ping")[2], b"pong", "fixed_response rule")
p.admin("PUT", "/v1/listeners/http/rules/8", {"conditions": {"path_pattern": ["/old/*"]},
                                              "action": {"redirect": {"status": 301, "location": "/new/#{path}"}}})
st, h, _ = http_request("127.0.0.1", lp, path="/old/a?q=1")
t.is_((st, h.get("location")), (301, "/new/old/a"), "redirect rule")
st, body = p.admin("DELETE", "/v1/listeners/http/rules/5")
t.is_(st, 200, "DELETE removes a rule")
t.is_(http_request("127.0.0.1", lp, path="/api/x")[2], b"b", "the removed rule no longer routes")
t.is_(p.admin("DELETE", "/v1/listeners/http/rules/5")[0], 404, "removing it again is 404")

st, m = p.admin("GET", "/metrics")
for name in ("berth_proxy_requests_total{target_group=\"web\",class=\"2xx\"}", "berth_proxy_request_duration_seconds_bucket",
             "berth_proxy_connections_active", "berth_proxy_healthy_hosts{target_group=\"web\"}",
             "berth_proxy_target_request_rate{target_group=\"web\"", "berth_proxy_target_connection_errors_total"):
    t.ok(name in m, f"/metrics has {name}")
st, body = p.admin("GET", "/v1/target-groups")
t.ok(st == 200 and {g["name"] for g in body["target_groups"]} == {"web", "api"}, "GET /v1/target-groups lists groups")
rate = [x for x in p.admin("GET", "/v1/target-groups/web")[1]["targets"] if x["address"] == b.addr][0]["request_rate"]
t.ok(rate > 0, f"per-target request rate is published ({rate:.2f}/s)")
t.is_(p.stop(), 0, "proxy exits 0")
with open(logf) as f:
    lines = [json.loads(l) for l in f]
t.ok(len(lines) >= 15 and all({"status", "path", "duration_ms", "request_id", "client"} <= set(l) for l in lines),
     f"access log has a JSON line per request ({len(lines)})")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
