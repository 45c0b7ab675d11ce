#!/usr/bin/env python3
"""Containers (SPEC §5): task definitions with an image run as OCI containers through a real engine
(Podman's Docker-compatible API service, the test's own) pulling from a real registry on loopback
(docker-registry, the test's own), with images the test builds. A service of three containers behind
the proxy and in DNS; what a task can and cannot see; memory and CPU limits; a missing image; a rolling
deployment from :1 to :2 under wrk; the agent killed with SIGKILL and restarted (adoption, no
duplicates, strays removed); exec and logs -f through the CLI."""
import threading
from harness import *
import dnsclient as dc
from containers import Registry, Engine, build_image

t = Tap()
berth = os.path.join(BIN, "cli", "berth")
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
reg = Registry()
eng = Engine(reg)
v1 = build_image(eng, reg, "demo/web", "1")
v2 = build_image(eng, reg, "demo/web", "2", env={"GREETING": "v2"})

lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]})
dns = Dns({"namespaces": [{"name": "berth.internal", "services": []}]})
data_dir = tempfile.mkdtemp(prefix="berth-sched-")
AGENT = {"container_engine": eng.url, "port_range": [46000, 46499]}


def start_scheduler():
    return Scheduler(data_dir, proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
                     dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}", agent=AGENT)


s = start_scheduler()
env = dict(os.environ, BERTH_ADDR=f"http://127.0.0.1:{s.admin_port}")
node = s.admin("GET", "/v1/nodes")[1]["nodes"][0]
t.ok("Podman" in node.get("container_engine", ""), "the node reports its container engine", node)


def webdef(image):
    return {"family": "web", "containers": [{
        "name": "web", "image": image, "memory_mib": 64, "cpu": 128, "stop_timeout_s": 2,
        "port_mappings": [{"name": "http", "container_port": 8080}],
        "health_check": {"command": ["CMD-SHELL", "wget -qO- http://127.0.0.1:8080/health"], "interval_s": 1,
                         "timeout_s": 2, "retries": 2}}]}


def tasks(service="web", status="RUNNING"):
    return s.admin("GET", f"/v1/tasks?service={service}&status={status}")[1]["tasks"]


def exec_in(task_id, script, timeout=20):
    st, r = s.admin("POST", f"/v1/tasks/{task_id}/exec", {"command": ["sh", "-c", script], "timeout_s": timeout})
    return (r.get("exit_code"), r.get("output", "")) if st == 200 else (None, r)


# ---- 1. three containers from the registry, in the proxy and in DNS ----
t.is_(s.admin("POST", "/v1/task-definitions", webdef(v1))[0], 201, "a task definition with an image")
st, _ = s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": "web:1", "desired_count": 3,
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"]}],
    "service_registries": [{"name": "web", "port_name": "http"}]})
t.is_(st, 201, "service web, 3 tasks")
t.ok(wait_until(lambda: len(tasks()) == 3, 90), "three tasks RUNNING (the image pulled from the registry)", tasks("web", ""))
running = {x["id"]: x["ports"]["http"] for x in tasks()}
per_task = {tid: [c for c in eng.containers(f"berth.task={tid}") if c["State"] == "running"] for tid in running}
t.ok(all(len(v) == 1 for v in per_task.values()), "each task is one running container, labelled with its id",
     {k: len(v) for k, v in per_task.items()})
direct = {tid: http_request("127.0.0.1", port)[2].decode().strip() for tid, port in running.items()}
t.ok(all(body == f"hello from {tid}" for tid, body in direct.items()), "each answers on its published host port", direct)


def targets():
    st, body = proxy.admin("GET", "/v1/target-groups/web")
    return {x.get("id"): x["address"] for x in body["targets"] if x["state"] == "healthy"} if st == 200 else {}


def srv():
    return {x[3][3].split(".")[0]: x[3][2] for x in dc.parse(dc.udp(dns.port, dc.query("web.berth.internal", "SRV")))["an"]}


want = {tid: f"127.0.0.1:{port}" for tid, port in running.items()}
t.ok(wait_until(lambda: targets() == want, 10), "all three are healthy targets in the proxy", targets())
t.ok(wait_until(lambda: srv() == running, 10), "and SRV records in DNS", srv())
bodies = {http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[2].decode().split()[-1] for _ in range(15)}
t.is_(bodies, set(running), "traffic through the proxy reaches all three containers")
t.ok(wait_until(lambda: all(x.get("health_status") == "HEALTHY" for x in tasks()), 15),
     "the container health check (CMD-SHELL, run inside the container) reports HEALTHY")

