#!/usr/bin/env python3
"""Container health-check commands (acceptance 3, first part): a task whose check starts failing turns
UNHEALTHY after `retries` failures and is replaced; events say why. Tasks that fail the proxy's health
checks are replaced too, once health_check_grace_period_s is over."""
import urllib.request
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
flag = tempfile.mktemp(prefix="berth-sick-")
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"))
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 1, "port_mappings": [{"name": "http"}],
     "health_check": {"command": ["sh", "-c", f"test ! -e {flag} && curl -fsS -o /dev/null http://127.0.0.1:$PORT/health"],
                      "interval_s": 1, "timeout_s": 1, "retries": 2}}]})
s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 1})


def task():
    ts = s.admin("GET", "/v1/tasks?service=web&status=RUNNING")[1]["tasks"]
    return ts[0] if ts else None


t.ok(wait_until(lambda: task() and task()["health_status"] == "HEALTHY", 8), "the task's check passes: HEALTHY")
first = task()["id"]
open(flag, "w").close()  # the check starts failing
t0 = time.time()
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{first}")[1]["last_status"] == "STOPPED", 10), "the failing task is stopped")
t.diag(f"stopped {time.time() - t0:.1f}s after the check began failing (interval 1 s, retries 2)")
dead = s.admin("GET", f"/v1/tasks/{first}")[1]
t.ok(dead["health_status"] == "UNHEALTHY" and dead["stop_code"] == "TaskFailedHealthChecks", "as UNHEALTHY, TaskFailedHealthChecks",
     dead)
os.unlink(flag)
t.ok(wait_until(lambda: task() and task()["id"] != first and task()["health_status"] == "HEALTHY", 10),
     "a healthy replacement runs")
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]
t.ok(any(first in m and "failed container health checks" in m for m in ev), "an event says why", ev)
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())

# The proxy's health checks: a target that fails them is replaced after the grace period.
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{free_port()}",
                              "default_action": {"fixed_response": {"status": 404}}}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              autoscale_interval_s=0.5)
BACKEND = os.path.join(HERE, "backend.py")
s.admin("POST", "/v1/task-definitions", {"family": "be", "containers": [
    {"name": "be", "command": ["sh", "-c", f"exec {sys.executable} {BACKEND} --port $PORT --name $BERTH_TASK_ID"],
     "stop_timeout_s": 1, "port_mappings": [{"name": "http"}]}]})
GRACE = 4
st, body = s.admin("POST", "/v1/services", {
    "name": "be", "task_definition": "be", "desired_count": 1, "health_check_grace_period_s": GRACE,
    "load_balancers": [{"target_group": "be", "container_name": "be", "port_name": "http",
                        "health_check": {"path": "/health", "interval_s": 0.3, "timeout_s": 0.2, "unhealthy_threshold": 2}}]})
t.is_(st, 201, "a service behind the proxy with health_check_grace_period_s 4")


def be_task():
    ts = s.admin("GET", "/v1/tasks?service=be&status=RUNNING")[1]["tasks"]
    return ts[0] if ts else None


t.ok(wait_until(lambda: be_task() and proxy.target_states("be") == {f"127.0.0.1:{be_task()['ports']['http']}": "healthy"}, 10),
     "its task is a healthy target")
first = be_task()
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{first['ports']['http']}/_health?ok=0", method="POST"),
                       timeout=5).read()
t0 = time.monotonic()
t.ok(wait_until(lambda: "unhealthy" in proxy.target_states("be").values(), 5), "the proxy marks it unhealthy")
time.sleep(max(0, GRACE - 1.5 - (time.monotonic() - t0)))
t.is_(s.admin("GET", f"/v1/tasks/{first['id']}")[1]["last_status"], "RUNNING", "not replaced within the grace period")
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{first['id']}")[1]["last_status"] == "STOPPED", GRACE + 5),
     "replaced once the grace period is over")
dead = s.admin("GET", f"/v1/tasks/{first['id']}")[1]
t.diag(f"stopped {time.monotonic() - t0:.1f} s after it turned unhealthy (grace {GRACE} s from its start)")
t.ok(dead["stop_code"] == "TaskFailedHealthChecks" and dead["stopped_reason"].startswith("Task failed ELB health checks in (target-group be)"),
     "stop code and reason as ECS", {k: dead.get(k) for k in ("stop_code", "stopped_reason")})
t.ok(wait_until(lambda: be_task() and be_task()["id"] != first["id"] and
                "healthy" in proxy.target_states("be").values(), 10), "a healthy replacement serves")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean() and proxy.sanitizer_clean(), "no sanitizer reports")
t.done()
