#!/usr/bin/env python3
"""autoscale.py -- driven by bench/autoscale.sh: deploys the demo service with autoscaling, runs
idle -> paced wrk burst -> idle, and prints the timeline and the scaling times."""
import re, subprocess, sys, time
from benchlib import api, wait

sport, padmin, lp, burst, conns, demo, work = sys.argv[1:8]
burst, conns = int(burst), int(conns)
TARGET, MIN, MAX, IN_COOLDOWN, IDLE_BEFORE = 200, 1, 10, 30, 5


if not wait(lambda: api(sport, "GET", "/healthz")[0] == 200 and api(padmin, "GET", "/healthz")[0] == 200, 10):
    sys.exit("the scheduler or the proxy did not come up")
api(sport, "POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [demo], "memory_mib": 16, "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
st, body = api(sport, "POST", "/v1/services", {
    "name": "web", "task_definition": "web", "desired_count": MIN,
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"]}],
    "autoscaling": {"min": MIN, "max": MAX, "target_tracking": {"target_per_s": TARGET},
                    "scale_out_cooldown_s": 10, "scale_in_cooldown_s": IN_COOLDOWN}})
if st != 201:
    sys.exit(f"creating the service failed: {body}")


def svc():
    return api(sport, "GET", "/v1/services/web")[1]


def responses():
    st, g = api(padmin, "GET", "/v1/target-groups/web")
    r = g.get("stats", {}).get("responses", {}) if st == 200 else {}
    return sum(r.values()), r.get("2xx", 0)


if not wait(lambda: svc()["running_count"] == MIN and svc().get("metrics", {}).get("healthy_count") == MIN, 20):
    sys.exit("the service did not start")

with open(f"{work}/paced.lua", "w") as f:
    f.write("function delay()\n  return 10\nend\n")
print(f"autoscaling min {MIN}, max {MAX}, {TARGET} req/s per task, scale_in_cooldown_s {IN_COOLDOWN}, evaluation every 2 s")
print(f"load: idle {IDLE_BEFORE} s, wrk -c{conns} (one request per connection every 10 ms) for {burst} s, idle until back at min")
print(f"{'t(s)':>5} {'phase':6} {'offered/s':>10} {'served/s':>9} {'desired':>8} {'running':>8} {'healthy':>8}")
t0 = time.monotonic()
wrk = None
prev_all, prev_ok = responses()
prev_t = t0
rows = []          # (t, phase, offered, served, desired, running, healthy)
changes = []       # (t, desired) every time desired changes
last_desired = MIN
next_print = 0.0
while True:
    now = time.monotonic() - t0
    if wrk is None and now >= IDLE_BEFORE:
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{burst}s", "-s", f"{work}/paced.lua",
                                "-H", "Host: web.localhost", f"http://127.0.0.1:{lp}/"], stdout=subprocess.PIPE, text=True)
        burst_start = time.monotonic() - t0
    phase = "idle" if wrk is None else "burst" if wrk.poll() is None else "after"
    s = svc()
    d = s["desired_count"]
    if d != last_desired:
        changes.append((now, d))
        last_desired = d
    if now >= next_print:
        a, ok = responses()
        dt = time.monotonic() - prev_t
        prev_t = time.monotonic()
        offered, served = (a - prev_all) / dt, (ok - prev_ok) / dt
        prev_all, prev_ok = a, ok
        healthy = s.get("metrics", {}).get("healthy_count", 0)
        rows.append((now, phase, offered, served, d, s["running_count"], healthy))
        print(f"{now:5.0f} {phase:6} {offered:10.0f} {served:9.0f} {d:8} {s['running_count']:8} {healthy:8}", flush=True)
        next_print += 1.0
    if phase == "after":
        if "burst_end" not in dir():
            burst_end = now
        if d == MIN and s["running_count"] == MIN:
            break
        if now - burst_end > IN_COOLDOWN + 60:
            print("did not return to min within the scale-in cooldown + 60 s")
            break
    time.sleep(0.1)

out = wrk.communicate()[0]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
non2xx = int(m.group(1)) if m else 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
sock = sum(int(x) for x in m.groups()) if m else 0
rate = reqs / burst
need = min(MAX, max(MIN, -(-int(rate) // TARGET)))
first_out = next((t - burst_start for t, d in changes if t >= burst_start and d > MIN), None)
# Settled: the count the burst ended with, reached and all healthy.
during = [r for r in rows if r[1] == "burst"]
final = during[-1][4] if during else None
settled = None
for r in during:
    if r[4] == final and r[5] == final and r[6] == final:
        if all(x[4] == final for x in during if x[0] >= r[0]):
            settled = r[0] - burst_start
            break
back_in = None
for t, d in changes:
    if t >= burst_end and d == MIN:
        back_in = t - burst_end
print()
print(f"offered about {rate:,.0f} req/s -> ceil({rate:,.0f}/{TARGET}) = {need} tasks; the burst ended at {final} tasks"
      + (f" ({final} x {TARGET} is within the 10% tolerance)" if final and final != need and
         abs(rate - final * TARGET) <= 0.1 * final * TARGET else ""))
print(f"first scale-out decision : {first_out:.1f} s after the load started (goal <= 4 s)" if first_out is not None
      else "first scale-out decision : none")
print(f"settled capacity         : {settled:.1f} s after the load started (goal <= 12 s)" if settled is not None
      else "settled capacity         : not reached")
print(f"back to min              : {back_in:.1f} s after the load stopped (scale_in_cooldown_s {IN_COOLDOWN})"
      if back_in is not None else "back to min              : not reached")
print(f"errors                   : {non2xx} non-2xx, {sock} socket errors of {reqs} requests (goal 0)")
print("scaling decisions        : " + ", ".join(f"{d} at {t - burst_start:+.1f} s" for t, d in changes))
