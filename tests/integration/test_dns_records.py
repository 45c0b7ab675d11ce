#!/usr/bin/env python3
"""berth-dns acceptance 1, 2 and 8: every record type for a namespace with 3 services; health
filtering and fail open; NXDOMAIN/NODATA with SOA; case echo; valid compression; malformed
queries (pointer loops) never hang; berth lookup returns the endpoints."""
from harness import *
import dnsclient as dc

t = Tap()
NS = "berth.internal"
d = Dns({"ttl_s": 7, "namespaces": [{"name": NS, "services": [
    {"name": "web", "instances": [
        {"id": "t1", "address": "127.0.0.1", "port": 32001, "attributes": {"zone": "a", "version": "2"}},
        {"id": "t2", "address": "127.0.0.2", "port": 32002, "healthy": False},
        {"id": "t3", "address": "127.0.0.3", "port": 32003},
        {"id": "t4", "address": "::1", "port": 32004}]},
    {"name": "api", "instances": [
        {"id": "a1", "address": "127.0.1.1", "port": 9001, "port_name": "grpc"},
        {"id": "a2", "address": "127.0.1.2", "port": 9002, "port_name": "http"}]},
    {"name": "db", "instances": [{"id": "d1", "address": "127.0.2.1", "port": 5432, "healthy": False}]}]}]})
P = d.port


def ask(name, qtype="A", **kw):
    return dc.parse(dc.udp(P, dc.query(name, qtype, **kw)))


r = ask(NS, "SOA")
t.ok(r["aa"] and r["status"] == "NOERROR" and r["an"][0][1] == "SOA" and r["an"][0][3][:2] == ("ns1." + NS, "hostmaster." + NS),
     "SOA at the apex", r)
r = ask(NS, "NS")
t.is_([(x[1], x[3]) for x in r["an"]], [("NS", "ns1." + NS)], "NS at the apex")
t.is_([(x[0], x[1], x[3]) for x in r["ar"]], [("ns1." + NS, "A", "127.0.0.1")], "with the name server's address")
r = ask("web." + NS)
t.is_(sorted(x[3] for x in r["an"]), ["127.0.0.1", "127.0.0.3"], "A: the healthy IPv4 instances")
t.ok(all(x[2] == 7 for x in r["an"]), "TTL is ttl_s")
r = ask("web." + NS, "AAAA")
t.is_([x[3] for x in r["an"]], ["::1"], "AAAA: the healthy IPv6 instance")
r = ask("web." + NS, "SRV")
t.is_(sorted(x[3] for x in r["an"]), sorted([(0, 1, 32001, "t1.web." + NS), (0, 1, 32003, "t3.web." + NS),
                                             (0, 1, 32004, "t4.web." + NS)]), "SRV: one record per healthy instance")
t.is_(sorted((x[0], x[3]) for x in r["ar"]), sorted([("t1.web." + NS, "127.0.0.1"), ("t3.web." + NS, "127.0.0.3"),
                                                     ("t4.web." + NS, "::1")]), "SRV targets' addresses in additional")
r = ask("_grpc._tcp.api." + NS, "SRV")
t.is_([x[3] for x in r["an"]], [(0, 1, 9001, "a1.api." + NS)], "_PORTNAME._tcp SRV filters by port name")
r = ask("t2.web." + NS)
t.is_([x[3] for x in r["an"]], ["127.0.0.2"], "ID.SVC A answers one instance")
r = ask("t1.web." + NS, "TXT")
t.is_(sorted(r["an"][0][3]), ["version=2", "zone=a"], "ID.SVC TXT carries the attributes")
r = ask("db." + NS)
t.is_([x[3] for x in r["an"]], ["127.0.2.1"], "all instances unhealthy: all are returned (fail open)")

# Health changes through the API show up at once.
st, _ = d.admin("PUT", f"/v1/namespaces/{NS}/services/web/instances/t1/health", {"healthy": False})
t.is_(st, 200, "instance marked unhealthy")
t.is_([x[3] for x in ask("web." + NS)["an"]], ["127.0.0.3"], "an unhealthy instance leaves A answers")
t.ok(all(x[3][3] != "t1.web." + NS for x in ask("web." + NS, "SRV")["an"]), "and SRV answers")
d.admin("PUT", f"/v1/namespaces/{NS}/services/web/instances/t1/health", {"healthy": True})

# Shuffled per query.
orders = {tuple(x[3] for x in ask("web." + NS)["an"]) for _ in range(40)}
t.is_(len(orders), 2, "A answers are shuffled per query")

# Negative answers carry the SOA (RFC 2308).
r = ask("nope." + NS)
t.ok(r["status"] == "NXDOMAIN" and r["aa"] and [x[1] for x in r["ns"]] == ["SOA"] and r["ns"][0][2] == 7,
     "NXDOMAIN with the SOA in authority (TTL = ttl_s)", r)