# ---- 2. isolation, seen from inside a task ----
hostvol = tempfile.mkdtemp(prefix="berth-vol-")
with open(os.path.join(hostvol, "hello"), "w") as f:
    f.write("from the host\n")
os.chmod(hostvol, 0o777)
s.admin("POST", "/v1/task-definitions", {
    "family": "probe", "volumes": [{"name": "shared", "host": {"source_path": hostvol}}, {"name": "scratch"}],
    "containers": [{"name": "probe", "image": v1, "entry_point": ["/bin/sleep", "3600"], "user": "1000:1000",
                    "readonly_root_filesystem": True, "stop_timeout_s": 1,
                    "mount_points": [{"source_volume": "shared", "container_path": "/data"},
                                     {"source_volume": "scratch", "container_path": "/scratch"}]}]})
st, r = s.admin("POST", "/v1/tasks", {"task_definition": "probe"})
probe = r["tasks"][0] if st == 201 else None
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{probe}")[1]["last_status"] == "RUNNING", 30), "a probe task runs", r)
t.is_(exec_in(probe, "id -u; id -g"), (0, "1000\n1000\n"), "it runs as the declared user")
code, out = exec_in(probe, f"test -e {REPO}/CMakeLists.txt || test -e {data_dir} || test -e /etc/hostname.berth; "
                           "echo $?; ls /")
t.ok(code == 0 and out.startswith("1\n") and "app" in out, "its own root filesystem: no project files, no journal", out)
code, out = exec_in(probe, "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'")
lines = out.split("\n")
t.ok(code == 0 and lines[0].startswith("/bin/sleep 3600") and int(lines[1]) < 10,
     "its own processes: pid 1 is its entry point, no host process in /proc", out)
t.ok(exec_in(probe, "touch /x")[0] != 0, "its root filesystem is read-only (readonly_root_filesystem)")
code, out = exec_in(probe, "cat /data/hello && touch /data/written && touch /scratch/s && echo ok")
t.ok(code == 0 and "from the host" in out and os.path.exists(os.path.join(hostvol, "written")),
     "its mounts: the host volume read and written, a scratch volume writable", out)
code, out = exec_in(probe, "mount | grep -c -E ' /(data|scratch) '")
t.is_((code, out.strip()), (0, "2"), "and only those two mounts besides its own filesystem")
gw_script = ("gw=$(ip route | awk '/default/{print $3}'); for a in 127.0.0.1 $gw; do for p in %d %d %d; do "
             "timeout 3 wget -qO- http://$a:$p/healthz && echo REACHED $a:$p; done; done; echo done")
code, out = exec_in(probe, gw_script % (s.admin_port, proxy.admin_port, dns.admin_port))
t.ok("done" in out and "REACHED" not in out,
     "in bridge mode it cannot reach the scheduler's or the admin APIs' loopback addresses", out)
published = running[next(iter(running))]
code, out = exec_in(probe, "gw=$(ip route | awk '/default/{print $3}'); timeout 3 wget -qO- http://$gw:%d/health" % published)
t.is_(out, "ok\n", "(while the published port of another task, on the host's side of the bridge, answers)")
web0 = next(iter(running))
t.ok(exec_in(web0, "timeout 3 wget -qO- http://127.0.0.1:8080/health")[1] == "ok\n",
     "(while wget inside a container does reach its own server)")
s.admin("POST", f"/v1/tasks/{probe}/stop")
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{probe}")[1]["last_status"] == "STOPPED", 20), "the probe stops")
t.ok(wait_until(lambda: not os.path.exists(os.path.join(data_dir, "volumes", probe)) and not eng.containers(
    f"berth.task={probe}"), 10), "its container and its scratch volume are removed")

# ---- 3. limits ----
s.admin("POST", "/v1/task-definitions", {"family": "hog", "containers": [{
    "name": "hog", "image": v1, "memory_mib": 32, "entry_point": ["/bin/sh", "-c", "sleep 1; a=$(yes | head -c 300000000); echo survived"]}]})
oom = s.admin("POST", "/v1/tasks", {"task_definition": "hog"})[1]["tasks"][0]
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{oom}")[1]["last_status"] == "STOPPED", 60), "the memory hog stops")
rec = s.admin("GET", f"/v1/tasks/{oom}")[1]
t.ok("OutOfMemoryError" in rec.get("stopped_reason", "") and "OutOfMemoryError" in rec["containers"][0].get("reason", ""),
     "over its memory_mib it is OOM-killed and reported as OutOfMemoryError", rec)
