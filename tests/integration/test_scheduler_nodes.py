#!/usr/bin/env python3
"""Two nodes (issue 4, acceptance 6): the scheduler's embedded node (zone a) and a berth-agent node
(zone b). spread places tasks evenly; distinct_instance and member_of hold; a remote task's logs come
through the agent; when the berth-agent is killed its tasks are replaced on the remaining node (and a
restarted agent stops the orphans the scheduler gave up); draining a node moves its tasks without going
below minimum_healthy_percent."""
import threading
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
orphans = []


def kill_orphans():
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


atexit.register(kill_orphans)
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), node_lost_after_s=3,
              agent={"attributes": {"zone": "a"}, "port_range": [41000, 41999], "cpu": 4096, "memory_mib": 4096})
a = Agent(s, "n2", attributes={"zone": "b"}, port_range=[42000, 42999], cpu=4096, memory_mib=4096)


def nodes():
    return {n["id"]: n for n in s.admin("GET", "/v1/nodes")[1]["nodes"]}


t.ok(wait_until(lambda: set(nodes()) == {"local", "n2"} and nodes()["n2"]["connected"], 5), "two nodes: local and n2", nodes())
t.is_((nodes()["n2"]["attributes"], nodes()["n2"]["status"], nodes()["local"]["attributes"]), ({"zone": "b"}, "ACTIVE", {"zone": "a"}),
      "with their attributes, ACTIVE")
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "cpu": 128, "memory_mib": 32, "stop_timeout_s": 1, "port_mappings": [{"name": "http"}]}]})


def tasks(svc, status="RUNNING"):
    return s.admin("GET", f"/v1/tasks?service={svc}&status={status}")[1]["tasks"]


def per_node(svc):
    out = {}
    for x in tasks(svc):
        out[x["node"]] = out.get(x["node"], 0) + 1
    return out


def answers(x):
    st, _, body = http_request("127.0.0.1", x["ports"]["http"])
    return st == 200 and body.decode().strip().endswith(x["id"])


# spread over instances
st, _ = s.admin("POST", "/v1/services", {"name": "spread", "task_definition": "web", "desired_count": 4,
                                         "placement_strategy": [{"type": "spread", "field": "instanceId"}]})
t.is_(st, 201, "service spread: 4 tasks, spread on instanceId")
t.ok(wait_until(lambda: per_node("spread") == {"local": 2, "n2": 2}, 10), "spread: 2 on each node", per_node("spread"))
t.ok(all(answers(x) for x in tasks("spread")), "every task answers on its port (the agent ran its two)")
remote = [x for x in tasks("spread") if x["node"] == "n2"]
t.ok(all(42000 <= x["ports"]["http"] <= 42999 for x in remote), "the agent's tasks use its port_range")
st, logs = s.admin("GET", f"/v1/tasks/{remote[0]['id']}/logs")
t.ok(st == 200 and "serving on" in logs, "a remote task's logs come through the agent's API", logs)

# distinct_instance
s.admin("POST", "/v1/services", {"name": "distinct", "task_definition": "web", "desired_count": 3,
                                 "placement_constraints": [{"type": "distinct_instance"}]})
t.ok(wait_until(lambda: per_node("distinct") == {"local": 1, "n2": 1} and len(tasks("distinct", "PENDING")) == 1, 10),
     "distinct_instance: one per node; the third waits", per_node("distinct"))
pend = tasks("distinct", "PENDING")
t.ok(pend and "distinct_instance" in pend[0].get("pending_reason", ""), "with a reason", pend and pend[0].get("pending_reason"))
s.admin("DELETE", "/v1/services/distinct")

# member_of
s.admin("POST", "/v1/services", {"name": "onlyb", "task_definition": "web", "desired_count": 2,
                                 "placement_constraints": [{"type": "member_of", "expression": "attribute:zone in [b, c]"}]})
t.ok(wait_until(lambda: per_node("onlyb") == {"n2": 2}, 10), "member_of(attribute:zone in [b, c]): both on n2", per_node("onlyb"))
st, body = s.admin("POST", "/v1/services", {"name": "x", "task_definition": "web",
                                            "placement_constraints": [{"type": "member_of", "expression": "attribute:zone in b"}]})
