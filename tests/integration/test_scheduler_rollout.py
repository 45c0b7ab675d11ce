#!/usr/bin/env python3
"""Health-gated rolling deployments through the real proxy, under wrk (issue 12, acceptance 1, 2, 5):
a new task counts only once it is healthy in its target group and in its container health check, so
old tasks stop only as new ones become healthy. A revision that fails the target group's health check,
and one that fails its container health check, trip the circuit breaker and roll back to the last
COMPLETED deployment, the events saying which check failed, with no failed request; an app that is
unhealthy for its first 3 s completes within its grace period; COMPLETED comes after the old tasks'
STOPPED."""
import threading
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              autoscale_interval_s=0.3, agent={"port_range": [48000, 48999]})


def taskdef(env=None, health=None):
    c = {"name": "web", "command": [DEMO], "stop_timeout_s": 2, "environment": env or {},
         "port_mappings": [{"name": "http"}]}
    if health:
        c["health_check"] = health
    st, body = s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [c]})
    return f"web:{body['revision']}"


v1 = taskdef()
st, _ = s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": v1, "desired_count": 3, "health_check_grace_period_s": 1,
    "deployment": {"minimum_healthy_percent": 100, "maximum_percent": 200,
                   "circuit_breaker": {"enable": True, "rollback": True}},
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"],
                        "health_check": {"path": "/health", "interval_s": 0.3, "timeout_s": 0.2, "healthy_threshold": 2,
                                         "unhealthy_threshold": 2}}]})
t.ok(st == 201, "service web (3 tasks, circuit breaker with rollback, target group health check on /health)", _)


def tasks(status="RUNNING"):
    return s.admin("GET", f"/v1/tasks?service=web&status={status}")[1]["tasks"]


def deployment():
    return s.admin("GET", "/v1/services/web")[1].get("deployment_status", {})


def events():
    return [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]


def healthy_targets():
    st, body = proxy.admin("GET", "/v1/target-groups/web")
    return sorted(x["id"] for x in body["targets"] if x["state"] == "healthy") if st == 200 else []


t.ok(wait_until(lambda: len(healthy_targets()) == 3, 20), "three healthy targets", healthy_targets())
originals = sorted(x["id"] for x in tasks())


def deploy_under_load(td, seconds, until):
    """Deploys <td> while wrk runs (as long as it takes <until>() to hold, at most <seconds>)."""
    result = {}
    th = threading.Thread(target=lambda: result.update(wrk=run_wrk(lp, seconds, conns=8, host="web.localhost")))
    th.start()
    time.sleep(0.5)
    st, _ = s.admin("PATCH", "/v1/services/web", {"task_definition": td})
    reached = wait_until(until, seconds + 20, 0.1)
    th.join()
    return st, reached, result["wrk"]


# ---- 1. a revision that fails the target group's health check ----
bad_lb = taskdef(env={"DEMO_UNHEALTHY_FOR_S": "-1"})
st, rolled, wrk = deploy_under_load(bad_lb, 12, lambda: any("rolling back to " + v1 in e for e in events()))
t.is_(st, 200, f"deploy {bad_lb}, whose /health always fails")
check_wrk_clean(t, wrk, "while a revision failing the target group's health check is deployed and rolled back")
t.ok(rolled, "the circuit breaker trips and rolls back", events()[-8:])
t.ok(any("ELB health checks" in e and "circuit breaker" in e for e in events()),
     "the events say which check failed (the target group's)", [e for e in events() if "circuit" in e])
t.is_(s.admin("GET", "/v1/services/web")[1]["task_definition"], v1, f"the service is back on {v1}")
t.ok(wait_until(lambda: sorted(x["id"] for x in tasks()) == originals and not tasks("PENDING") and
                not tasks("ACTIVATING"), 20), "the original tasks were never stopped, and only they run", tasks())

# ---- 2. a revision whose container health check fails ----
bad_hc = taskdef(health={"command": ["sh", "-c", "exit 1"], "interval_s": 1, "timeout_s": 1, "retries": 1})
st, rolled, wrk = deploy_under_load(bad_hc, 12, lambda: any("rolling back to " + v1 in e and bad_hc in e
                                                              for e in events()))
check_wrk_clean(t, wrk, "while a revision failing its container health check is deployed and rolled back")
t.ok(rolled, "the circuit breaker trips and rolls back again", events()[-8:])
t.ok(any("container health checks" in e and "circuit breaker" in e for e in events()),
     "the events say which check failed (the container's)", [e for e in events() if "circuit" in e])
t.ok(any("keep failing" in e for e in events()), "replacements of failing tasks back off like crash loops")
t.ok(wait_until(lambda: sorted(x["id"] for x in tasks()) == originals and not tasks("ACTIVATING"), 20),
     "still the original tasks", tasks())

# ---- 3. an app unhealthy for its first 3 s: completes within its grace period ----
s.admin("PATCH", "/v1/services/web", {"health_check_grace_period_s": 6})
slow = taskdef(env={"DEMO_UNHEALTHY_FOR_S": "3"})


def completed():
    return any(f"deployment to {slow} completed" in e for e in events())


st, done, wrk = deploy_under_load(slow, 15, completed)
check_wrk_clean(t, wrk, "while a slow-starting revision is deployed")
t.ok(done, f"the deployment to {slow} completes", events()[-6:])
now = tasks()
t.ok(len(now) == 3 and all(x["task_definition"] == slow for x in now) and not set(originals) & {x["id"] for x in now},
     "three tasks of it, the old ones replaced", now)
# COMPLETED after the old tasks' STOPPED (and none of them stopped before a new one was healthy).
old = {x["id"]: x for x in s.admin("GET", "/v1/tasks?service=web&status=STOPPED")[1]["tasks"] if x["id"] in originals}
comp_at = [e["created_at"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]
           if f"deployment to {slow} completed" in e["message"]]
details = [s.admin("GET", f"/v1/tasks/{i}")[1] for i in old]
t.ok(len(details) == 3 and comp_at and all(d.get("stopped_at", "~") <= comp_at[0] for d in details),
     "COMPLETED comes after every old task is STOPPED", (comp_at, [d.get("stopped_at") for d in details]))
healthy_at = sorted(x.get("healthy_at", "~") for x in (s.admin("GET", f"/v1/tasks/{y['id']}")[1] for y in now))
stopping_at = sorted(d.get("stopping_at", "") for d in details)
t.ok(healthy_at[0] <= stopping_at[0], "the first old task stopped only after a new one was healthy",
     (healthy_at, stopping_at))
t.ok(s.sanitizer_clean(), "no sanitizer reports", s.log()[-2000:])
t.done()