s.admin("POST", "/v1/task-definitions", {"family": "spin", "containers": [{
    "name": "spin", "image": v1, "cpu": 256, "stop_timeout_s": 1, "entry_point": ["/bin/sh", "-c", "while :; do :; done"]}]})
spin = s.admin("POST", "/v1/tasks", {"task_definition": "spin"})[1]["tasks"][0]
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{spin}/stats")[1].get("cpu_seconds", 0) > 0.05, 30), "a CPU-bound task runs")
c0, w0 = s.admin("GET", f"/v1/tasks/{spin}/stats")[1]["cpu_seconds"], time.time()
time.sleep(4)
c1, w1 = s.admin("GET", f"/v1/tasks/{spin}/stats")[1]["cpu_seconds"], time.time()
share = (c1 - c0) / (w1 - w0)
t.ok(0.02 < share <= 0.35, f"with cpu 256 it gets about a quarter of a core ({share:.2f})")
s.admin("POST", f"/v1/tasks/{spin}/stop")

# ---- 4. a missing image ----
bad = webdef(f"{reg.addr}/demo/web:9")
bad["family"] = "bad"
s.admin("POST", "/v1/task-definitions", bad)
s.admin("POST", "/v1/services", {"name": "bad", "task_definition": "bad", "desired_count": 1})


def bad_stopped():
    return [x for x in s.admin("GET", "/v1/tasks?service=bad&status=STOPPED")[1]["tasks"]]


t.ok(wait_until(lambda: bad_stopped(), 30), "a task of a missing tag stops")
x = bad_stopped()[0]
t.ok(x.get("stop_code") == "TaskFailedToStart" and x.get("stopped_reason", "").startswith("CannotPullContainerError:")
     and "demo/web:9" in x["stopped_reason"], "with TaskFailedToStart and CannotPullContainerError naming the image", x)
time.sleep(6)
events = json.dumps(s.admin("GET", "/v1/events?service=bad")[1])
t.ok("CannotPullContainerError" in events, "the events say why")
attempts = len(s.admin("GET", "/v1/tasks?service=bad")[1]["tasks"])
t.ok(attempts <= 8, f"the service backs off ({attempts} attempts in about 8 s)")
t.is_(s.admin("GET", "/healthz")[0], 200, "nothing crashed")
s.admin("DELETE", "/v1/services/bad")

# ---- 5. exec and logs -f through the CLI ----
r = subprocess.run([berth, "task", "exec", web0, "--", "sh", "-c", "echo in-$HOSTNAME-$GREETING; exit 4"],
                   capture_output=True, text=True, env=env, timeout=30)
t.ok(r.returncode == 4 and r.stdout.startswith("in-"), "berth task exec: output, and the command's exit code", r)
code, screen = exec_interactive(berth, env, web0, "echo hi-$((6*7)); tty; id -u; exit 6\r")
t.ok(code == 6 and "hi-42" in screen and "/dev/pts/" in screen,
     "berth task exec -it: a shell on a terminal in the container, typed input, its exit code", (code, screen[-400:]))
s.admin("POST", "/v1/task-definitions", {"family": "ticker", "containers": [{
    "name": "ticker", "image": v1, "stop_timeout_s": 1,
    "entry_point": ["/bin/sh", "-c", "i=0; while [ $i -lt 30 ]; do echo tick-$i; i=$((i+1)); sleep 0.3; done"]}]})
tick = s.admin("POST", "/v1/tasks", {"task_definition": "ticker"})[1]["tasks"][0]
wait_until(lambda: s.admin("GET", f"/v1/tasks/{tick}")[1]["last_status"] in ("RUNNING", "STOPPED"), 30)
follow = subprocess.Popen([berth, "task", "logs", tick, "-f"], stdout=subprocess.PIPE, text=True, env=env)
seen, early_status = [], None
deadline = time.time() + 40
while time.time() < deadline:
    line = follow.stdout.readline()
    if not line:
        break
    seen.append(line.strip())
    if line.strip() == "tick-5":
        early_status = s.admin("GET", f"/v1/tasks/{tick}")[1]["last_status"]
try:
    follow.wait(10)
except subprocess.TimeoutExpired:
    follow.kill()
t.ok(early_status == "RUNNING", "berth task logs -f shows lines while the task is still writing them", early_status)
t.ok("tick-29" in seen and seen.index("tick-29") > seen.index("tick-0"), "and everything it wrote, in order", seen[-3:])
t.is_(follow.returncode, 0, "-f ends (exit 0) once the task has stopped")
r = subprocess.run([berth, "task", "logs", tick, "--tail", "2"], capture_output=True, text=True, env=env, timeout=20)
t.is_(r.stdout, "tick-28\ntick-29\n", "--tail 2: the last two lines")

