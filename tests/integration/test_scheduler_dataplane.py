#!/usr/bin/env python3
"""berth-scheduler with the real proxy and DNS (acceptance 1): a service's tasks are registered in its
target group (with a host rule) and its DNS service; scaling in deregisters and drains before stopping
(no failed request under load); a killed task's replacement is registered; a restarted proxy is
repopulated by the periodic full-list sync."""
import threading
from harness import *
import dnsclient as dc

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
lp = free_port()
pcfg = {"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                       "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]}
proxy = Proxy(dict(pcfg))
dns = Dns({"namespaces": [{"name": "berth.internal", "services": []}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}")
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 2, "port_mappings": [{"name": "http"}]}]})
st, _ = s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": "web", "desired_count": 3,
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"]}],
    "service_registries": [{"name": "web", "port_name": "http"}]})
t.is_(st, 201, "service with a load balancer and a service registry")


def tasks():
    return {x["id"]: x["ports"]["http"] for x in s.admin("GET", "/v1/tasks?service=web&status=RUNNING")[1]["tasks"]}


def targets():
    st, body = proxy.admin("GET", "/v1/target-groups/web")
    return {x.get("id"): x["address"] for x in body["targets"] if x["state"] != "draining"} if st == 200 else {}


def srv():
    return {x[3][3].split(".")[0]: x[3][2] for x in dc.parse(dc.udp(dns.port, dc.query("web.berth.internal", "SRV")))["an"]}


t.ok(wait_until(lambda: len(tasks()) == 3, 5), "three tasks RUNNING")
want = {tid: f"127.0.0.1:{port}" for tid, port in tasks().items()}
t.ok(wait_until(lambda: targets() == want, 5), "each task is a target of group web (id = task id)", targets())
t.ok(wait_until(lambda: srv() == {tid: port for tid, port in tasks().items()}, 5), "and an SRV record in DNS", srv())
bodies = {http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[2].decode().split()[-1] for _ in range(12)}
t.is_(bodies, set(want), "the proxy's host rule routes web.localhost across all three tasks")
t.is_(http_request("127.0.0.1", lp, headers={"Host": "other"})[0], 404, "other hosts get the listener's default")

# Scale in under load: deregister, drain, then stop. No request may fail.
stop_load, results = threading.Event(), []


def load():
    c = socket.create_connection(("127.0.0.1", lp))
    while not stop_load.is_set():
        try:
            results.append(http_request("127.0.0.1", lp, path="/", headers={"Host": "web.localhost"}, sock=c)[0])
        except Exception as e:
            results.append(str(e))
            c = socket.create_connection(("127.0.0.1", lp))
    c.close()


ths = [threading.Thread(target=load) for _ in range(4)]
[x.start() for x in ths]
time.sleep(0.5)
s.admin("PATCH", "/v1/services/web", {"desired_count": 1})
ok = wait_until(lambda: len(tasks()) == 1 and len(targets()) == 1, 10)
time.sleep(0.5)
stop_load.set()
[x.join(10) for x in ths]
t.ok(ok, "scaled in to one task and one target")
bad = [r for r in results if r != 200]
t.diag(f"{len(results)} requests during the scale-in, {len(bad)} not 200")
t.ok(len(results) > 100 and not bad, "no failed request while tasks were drained and stopped", bad[:5])
t.ok(wait_until(lambda: len(srv()) == 1, 5), "DNS follows")
ev = [e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]]
t.ok(any("Scaling activity" in m for m in ev), "events say the service scheduler stopped them")

# A killed task's replacement is registered.
(old, _), = tasks().items()
pid = s.admin("GET", f"/v1/tasks/{old}")[1]["containers"][0]["pid"]
os.kill(pid, signal.SIGKILL)
t.ok(wait_until(lambda: len(tasks()) == 1 and old not in tasks() and set(targets()) == set(tasks()), 8),
     "the replacement becomes the target", targets())

# A restarted proxy is repopulated by the periodic sync.
proxy.stop()
proxy = Proxy(dict(pcfg), admin_port=proxy.admin_port)
t.ok(wait_until(lambda: set(targets()) == set(tasks()), 8), "a restarted proxy is repopulated within the sync period")
t.ok(wait_until(lambda: http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[0] == 200, 5),
     "and the host rule is back")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report (scheduler)", s.log())
t.is_(proxy.stop(), 0, "proxy exits 0")
t.is_(dns.stop(), 0, "dns exits 0")
t.done()
