#!/usr/bin/env python3
"""Events (issue 12, acceptance 6): kept in the store, so they survive a scheduler restart; each has a
seq, GET /v1/events?since=SEQ returns only newer ones, and `berth events -f` prints new ones as they
happen."""
import threading

from harness import *

t = Tap()
data = tempfile.mkdtemp(prefix="berth-sched-")
berth = os.path.join(BIN, "cli", "berth")
s = Scheduler(data)
s.admin("POST", "/v1/task-definitions", {"family": "job", "containers": [{"name": "job", "command": ["sleep", "300"],
                                                                          "stop_timeout_s": 1}]})
s.admin("POST", "/v1/services", {"name": "job", "task_definition": "job", "desired_count": 1})


def events(since=None):
    q = "" if since is None else f"&since={since}"
    return s.admin("GET", f"/v1/events?service=job{q}")[1]["events"]


t.ok(wait_until(lambda: any("steady state" in e["message"] for e in events()), 10), "the service reaches a steady state")
before = events()
seqs = [e["seq"] for e in before]
t.ok(seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1, "events have increasing seqs", seqs)
t.is_(events(since=seqs[-1]), [], "since the newest: nothing")
t.is_([e["seq"] for e in events(since=seqs[0])], seqs[1:], "since the first: the others")
t.is_(s.admin("GET", "/v1/events?since=x")[0], 400, "a bad since is a 400")

# Restart (--stop-tasks: the tasks go too, and are started again): the events are still there.
s.stop()
s = Scheduler(data, admin_port=s.admin_port)
after = events()
t.is_([(e["seq"], e["message"]) for e in after[:len(before)]], [(e["seq"], e["message"]) for e in before],
      "every event survived the restart, with its seq")

# berth events -f prints new events as they happen.
env = dict(os.environ, BERTH_ADDR=f"http://127.0.0.1:{s.admin_port}")
follow = subprocess.Popen([berth, "events", "--service", "job", "-f"], stdout=subprocess.PIPE, text=True, env=env)
atexit.register(follow.kill)
lines = []
threading.Thread(target=lambda: [lines.append(l) for l in follow.stdout], daemon=True).start()
t.ok(wait_until(lambda: any("steady state" in l for l in lines), 5), "berth events -f prints the past events first")
n = len(lines)
s.admin("PATCH", "/v1/services/job", {"desired_count": 2})
t.ok(wait_until(lambda: any("has started 1 tasks" in l for l in lines[n:]), 5), "and a new one as it happens", lines[n:])
follow.kill()
follow.wait()
newest = events()[-1]["seq"]
t.ok(newest > after[-1]["seq"] if after else True, "new events continue the sequence")
t.done()
