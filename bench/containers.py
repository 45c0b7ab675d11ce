#!/usr/bin/env python3
"""containers.py -- driven by bench/containers.sh: berth's container runtime against the engine alone,
in the same run, on the same engine (Podman's API service) with the image already pulled. Every
container gets the same limits (32 MiB, no CPU quota: a small quota slows the start itself).

  engine alone (podman run)   50 `podman run -d -p PORT:8080` at once (8 at a time), until all answer
  engine alone (API)          50 create + start through the Docker Engine API at once, until all answer
                              (less than berth does: no output attached)
  berth                       POST /v1/services with desired_count 50 until 50 tasks RUNNING, 50 healthy
                              targets in berth-proxy and 50 SRV records in berth-dns
  one container               20 one-off tasks one after the other (POST /v1/tasks to RUNNING), and the
                              same through the API alone (create, start, port answers): p50 and p99"""
import concurrent.futures, os, socket, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("BERTH_BIN_DIR", os.path.join(HERE, "..", "build"))
from harness import Proxy, Dns, Scheduler, free_port, wait_until  # noqa: E402
from containers import Registry, Engine, build_image  # noqa: E402
from benchlib import srv_count  # noqa: E402

N, ONE = 50, 20


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def remove_all(eng):
    for c in eng.containers():
        eng.api("DELETE", f"/containers/{c['Id']}?force=1")


reg = Registry()
eng = Engine(reg)
image = build_image(eng, reg, "bench/web", "1", keep_local=True)
ports = [free_port() for _ in range(N)]

# ---- the engine alone: podman run ----
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda p: eng.run("run", "-d", "--name", f"cli-{p}", "-p", f"{p}:8080", "-e", "PORT=8080", "-m", "32m",
                                  "--memory-swap", "32m", image), ports))
wait_until(lambda: all(answers(p) for p in ports), 120, 0.02)
cli_s = time.monotonic() - t0
remove_all(eng)


# ---- the engine alone: its API, as berth uses it ----
def api_start(p, name):
    st, c = eng.api("POST", f"/containers/create?name={name}", {
        "Image": image, "Env": ["PORT=8080", "BIND=0.0.0.0"], "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": str(p)}]}, "Memory": 32 << 20, "MemorySwap": 32 << 20,
                       "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 4096}, {"Name": "nproc", "Soft": 4096, "Hard": 4096}]}})
    eng.api("POST", f"/containers/{c['Id']}/start")


t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(N) as ex:
    list(ex.map(lambda p: api_start(p, f"api-{p}"), ports))
wait_until(lambda: all(answers(p) for p in ports), 120, 0.02)
api_s = time.monotonic() - t0
remove_all(eng)
one_api = []
for k in range(ONE):
    p = ports[k]
    t0 = time.monotonic()
    api_start(p, f"one-{p}")
    wait_until(lambda: answers(p), 30, 0.005)
    one_api.append(time.monotonic() - t0)
remove_all(eng)

# ---- berth: scheduler (embedded node on the same engine), proxy, DNS ----
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}", "default_action": {"fixed_response": {"status": 404}}}]})
dns = Dns({"namespaces": [{"name": "berth.internal", "services": []}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-bench-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}",
              agent={"container_engine": eng.url, "port_range": [47000, 47999]})
s.admin("POST", "/v1/task-definitions", {"family": "web50", "containers": [{
    "name": "web", "image": image, "memory_mib": 32, "stop_timeout_s": 1,
    "port_mappings": [{"name": "http", "container_port": 8080}]}]})


t0 = time.monotonic()
s.admin("POST", "/v1/services", {
    "name": "web50", "task_definition": "web50", "desired_count": N,
    "load_balancers": [{"target_group": "web50", "container_name": "web", "port_name": "http"}],
    "service_registries": [{"name": "web50", "port_name": "http"}]})
marks = {}
while time.monotonic() - t0 < 120 and len(marks) < 3:
    now = time.monotonic() - t0
    if "running" not in marks and len(s.admin("GET", "/v1/tasks?service=web50&status=RUNNING")[1]["tasks"]) == N:
        marks["running"] = now
    if "proxy" not in marks:
        st, g = proxy.admin("GET", "/v1/target-groups/web50")
        if st == 200 and sum(1 for x in g["targets"] if x["state"] == "healthy") == N:
            marks["proxy"] = now
    if "dns" not in marks and srv_count(dns.port, "web50.berth.internal") == N:
        marks["dns"] = now
    time.sleep(0.01)
s.admin("DELETE", "/v1/services/web50")
wait_until(lambda: not s.admin("GET", "/v1/tasks?service=web50&status=RUNNING")[1]["tasks"] and len(eng.containers()) == 0, 120)
one_berth = []
for k in range(ONE):
    t0 = time.monotonic()
    tid = s.admin("POST", "/v1/tasks", {"task_definition": "web50"})[1]["tasks"][0]
    wait_until(lambda: s.admin("GET", f"/v1/tasks/{tid}")[1]["last_status"] == "RUNNING", 30, 0.005)
    one_berth.append(time.monotonic() - t0)
    s.admin("POST", f"/v1/tasks/{tid}/stop")
    wait_until(lambda: s.admin("GET", f"/v1/tasks/{tid}")[1]["last_status"] == "STOPPED", 30)

print(f"{N} containers of a pre-pulled image, each answering on its published port ({eng.run('--version').stdout.strip()}):")
print(f"  engine alone, podman run (8 at a time)   {cli_s:6.2f} s")
print(f"  engine alone, Docker Engine API          {api_s:6.2f} s")
for k, what in (("running", f"berth: {N} tasks RUNNING"), ("proxy", f"berth: {N} healthy in the proxy"),
                ("dns", f"berth: {N} SRV records in DNS")):
    print(f"  {what:41s}{marks[k]:6.2f} s" if k in marks else f"  {what:41s} not within 120 s")
if len(marks) == 3:
    done = max(marks.values())
    print(f"  berth, all of it: {done:.2f} s (goal <= 10 s); over the engine itself (podman run): "
          f"{(done / cli_s - 1) * 100:+.0f}% (goal <= 10%); over the bare API calls (no output attached): "
          f"{(done / api_s - 1) * 100:+.0f}%")
print(f"one container, {ONE} in a row: berth p50 {pct(one_berth, 50) * 1000:.0f} ms p99 {pct(one_berth, 99) * 1000:.0f} ms; "
      f"engine API alone p50 {pct(one_api, 50) * 1000:.0f} ms p99 {pct(one_api, 99) * 1000:.0f} ms")
