#!/usr/bin/env python3
"""workers: N -- N worker processes share the listener (SO_REUSEPORT); the admin API applies
changes to all of them and sums their figures; reload and shutdown reach every worker."""
from harness import *

t = Tap()
a, b = Backend("a", log=False), Backend("b", log=False)
lp = free_port()
cfg = basic_config(lp, [a.addr, b.addr])
cfg["workers"] = 2
p = Proxy(cfg)
kids = subprocess.run(["pgrep", "-P", str(p.proc.pid)], capture_output=True, text=True).stdout.split()
t.is_(len(kids), 2, "two worker processes run under the master")
t.ok(wait_healthy(p, "web", 2), "targets healthy (as seen by worker 0)")

N = 200
ok = sum(1 for _ in range(N) if http_request("127.0.0.1", lp)[0] == 200)
t.is_(ok, N, f"{N} requests on new connections all answered")
tg = p.admin("GET", "/v1/target-groups/web")[1]
t.is_(sum(x["requests"] for x in tg["targets"]), N, "admin API sums requests over both workers")
t.is_((tg["stats"]["responses"]["2xx"], sum(tg["stats"]["latency_counts"])), (N, N),
      "and the group's response and latency counts (what the scheduler's autoscaler reads)")
m = p.admin("GET", "/metrics")[1]
t.ok(f'berth_proxy_requests_total{{target_group="web",class="2xx"}} {N}' in m, "metrics summed over workers",
     [l for l in m.splitlines() if "2xx" in l])
busy = [int(l.split()[-1]) for l in m.splitlines() if l.startswith("berth_proxy_connections_total")]
t.ok(busy and busy[0] >= N, "connection counts summed")

# A change through the admin API reaches every worker.
st, _ = p.admin("PUT", "/v1/target-groups/web/targets", {"targets": [{"address": b.addr}]})
t.is_(st, 200, "targets replaced through the master")
time.sleep(0.3)
seen = {http_request("127.0.0.1", lp)[2] for _ in range(40)}
t.is_(seen, {b"b"}, "every worker routes to the new list only")

# Reload reaches every worker.
cfg2 = basic_config(lp, [a.addr])
cfg2["workers"] = 2
p.rewrite(cfg2)
p.reload()
t.ok(wait_until(lambda: {http_request("127.0.0.1", lp)[2] for _ in range(40)} == {b"a"}, 5), "reload applied by every worker")

# A killed worker is replaced.
os.kill(int(kids[0]), signal.SIGKILL)
t.ok(wait_until(lambda: len(subprocess.run(["pgrep", "-P", str(p.proc.pid)], capture_output=True, text=True).stdout.split()) == 2
                and p.admin("GET", "/healthz")[0] == 200, 10), "a killed worker is replaced")
t.ok(all(http_request("127.0.0.1", lp)[0] == 200 for _ in range(20)), "and traffic is served")
t.is_(p.stop(), 0, "master exits 0 on SIGTERM")
t.ok(not any(os.path.exists(f"/proc/{k}") for k in kids), "no worker left behind")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
