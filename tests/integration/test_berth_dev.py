#!/usr/bin/env python3
"""berth dev (issue 5, acceptance 1): one command runs scheduler, proxy and DNS and deploys the demo
services through the scheduler: web (autoscaled) answers through the proxy (web.localhost) and calls
api by name on /api; both are in DNS; berth top shows them; events are printed as they come; api
runs as a container (issue 11: an image built by berth dev, pushed to a registry of its own, run by a
Podman API service of its own), which berth task exec shows from inside; Ctrl-C (SIGINT) stops
everything, tasks and containers included, with no process or directory left behind. Auth is on (issue 9): a fresh
token in ~/.config/berth/token (mode 0600), which the CLI reads; no token, no API."""
import shutil, urllib.request
from harness import *
import dnsclient as dc

t = Tap()
bad = subprocess.run([os.path.join(BIN, "cli", "berth"), "dev", "--log-level", "loud"], capture_output=True, text=True, timeout=10)
t.ok(bad.returncode == 2 and 'unknown level "loud"' in bad.stderr, "a bad flag is refused before anything starts", bad.stderr)
ports = {k: free_port() for k in ("port", "admin-port", "dns-port", "dns-admin-port", "scheduler-port")}
args = [os.path.join(BIN, "cli", "berth"), "dev"] + [x for k, v in ports.items() for x in (f"--{k}", str(v))]
home = tempfile.mkdtemp(prefix="berth-dev-home-")
env = dict(os.environ, HOME=home, BERTH_ADDR=f"http://127.0.0.1:{ports['scheduler-port']}")
env.pop("BERTH_TOKEN", None)
dev = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
banner = ""
while "Ctrl-C" not in banner:
    line = dev.stdout.readline()
    if not line:
        break
    banner += line
t.ok(f"http://127.0.0.1:{ports['port']}/" in banner and "web.berth.internal" in banner and
     f"127.0.0.1:{ports['scheduler-port']}" in banner, "berth dev prints what is where", banner)
token_file = os.path.join(home, ".config", "berth", "token")
t.ok(f"auth       on: every API wants the token in {token_file}" in banner, "and where the API token is", banner)
t.is_(oct(os.stat(token_file).st_mode & 0o777), "0o600", "the token file is mode 0600")
token = open(token_file).read().strip()
for name, p in [("scheduler", ports["scheduler-port"]), ("proxy", ports["admin-port"]), ("dns", ports["dns-admin-port"])]:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5)
        st = 200
    except urllib.error.HTTPError as e:
        st = e.code
    t.is_(st, 401, f"the {name} API without the token: 401")


def tasks(svc="web"):
    req = urllib.request.Request(f"http://127.0.0.1:{ports['scheduler-port']}/v1/tasks?service={svc}&status=RUNNING",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["tasks"]


t.ok(wait_until(lambda: len(tasks()) == 2, 15), "the scheduler runs two demo tasks")
ids = {x["id"] for x in tasks()}
pids = [x["containers"][0]["pid"] for x in tasks()]


def bodies():
    return {http_request("127.0.0.1", ports["port"], headers={"Host": "web.localhost"})[2] for _ in range(8)}


t.ok(wait_until(lambda: bodies() == {f"hello from {i}\n".encode() for i in ids}, 15),
     "http://web.localhost/ answers through the proxy from both tasks")
t.is_(http_request("127.0.0.1", ports["port"], headers={"Host": "other"})[0], 404, "other hosts get the default 404")
t.ok(wait_until(lambda: len(dc.parse(dc.udp(ports["dns-port"], dc.query("web.berth.internal", "SRV")))["an"]) == 2, 10),
     "web.berth.internal SRV lists both tasks")
t.ok(wait_until(lambda: len(tasks("api")) == 1, 10), "and one api task")
api_id = tasks("api")[0]["id"]
req = urllib.request.Request(f"http://127.0.0.1:{ports['scheduler-port']}/v1/tasks/{api_id}",
                             headers={"Authorization": f"Bearer {token}"})
api_task = json.loads(urllib.request.urlopen(req, timeout=5).read())
t.ok("a container of 127.0.0.1:" in banner and api_task["definition"]["containers"][0]["image"].endswith("/demo/web:1")
     and api_task["containers"][0].get("container_id"), "api runs as a container of the demo image", api_task)
ex = subprocess.run([args[0], "task", "exec", api_id, "--", "sh", "-c", "id -u; cat /proc/1/cmdline; echo; ls /"],
                    capture_output=True, text=True, env=env, timeout=30)
t.ok(ex.returncode == 0 and ex.stdout.startswith("1000\n/app/web\0\n") and "work" not in ex.stdout.split(),
     "berth task exec in it: its own user, processes and filesystem", ex)
data_dir = banner.split("data       ")[1].split()[0]
st, _, body = http_request("127.0.0.1", ports["port"], path="/api", headers={"Host": "web.localhost"})
t.ok(st == 200 and body.decode().endswith(f"-> api.berth.internal: api from {api_id}\n") and
     body.decode().split()[1] in ids, "GET /api: web calls api by name", body)
out = subprocess.run([args[0], "top", "--once"], capture_output=True, text=True, env=env, timeout=10)
services, _, node_table = out.stdout.partition("\n\n")
rows = {l.split()[0]: l.split() for l in services.splitlines()[2:]}
t.ok(out.returncode == 0 and set(rows) == {"web", "api"} and rows["web"][2:4] == ["2", "2"],
     "berth top --once: web (desired 2, running 2) and api", out.stdout)
nodes = {l.split()[0]: l.split() for l in node_table.splitlines()[1:]}
t.ok(set(nodes) == {"local"} and nodes["local"][1:3] == ["ACTIVE", "yes"] and nodes["local"][5] == "3",
     "and the node table: local, ACTIVE, 3 tasks", node_table)


def describe():
    global out
    out = subprocess.run([args[0], "service", "describe", "web"], capture_output=True, text=True, env=env, timeout=10)
    return "request rate" in out.stdout


wait_until(describe, 6, step=0.5)
t.ok(out.returncode == 0 and "autoscaling     2..8 tasks, 500 req/s per task" in out.stdout and "request rate" in out.stdout,
     "berth service describe web shows autoscaling and the request rate", out.stdout)
t.ok(wait_until(lambda: "has reached a steady state" in dev.stdout.readline(), 10), "events are printed as they come")
kids = subprocess.run(["pgrep", "-P", str(dev.pid)], capture_output=True, text=True).stdout.split()
names = sorted(open(f"/proc/{k}/comm").read().strip() for k in kids)
t.is_(names, sorted(["berth-scheduler", "berth-proxy", "berth-dns", "docker-registry", "podman"]),
      "five processes: scheduler, proxy, dns, and the registry and engine for api's container")
dev.send_signal(signal.SIGINT)
t.is_(dev.wait(20), 0, "berth dev exits 0 on Ctrl-C")
time.sleep(0.5)
alive = [p for p in kids + [str(p) for p in pids]
         if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
t.is_(alive, [], "no berth or task process left behind")
apps = [p for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline")
        and open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0] == b"/app/web"]
t.is_(apps, [], "no container process left behind")
t.ok(not os.path.exists(data_dir), f"and no directory ({data_dir})")
shutil.rmtree(home, ignore_errors=True)
t.done()