# A container's log is capped as a process's is (cut back to its last MiB past 8 MiB), and its last
# output reaches the log even though the engine streams it slower than the container wrote it.
s.admin("POST", "/v1/task-definitions", {"family": "chatty", "containers": [{
    "name": "chatty", "image": v1, "entry_point": ["/bin/sh", "-c", "yes 0123456789abcdef | head -c 12000000; echo; echo the-end"]}]})
chatty = s.admin("POST", "/v1/tasks", {"task_definition": "chatty"})[1]["tasks"][0]
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{chatty}")[1]["last_status"] == "STOPPED", 60), "a chatty task (12 MB of output) ends")
log_path = s.admin("GET", f"/v1/tasks/{chatty}")[1].get("log", "")
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{chatty}/logs")[1].endswith("the-end\n"), 60),
     "all its output reaches its log, the last line included")
t.ok(os.path.getsize(log_path) <= 9 << 20, "and the log file is capped", os.path.getsize(log_path))
t.ok(wait_until(lambda: not eng.containers(f"berth.task={chatty}"), 20), "then its container is removed")

# ---- 6. a rolling deployment from :1 to :2 under wrk ----
s.admin("POST", "/v1/task-definitions", webdef(v2))
result = {}
th = threading.Thread(target=lambda: result.update(wrk=run_wrk(lp, 10, conns=8, host="web.localhost")))
th.start()
time.sleep(1)
t.is_(s.admin("PATCH", "/v1/services/web", {"task_definition": "web:2"})[0], 200, "deploy web:2 (image tag :2)")
th.join()
check_wrk_clean(t, result["wrk"], "during the rolling deployment from :1 to :2")


def deployed():
    xs = tasks()
    return len(xs) == 3 and all(x["task_definition"] == "web:2" for x in xs) and not tasks("web", "DEACTIVATING") \
        and not tasks("web", "STOPPING")


t.ok(wait_until(deployed, 60), "three tasks of web:2 RUNNING, the old ones gone", tasks())
bodies = {http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[2].decode().split()[0] for _ in range(6)}
t.is_(bodies, {"v2"}, "the proxy serves the new image")
web_ids = {x["id"] for x in tasks()}
t.ok(wait_until(lambda: {c["Labels"]["berth.task"] for c in eng.containers("berth.task")} >= web_ids and len(
    [c for c in eng.containers("berth.task") if c["Labels"]["berth.task"] not in web_ids]) == 0, 20),
    "the old containers are removed", [c["Labels"] for c in eng.containers("berth.task")])

# ---- 7. kill -9 the agent (the scheduler's embedded one) and restart it ----
before = {c["Id"] for c in eng.containers("berth.task") if c["State"] == "running"}
s.proc.kill()
s.proc.wait()
st, stray = eng.api("POST", "/containers/create?name=berth-stray", {
    "Image": v2, "Entrypoint": ["/bin/sleep", "3600"],
    "Labels": {"berth.task": "0" * 32, "berth.index": "0", "berth.node": "local", "berth.agent": os.path.realpath(data_dir)},
    "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024}, {"Name": "nproc", "Soft": 1024, "Hard": 1024}]}})
eng.api("POST", f"/containers/{stray.get('Id')}/start")
t.ok(st == 201, "a stray container labelled as this agent's, for no task")
s = start_scheduler()
t.ok(wait_until(lambda: not eng.containers("berth.task=" + "0" * 32), 15), "the restarted agent removes the stray")
after = {c["Id"] for c in eng.containers("berth.task") if c["State"] == "running"}
t.is_(after, before, "it adopts the same containers: none restarted, none duplicated")
t.is_({x["id"] for x in tasks()}, web_ids, "the same tasks RUNNING")
time.sleep(2)
t.is_({c["Id"] for c in eng.containers("berth.task")}, before, "and no container was started after the restart")
bodies = {http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[2].decode().split()[-1] for _ in range(15)}
t.is_(bodies, web_ids, "the proxy still reaches all three")
t.is_(s.stop(), 0, "the scheduler exits 0 (--stop-tasks)")
t.ok(wait_until(lambda: not eng.containers("berth.task"), 20), "and with --stop-tasks its containers are removed",
     eng.containers("berth.task"))
t.ok(s.sanitizer_clean(), "no sanitizer reports", s.log()[-3000:])
t.done()
