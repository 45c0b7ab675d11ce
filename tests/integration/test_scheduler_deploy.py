#!/usr/bin/env python3
"""berth-scheduler deployments: a new task definition rolls out under a wrk load through the proxy with
zero non-2xx and zero socket errors (acceptance 4); a revision whose command exits at once trips the
circuit breaker and rolls back to the last good one (acceptance 3)."""
import threading
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}")


def taskdef(greeting, command=None):
    st, body = s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
        {"name": "web", "command": command or [DEMO], "environment": {"GREETING": greeting}, "stop_timeout_s": 2,
         "port_mappings": [{"name": "http"}]}]})
    return f"web:{body['revision']}"


v1 = taskdef("v1")
s.admin("POST", "/v1/services", {"name": "web", "task_definition": v1, "desired_count": 3,
                                 "deployment": {"circuit_breaker": {"enable": True, "rollback": True}},
                                 "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http",
                                                     "host_header": ["web.localhost"]}]})


def greetings(n=12):
    return {http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[2].split()[0] for _ in range(n)}


def deployment():
    return s.admin("GET", "/v1/services/web")[1].get("current_deployment", {})


t.ok(wait_until(lambda: greetings() == {b"v1"}, 10), "v1 serves through the proxy")
v2 = taskdef("v2")
result = {}
th = threading.Thread(target=lambda: result.update(wrk=run_wrk(lp, 8, conns=8, host="web.localhost")))
th.start()
time.sleep(1.5)
st, body = s.admin("PATCH", "/v1/services/web", {"task_definition": v2})
t.is_((st, body["task_definition"]), (200, v2), "update the service to the new revision")
t.ok(wait_until(lambda: deployment().get("status") == "COMPLETED", 15), "the deployment completes", deployment())
th.join(30)
check_wrk_clean(t, result["wrk"], "during the rolling deployment")
t.is_(greetings(), {b"v2"}, "only v2 serves afterwards")
running = s.admin("GET", "/v1/tasks?service=web&status=RUNNING")[1]["tasks"]
t.is_(sorted(x["task_definition"] for x in running), [v2] * 3, "three v2 tasks run")
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]
t.ok(any(f"deployment from {v1} to {v2} started" in m for m in ev) and any(f"deployment to {v2} completed" in m for m in ev),
     "events tell the deployment")

# A revision that cannot start: the circuit breaker rolls back to v2.
bad = taskdef("bad", ["sh", "-c", "exit 1"])
s.admin("PATCH", "/v1/services/web", {"task_definition": bad})
t.ok(wait_until(lambda: deployment().get("status") == "ROLLED_BACK", 20), "the circuit breaker trips and rolls back",
     deployment())
t.is_(s.admin("GET", "/v1/services/web")[1]["task_definition"], v2, "the service is back on the last good revision")
t.ok(deployment().get("failed", 0) >= 3, f"after {deployment().get('failed')} failed tasks (threshold 3)")
t.ok(wait_until(lambda: greetings() == {b"v2"}, 10), "v2 kept serving throughout")
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]
t.ok(any("circuit breaker" in m and "rolling back" in m for m in ev), "an event says so")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())
t.is_(proxy.stop(), 0, "proxy exits 0")
t.done()
