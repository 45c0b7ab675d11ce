#!/usr/bin/env python3
"""The control plane over TLS (SPEC §6, §7): the scheduler's API with a "tls" block and auth, the
proxy's and DNS server's admin APIs over HTTPS reached by the scheduler with its tokens, a berth-agent
that joins over TLS and is called back over TLS, and the CLI over https:// with BERTH_CACERT."""
import hashlib, shutil
from harness import *

t = Tap()
d = tempfile.mkdtemp(prefix="berth-tlsctl-")
atexit.register(shutil.rmtree, d, True)
ca = make_ca(d)
cert, key = make_cert(d, "plane", ["IP:127.0.0.1", "DNS:localhost"], ca=ca)
TLS = {"cert": cert, "key": key, "ca_file": ca[0]}
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
ADMIN, JOIN, PLANE = "admin-secret-1", "join-secret-2", "plane-secret-3"
auth = lambda *extra: {"tokens": [{"name": "ops", "role": "admin", "sha256": h(ADMIN)}] + list(extra)}
plane_tok = {"name": "scheduler", "role": "admin", "sha256": h(PLANE)}
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
BERTH = os.path.join(BIN, "cli", "berth")


class TProxy(Proxy):
    ca, token = ca[0], ADMIN


class TDns(Dns):
    ca, token = ca[0], ADMIN


class TScheduler(Scheduler):
    ca, token = ca[0], ADMIN


class TAgent(Agent):
    ca = ca[0]


lp, pport, dport = free_port(), free_port(), free_port()
proxy = TProxy({"auth": auth(plane_tok), "admin": {"listen": f"127.0.0.1:{pport}", "tls": TLS},
                "listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                               "default_action": {"fixed_response": {"status": 404, "body": "none"}}}]}, admin_port=pport)
dns = TDns({"auth": auth(plane_tok), "admin": {"listen": f"127.0.0.1:{dport}", "tls": TLS},
            "namespaces": [{"name": "berth.internal", "services": []}]}, admin_port=dport)
t.is_(proxy.admin("GET", "/healthz")[0], 200, "proxy admin API over HTTPS")
t.is_(dns.admin("GET", "/healthz")[0], 200, "DNS admin API over HTTPS")
try:
    raw, _ = raw_exchange(pport, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
except OSError:
    raw = b""
t.ok(not raw.startswith(b"HTTP/1.1 200"), "plain HTTP is not answered on an HTTPS admin API", raw[:80])

s = TScheduler(tempfile.mkdtemp(prefix="berth-sched-"), tls=TLS,
               auth=auth({"name": "nodes", "role": "agent", "sha256": h(JOIN)}), proxy_admin_token=PLANE,
               dns_admin_token=PLANE, proxy_admin=f"https://127.0.0.1:{pport}", dns_admin=f"https://127.0.0.1:{dport}",
               dns_server=f"127.0.0.1:{dns.port}")
t.ok("ready: API on https://" in s.log(), "the scheduler says it serves HTTPS")

# The CLI over https:// with BERTH_CACERT.
env = dict(os.environ, BERTH_ADDR=f"https://127.0.0.1:{s.admin_port}", BERTH_TOKEN=ADMIN, HOME=d)
env.pop("BERTH_CACERT", None)
out = subprocess.run([BERTH, "node", "ls"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 1 and "certificate verify failed" in out.stderr and "BERTH_CACERT" in out.stderr,
     "CLI without the CA: refused, saying why and what to set", out.stderr)
env["BERTH_CACERT"] = ca[0]
out = subprocess.run([BERTH, "node", "ls"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 0 and "local" in out.stdout, "CLI over https:// with BERTH_CACERT", out.stderr)
out = subprocess.run([BERTH, "node", "ls"], capture_output=True, text=True, env=dict(env, BERTH_TOKEN="wrong"), timeout=10)
t.ok(out.returncode == 1, "and auth still applies over TLS (a wrong token fails)", out.stderr)

# An agent joins over TLS and is called back over TLS (its own API serves HTTPS).
a = TAgent(s, "n2", join_token=JOIN, tls=TLS, attributes={"zone": "b"})
nodes = lambda: {n["id"]: n for n in s.admin("GET", "/v1/nodes")[1]["nodes"]}
t.ok(wait_until(lambda: nodes().get("n2", {}).get("status") == "ACTIVE", 10), "the agent joined over TLS and heartbeats")
t.ok(nodes().get("n2", {}).get("agent_api", "").startswith("https://"), "it registered an https:// API",
     nodes().get("n2"))
s.admin("POST", "/v1/task-definitions", {"family": "n2task", "containers": [
    {"name": "c", "command": ["sh", "-c", "echo hello-over-tls; sleep 30"]}]})
s.admin("POST", "/v1/services", {"name": "remote", "task_definition": "n2task", "desired_count": 1,
                                 "placement_constraints": [{"type": "member_of", "expression": "attribute:zone in [b]"}]})
running = lambda: [x["id"] for x in s.admin("GET", "/v1/tasks?service=remote&status=RUNNING")[1]["tasks"]]
t.ok(wait_until(running, 15), "a task runs on the agent (the scheduler woke it over TLS)")
tid = (running() or ["none"])[0]
out = subprocess.run([BERTH, "task", "logs", tid], capture_output=True, text=True, env=env, timeout=10)
t.ok("hello-over-tls" in out.stdout, "its logs come from the agent over TLS, to the CLI over TLS", out.stderr)

# The scheduler reaches the proxy and DNS admin APIs over HTTPS with its tokens.
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 1,
                                 "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http",
                                                     "host_header": ["web.localhost"]}],
                                 "service_registries": [{"name": "web", "port_name": "http"}]})
t.ok(wait_until(lambda: http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[0] == 200, 15),
     "the scheduler registered its task in the proxy over HTTPS", s.log()[-3000:])
t.ok(wait_until(lambda: len(dns.admin("GET", "/v1/namespaces/berth.internal/services/web/instances")[1]
                            .get("instances", [])) == 1, 10), "and in DNS over HTTPS")

for name, x in (("agent", a), ("scheduler", s), ("proxy", proxy), ("dns", dns)):
    t.is_(x.stop(), 0, f"{name} exits 0")
    t.ok(x.sanitizer_clean(), f"{name}: no sanitizer report", x.log()[-3000:])
t.done()
