#!/usr/bin/env python3
"""Running a command in a task (POST /v1/tasks/{id}/exec, `berth task exec`) through the node agent's
runtime interface, on the scheduler's embedded node and on a berth-agent node: the command sees the
task's environment and joins its cgroups; its output and exit code come back; a command that outlives
its timeout is killed; bad requests are refused with the field named; streamed sessions (what the CLI
uses) give the output while the command runs. Also the runtime's stats."""
from harness import *

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
berth = os.path.join(BIN, "cli", "berth")
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), agent={"attributes": {"zone": "a"}, "port_range": [43000, 43499]})
a = Agent(s, "n2", attributes={"zone": "b"}, port_range=[43500, 43999])
env = dict(os.environ, BERTH_ADDR=f"http://127.0.0.1:{s.admin_port}")

t.ok(wait_until(lambda: len(s.admin("GET", "/v1/nodes")[1]["nodes"]) == 2, 5), "two nodes")
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "memory_mib": 64, "environment": {"GREETING": "hi"}, "stop_timeout_s": 1,
     "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/services", {"name": "web", "task_definition": "web", "desired_count": 2,
                                 "placement_strategy": [{"type": "spread", "field": "instanceId"}]})


def running():
    return {x["node"]: x for x in s.admin("GET", "/v1/tasks?service=web&status=RUNNING")[1]["tasks"]}


t.ok(wait_until(lambda: set(running()) == {"local", "n2"}, 10), "one task on each node", running())
SCRIPT = 'echo "task=$BERTH_TASK_ID port=$PORT greeting=$GREETING"; echo oops >&2; exit 3'
for node, task in sorted(running().items()):
    st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec", {"command": ["sh", "-c", SCRIPT]})
    t.is_((st, r.get("exit_code")), (200, 3), f"{node}: the command ran and its exit code came back")
    out = r.get("output", "")
    t.ok(f"task={task['id']} port={task['ports']['http']} greeting=hi" in out,
         f"{node}: it saw the task's environment (BERTH_TASK_ID, PORT, the container's variables)", out)
    t.ok("oops" in out, f"{node}: stderr is in the output too")
    st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec", {"command": ["sh", "-c", "cat /proc/self/cgroup"]})
    cg = r.get("output", "")
    limited = any(line.endswith(f"/berth/{task['id']}-0") for line in cg.splitlines())
    t.ok(st == 200 and (limited or "unavailable" in s.admin("GET", "/v1/nodes")[1]["nodes"][0].get("cgroups", "")),
         f"{node}: it runs in the task's cgroup", cg)
    st, stats = s.admin("GET", f"/v1/tasks/{task['id']}/stats")
    t.ok(st == 200 and stats.get("processes", 0) >= 1 and stats.get("runtime") == "process",
         f"{node}: stats come from the task's runtime", stats)

local = running()["local"]
st, r = s.admin("POST", f"/v1/tasks/{local['id']}/exec", {"command": ["sleep", "30"], "timeout_s": 0.5})
t.ok(st == 200 and r.get("timed_out") is True and r.get("exit_code") == -1, "a command past its timeout is killed", r)
for body, field in [({"command": []}, "command"), ({"command": "ls"}, "command"), ({"command": ["ls"], "container": "nope"}, "container"),
                    ({"command": ["ls"], "timeout_s": 0}, "timeout_s"), ({"command": ["ls"], "tty": True}, "tty")]:
    st, r = s.admin("POST", f"/v1/tasks/{local['id']}/exec", body)
    t.ok(st == 400 and r["error"]["message"].startswith(field), f"refused: {json.dumps(body)}", (st, r))
st, r = s.admin("POST", "/v1/tasks/nosuchtask/exec", {"command": ["true"]})
t.is_(st, 404, "exec in an unknown task: 404")
st, r = s.admin("GET", f"/v1/tasks/{local['id']}/exec")
t.is_(st, 405, "GET on exec: 405 (it is a POST)")

