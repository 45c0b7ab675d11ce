#!/usr/bin/env python3
"""berth-scheduler, first layer: task definitions and services through the API with validation errors
that name the field (acceptance 8), and durability: kill -9 during a burst of 200 concurrent writes,
restart, and every acknowledged write is there (acceptance 5, for the state the scheduler keeps today)."""
import threading
from harness import *

t = Tap()
data = tempfile.mkdtemp(prefix="berth-sched-")
s = Scheduler(data)
TD = {"family": "web", "containers": [{"name": "web", "command": ["sleep", "60"], "environment": {"GREETING": "hi"},
                                       "cpu": 256, "memory_mib": 64, "port_mappings": [{"name": "http"}],
                                       "health_check": {"command": ["true"], "interval_s": 5}}]}
st, body = s.admin("POST", "/v1/task-definitions", TD)
t.ok(st == 201 and body["revision"] == 1 and body["status"] == "ACTIVE", "register a task definition: revision 1", body)
t.ok(body["containers"][0]["essential"] is True and body["containers"][0]["stop_timeout_s"] == 10
     and body["containers"][0]["health_check"]["retries"] == 3, "defaults filled in")
st, body = s.admin("POST", "/v1/task-definitions", TD)
t.is_((st, body["revision"]), (201, 2), "registering again makes revision 2")
t.is_(s.admin("GET", "/v1/task-definitions/web")[1]["revision"], 2, "family alone means the latest")
t.is_(s.admin("GET", "/v1/task-definitions/web:1")[1]["revision"], 1, "family:rev")
t.is_(s.admin("GET", "/v1/task-definitions")[1], {"task_definitions": ["web:2"]}, "list")
st, body = s.admin("POST", "/v1/task-definitions", {"family": "img", "containers": [
    {"name": "a", "image": "127.0.0.1:5000/x:1", "port_mappings": [{"name": "http", "container_port": 80}]}]})
t.ok(st == 201 and body["network_mode"] == "bridge", "an image task definition defaults to network_mode bridge", body)
s.admin("DELETE", "/v1/task-definitions/img:1")

