#!/usr/bin/env python3
"""berth-scheduler, second layer: a service's tasks run as real processes with the SPEC's environment
(acceptance 1, without proxy and DNS registration yet); kill -9 of a task is replaced within 5 s with
events saying why (2); a command that exits at once is retried with growing backoff (3, in part);
insufficient memory leaves tasks PENDING with a reason (7); scaling, stopping, logs; tasks that
outlive a killed scheduler are adopted, not duplicated (5, in part)."""
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
data = tempfile.mkdtemp(prefix="berth-sched-")
s = Scheduler(data, agent={"memory_mib": 200, "port_range": [41000, 41999]})
atexit.register(lambda: [os.kill(p, signal.SIGKILL) for p in s.task_pids() if os.path.exists(f"/proc/{p}")]
                if s.proc.poll() is None else None)
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "memory_mib": 64, "environment": {"GREETING": "hi"}, "stop_timeout_s": 2,
     "port_mappings": [{"name": "http"}]}]})
st, _ = s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 3})
t.is_(st, 201, "service created with desired_count 3")


def running(svc="web"):
    return [x for x in s.admin("GET", f"/v1/tasks?service={svc}&status=RUNNING")[1]["tasks"]]


t.ok(wait_until(lambda: len(running()) == 3, 5), "three tasks RUNNING")
tasks = running()
answers = set()
for task in tasks:
    port = task["ports"]["http"]
    st, h, body = http_request("127.0.0.1", port)
    answers.add(body.decode().strip())
    t.ok(41000 <= port <= 41999, f"task {task['id'][:8]} got a host port from port_range ({port})")
t.is_(answers, {f"hi from {x['id']}" for x in tasks}, "each task answers with its BERTH_TASK_ID and its environment")
env = open(f"/proc/{tasks[0]['containers'][0]['pid']}/environ").read().split("\0")
t.ok(f"PORT={tasks[0]['ports']['http']}" in env and f"BERTH_PORT_HTTP={tasks[0]['ports']['http']}" in env
     and "BERTH_SERVICE=web" in env and "BERTH_NAMESPACE=berth.internal" in env and "BERTH_DNS=127.0.0.1:8600" in env,
     "PORT, BERTH_PORT_HTTP, BERTH_SERVICE, BERTH_NAMESPACE, BERTH_DNS set")
t.is_(os.getpgid(tasks[0]["containers"][0]["pid"]), tasks[0]["containers"][0]["pid"], "each task runs in its own process group")
logs = s.admin("GET", f"/v1/tasks/{tasks[0]['id']}/logs")[1]
t.ok("serving on" in logs, "stdout/stderr are kept per task", logs)

# kill -9 one: replaced within 5 s, and the events say why.
victim = tasks[0]
os.kill(victim["containers"][0]["pid"], signal.SIGKILL)
t0 = time.time()
before = {x["id"] for x in tasks}


def replaced():
    ids = {x["id"] for x in running()}
    return len(ids) == 3 and victim["id"] not in ids and len(ids - before) == 1


t.ok(wait_until(replaced, 5, 0.05), "a replacement is RUNNING within 5 s")
t.diag(f"replaced after {time.time() - t0:.2f}s")
dead = s.admin("GET", f"/v1/tasks/{victim['id']}")[1]
t.ok(dead["last_status"] == "STOPPED" and dead["containers"][0]["exit_code"] == 137 and dead["stop_code"] == "EssentialContainerExited",
     "the killed task is STOPPED with exit code 137", dead)
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]
t.ok(any(victim["id"] in m and "exit code 137" in m for m in ev) and any("has started 1 tasks" in m for m in ev),
     "events record the exit and the replacement", ev)
