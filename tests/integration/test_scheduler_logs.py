#!/usr/bin/env python3
"""Logs of stopped tasks (issue 12, acceptance 7): readable through the scheduler while the task is
kept, on the scheduler's embedded node and on a berth-agent node; when a task is pruned (20 stopped
tasks are kept per service, and for one-off tasks) its log file goes with it on both nodes."""
import glob

from harness import *

t = Tap()
data = tempfile.mkdtemp(prefix="berth-sched-")
s = Scheduler(data, agent={"port_range": [45000, 45499]})
a = Agent(s, "n2", port_range=[45500, 45999])
t.ok(wait_until(lambda: len(s.admin("GET", "/v1/nodes")[1]["nodes"]) == 2, 5), "two nodes")
s.admin("POST", "/v1/task-definitions", {"family": "job", "containers": [
    {"name": "job", "command": ["sh", "-c", "echo hello from $BERTH_TASK_ID"], "essential": True}]})


def tasks():
    return {x["id"]: x for x in s.admin("GET", "/v1/tasks")[1]["tasks"]}


def run(n):
    st, body = s.admin("POST", "/v1/tasks", {"task_definition": "job", "count": n})
    return body["tasks"]


def log_files():
    return {os.path.basename(p)[:-4] for d in (os.path.join(data, "tasks"), os.path.join(a.data_dir, "tasks"))
            for p in glob.glob(os.path.join(d, "*.log"))}


first = run(2)
t.ok(wait_until(lambda: all(tasks().get(i, {}).get("last_status") == "STOPPED" for i in first), 10), "two one-off tasks ran and stopped")
nodes = {tasks()[i]["node"] for i in first}
t.is_(nodes, {"local", "n2"}, "one on each node (spread)")
time.sleep(1)  # a few heartbeats: the agent has reported them STOPPED and heard they are kept
for i in first:
    st, body = s.admin("GET", f"/v1/tasks/{i}/logs")
    t.ok(st == 200 and f"hello from {i}" in body, f"the log of a STOPPED task on {tasks()[i]['node']} is readable", (st, body))

more = run(22)
# (pruned ones are gone from the list: they count as stopped)
t.ok(wait_until(lambda: all(tasks().get(i, {"last_status": "STOPPED"})["last_status"] == "STOPPED" for i in more), 20),
     "22 more ran and stopped")
t.ok(wait_until(lambda: not any(i in tasks() for i in first), 10), "the oldest are pruned (20 stopped one-off tasks are kept)")
t.is_(s.admin("GET", f"/v1/tasks/{first[0]}/logs")[0], 404, "a pruned task's logs: 404")
t.ok(wait_until(lambda: not (set(first) & log_files()), 10), "and its log file is gone on both nodes", set(first) & log_files())
t.ok(wait_until(lambda: log_files() <= set(tasks()), 10), "no log file outlives its task", log_files() - set(tasks()))
# A task that writes 20 MB: its log is cut back to its last MiB (files stay under 8 MiB), marked so.
s.admin("POST", "/v1/task-definitions", {"family": "chatty", "containers": [
    {"name": "chatty", "command": ["sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x | fold -w 99; echo the-end; sleep 300"],
     "stop_timeout_s": 1}]})
st, body = s.admin("POST", "/v1/tasks", {"task_definition": "chatty", "count": 2})
chatty = body["tasks"]
t.ok(wait_until(lambda: all(tasks()[i]["last_status"] == "RUNNING" for i in chatty), 10), "two chatty tasks run, one per node")


def log_path(i):
    x = tasks()[i]
    return os.path.join(data if x["node"] == "local" else a.data_dir, "tasks", f"{i}.log")


def capped(i):
    try:
        return os.path.getsize(log_path(i)) < 8 << 20 and "the-end" in s.admin("GET", f"/v1/tasks/{i}/logs")[1]
    except OSError:
        return False


for i in chatty:
    t.ok(wait_until(lambda: capped(i), 20), f"{tasks()[i]['node']}: the log stays under 8 MiB with the end of the output",
         os.path.getsize(log_path(i)))
    head = open(log_path(i)).readline()
    t.ok(head.startswith("[berth: ") and "bytes of earlier output dropped]" in head, "and says what it dropped", head[:80])
for i in chatty:
    s.admin("POST", f"/v1/tasks/{i}/stop")
t.done()
