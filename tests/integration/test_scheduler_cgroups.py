#!/usr/bin/env python3
"""cgroup limits: a container's memory_mib and cpu become cgroup limits where the machine allows; a
container over its memory limit is OOM-killed and the task says so; the cgroups go when the task
does. Where the machine has no usable cgroups the node says why and the scheduler warns."""
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"))
cg = s.admin("GET", "/v1/nodes/local")[1].get("cgroups", "")
t.diag(f"cgroups: {cg}")
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "cpu": 512, "memory_mib": 64, "stop_timeout_s": 1, "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/task-definitions", {"family": "hog", "containers": [
    {"name": "hog", "memory_mib": 32, "command": [sys.executable, "-c",
     "import time; x = bytearray(256 << 20); x[::4096] = b'x' * len(x[::4096]); time.sleep(30)"]}]})


def task(svc, status="RUNNING"):
    ts = s.admin("GET", f"/v1/tasks?service={svc}&status={status}")[1]["tasks"]
    return ts[0] if ts else None


s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 1})
t.ok(wait_until(lambda: task("web"), 10), "a task with cpu 512 and memory_mib 64 runs")
web = task("web")
if cg in ("v1", "v2"):
    if cg == "v1":
        mem = f"/sys/fs/cgroup/memory/berth/{web['id']}-0"
        cpu = f"/sys/fs/cgroup/cpu/berth/{web['id']}-0"
        limit = open(f"{mem}/memory.limit_in_bytes").read().strip()
        quota = open(f"{cpu}/cpu.cfs_quota_us").read().strip() + " " + open(f"{cpu}/cpu.cfs_period_us").read().strip()
        procs = open(f"{mem}/cgroup.procs").read().split()
    else:
        mem = cpu = f"/sys/fs/cgroup/berth/{web['id']}-0"
        limit = open(f"{mem}/memory.max").read().strip()
        quota = open(f"{cpu}/cpu.max").read().strip()
        procs = open(f"{mem}/cgroup.procs").read().split()
    t.is_(limit, str(64 << 20), "its memory limit is 64 MiB")
    t.is_(quota, "50000 100000", "its CPU quota is half a CPU (512 units)")
    t.ok(str(web["containers"][0]["pid"]) in procs, "the container's process is in the cgroup", procs)
    s.admin("POST", "/v1/services", {"name": "hog", "task_definition": "hog", "desired_count": 1})
    t.ok(wait_until(lambda: task("hog", "STOPPED"), 15), "a container allocating 256 MiB under a 32 MiB limit is stopped")
    dead = task("hog", "STOPPED")
    t.ok(dead["containers"][0].get("exit_code") == 137 and "OutOfMemoryError" in dead["stopped_reason"] and
         "OutOfMemoryError" in dead["containers"][0].get("reason", ""), "OOM-killed, and the task says so",
         {k: dead.get(k) for k in ("stopped_reason", "containers")})
    s.admin("DELETE", "/v1/services/hog")
    s.admin("DELETE", "/v1/services/web")
    t.ok(wait_until(lambda: not os.path.exists(mem) and not os.path.exists(cpu), 10), "the cgroups are removed with the task")
else:
    t.ok(cg.startswith("unavailable: "), "the node says why cgroups are unavailable", cg)
    t.ok("tasks run without memory and CPU limits" in s.log(), "and the scheduler warns")
    st, _, body = http_request("127.0.0.1", web["ports"]["http"])
    t.is_(st, 200, "tasks still run")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())
t.done()
