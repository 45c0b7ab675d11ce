#!/usr/bin/env python3
"""Authentication on every API (issue 9, acceptance 6 and 7; SPEC §7): the scheduler API, the agent
protocol and the proxy's and DNS server's admin APIs refuse a missing or wrong token (401) and a read
token on writes (403); the scheduler reaches the data plane with its tokens; an agent joins with a join
token and works with its own node token; the CLI works with BERTH_TOKEN; a task process gets no token
and cannot change the plane; a daemon will not listen beyond loopback without auth unless --insecure;
SIGHUP leaves scheduler and agent running, with reloaded tokens."""
import hashlib, shutil
from harness import *

t = Tap()
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
ADMIN, READ, JOIN, PLANE, NEW = "admin-secret-1", "read-secret-2", "join-secret-3", "plane-secret-4", "new-secret-5"
tokens = lambda *extra: {"tokens": [{"name": "ops", "role": "admin", "sha256": h(ADMIN)},
                                    {"name": "viewer", "role": "read", "sha256": h(READ)}] + list(extra)}
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
BERTH = os.path.join(BIN, "cli", "berth")

lp = free_port()
proxy = Proxy({"auth": tokens({"name": "scheduler", "role": "admin", "sha256": h(PLANE)}),
               "listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "none"}}}]})
dns = Dns({"auth": tokens({"name": "scheduler", "role": "admin", "sha256": h(PLANE)}),
           "namespaces": [{"name": "berth.internal", "services": []}]})
sched_env = dict(os.environ, BERTH_TOKEN=ADMIN)  # as an operator's shell might have it
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), env=sched_env,
              auth=tokens({"name": "nodes", "role": "agent", "sha256": h(JOIN)}), proxy_admin_token=PLANE,
              dns_admin_token=PLANE, proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}")


def raw_status(port, method, path, headers=None):
    st, hd, _ = http_request("127.0.0.1", port, method, path, headers=headers)
    return st, hd


for name, d, write in [("scheduler", s, ("POST", "/v1/task-definitions", {"family": "x", "containers": [{"name": "x", "command": ["true"]}]})),
                       ("proxy", proxy, ("PUT", "/v1/target-groups/tg1", {"targets": []})),
                       ("dns", dns, ("PUT", "/v1/namespaces/berth.internal/services/s1/instances/i1", {"address": "127.0.0.1", "port": 1}))]:
    st, hd = raw_status(d.admin_port, "GET", "/metrics")
    t.ok(st == 401 and hd.get("www-authenticate") == "Bearer", f"{name}: no token: 401 with WWW-Authenticate")
    st, body = d.admin("GET", "/metrics", token="wrong")
    t.ok(st == 401 and body["error"]["code"] == "Unauthorized", f"{name}: a wrong token: 401 as a JSON error", body)
    t.is_(d.admin("GET", "/healthz", token=None)[0], 200, f"{name}: /healthz needs no token")
    t.is_(d.admin("GET", "/metrics", token=READ)[0], 200, f"{name}: a read token reads")
    st, body = d.admin(*write, token=READ)
    t.ok(st == 403 and body["error"]["code"] == "Forbidden", f"{name}: a read token may not write: 403", body)
    st, body = d.admin(*write, token=ADMIN)
    t.ok(200 <= st < 300, f"{name}: an admin token writes ({st})", body)

# The CLI.
env = dict(os.environ, BERTH_ADDR=f"http://127.0.0.1:{s.admin_port}", HOME=tempfile.mkdtemp(prefix="berth-home-"))
env.pop("BERTH_TOKEN", None)
out = subprocess.run([BERTH, "service", "ls"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 1 and "BERTH_TOKEN" in out.stderr, "CLI without a token: exit 1 and how to give one", out.stderr)
out = subprocess.run([BERTH, "service", "ls"], capture_output=True, text=True, env=dict(env, BERTH_TOKEN=ADMIN), timeout=10)
t.ok(out.returncode == 0, "CLI with BERTH_TOKEN works", out.stderr)
os.makedirs(os.path.join(env["HOME"], ".config", "berth"))
tf = os.path.join(env["HOME"], ".config", "berth", "token")
with open(tf, "w") as f:
    f.write(READ + "\n")
os.chmod(tf, 0o644)
out = subprocess.run([BERTH, "node", "ls"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 1 and "chmod 600" in out.stderr, "a token file others can read is refused", out.stderr)
os.chmod(tf, 0o600)
out = subprocess.run([BERTH, "node", "ls"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 0, "the token in ~/.config/berth/token (0600) is used", out.stderr)
out = subprocess.run([BERTH, "service", "scale", "nosuch", "2"], capture_output=True, text=True, env=env, timeout=10)
t.ok(out.returncode == 1 and "may not" in out.stderr, "a read token cannot scale: exit 1", out.stderr)

# The scheduler reaches the data plane with its tokens.
s.token = ADMIN
proxy.token = ADMIN
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 1,
                                 "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http",
                                                     "host_header": ["web.localhost"]}],
                                 "service_registries": [{"name": "web", "port_name": "http"}]})
t.ok(wait_until(lambda: http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[0] == 200, 10),
     "the scheduler registered its task in the proxy (with proxy_admin_token)")
t.ok(wait_until(lambda: len(dns.admin("GET", "/v1/namespaces/berth.internal/services/web/instances", token=ADMIN)[1]
                            .get("instances", [])) == 1, 10), "and in DNS (with dns_admin_token)")

# A task gets no token and cannot change the plane.
outdir = tempfile.mkdtemp(prefix="berth-task-")
script = (f"env > {outdir}/env; curl -s -o /dev/null -w '%{{http_code}}' -X PATCH -H \"Authorization: Bearer $BERTH_TOKEN\" "
          f"-d '{{\"desired_count\":0}}' http://127.0.0.1:{s.admin_port}/v1/services/web > {outdir}/patch")
