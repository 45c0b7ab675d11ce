#!/usr/bin/env python3
"""Container health-check commands (acceptance 3, first part): a task whose check starts failing turns
UNHEALTHY after `retries` failures and is replaced; events say why."""
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
t.done()
