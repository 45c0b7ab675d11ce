#!/usr/bin/env python3
"""A scheduler killed in the middle of a stop picks it up again: a task draining from the proxy
(DEACTIVATING, with a request in flight) when the scheduler gets kill -9 is drained and stopped by the
restarted scheduler, and the in-flight request completes."""
import threading
from harness import *

t = Tap()
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404}}}]})
data = tempfile.mkdtemp(prefix="berth-sched-")
cfg = dict(proxy_admin=f"http://127.0.0.1:{proxy.admin_port}")
s = Scheduler(data, **cfg)
BACKEND = os.path.join(HERE, "backend.py")
s.admin("POST", "/v1/task-definitions", {"family": "be", "containers": [
    {"name": "be", "command": ["sh", "-c", f"exec {sys.executable} {BACKEND} --port $PORT --name $BERTH_TASK_ID"],
     "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
s.admin("POST", "/v1/services", {"name": "be", "task_definition": "be", "desired_count": 1,
                                 "load_balancers": [{"target_group": "be", "container_name": "be", "port_name": "http",
                                                     "host_header": ["be.localhost"]}]})
t.ok(wait_until(lambda: http_request("127.0.0.1", lp, headers={"Host": "be.localhost"})[0] == 200, 10), "the task serves")
task = s.admin("GET", "/v1/tasks?service=be&status=RUNNING")[1]["tasks"][0]
pid = task["containers"][0]["pid"]
slow = {}


def request():
    slow["r"] = http_request("127.0.0.1", lp, path="/slow?ms=4000", headers={"Host": "be.localhost"}, timeout=20)


th = threading.Thread(target=request)
th.start()
time.sleep(0.5)
s.admin("PATCH", "/v1/services/be", {"desired_count": 0})
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{task['id']}")[1]["last_status"] == "DEACTIVATING", 5),
     "scaling in drains the task first (DEACTIVATING, a 4 s request in flight)")
s.proc.kill()
s.proc.wait()
s = Scheduler(data, **cfg)
t.ok(wait_until(lambda: s.admin("GET", f"/v1/tasks/{task['id']}")[1]["last_status"] == "STOPPED", 15),
     "after kill -9 and a restart the drain resumes and the task stops")
th.join(20)
t.is_(slow.get("r", (None,))[0], 200, "the in-flight request completed")
dead = s.admin("GET", f"/v1/tasks/{task['id']}")[1]
t.is_(dead["stop_code"], "ServiceSchedulerInitiated", "with the scale-in's stop code")
t.ok(not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", "its process is gone")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean() and proxy.sanitizer_clean(), "no sanitizer reports", s.log())
t.done()