t.ok(wait_until(lambda: any("steady state" in e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"][-3:]), 5),
     "has reached a steady state")

# Not enough memory (200 MiB, 64 each): the 4th and 5th wait as PENDING with a reason.
t.is_(s.admin("PATCH", "/v1/services/web", {"desired_count": 5})[0], 200, "PATCH desired_count 5")
t.ok(wait_until(lambda: len(s.admin("GET", "/v1/tasks?service=web&status=PENDING")[1]["tasks"]) == 2, 5), "two tasks PENDING",
     [(x["id"][:6], x["last_status"], x.get("memory_mib")) for x in s.admin("GET", "/v1/tasks")[1]["tasks"]])
pend = s.admin("GET", "/v1/tasks?service=web&status=PENDING")[1]["tasks"][0]
t.ok("insufficient memory" in pend.get("pending_reason", "") and "64 MiB" in pend["pending_reason"],
     "with a reason naming the resource", pend.get("pending_reason"))
t.ok(any("unable to place" in e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]),
     "and an event says why")

# Scale down: the newest stop, PENDING ones included, processes gone.
pids_before = s.task_pids()
t.is_(s.admin("PATCH", "/v1/services/web", {"desired_count": 1})[0], 200, "PATCH desired_count 1")
t.ok(wait_until(lambda: len(running()) == 1 and not s.admin("GET", "/v1/tasks?service=web&status=PENDING")[1]["tasks"]
                and len(s.admin("GET", "/v1/tasks?service=web&status=STOPPING")[1]["tasks"]) == 0, 8), "scaled down to 1")
t.ok(wait_until(lambda: sum(1 for p in pids_before if os.path.exists(f"/proc/{p}") and
                            open(f"/proc/{p}/stat").read().split()[2] != "Z") == 1, 5), "the other processes are gone")

# Stop through the API: replaced.
only = running()[0]
st, body = s.admin("POST", f"/v1/tasks/{only['id']}/stop")
t.is_(st, 200, "POST stop")
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{only['id']}")[1]["stop_code"] == "UserInitiated", 5), "stopped as UserInitiated")
t.ok(wait_until(lambda: len(running()) == 1 and running()[0]["id"] != only["id"], 5), "and replaced")

# A command that exits at once: retried with growing backoff, never in a tight loop.
s.admin("POST", "/v1/task-definitions", {"family": "crash", "containers": [{"name": "c", "command": ["sh", "-c", "exit 3"]}]})
s.admin("POST", "/v1/services", {"name": "crash", "task_definition": "crash", "desired_count": 1})
time.sleep(4)
crashed = s.admin("GET", "/v1/tasks?service=crash&status=STOPPED")[1]["tasks"]
t.ok(2 <= len(crashed) <= 5, f"{len(crashed)} attempts in 4 s (backoff 0.5, 1, 2 s), not a tight loop")
t.ok(all(c["containers"][0]["exit_code"] == 3 for c in crashed), "each with exit code 3")
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=crash")[1]["events"]]
t.ok(any("the next start waits 2.0s" in m for m in ev), "events show the growing delay", ev)
s.admin("DELETE", "/v1/services/crash")

# kill -9 the scheduler: tasks keep running; the restarted scheduler adopts them, no duplicates.
keep = running()[0]
s.proc.kill()
s.proc.wait()
time.sleep(0.3)
t.ok(os.path.exists(f"/proc/{keep['containers'][0]['pid']}"), "the task outlives the scheduler")
s2 = Scheduler(data, admin_port=s.admin_port, agent={"memory_mib": 200, "port_range": [41000, 41999]})
s = s2
time.sleep(1.5)
now = running()
t.is_([x["id"] for x in now], [keep["id"]], "the restarted scheduler adopts it and starts no duplicate")
t.ok(any("adopted" in e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]), "event: adopted")
os.kill(keep["containers"][0]["pid"], signal.SIGKILL)
t.ok(wait_until(lambda: len(running()) == 1 and running()[0]["id"] != keep["id"], 5), "an adopted task that dies is replaced too")
pids = s.task_pids()
t.is_(s.stop(), 0, "scheduler exits 0")
time.sleep(0.3)
t.ok(not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z" for p in pids),
     "--stop-tasks leaves no task process")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())
t.done()