bad_tds = [
    ({"family": "web", "containers": [{"name": "web"}]}, "containers[0].command: is required"),
    ({"family": "web", "containers": [{"name": "web", "command": []}]}, "containers[0].command: must be an array of strings (not empty)"),
    ({"family": "web", "containers": [{"name": "web", "command": ["x"], "privileged": True}]}, "containers[0].privileged: unknown field"),
    # Containers with an image (SPEC §5): what each kind of container may have, and what it needs.
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1"}, {"name": "b", "command": ["y"]}]},
     "containers[1]: either every container of a task definition names an image, or none does"),
    ({"family": "web", "containers": [{"name": "a", "command": ["x"], "user": "1000"}]},
     "containers[0].user: only for containers that name an image"),
    ({"family": "web", "network_mode": "host", "containers": [{"name": "a", "command": ["x"]}]},
     "network_mode: only for task definitions whose containers name an image"),
    ({"family": "web", "network_mode": "nat", "containers": [{"name": "a", "image": "r/x:1"}]},
     "network_mode: must be one of bridge, host"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1", "port_mappings": [{"name": "http"}]}]},
     "containers[0].port_mappings[0].container_port: is required in network_mode bridge"),
    ({"family": "web", "network_mode": "host", "containers": [{"name": "a", "image": "r/x:1",
                                                               "port_mappings": [{"name": "http", "container_port": 80}]}]},
     "containers[0].port_mappings[0].container_port: not in network_mode host"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1", "port_mappings": [{"name": "h", "container_port": 70000}]}]},
     "containers[0].port_mappings[0].container_port: must be an integer 1..65535"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1",
                                       "mount_points": [{"source_volume": "data", "container_path": "/data"}]}]},
     'containers[0].mount_points[0]: source_volume "data" is not one of the task definition\'s volumes'),
    ({"family": "web", "volumes": [{"name": "data", "host": {"source_path": "relative"}}],
      "containers": [{"name": "a", "image": "r/x:1"}]}, "volumes[0]: host.source_path must be an absolute path"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1", "ulimits": [{"name": "nofile", "soft": 10, "hard": 5}]}]},
     "containers[0].ulimits[0]: soft must not be above hard"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1", "ulimits": [{"name": "files", "soft": 1, "hard": 1}]}]},
     "containers[0].ulimits[0].name: must be one of"),
    ({"family": "web", "containers": [{"name": "a", "image": "r/x:1", "health_check": {"command": ["curl", "-f", "x"]}}]},
     'containers[0].health_check.command: must be ["CMD", argv...] or ["CMD-SHELL", "command line"]'),
    ({"family": "web", "containers": [{"name": "a", "image": "bad image"}]}, 'containers[0].image: "bad image" is not an image'),
    ({"family": "web", "containers": [{"name": "web", "command": ["x"], "stop_timeout_s": 500}]},
     "containers[0].stop_timeout_s: must be a number 0..120"),
    ({"family": "web", "containers": [{"name": "web", "command": ["x"], "memory_mib": "64"}]},
     "containers[0].memory_mib: must be an integer 0..1048576"),
    ({"family": "web", "containers": [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]},
     'containers[1].name: "a" is used by another container'),
    ({"family": "web", "containers": [{"name": "a", "command": ["x"], "essential": False}]},
     "containers: at least one container must be essential"),
    ({"family": "bad name", "containers": [{"name": "a", "command": ["x"]}]}, "family: must be 1-63 letters"),
    ({"containers": [{"name": "a", "command": ["x"]}]}, "family: is required"),
    ({"family": "web", "containers": [{"name": "a", "command": ["x"], "health_check": {"command": ["x"], "retries": 0}}]},
     "containers[0].health_check.retries: must be an integer 1..10"),
]
for body_in, want in bad_tds:
    st, body = s.admin("POST", "/v1/task-definitions", body_in)
    t.ok(st == 400 and body["error"]["code"] == "InvalidParameter" and body["error"]["message"].startswith(want),
         f"invalid task definition: {want}", body)

SVC = {"name": "web", "task_definition": "web:1", "desired_count": 2,
       "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"]}],
       "service_registries": [{"name": "web", "port_name": "http"}],
       "autoscaling": {"min": 1, "max": 10, "target_tracking": {"target_per_s": 500}}}
st, body = s.admin("POST", "/v1/services", SVC)
t.ok(st == 201 and body["desired_count"] == 2 and body["deployment"]["maximum_percent"] == 200
     and body["service_registries"][0]["namespace"] == "berth.internal", "create a service (defaults filled in)", body)
t.is_(s.admin("POST", "/v1/services", SVC)[0], 409, "creating it again is a conflict")
bad_svcs = [
    ({**SVC, "name": "x", "task_definition": "nope"}, 'task_definition: no active task definition "nope"'),
    ({**SVC, "name": "x", "desired_count": -1}, "desired_count: must be an integer 0..10000"),
    ({**SVC, "name": "x", "deployment": {"maximum_percent": 50}}, "deployment.maximum_percent: must be an integer 100..200"),
    ({**SVC, "name": "x", "placement_strategy": [{"type": "fastest"}]},
     "placement_strategy[0].type: must be one of spread, binpack, random"),
    ({**SVC, "name": "x", "placement_constraints": [{"type": "member_of"}]},
     "placement_constraints[0].expression: is required for member_of"),
    ({**SVC, "name": "x", "load_balancers": [{"target_group": "web"}]}, "load_balancers[0].container_name: is required"),
    ({**SVC, "name": "x", "autoscaling": {"min": 5, "max": 2, "target_tracking": {"target_per_s": 1}}},
     "autoscaling.max: must be at least autoscaling.min"),
    ({**SVC, "name": "x", "load_balancers": []}, "autoscaling: needs load_balancers"),
    ({**SVC, "name": "x", "load_balancers": [{**SVC["load_balancers"][0], "health_check": {"interval_s": 0.5}}]},
     "load_balancers[0].health_check.timeout_s: must be less than interval_s"),
    ({**SVC, "name": "x", "colour": "red"}, "colour: unknown field"),
]
for body_in, want in bad_svcs:
    st, body = s.admin("POST", "/v1/services", body_in)
    t.ok(st == 400 and body["error"]["message"].startswith(want), f"invalid service: {want}", body)
