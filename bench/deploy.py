#!/usr/bin/env python3
"""deploy.py -- driven by bench/deploy.sh: health-gated rolling deployments with the scheduler's
defaults (target groups checked every second, the proxy's view read every 2 s), through berth-proxy:

  good   6 tasks whose app takes 2 s to start; from PATCH to "deployment ... completed"
  bad    a revision whose /health always fails (circuit breaker with rollback): from PATCH to the
         breaker's "rolling back" event, and to the service serving its old revision only
Three rounds each; the median and every round are printed."""
import os, statistics, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("BERTH_BIN_DIR", os.path.join(HERE, "..", "build"))
from harness import BIN, Proxy, Scheduler, free_port, wait_until  # noqa: E402

DEMO = os.path.join(BIN, "demo", "berth-demo-web")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404}}}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-bench-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              agent={"port_range": [50000, 50999]})


def taskdef(env):
    c = {"name": "web", "command": ["sh", "-c", f"sleep 2; exec {DEMO}"], "stop_timeout_s": 2, "environment": env,
         "port_mappings": [{"name": "http"}]}
    return f"web:{s.admin('POST', '/v1/task-definitions', {'family': 'web', 'containers': [c]})[1]['revision']}"


def events():
    return [e["message"] for e in s.admin("GET", "/v1/events?service=web&limit=1000")[1]["events"]]


s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": taskdef({"V": "0"}), "desired_count": 6,
    "deployment": {"minimum_healthy_percent": 100, "maximum_percent": 200,
                   "circuit_breaker": {"enable": True, "rollback": True}},
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http",
                        "health_check": {"path": "/health"}}]})
wait_until(lambda: any("steady state" in e for e in events()), 60, 0.05)
good, detect, back = [], [], []
for r in range(ROUNDS):
    td = taskdef({"V": str(r + 1)})
    t0 = time.monotonic()
    s.admin("PATCH", "/v1/services/web", {"task_definition": td})
    wait_until(lambda: any(f"deployment to {td} completed" in e for e in events()), 120, 0.05)
    good.append(time.monotonic() - t0)
    bad = taskdef({"DEMO_UNHEALTHY_FOR_S": "-1", "V": f"bad{r}"})
    t0 = time.monotonic()
    s.admin("PATCH", "/v1/services/web", {"task_definition": bad})
    wait_until(lambda: any(f"deployment to {bad} failed" in e for e in events()), 120, 0.05)
    detect.append(time.monotonic() - t0)
    wait_until(lambda: all(x["task_definition"] == td for x in
                           s.admin("GET", "/v1/tasks?service=web")[1]["tasks"] if x["last_status"] != "STOPPED"), 120, 0.05)
    back.append(time.monotonic() - t0)


def show(name, xs):
    print(f"  {name:58s} {statistics.median(xs):6.2f} s   ({' '.join(f'{x:.2f}' for x in xs)})")


print(f"health-gated deployments, 6 tasks, app start-up 2 s, target group health check every 1 s ({ROUNDS} rounds):")
show("good revision: PATCH to COMPLETED (old tasks STOPPED)", good)
show("bad revision (/health fails): PATCH to the breaker tripping", detect)
show("bad revision: PATCH to only the old revision running again", back)
