#!/usr/bin/env python3
"""scheduler_start.py -- driven by bench/scheduler.sh: the time from POST /v1/services with
desired_count 50 to 50 tasks RUNNING, to 50 targets in the proxy's group and to 50 SRV records."""
import sys, time
from benchlib import api, srv_count

sport, padmin, dnsp, demo = sys.argv[1:5]
N = 50


api(sport, "POST", "/v1/task-definitions", {"family": "web50", "containers": [
    {"name": "web", "command": [demo], "cpu": 16, "memory_mib": 16, "stop_timeout_s": 1, "port_mappings": [{"name": "http"}]}]})
t0 = time.monotonic()
st, body = api(sport, "POST", "/v1/services", {
    "name": "web50", "task_definition": "web50", "desired_count": N,
    "load_balancers": [{"target_group": "web50", "container_name": "web", "port_name": "http"}],
    "service_registries": [{"name": "web50", "port_name": "http"}]})
if st != 201:
    sys.exit(f"service create failed: {body}")
marks = {}
while time.monotonic() - t0 < 30 and len(marks) < 3:
    now = time.monotonic() - t0
    if "running" not in marks:
        running = len(api(sport, "GET", "/v1/tasks?service=web50&status=RUNNING")[1]["tasks"])
        if running == N:
            marks["running"] = now
    if "proxy" not in marks:
        st, g = api(padmin, "GET", "/v1/target-groups/web50")
        if st == 200 and sum(1 for x in g["targets"] if x["state"] == "healthy") == N:
            marks["proxy"] = now
    if "dns" not in marks and srv_count(dnsp, "web50.berth.internal") == N:
        marks["dns"] = now
    time.sleep(0.01)
print(f"service create with desired_count {N} (berth-demo-web tasks, embedded node):")
for k, what in (("running", f"{N} tasks RUNNING"), ("proxy", f"{N} healthy targets in the proxy"), ("dns", f"{N} SRV records in DNS")):
    print(f"  {what:34s} {marks[k]:.2f} s" if k in marks else f"  {what:34s} not within 30 s")
done = max(marks.values()) if len(marks) == 3 else None
print(f"  all of it: {done:.2f} s (goal < 3 s)" if done is not None else "  not all within 30 s")