st, body = s.admin("PATCH", "/v1/services/web", {"desired_count": 0})
t.is_((st, body["desired_count"], body["task_definition"]), (200, 0, "web:1"), "PATCH desired_count")
st, body = s.admin("PATCH", "/v1/services/web", {"task_definition": "web"})
t.is_(body["task_definition"], "web:2", "PATCH task_definition resolves to a revision")
st, body = s.admin("PATCH", "/v1/services/web", {"desired_count": "lots"})
t.ok(st == 400 and "desired_count" in body["error"]["message"], "a bad PATCH is rejected with the path")
t.is_(s.admin("GET", "/v1/services/web")[1]["desired_count"], 0, "and changes nothing")
st, body = s.admin("PATCH", "/v1/services/web", {"autoscaling": None})
t.ok(st == 200 and "autoscaling" not in body, "PATCH autoscaling: null turns autoscaling off", body)
t.is_(s.admin("GET", "/v1/services/nope")[0], 404, "unknown service: 404")
st, body = s.admin("DELETE", "/v1/task-definitions/web:1")
t.is_((st, body["status"]), (200, "INACTIVE"), "deregister a revision")
t.is_(s.admin("POST", "/v1/services", {**SVC, "name": "w2", "task_definition": "web:1"})[0], 400,
      "an inactive revision cannot start a new service")

# Durability: 200 concurrent writes, kill -9 in the middle, restart.
acked, lock = [], threading.Lock()


def writer(k):
    try:
        st, _ = s.admin("POST", "/v1/services", {**SVC, "name": f"svc-{k}", "task_definition": "web:2", "desired_count": 0})
        if st == 201:
            with lock:
                acked.append(f"svc-{k}")
    except Exception:
        pass


# SIGKILL once 50 writes were acknowledged, whatever the machine's speed, while the rest are in flight.
ths = [threading.Thread(target=writer, args=(k,)) for k in range(200)]
[th.start() for th in ths]
t.ok(wait_until(lambda: len(acked) >= 50, 60), f"{len(acked)} writes were acknowledged before the kill")
s.proc.kill()
[th.join(30) for th in ths]
s.proc.wait()
s2 = Scheduler(data, admin_port=s.admin_port)
names = {x["name"] for x in s2.admin("GET", "/v1/services")[1]["services"]}
missing = [n for n in acked if n not in names]
t.is_(missing, [], "every acknowledged write survived kill -9")
t.ok("web" in names and s2.admin("GET", "/v1/services/web")[1]["task_definition"] == "web:2", "earlier state too")
m0 = s2.admin("GET", "/metrics")[1]
rec0 = int(m0.split("\nberth_scheduler_journal_records_total ")[1].split()[0])
fs0 = int(m0.split("\nberth_scheduler_journal_fsyncs_total ")[1].split()[0])
threads2 = [threading.Thread(target=lambda k=k: s2.admin("PATCH", f"/v1/services/svc-{acked[k % len(acked)][4:]}", {"desired_count": 0}))
            for k in range(64)]
[x.start() for x in threads2]
[x.join(30) for x in threads2]
m = s2.admin("GET", "/metrics")[1]
rec = int(m.split("\nberth_scheduler_journal_records_total ")[1].split()[0])
fs = int(m.split("\nberth_scheduler_journal_fsyncs_total ")[1].split()[0])
t.diag(f"64 concurrent writes: {rec - rec0} records, {fs - fs0} fsyncs")
t.ok(rec - rec0 == 64 and fs - fs0 < 64, "concurrent writes share fsyncs (group commit)")
t.is_(s2.stop(), 0, "scheduler exits 0")
t.ok(s2.sanitizer_clean(), "no sanitizer report", s2.log())
t.done()
