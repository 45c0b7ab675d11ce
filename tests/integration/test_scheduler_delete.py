#!/usr/bin/env python3
"""Deleting a service (issue 12, acceptance 3 and 4): under load it scales to zero through draining,
so no request ever gets a 502; afterwards its host answers 503 (an empty target group), its DNS name
is NXDOMAIN, no task is left running or stopping, the node's resources are free, and the service is
gone. A deleted service's PENDING tasks (an unsatisfiable constraint) never run anywhere."""
import threading
from harness import *
import dnsclient as dc

t = Tap()
DEMO = os.path.join(BIN, "demo", "berth-demo-web")
lp = free_port()
proxy = Proxy({"listeners": [{"name": "http", "listen": f"127.0.0.1:{lp}",
                              "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]})
dns = Dns({"namespaces": [{"name": "berth.internal", "services": []}]})
s = Scheduler(tempfile.mkdtemp(prefix="berth-sched-"), proxy_admin=f"http://127.0.0.1:{proxy.admin_port}",
              dns_admin=f"http://127.0.0.1:{dns.admin_port}", dns_server=f"127.0.0.1:{dns.port}",
              agent={"port_range": [49000, 49499], "attributes": {"zone": "a"}})
s.admin("POST", "/v1/task-definitions", {"family": "web", "containers": [
    {"name": "web", "command": [DEMO], "stop_timeout_s": 2, "cpu": 128, "memory_mib": 32,
     "port_mappings": [{"name": "http"}]}]})
st, _ = s.admin("POST", "/v1/services", {
    "name": "web", "task_definition": "web", "desired_count": 3,
    "load_balancers": [{"target_group": "web", "container_name": "web", "port_name": "http", "host_header": ["web.localhost"],
                        "health_check": {"path": "/health", "interval_s": 0.3, "timeout_s": 0.2}}],
    "service_registries": [{"name": "web", "port_name": "http"}]})
t.is_(st, 201, "service web: 3 tasks behind the proxy, in DNS")


def targets():
    st, body = proxy.admin("GET", "/v1/target-groups/web")
    return body["targets"] if st == 200 else None


def srv():
    return dc.parse(dc.udp(dns.port, dc.query("web.berth.internal", "SRV")))


t.ok(wait_until(lambda: len([x for x in targets() or [] if x["state"] == "healthy"]) == 3 and len(srv()["an"]) == 3, 20),
     "three healthy targets and three SRV records")

# Load from 4 keep-alive clients; every status and every connection error is kept.
stop_load, results, lock = threading.Event(), {}, threading.Lock()


def load():
    c = None
    while not stop_load.is_set():
        try:
            if c is None:
                c = socket.create_connection(("127.0.0.1", lp), 5)
            st, hdrs, _ = http_request("127.0.0.1", lp, headers={"Host": "web.localhost"}, sock=c)
            key = st
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in hdrs.items()):
                c.close()
                c = None
        except Exception as e:
            key = type(e).__name__
            if c:
                c.close()
            c = None
        with lock:
            results[key] = results.get(key, 0) + 1


threads = [threading.Thread(target=load) for _ in range(4)]
for th in threads:
    th.start()
time.sleep(1)
st, body = s.admin("DELETE", "/v1/services/web")
t.ok(st == 200 and body.get("status") == "DRAINING", "DELETE: the service drains", body)
t.is_(s.admin("PATCH", "/v1/services/web", {"desired_count": 5})[0], 409, "a draining service cannot be changed")
gone = wait_until(lambda: s.admin("GET", "/v1/services/web")[0] == 404, 30)
time.sleep(1)  # and a moment of load after it is gone
stop_load.set()
for th in threads:
    th.join()
t.diag(f"statuses during and after the delete: {results}")
t.ok(gone, "the service is gone once its tasks have stopped")
t.ok(results.get(200, 0) > 100, "the load ran", results)
t.ok(502 not in results and all(isinstance(k, int) for k in results),
     "no 502 and no connection error at any time", results)
t.ok(set(results) <= {200, 503}, "only 200 (while tasks drain) and 503 (once none is left)", results)
t.is_(http_request("127.0.0.1", lp, headers={"Host": "web.localhost"})[0], 503, "afterwards the host answers 503")
t.is_(targets(), [], "the target group is empty")
t.is_(srv()["rcode"], 3, "the DNS name is NXDOMAIN")
left = [x for x in s.admin("GET", "/v1/tasks?service=web")[1]["tasks"] if x["last_status"] != "STOPPED"]
t.is_(left, [], "no task is left running or stopping")
node = s.admin("GET", "/v1/nodes")[1]["nodes"][0]
t.ok(node.get("cpu_used") == 0 and node.get("memory_mib_used") == 0, "the node's resources are free", node)
t.ok(any("service deleted" in e["message"] for e in s.admin("GET", "/v1/events?service=web")[1]["events"]),
     "and an event says so")

# ---- 4. a deleted service's PENDING tasks never run ----
st, _ = s.admin("POST", "/v1/services", {"name": "nowhere", "task_definition": "web", "desired_count": 2,
                                         "placement_constraints": [{"type": "member_of",
                                                                    "expression": "attribute:zone == b"}]})
t.is_(st, 201, "a service whose constraint no node meets")
t.ok(wait_until(lambda: len([x for x in s.admin("GET", "/v1/tasks?service=nowhere&status=PENDING")[1]["tasks"]
                             if x.get("pending_reason")]) == 2, 10), "its tasks wait, PENDING with a reason")
s.admin("DELETE", "/v1/services/nowhere")
t.ok(wait_until(lambda: s.admin("GET", "/v1/services/nowhere")[0] == 404, 10), "deleted, it goes")
never = [s.admin("GET", f"/v1/tasks/{x['id']}")[1] for x in s.admin("GET", "/v1/tasks?service=nowhere")[1]["tasks"]]
t.ok(len(never) == 2 and all(x["last_status"] == "STOPPED" and not x.get("node") and not x.get("started_at")
                             for x in never), "its PENDING tasks never ran anywhere", never)
t.ok(s.sanitizer_clean(), "no sanitizer reports", s.log()[-2000:])
t.done()
