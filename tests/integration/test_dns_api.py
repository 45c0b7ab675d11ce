#!/usr/bin/env python3
"""berth-dns acceptance 5 and the admin API: a registration is answered as soon as the call returns,
a deregistration is gone on the next query; replace, health, DiscoverInstances; errors; reload."""
from harness import *
import dnsclient as dc

t = Tap()
NS = "berth.internal"
d = Dns({"namespaces": [{"name": NS, "services": [{"name": "web", "instances": []}]}]})
P = d.port
base = f"/v1/namespaces/{NS}/services"


def a(name):
    return sorted(x[3] for x in dc.parse(dc.udp(P, dc.query(name)))["an"])


st, body = d.admin("PUT", f"{base}/web/instances/t1", {"address": "127.0.0.5", "port": 8001, "attributes": {"zone": "a"}})
t.is_(st, 201, "register answers 201")
t.is_(a("web." + NS), ["127.0.0.5"], "present on the very next query")
t.is_(a("t1.web." + NS), ["127.0.0.5"], "and by id")
d.admin("PUT", f"{base}/web/instances/t2", {"address": "127.0.0.6", "port": 8002, "attributes": {"zone": "b"}})
st, body = d.admin("PUT", f"{base}/web/instances/t1", {"address": "127.0.0.7", "port": 8001, "attributes": {"zone": "a"}})
t.is_(st, 200, "re-register replaces (200)")
t.is_(a("web." + NS), ["127.0.0.6", "127.0.0.7"], "replaced address answered")
st, body = d.admin("DELETE", f"{base}/web/instances/t1")
t.is_(st, 200, "deregister answers 200")
t.is_(a("web." + NS), ["127.0.0.6"], "gone on the next query")
t.is_(dc.parse(dc.udp(P, dc.query("t1.web." + NS)))["status"], "NXDOMAIN", "its own name is gone too")
t.is_(d.admin("DELETE", f"{base}/web/instances/t1")[0], 404, "deregistering again is 404")

# A new service appears with its first registration.
d.admin("PUT", f"{base}/api/instances/x1", {"address": "127.0.0.9", "port": 7000, "port_name": "grpc"})
t.is_(a("api." + NS), ["127.0.0.9"], "a service is created by its first instance")
srv = dc.parse(dc.udp(P, dc.query("_grpc._tcp.api." + NS, "SRV")))["an"]
t.is_([x[3][2] for x in srv], [7000], "with its port-name SRV record")

# Replace the whole list.
st, body = d.admin("PUT", f"{base}/web/instances", {"instances": [
    {"id": "r1", "address": "127.0.1.1", "port": 1, "attributes": {"zone": "a"}},
    {"id": "r2", "address": "127.0.1.2", "port": 2, "healthy": False, "attributes": {"zone": "b"}}]})
t.is_(st, 200, "PUT instances replaces the list")
t.is_(a("web." + NS), ["127.0.1.1"], "answers follow the new list (healthy only)")

# DiscoverInstances.
st, body = d.admin("GET", f"{base}/web/instances")
t.is_([i["id"] for i in body["instances"]], ["r1"], "DiscoverInstances defaults to HEALTHY")
st, body = d.admin("GET", f"{base}/web/instances?health=ALL")
t.is_(sorted(i["id"] for i in body["instances"]), ["r1", "r2"], "health=ALL")
st, body = d.admin("GET", f"{base}/web/instances?health=ALL&attr.zone=b")
t.is_([i["id"] for i in body["instances"]], ["r2"], "attribute filter")
st, body = d.admin("PUT", f"{base}/web/instances/r2/health", {"healthy": True})
t.is_(a("web." + NS), ["127.0.1.1", "127.0.1.2"], "health set through the API shows at once")