r = ask("web." + NS, "CAA")
t.ok(r["status"] == "NOERROR" and not r["an"] and [x[1] for x in r["ns"]] == ["SOA"], "NODATA for an unknown type (RFC 8906)", r)
r = ask("_tcp.web." + NS, "SRV")
t.ok(r["status"] == "NOERROR" and not r["an"] and r["ns"], "NODATA for the empty non-terminal _tcp.SVC", r)
r = ask("web." + NS, "ANY")
t.is_([(x[1], x[3][:8]) for x in r["an"]], [("HINFO", b"\x07RFC8482")], "ANY gets one HINFO (RFC 8482)")
r = ask("example.com")
t.is_(r["status"], "REFUSED", "a name outside every namespace is REFUSED")

# Case: matching ignores it, the answer echoes it exactly.
mixed = "WeB.BeRtH.InTeRnAl"
r = ask(mixed, "SRV")
t.is_(r["qd"][0][0], mixed, "question echoed in the query's case")
t.ok(r["an"] and all(x[0] == mixed for x in r["an"]), "answer owners in the query's case")
raw = dc.udp(P, dc.query("web." + NS, "SRV"))
t.is_(raw.count(b"\x03web\x05berth\x08internal\x00"), 4, "SRV targets are not compressed (RFC 2782): the question and 3 targets written whole")
t.ok(raw.count(b"\x03web") == 4, "owners and additional records still compress", raw)
dig = subprocess.run(["dig", "@127.0.0.1", "-p", str(P), "web." + NS, "SRV", "+noall", "+answer", "+additional"],
                     capture_output=True, text=True).stdout
t.ok(dig.count("IN\tSRV") == 3 and dig.count("IN\tA\t") == 2 and dig.count("IN\tAAAA\t") == 1 and "t1.web.berth.internal." in dig, "dig parses the answer", dig)

# Malformed queries: FORMERR or silence, never a hang.
loop = dc.query("x", raw_qname=b"\xc0\x0c")  # a pointer to itself
r = dc.udp(P, loop)
t.ok(r is None or dc.parse(r)["status"] == "FORMERR", "pointer loop: FORMERR (or dropped)")
fwd = dc.query("x", raw_qname=b"\x01a\xc0\x20")  # a pointer forward
r = dc.udp(P, fwd)
t.ok(r is None or dc.parse(r)["status"] == "FORMERR", "forward pointer: FORMERR (or dropped)")
t.is_(dc.parse(dc.udp(P, dc.query("web." + NS, qdcount=0)))["status"], "FORMERR", "QDCOUNT 0: FORMERR (RFC 9619)")
t.is_(dc.parse(dc.udp(P, dc.query("web." + NS, qdcount=2)))["status"], "FORMERR", "QDCOUNT 2: FORMERR")
t.is_(dc.parse(dc.udp(P, dc.query("web." + NS, opcode=2)))["status"], "NOTIMP", "opcode STATUS: NOTIMP")
t.is_(dc.udp(P, b"\x12\x34\x01", timeout=0.5), None, "a 3-byte packet is dropped")
resp = bytearray(dc.query("web." + NS))
resp[2] |= 0x80
t.is_(dc.udp(P, bytes(resp), timeout=0.5), None, "a response (QR=1) is never answered")
t.is_(dc.parse(dc.udp(P, dc.query("web." + NS)))["status"], "NOERROR", "the server still answers afterwards")

# berth lookup (the c-ares library) returns the registered endpoints.
berth = os.path.join(BIN, "cli", "berth")
out = subprocess.run([berth, "lookup", "web", "--server", f"127.0.0.1:{P}", "--json"], capture_output=True, text=True)
eps = sorted(e["address"] for e in json.loads(out.stdout)["endpoints"]) if out.returncode == 0 else out.stderr
t.is_(eps, sorted(["127.0.0.1:32001", "127.0.0.3:32003", "[::1]:32004"]), "berth lookup web: SRV endpoints")
out = subprocess.run([berth, "lookup", "web." + NS, "--type", "A", "--port", "80", "--server", f"127.0.0.1:{P}"],
                     capture_output=True, text=True)
t.ok(out.returncode == 0 and "127.0.0.1:80" in out.stdout and "127.0.0.3:80" in out.stdout, "berth lookup --type A", out.stdout)
out = subprocess.run([berth, "lookup", "nope", "--server", f"127.0.0.1:{P}"], capture_output=True, text=True)
t.ok(out.returncode == 1 and "nope.berth.internal" in out.stderr, "a missing name fails with a one-line reason", out.stderr)
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
t.done()