t.ok(st == 400 and body["error"]["message"] == "placement_constraints[0].expression: expected '[' after in at position 19",
     "a bad expression is a 400 naming the path and position", body)

# kill -9 the agent: its tasks are replaced on the remaining node
on_n2 = {x["id"]: x["containers"][0]["pid"] for x in tasks("spread") + tasks("onlyb") if x["node"] == "n2"}
orphans += list(on_n2.values())
a.proc.kill()
a.proc.wait()
t0 = time.monotonic()
t.ok(wait_until(lambda: not nodes()["n2"]["connected"], 8), "n2 is lost after node_lost_after_s (3 s)")
t.ok(wait_until(lambda: per_node("spread") == {"local": 4}, 10), "spread: all 4 RUNNING on local again", per_node("spread"))
t.diag(f"replaced {time.monotonic() - t0:.1f} s after the kill")
dead = s.admin("GET", f"/v1/tasks/{next(iter(on_n2))}")[1]
t.ok(dead["last_status"] == "STOPPED" and dead["stop_code"] == "NodeLost", "its tasks are STOPPED as NodeLost", dead.get("stop_code"))
t.ok(wait_until(lambda: len(tasks("onlyb", "PENDING")) == 2, 5), "onlyb waits: no other node matches")
t.ok("no node matches the constraint member_of(attribute:zone in [b, c])" in tasks("onlyb", "PENDING")[0].get("pending_reason", ""),
     "with that reason", tasks("onlyb", "PENDING")[0].get("pending_reason"))
ev = [e["message"] for e in s.admin("GET", "/v1/events")[1]["events"]]
t.ok(any(m.startswith("node n2 lost: no heartbeat") for m in ev), "an event says the node was lost")

# The agent comes back: it stops the orphans the scheduler replaced, and takes onlyb's tasks.
a = Agent(s, "n2", data_dir=a.data_dir, attributes={"zone": "b"}, port_range=[42000, 42999], cpu=4096, memory_mib=4096)
alive = lambda pid: os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
t.ok(wait_until(lambda: not any(alive(p) for p in on_n2.values()), 10), "the restarted agent stopped the orphaned processes")
t.ok(wait_until(lambda: per_node("onlyb") == {"n2": 2}, 10), "onlyb runs on n2 again", per_node("onlyb"))

# Spread across a deployment, with n2 back: spread's 4 tasks are all on local; a new revision spreads
# against what runs (its 4 go to n2), and the node the rollout emptied (local) is refilled first.
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "cpu": 128, "memory_mib": 32, "stop_timeout_s": 1, "port_mappings": [{"name": "http"}],
     "environment": {"REV": "2"}}]})
s.admin("PATCH", "/v1/services/spread", {"task_definition": "web:2"})
t.ok(wait_until(lambda: per_node("spread") == {"n2": 4} and all(x["task_definition"] == "web:2" for x in tasks("spread")), 20),
     "after the rollout: the new tasks where fewest ran (n2)", per_node("spread"))
# Placement counts tasks still stopping on a node: scale out once the old revision has stopped.
settled = lambda: all(x["last_status"] in ("RUNNING", "STOPPED")
                      for x in s.admin("GET", "/v1/tasks?service=spread")[1]["tasks"])
t.ok(wait_until(settled, 20), "the old revision's tasks have stopped")
s.admin("PATCH", "/v1/services/spread", {"desired_count": 6})
t.ok(wait_until(lambda: per_node("spread") == {"local": 2, "n2": 4}, 10),
     "scaling out refills the node the rollout emptied first", per_node("spread"))
s.admin("PATCH", "/v1/services/spread", {"desired_count": 4})
t.ok(wait_until(lambda: per_node("spread") == {"n2": 4}, 10), "scaling in takes the newest", per_node("spread"))

# Draining local moves spread's tasks to n2 without going below 100% healthy.
low, stop = [4], threading.Event()


def watch():
    while not stop.is_set():
        low[0] = min(low[0], len(tasks("spread")))
        time.sleep(0.05)