# The CLI: the command's output on stdout, its exit code as berth's.
remote = running()["n2"]
r = subprocess.run([berth, "task", "exec", remote["id"], "--", "sh", "-c", "echo from-$BERTH_SERVICE; exit 7"],
                   capture_output=True, text=True, env=env, timeout=20)
t.ok(r.returncode == 7 and r.stdout.strip() == "from-web", "berth task exec: output and exit code", (r.returncode, r.stdout, r.stderr))
r = subprocess.run([berth, "task", "exec", remote["id"], "--timeout", "0.3", "--", "sleep", "20"],
                   capture_output=True, text=True, env=env, timeout=20)
t.ok(r.returncode == 124 and "timeout" in r.stderr, "berth task exec --timeout: exit 124 when killed", (r.returncode, r.stderr))
# Streamed (what the CLI does): the output is read while the command still runs, on either node.
for node, task in sorted(running().items()):
    st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec", {"command": ["sh", "-c", "echo one; sleep 1; echo two; exit 5"],
                                                             "stream": True})
    eid = r.get("exec_id") if st == 201 else None
    t.ok(eid, f"{node}: a streamed exec answers at once with its exec_id", (st, r))
    got, offset, states = "", 0, []
    end = time.time() + 20
    while time.time() < end:
        st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec/{eid}?offset={offset}")
        if st != 200:
            break
        got += r["output"]
        offset = r["offset"]
        states.append((r["running"], "one" in got, "two" in got))
        if not r["running"]:
            break
        time.sleep(0.05)
    t.ok((True, True, False) in states, f"{node}: its first line is read while it still runs", states[:5])
    t.ok(got == "one\ntwo\n" and r.get("exit_code") == 5, f"{node}: then all of it, and its exit code", (got, r))
    st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec/nosuchsession?offset=0")
    t.is_(st, 404, f"{node}: an unknown exec session: 404")
    st, r = s.admin("POST", f"/v1/tasks/{task['id']}/exec/{eid}?offset=99")
    t.ok(st == 400 and "offset" in r["error"]["message"], f"{node}: an offset past the output: 400", (st, r))
cli = subprocess.Popen([berth, "task", "exec", remote["id"], "--", "sh", "-c", "echo first; sleep 5; echo last; exit 3"],
                       stdout=subprocess.PIPE, text=True, env=env)
first = cli.stdout.readline()
still = cli.poll() is None
rest = cli.stdout.read()
t.ok(first == "first\n" and still, "berth task exec streams: the first line arrives while the command runs", (first, still))
t.ok(rest == "last\n" and cli.wait(20) == 3, "then the rest, and the exit code", (rest, cli.returncode))


for node, task in sorted(running().items()):
    code, screen = exec_interactive(berth, env, task["id"], "echo hi-$((6*7)); tty; exit 3\r")
    t.ok(code == 3 and "hi-42" in screen and "/dev/pts/" in screen,
         f"{node}: berth task exec -it: a shell on a terminal, what is typed reaches it, its exit code is berth's",
         (code, screen[-400:]))
r = subprocess.run([berth, "task", "exec", remote["id"], "-it", "--", "sh"], capture_output=True, text=True, env=env,
                   timeout=20, stdin=subprocess.DEVNULL)
t.ok(r.returncode == 1 and "-it needs a terminal" in r.stderr, "-it without a terminal: refused", r.stderr)
r = subprocess.run([berth, "task", "exec", remote["id"]], capture_output=True, text=True, env=env, timeout=20)
t.ok(r.returncode != 0 and "exec ID" in r.stderr, "berth task exec without a command: usage", r.stderr)

s.admin("PATCH", "/v1/services/web", {"desired_count": 0})
t.ok(wait_until(lambda: not running(), 10), "scaled to 0")
st, r = s.admin("POST", f"/v1/tasks/{local['id']}/exec", {"command": ["true"]})
t.ok(st in (404, 409), "exec in a stopped task is refused", (st, r))
t.done()
