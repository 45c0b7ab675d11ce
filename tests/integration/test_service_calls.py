#!/usr/bin/env python3
"""Service-to-service calls by name (issue 5, acceptance 3): web tasks call the api service through the
lookup library (api.berth.internal SRV at BERTH_DNS); a request through the proxy shows the call
crossing services; after api is scaled from 1 to 3 tasks the calls spread across all three within the
DNS TTL. Tasks can also resolve the name with ordinary tools (berth lookup, dig)."""
import re, shutil
from harness import *
import dnsclient as dc

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
TTL = 2
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]})
dns = Dns({"ttl_s": TTL, "namespaces": [{"name": "berth.internal", "services": []}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}")
for family, env in (("api", {"GREETING": "api"}), ("web", {"API_SERVICE": "api"})):
    st, _ = s.admin("POST", "/v1/task-definitions", {"family": family, "containers": [
        {"name": family, "command": [DEMO], "environment": env, "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
    t.is_(st, 201, f"task definition {family}")
st, _ = s.admin("POST", "/v1/services", {"name": "api", "task_definition": "api", "desired_count": 1,
                                         "service_registries": [{"name": "api", "port_name": "http"}]})
t.is_(st, 201, "service api: 1 task, registered in DNS only")
st, _ = s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": "web", "desired_count": 2,
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"]}],
    "service_registries": [{"name": "web", "port_name": "http"}]})
t.is_(st, 201, "service web: 2 tasks behind the proxy, with API_SERVICE=api")


def running(svc):
    return {x["id"] for x in s.admin("GET", f"/v1/tasks?service={svc}&status=RUNNING")[1]["tasks"]}


def srv(name):
    return dc.parse(dc.udp(dns.port, dc.query(f"{name}.berth.internal", "SRV")))["an"]


def call():
    st, _, body = http_request("127.0.0.1", lp, path="/api", headers={"Host": "web.localhost"})
    m = re.match(r"web (\S+) -> api\.berth\.internal: api from (\S+)", body.decode())
    return (st, m.group(1), m.group(2)) if m else (st, None, body.decode())


t.ok(wait_until(lambda: len(running("web")) == 2 and len(running("api")) == 1 and len(srv("api")) == 1, 10),
     "web and api are running; api is in DNS")
t.ok(wait_until(lambda: call()[0] == 200, 10), "GET /api through the proxy answers")
calls = [call() for _ in range(20)]
api1, = running("api")
t.ok(all(c[0] == 200 for c in calls) and {c[2] for c in calls} == {api1},
     "the web task called the api task by name (the answer names both)", calls[:3])
t.is_({c[1] for c in calls}, running("web"), "both web tasks make the call")

# Ordinary tools resolve the name too.
berth = os.path.join(BIN, "cli", "berth")
out = subprocess.run([berth, "lookup", "api", "--server", f"127.0.0.1:{dns.port}", "--json"], capture_output=True, text=True)
t.ok(out.returncode == 0 and len(json.loads(out.stdout)["endpoints"]) == 1, "berth lookup api (c-ares) finds it", out.stdout)
if shutil.which("dig"):
    out = subprocess.run(["dig", "+short", "-p", str(dns.port), "@127.0.0.1", "api.berth.internal", "SRV"],
                         capture_output=True, text=True)
    t.is_(len(out.stdout.split("\n")) - 1, 1, "dig finds the SRV record")

# Scale api to 3: the calls spread across all three within the TTL.
s.admin("PATCH", "/v1/services/api", {"desired_count": 3})
t.ok(wait_until(lambda: len(srv("api")) == 3, 10), "api scaled to 3 and all three are in DNS")
t0 = time.monotonic()
seen = set()
while time.monotonic() - t0 < TTL + 3 and seen != running("api"):
    seen |= {c[2] for c in (call() for _ in range(10)) if c[0] == 200}
took = time.monotonic() - t0
t.diag(f"calls reached all 3 api tasks {took:.2f} s after DNS had them (TTL {TTL} s)")
t.is_(seen, running("api"), "calls reach all three api tasks")
t.ok(took <= TTL + 1, f"within the DNS TTL ({took:.2f} s, TTL {TTL} s)")
counts = {}
for _ in range(90):
    st, _, a = call()
    counts[a] = counts.get(a, 0) + 1
t.ok(len(counts) == 3 and min(counts.values()) >= 10, "and keep spreading across them", counts)

# The api gone: a clear 503 from web, not a hang.
s.admin("PATCH", "/v1/services/api", {"desired_count": 0})
t.ok(wait_until(lambda: len(srv("api")) == 0, 10), "api scaled to 0 and gone from DNS")
t.ok(wait_until(lambda: call()[0] == 503, TTL + 3), "web answers 503 naming the missing service", call())

t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean() and proxy.sanitizer_clean() and dns.sanitizer_clean(), "no sanitizer reports")
t.done()
