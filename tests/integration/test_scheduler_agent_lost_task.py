#!/usr/bin/env python3
"""A berth-agent told to stop a task it does not run says so, and the task becomes STOPPED instead of
staying STOPPING for ever (issue 12): the agent is killed, the task stopped through the API while it is
down, and a new agent comes back as the same node without the old one's data."""
from harness import *

t = Tap()
pids = []
atexit.register(lambda: [os.kill(p, signal.SIGKILL) for p in pids if os.path.exists(f"/proc/{p}")])
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), node_lost_after_s=60, agent={"embedded": False})
a = Agent(s, "n2", port_range=[44000, 44999])
s.admin("POST", "/v1/task-definitions", {"family": "job", "containers": [{"name": "job", "command": ["sleep", "300"],
                                                                          "stop_timeout_s": 1}]})
st, body = s.admin("POST", "/v1/tasks", {"task_definition": "job"})
tid = body["tasks"][0]


def task():
    return s.admin("GET", f"/v1/tasks/{tid}")[1]


t.ok(wait_until(lambda: task()["last_status"] == "RUNNING", 10), "the task runs on the agent's node", task())
pid = task()["containers"][0]["pid"]
pids.append(pid)

# The agent dies with its data; the task's process is gone too.
a.proc.kill()
a.proc.wait()
os.kill(pid, signal.SIGKILL)
st, body = s.admin("POST", f"/v1/tasks/{tid}/stop")
t.ok(st == 200 and task()["last_status"] == "STOPPING", "stopped through the API while the agent is down: STOPPING",
     task()["last_status"])
time.sleep(0.5)
t.is_(task()["last_status"], "STOPPING", "and it stays STOPPING while nobody can say otherwise")

# The node comes back, as a new agent without the old data directory.
b = Agent(s, "n2", port_range=[44000, 44999])
t.ok(wait_until(lambda: task()["last_status"] == "STOPPED", 10), "the new agent says it does not run it: STOPPED",
     task()["last_status"])
final = task()
t.ok(final.get("stopped_reason") == "The node's agent did not run the task" and final.get("stop_code") == "UserInitiated",
     "with the reason, and the stop code of the stop", (final.get("stop_code"), final.get("stopped_reason")))
t.ok(not [x for x in s.admin("GET", "/v1/tasks")[1]["tasks"] if x["last_status"] == "STOPPING"], "no task is left STOPPING")
t.done()
