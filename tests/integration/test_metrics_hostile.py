#!/usr/bin/env python3
"""Metrics and logs under hostile names (issue 9, acceptance 5): promtool check metrics passes on all
four daemons' /metrics with names full of quotes, backslashes and newlines registered wherever the
APIs take them; every log line stays one line (no forged entries)."""
import re, urllib.parse
from harness import *

t = Tap()
EVIL = 'x"} 1\nforged_metric{a="b\\'
ok_line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) berth-")


def promtool(name, text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0, f"{name}: promtool check metrics passes", r.stdout + r.stderr)
    t.ok("forged_metric" not in [l.split("{")[0] for l in text.splitlines()], f"{name}: no injected series")


lp = free_port()
p = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                          "default_action": {"fixed_response": {"status": 404, "body": "x"}}}]})
st, _ = p.admin("PUT", "/v1/target-groups/" + urllib.parse.quote(EVIL, safe=""),
                {"targets": [{"address": "127.0.0.1:1", "id": EVIL}], "health_check": {"enabled": False}})
t.is_(st, 201, "proxy: a target group and a target with a hostile name and id")
st, m = p.admin("GET", "/metrics")
promtool("proxy", m)
t.ok('target_group="x\\"} 1\\nforged_metric{a=\\"b\\\\"' in m, "proxy: the name is escaped, not dropped")

d = Dns({"namespaces": [{"name": "berth.internal", "services": []}]})
st, _ = d.admin("PUT", "/v1/namespaces/berth.internal/services/" + urllib.parse.quote(EVIL, safe="") + "/instances/a",
                {"address": "127.0.0.1", "port": 1})
t.is_(st, 400, "dns: a hostile service name is refused")
st, _ = d.admin("PUT", "/v1/namespaces/berth.internal/services/web/instances/a",
                {"address": "127.0.0.1", "port": 1, "attributes": {"k": EVIL}})
t.is_(st, 201, "dns: an instance with a hostile attribute")
promtool("dns", d.admin("GET", "/metrics")[1])

s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"))
st, _ = s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": ["sleep", "30"], "environment": {"E": EVIL}}]})
t.is_(st, 201, "scheduler: a task definition with a hostile value")
st, _ = s.admin("POST", "/v1/services", {"name": EVIL, "task_definition": "web", "desired_count": 1})
t.is_(st, 400, "scheduler: a hostile service name is refused")
promtool("scheduler", s.admin("GET", "/metrics")[1])
a = Agent(s, "n2")
t.ok(wait_until(lambda: a.admin("GET", "/healthz")[1].get("registered"), 10), "agent registered")
promtool("agent", a.admin("GET", "/metrics")[1])

for name, daemon in [("proxy", p), ("dns", d), ("scheduler", s), ("agent", a)]:
    lines = daemon.log().splitlines()
    bad = [l for l in lines if not ok_line.match(l)]
    t.ok(lines and not bad, f"{name}: every log line is one whole entry ({len(lines)} lines)", "\n".join(bad[:5]))
t.ok("forged_metric" in p.log() and "\\n" in p.log(), "proxy: the hostile name is in the log, escaped")
for daemon in (a, s, d, p):
    t.is_(daemon.stop(), 0, f"{os.path.basename(daemon.binary)} exits 0")
    t.ok(daemon.sanitizer_clean(), "no sanitizer report", daemon.log())
t.done()