s.admin("POST", "/v1/task-definitions", {"family": "snoop", "containers": [
    {"name": "snoop", "command": ["sh", "-c", script], "environment": {"MINE": "1"}}]})
st, _ = s.admin("POST", "/v1/tasks", {"task_definition": "snoop"})
t.ok(wait_until(lambda: os.path.exists(f"{outdir}/patch") and open(f"{outdir}/patch").read(), 10), "the task ran")
t.is_(open(f"{outdir}/patch").read(), "401", "a task's attempt to scale a service is refused (401)")
names = sorted(l.split("=", 1)[0] for l in open(f"{outdir}/env").read().splitlines() if "=" in l)
leaked = [n for n in names if n not in ("PATH", "MINE", "PORT", "PWD", "SHLVL", "_", "OLDPWD") and not n.startswith("BERTH_")]
t.ok(leaked == [], "a task's environment: PATH, its own and BERTH_* only", names)
t.ok("BERTH_TOKEN" not in names, "no BERTH_TOKEN in a task's environment")
t.is_(s.admin("GET", "/v1/services/web")[1]["desired_count"], 1, "the service is unchanged")

# An agent joins with the join token and then uses its node token.
a = Agent(s, "n2", join_token=JOIN, attributes={"zone": "b"})
t.ok(wait_until(lambda: any(n["id"] == "n2" and n["status"] == "ACTIVE" and n.get("connected", True)
                            for n in s.admin("GET", "/v1/nodes")[1]["nodes"]), 10), "the agent joined and heartbeats")
st, body = s.admin("GET", "/v1/services", token=JOIN)
t.is_(st, 403, "the join token can do nothing but join")
st, body = s.admin("POST", "/v1/nodes/n2/heartbeat", {"tasks": []}, token=JOIN)
t.is_(st, 403, "nor heartbeat for a node")
st, body = s.admin("POST", "/v1/nodes/local/heartbeat", {"tasks": []}, token="f" * 64)
t.is_(st, 401, "a made-up node token: 401")
t.is_(a.admin("POST", "/v1/wake", {}, token=None)[0], 401, "the agent's API without a token: 401")
t.is_(a.admin("GET", "/v1/tasks/x/logs", token=READ)[0], 401, "the agent's API with another daemon's token: 401")
s.admin("POST", "/v1/task-definitions", {"family": "n2task", "containers": [
    {"name": "c", "command": ["sh", "-c", "echo hello-from-n2; sleep 30"]}]})
s.admin("POST", "/v1/services", {"name": "remote", "task_definition": "n2task", "desired_count": 1,
                                 "placement_constraints": [{"type": "member_of", "expression": "attribute:zone in [b]"}]})
running = lambda: [x["id"] for x in s.admin("GET", "/v1/tasks?service=remote&status=RUNNING")[1]["tasks"]]
t.ok(wait_until(running, 10), "a task runs on the agent (woken with the node token)")
tid = (running() or ["none"])[0]
t.ok(wait_until(lambda: "hello-from-n2" in str(s.admin("GET", f"/v1/tasks/{tid}/logs")[1]), 10),
     "the scheduler reads a remote task's logs from the agent (with the node token)")

# SIGHUP: still running, and a new token works after the reload.
cfg = dict(s.config)
cfg["auth"] = tokens({"name": "nodes", "role": "agent", "sha256": h(JOIN)}, {"name": "new", "role": "admin", "sha256": h(NEW)})
s.rewrite(cfg)
s.reload()
a.reload()
t.ok(wait_until(lambda: s.admin("GET", "/v1/services", token=NEW)[0] == 200, 5), "scheduler: a token added by SIGHUP works")
time.sleep(0.5)
t.ok(s.proc.poll() is None and a.proc.poll() is None, "scheduler and agent still run after SIGHUP")
t.ok("SIGHUP: reloaded" in s.log() and "SIGHUP: reloaded" in a.log(), "and log what they reloaded")
with open(s.config_path, "w") as f:
    f.write("{broken")
s.reload()
time.sleep(0.3)
t.ok(s.proc.poll() is None and s.admin("GET", "/v1/services", token=NEW)[0] == 200,
     "a bad config on SIGHUP is refused; the running one stays")

# Beyond loopback without auth: refused unless --insecure.
for binary, conf in [("proxy/berth-proxy", {"admin": {"listen": "0.0.0.0:7401"}}),
                     ("discovery/berth-dns", {"admin": {"listen": "0.0.0.0:7402"}}),
                     ("scheduler/berth-scheduler", {"listen": "0.0.0.0:7400"}),
                     ("scheduler/berth-agent", {"listen": "0.0.0.0:7410"})]:
    fd, path = tempfile.mkstemp(suffix=".json")
    os.write(fd, json.dumps(conf).encode())
    os.close(fd)
    r = subprocess.run([os.path.join(BIN, binary), "-c", path, "-t"], capture_output=True, text=True, timeout=10)
    t.ok(r.returncode == 2 and "refusing to start" in r.stderr, f"{binary}: 0.0.0.0 without auth is refused", r.stderr)
    r = subprocess.run([os.path.join(BIN, binary), "-c", path, "-t", "--insecure"], capture_output=True, text=True, timeout=10)
    t.ok(r.returncode == 0 and "INSECURE" in r.stderr, f"{binary}: --insecure runs it, loudly", r.stderr)
    os.unlink(path)

for d in (a, s, proxy, dns):
    t.is_(d.stop(), 0, f"{os.path.basename(d.binary)} exits 0")
    t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
for tmp in (env["HOME"], outdir):
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
