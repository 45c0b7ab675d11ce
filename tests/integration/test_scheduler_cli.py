#!/usr/bin/env python3
"""The berth CLI over the scheduler API: tables for people, --json for scripts, a one-line reason and a
non-zero exit on failure (acceptance 8: invalid definitions print the path of the bad field)."""
from harness import *

t = Tap()
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"))
berth = os.path.join(BIN, "cli", "berth")
env = dict(os.environ, BERTH_ADDR=f"http://127.0.0.1:{s.admin_port}")
work = tempfile.mkdtemp(prefix="berth-cli-")


def run(*args, env_=None):
    r = subprocess.run([berth, *args], capture_output=True, text=True, env=env_ or env, timeout=20)
    return r.returncode, r.stdout, r.stderr.strip()


def write(name, obj):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return path


td = write("web.json", {"family": "web", "containers": [{"name": "web", "command": ["sleep", "60"], "stop_timeout_s": 1}]})
code, out, err = run("taskdef", "register", "-f", td)
t.ok(code == 0 and out.strip() == "registered web:1", "taskdef register", (code, out, err))
code, out, err = run("taskdef", "register", "-f", write("bad.json", {"family": "web", "containers": [{"name": "web"}]}))
t.ok(code == 1 and err == "berth: containers[0].command: is required", "an invalid definition: one line with the path, exit 1",
     (code, err))
code, out, err = run("taskdef", "register", "-f", write("broken.json", '{"family": '))
t.ok(code == 1 and "broken.json:1:" in err, "a file that is not JSON names file and position", err)
code, out, err = run("service", "create", "-f", write("svc.json", {"name": "web", "task_definition": "web", "desired_count": 2}))
t.ok(code == 0 and out.strip() == "created service web (web:1 x 2)", "service create", (code, out, err))
code, out, err = run("service", "create", "-f", write("svc2.json", {"name": "w2", "task_definition": "nope"}))
t.ok(code == 1 and err == 'berth: task_definition: no active task definition "nope"', "an unknown task definition", err)
code, out, err = run("service", "ls")
t.ok(code == 0 and out.splitlines()[0].split()[:5] == ["SERVICE", "TASK", "DEF", "DESIRED", "RUNNING"] and
     out.splitlines()[1].split()[:3] == ["web", "web:1", "2"], "service ls table", out)
t.ok(wait_until(lambda: run("task", "ls", "--service", "web", "--status", "RUNNING")[1].count("RUNNING") == 2, 10),
     "task ls shows two RUNNING tasks")
code, out, err = run("task", "ls", "--json")
t.ok(code == 0 and len(json.loads(out)["tasks"]) == 2, "--json gives JSON")
code, out, err = run("service", "scale", "web", "3")
t.ok(code == 0 and out.strip() == "service web: web:1 x 3", "service scale", (out, err))
t.ok(wait_until(lambda: "running         3" in run("service", "describe", "web")[1], 10), "service describe shows the counts")
code, out, err = run("service", "describe", "web")
t.ok("has started" in out and "events" in out, "describe lists recent events", out)
code, out, err = run("node", "ls")
t.ok(code == 0 and "local" in out and "ACTIVE" in out, "node ls", out)
code, out, err = run("node", "drain", "local")
t.ok(code == 0 and out.strip() == "node local: DRAINING", "node drain", (out, err))
code, out, err = run("node", "activate", "local")
t.ok(code == 0 and out.strip() == "node local: ACTIVE", "node activate", (out, err))
code, out, err = run("node", "drain", "nope")
t.ok(code == 1 and err.strip() == 'berth: no node "nope"', "node drain of an unknown node fails with a reason", err)
tid = json.loads(run("task", "ls", "--json")[1])["tasks"][0]["id"]
code, out, err = run("task", "stop", tid)
t.ok(code == 0 and out.startswith(f"task {tid}: "), "task stop", (out, err))
code, out, err = run("task", "describe", tid)
t.ok(code == 0 and json.loads(out)["id"] == tid, "task describe (JSON)")
code, out, err = run("events", "--service", "web")
t.ok(code == 0 and "web" in out and "has started" in out, "events")
code, out, err = run("service", "update", "web", "--task-definition", "nope")
t.ok(code == 1 and "task_definition" in err, "a bad update fails with a reason", err)
code, out, err = run("service", "scale", "web", "-5")
t.is_(code, 2, "bad arguments exit 2")
code, out, err = run("task", "describe", "nope")
t.ok(code == 1 and err == 'berth: no task "nope"', "unknown task", err)
code, out, err = run("service", "ls", env_=dict(os.environ, BERTH_ADDR="http://127.0.0.1:1"))
t.ok(code == 1 and "cannot reach the scheduler at http://127.0.0.1:1" in err, "an unreachable scheduler", err)
code, out, err = run("service", "delete", "web")
t.ok(code == 0 and out.strip() == "deleted service web (its tasks drain, then it is gone)", "service delete", out)
t.ok(wait_until(lambda: "RUNNING" not in run("task", "ls")[1], 10), "its tasks stop")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())
t.done()
