#!/usr/bin/env python3
"""berth-dns acceptance 3 and 4: truncation and TCP with 200 instances; EDNS(0) rules; TCP with
several pipelined queries per connection and an idle timeout (RFC 7766)."""
from harness import *
import dnsclient as dc

t = Tap()
NS = "berth.internal"
inst = [{"id": f"i{k}", "address": f"127.0.{k // 250}.{k % 250 + 1}", "port": 20000 + k} for k in range(200)]
d = Dns({"tcp_idle_timeout_s": 1, "namespaces": [{"name": NS, "services": [{"name": "big", "instances": inst}]}]})
P = d.port

raw = dc.udp(P, dc.query("big." + NS))
r = dc.parse(raw)
t.ok(r["tc"] and len(raw) <= 512 and 0 < len(r["an"]) < 200, f"UDP without EDNS: TC set, {len(r['an'])} records in {len(raw)} bytes", r["tc"])
t.ok(not r["ar"], "no OPT when the query had none")
(tr,) = dc.tcp(P, [dc.query("big." + NS)])
r = dc.parse(tr)
t.is_((r["tc"], len(r["an"])), (False, 200), "over TCP all 200 A records, no TC")
dig = subprocess.run(["dig", "@127.0.0.1", "-p", str(P), "big." + NS, "+tcp", "+short"], capture_output=True, text=True).stdout
t.is_(len(dig.split()), 200, "dig +tcp gets all 200")
raw = dc.udp(P, dc.query("big." + NS, "SRV", edns=4096))
r = dc.parse(raw)
t.ok(r["tc"] and len(raw) <= 1232 and len(r["an"]) > 20, f"EDNS 4096 SRV: what fits in 1232 bytes ({len(r['an'])} records, {len(raw)} bytes) with TC")
t.is_([x[3]["udp"] for x in r["ar"] if x[1] == "OPT"], [1232], "OPT echoed with our payload size (1232 by default)")
raw = dc.udp(P, dc.query("big." + NS, "A", edns=4096))
r = dc.parse(raw)
t.ok(r["tc"] and len(raw) <= 1232, f"EDNS 4096 A: capped at 1232 bytes ({len(raw)}) with TC")
d4 = Dns({"udp_max_payload": 4096, "namespaces": [{"name": NS, "services": [{"name": "big", "instances": inst}]}]})
raw = dc.udp(d4.port, dc.query("big." + NS, "A", edns=4096))
r = dc.parse(raw)
t.ok(not r["tc"] and len(r["an"]) == 200, f"udp_max_payload 4096: all 200 A records fit in {len(raw)} bytes")
t.is_([x[3]["udp"] for x in r["ar"] if x[1] == "OPT"], [4096], "and OPT advertises 4096")
d4.stop()
raw = dc.udp(P, dc.query("big." + NS, "A", edns=1232))
t.ok(len(raw) <= 1232 and dc.parse(raw)["tc"], "the client's EDNS size is honoured (1232)")

# EDNS rules (RFC 6891).
r = dc.parse(dc.udp(P, dc.query(NS, "SOA", edns=1232)))
t.ok(sum(1 for x in r["ar"] if x[1] == "OPT") == 1 and r["status"] == "NOERROR", "OPT echoed when sent")
r = dc.parse(dc.udp(P, dc.query(NS, "SOA", edns=1232, edns_version=1)))
t.ok(r["status"] == "BADVERS" and any(x[1] == "OPT" for x in r["ar"]), "EDNS version 1: BADVERS", r)
r = dc.parse(dc.udp(P, dc.query(NS, "SOA", edns=1232, opts=2)))
t.is_(r["status"], "FORMERR", "two OPT records: FORMERR")

# TCP: several queries on one connection, pipelined in one write; answers matched by id.
qs = [dc.query(n, ty, qid=1000 + i) for i, (n, ty) in enumerate([(NS, "SOA"), ("big." + NS, "SRV"), ("nope." + NS, "A"),
                                                                    ("i7.big." + NS, "A")])]
ans = [dc.parse(a) for a in dc.tcp(P, qs)]
t.is_(sorted(a["id"] for a in ans), [1000, 1001, 1002, 1003], "four pipelined TCP queries, four answers")
by = {a["id"]: a for a in ans}
t.ok(by[1002]["status"] == "NXDOMAIN" and by[1003]["an"][0][3] == "127.0.0.8" and len(by[1001]["an"]) == 200,
     "each answer is right")
# A client that pipelines many queries before reading still gets every answer, in order of processing.
many = [dc.query("big." + NS, "SRV", qid=i) for i in range(300)]
got = dc.tcp(P, many, timeout=10)
t.is_(sorted(dc.parse(a)["id"] for a in got), list(range(300)), "300 pipelined queries of 5 KB answers each, all answered")
s = socket.create_connection(("127.0.0.1", P))
t0 = time.time()
s.settimeout(5)
t.is_(s.recv(10), b"", "an idle TCP connection is closed")
t.ok(time.time() - t0 < 3, "after tcp_idle_timeout_s")
s.close()
m = d.admin("GET", "/metrics")[1]
t.ok('berth_dns_queries_total{type="SRV"}' in m and 'berth_dns_responses_total{rcode="NXDOMAIN"} 1' in m
     and "berth_dns_truncated_total" in m, "metrics count queries by type and rcode")
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
t.done()