# Errors name the bad field.
st, body = d.admin("PUT", f"{base}/web/instances/bad", {"address": "not-an-ip", "port": 1})
t.ok(st == 400 and "instance.address" in body["error"]["message"], "bad address: 400 with the path", body)
st, body = d.admin("PUT", f"{base}/web/instances/bad", {"address": "127.0.0.1", "port": 70000})
t.ok(st == 400 and "instance.port: must be 0..65535" in body["error"]["message"], "bad port: 400", body)
st, body = d.admin("PUT", f"{base}/web/instances/bad", {"address": "127.0.0.1", "colour": "red"})
t.ok(st == 400 and "instance.colour: unknown key" in body["error"]["message"], "unknown key: 400", body)
st, body = d.admin("PUT", f"{base}/web/instances/bad.id", {"address": "127.0.0.1"})
t.is_(st, 400, "an id that is not a DNS label is rejected")
st, body = d.admin("PUT", f"/v1/namespaces/other.ns/services/web/instances/x", {"address": "127.0.0.1"})
t.is_((st, body["error"]["code"]), (404, "NamespaceNotFound"), "unknown namespace: 404")
st, body = d.admin("PUT", f"{base}/web/instances/r1/health", {"healthy": "yes"})
t.is_(st, 400, "health must be a boolean")

# SIGHUP reloads the file (the file is the source of truth), a bad file is refused.
cfg = dict(d.config)
cfg["namespaces"] = [{"name": NS, "services": [{"name": "web", "instances": [{"id": "f1", "address": "127.0.3.1"}]}]}]
d.rewrite(cfg)
d.reload()
t.ok(wait_until(lambda: a("web." + NS) == ["127.0.3.1"], 5), "reload applies the file")
with open(d.config_path, "w") as f:
    f.write('{"ttl_s": -1}')
d.reload()
time.sleep(0.5)
t.ok("ttl_s: must be 0..86400" in d.log() and a("web." + NS) == ["127.0.3.1"], "a bad reload is refused, answers unchanged")

r = subprocess.run([os.path.join(BIN, "discovery", "berth-dns"), "-c", d.config_path], capture_output=True, text=True)
t.ok(r.returncode == 2 and d.config_path + ": ttl_s: must be 0..86400" in r.stderr, "a bad config exits 2 naming file and path",
     r.stderr)
for text, want in [('{"namespaces":[{"name":"a..b"}]}', 'namespaces[0].name: "a..b" is not a domain name'),
                   ('{"namespaces":[{"name":"x.y","services":[{"name":"s","instances":[{"id":"i","address":"1.2.3.4"},'
                    '{"id":"i","address":"1.2.3.5"}]}]}]}', 'namespaces[0].services[0].instances[1].id: "i" is used by [0] too'),
                   ('{"recursion_allow":["nonsense"]}', "recursion_allow[0]: must be an IP prefix"),
                   ('{"listen":"8600"}', 'listen: "8600" is not an address')]:
    fd, path = tempfile.mkstemp(suffix=".json")
    os.write(fd, text.encode())
    os.close(fd)
    r = subprocess.run([os.path.join(BIN, "discovery", "berth-dns"), "-t", "-c", path], capture_output=True, text=True)
    t.ok(r.returncode == 2 and want in r.stderr, f"config error: {want}", r.stderr)
r = subprocess.run([os.path.join(BIN, "discovery", "berth-dns"), "-t", "-c", os.path.join(HERE, "..", "..", "examples", "dns.json")],
                   capture_output=True, text=True)
t.is_(r.returncode, 0, "examples/dns.json is valid")
r = subprocess.run([os.path.join(BIN, "discovery", "berth-dns"), "--help"], capture_output=True, text=True)
t.ok(r.returncode == 0 and "usage: berth-dns" in r.stdout, "--help")
# DeleteService: the service and its instances go; its names are NXDOMAIN again.
d.admin("PUT", f"/v1/namespaces/{NS}/services/gone/instances", {"instances": [{"id": "g1", "address": "127.0.0.7", "port": 7}]})
t.is_(len(dc.parse(dc.udp(P, dc.query("gone." + NS, "SRV")))["an"]), 1, "a service to delete answers")
st, body = d.admin("DELETE", f"/v1/namespaces/{NS}/services/gone")
t.is_((st, body), (200, {"deleted": "gone"}), "DELETE .../services/gone")
t.is_([dc.parse(dc.udp(P, dc.query(n, "SRV")))["status"] for n in ("gone." + NS, "g1.gone." + NS)], ["NXDOMAIN", "NXDOMAIN"],
      "its name and its instance's are NXDOMAIN")
t.is_(d.admin("GET", f"/v1/namespaces/{NS}/services/gone/instances")[0], 404, "and the API knows it no more")
t.is_(d.admin("DELETE", f"/v1/namespaces/{NS}/services/gone")[0], 404, "deleting it again: 404")
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
t.done()