w = threading.Thread(target=watch, daemon=True)
w.start()
st, body = s.admin("PATCH", "/v1/nodes/local", {"status": "DRAINING"})
t.is_((st, body.get("status")), (200, "DRAINING"), "PATCH /v1/nodes/local DRAINING")
moved = wait_until(lambda: per_node("spread") == {"n2": 4}, 15)
stop.set()
w.join()
t.ok(moved, "draining moved all 4 tasks to n2", per_node("spread"))
t.is_(low[0], 4, "never fewer than 4 RUNNING meanwhile (minimum_healthy_percent 100)")
t.is_(s.admin("PATCH", "/v1/nodes/local", {"status": "GONE"})[0], 400, "a bad status is a 400")
t.is_(s.admin("PATCH", "/v1/nodes/nope", {"status": "ACTIVE"})[0], 404, "an unknown node is a 404")

# The agent protocol refuses what it cannot take.
st, body = s.admin("POST", "/v1/nodes", {"id": "n3", "cpu": 1024})
t.ok(st == 400 and body["error"]["message"] == "memory_mib: is required", "registration without memory_mib: 400", body)
st, body = s.admin("POST", "/v1/nodes", {"id": "n3", "cpu": 1024, "memory_mib": 512, "port_range": [80, 90]})
t.ok(st == 400 and body["error"]["message"].startswith("port_range: must be [LOW, HIGH]"), "a bad port_range: 400", body)
t.is_(s.admin("POST", "/v1/nodes", {"id": "local", "cpu": 1, "memory_mib": 1})[0], 409, "the embedded node's id cannot be taken")
t.is_(s.admin("POST", "/v1/nodes/nope/heartbeat", {"tasks": []})[0], 404, "a heartbeat from an unknown node: 404")
st, body = s.admin("POST", "/v1/nodes/n2/heartbeat", {"tasks": {}})
t.ok(st == 400 and body["error"]["message"] == "tasks: must be an array", "a heartbeat without a task list: 400", body)
victim = tasks("onlyb")[0]
st, body = s.admin("POST", "/v1/nodes/n2/heartbeat",
                   {"tasks": [{"id": victim["id"], "ports": "x", "containers": 1, "last_status": 5, "stop_code": []},
                              {"id": "no-such-task"}, {"ports": {}}]})
after = s.admin("GET", f"/v1/tasks/{victim['id']}")[1]
t.ok(st == 200 and after["ports"] == victim["ports"] and after["last_status"] == "RUNNING",
     "fields of the wrong type in a heartbeat are ignored", (st, after.get("ports"), after.get("last_status")))

t.is_(a.stop(), 0, "berth-agent exits 0")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean() and a.sanitizer_clean(), "no sanitizer reports", s.log()[-3000:] + a.log()[-3000:])

# agent.embedded false: tasks run on berth-agent nodes only.
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), agent={"embedded": False})
t.is_(s.admin("GET", "/v1/nodes")[1]["nodes"], [], "without the embedded node there is no node")
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 1, "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/services", {"name": "w", "task_definition": "web", "desired_count": 2})
t.ok(wait_until(lambda: len(tasks("w", "PENDING")) == 2, 5) and
     tasks("w", "PENDING")[0].get("pending_reason", "").startswith("no ACTIVE node"), "tasks wait for a node",
     tasks("w", "PENDING"))
a = Agent(s, "solo", port_range=[43000, 43999], heartbeat_interval_s=5)
t.ok(wait_until(lambda: per_node("w") == {"solo": 2}, 10), "an agent registers and runs them", per_node("w"))
# The scheduler wakes the agent when it has work: no waiting for the next 5 s heartbeat.
t0 = time.monotonic()
s.admin("PATCH", "/v1/services/w", {"desired_count": 3})
t.ok(wait_until(lambda: per_node("w") == {"solo": 3}, 10), "scaled to 3 on the agent")
took = time.monotonic() - t0
t.ok(took < 2, f"the new task was RUNNING {took:.2f} s later, though heartbeats are 5 s apart (the scheduler wakes the agent)")
t0 = time.monotonic()
s.admin("PATCH", "/v1/services/w", {"desired_count": 1})
t.ok(wait_until(lambda: per_node("w") == {"solo": 1} and not tasks("w", "STOPPING"), 10), "scaled in to 1")
t.ok(time.monotonic() - t0 < 4, f"the stops reached the agent at once ({time.monotonic() - t0:.2f} s)")
t.is_(a.stop(), 0, "berth-agent exits 0")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean() and a.sanitizer_clean(), "no sanitizer reports", s.log()[-3000:] + a.log()[-3000:])
t.done()
