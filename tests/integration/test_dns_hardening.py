#!/usr/bin/env python3
"""berth-dns under attack (issue 9, acceptance 4): names that would collide are refused and a list
replace can never spin; a refused PUT changes nothing; zone transfers are refused; every reply to a
query with OPT carries OPT; trailing bytes and overrunning OPT options are FORMERR; UDP answers are
capped at 1,232 bytes and rate limited per source prefix; DiscoverInstances as Cloud Map."""
import struct
from harness import *
from dnsserver import DnsServer
import dnsclient as dc

t = Tap()
NS = "berth.internal"
inst = [{"id": f"i{k}", "address": f"127.0.{k // 250}.{k % 250 + 1}", "port": 20000 + k} for k in range(60)]
d = Dns({"namespaces": [{"name": NS, "services": [{"name": "big", "instances": inst},
                                                   {"name": "web", "instances": [{"id": "t1", "address": "127.0.0.1", "port": 1}]}]}]})
P = d.port
base = f"/v1/namespaces/{NS}/services"

# Names that would collide with the structure of the zone.
for iid in ["_tcp", "_http"]:
    st, body = d.admin("PUT", f"{base}/web/instances/{iid}", {"address": "127.0.0.2", "port": 2})
    t.is_(st, 400, f"instance id {iid} is refused (underscore labels name SRV records)")
st, _ = d.admin("PUT", f"{base}/web/instances", {"instances": [{"id": "a", "address": "127.0.0.3", "port": 3},
                                                               {"id": "b", "address": "127.0.0.4", "port": 4}]})
t0 = time.time()
st2, _ = d.admin("PUT", f"{base}/web/instances", {"instances": [{"id": "c", "address": "127.0.0.5", "port": 5}]})
t.ok(st == 200 and st2 == 200 and time.time() - t0 < 1, f"list replaces answer within 1 s ({time.time() - t0:.3f} s)")
r = dc.parse(dc.udp(P, dc.query("web." + NS)))
t.is_([x[3] for x in r["an"]], ["127.0.0.5"], "DNS answers from the replaced list")
for name in ["a b", "*", "ns1", "NS1", "x.y", "_" * 64]:
    st, body = d.admin("PUT", f"{base}/{urllib.request.quote(name)}/instances/x", {"address": "127.0.0.1", "port": 1})
    t.is_(st, 400, f"service name {name!r} refused")
t.is_(dc.parse(dc.udp(P, dc.query("ns1." + NS)))["an"][0][3], "127.0.0.1", "ns1 still names the name server")

# A PUT that fails validation creates nothing.
st, _ = d.admin("PUT", f"{base}/newsvc/instances/x", {"address": "not-an-ip", "port": 1})
t.is_(st, 400, "a bad instance is refused")
t.is_(dc.parse(dc.udp(P, dc.query("newsvc." + NS)))["status"], "NXDOMAIN", "and its service does not exist (NXDOMAIN)")
st, _ = d.admin("PUT", f"{base}/newsvc2/instances", {"instances": [{"id": "x"}]})
t.is_(dc.parse(dc.udp(P, dc.query("newsvc2." + NS)))["status"], "NXDOMAIN", "nor after a bad list (NXDOMAIN)")
st, body = d.admin("GET", f"{base}/nosuch/instances")
t.ok(st == 404 and body["error"]["code"] == "ServiceNotFound", "DiscoverInstances of an unknown service: 404 ServiceNotFound")

# DiscoverInstances HEALTHY_OR_ELSE_ALL.
d.admin("PUT", f"{base}/web/instances/c/health", {"healthy": False})
ids = lambda h: sorted(i["id"] for i in d.admin("GET", f"{base}/web/instances?health={h}")[1]["instances"])
t.is_((ids("HEALTHY"), ids("HEALTHY_OR_ELSE_ALL")), ([], ["c"]), "HEALTHY_OR_ELSE_ALL: all when none is healthy")
d.admin("PUT", f"{base}/web/instances/d", {"address": "127.0.0.6", "port": 6})
t.is_(ids("HEALTHY_OR_ELSE_ALL"), ["d"], "HEALTHY_OR_ELSE_ALL: the healthy ones when some are")

# Zone transfers.
r = dc.parse(dc.tcp(P, [dc.query(NS, "AXFR")])[0])
t.is_(r["status"], "NOTAUTH", "AXFR over TCP: NOTAUTH")
t.is_(dc.parse(dc.tcp(P, [dc.query(NS, "IXFR")])[0])["status"], "NOTAUTH", "IXFR over TCP: NOTAUTH")
r = dc.parse(dc.udp(P, dc.query(NS, "AXFR", edns=1232)))
t.ok(r["status"] == "FORMERR" and not r["an"] and any(x[1] == "OPT" for x in r["ar"]), "AXFR over UDP: FORMERR, with OPT")

# OPT in every reply to a query with OPT; malformed tails are FORMERR.
def has_opt(raw):
    return raw is not None and any(x[1] == "OPT" for x in dc.parse(raw)["ar"])
q = dc.query(NS, "SOA", edns=1232)
r = dc.udp(P, q[:2] + struct.pack("!H", 2 << 11 | 0x100) + q[4:])
t.ok(r and dc.parse(r)["status"] == "NOTIMP" and has_opt(r), "NOTIMP (opcode STATUS) carries OPT")
r = dc.udp(P, q + b"\x00\x00")
t.ok(r and dc.parse(r)["status"] == "FORMERR" and has_opt(r), "trailing bytes: FORMERR, with OPT")
bad_opt = q[:-2] + struct.pack("!H", 4) + struct.pack("!HH", 10, 8)  # option says 8 bytes, has none
r = dc.udp(P, bad_opt)
t.ok(r and dc.parse(r)["status"] == "FORMERR" and has_opt(r), "OPT option overrunning its record: FORMERR, with OPT")
good_opt = q[:-2] + struct.pack("!H", 6) + struct.pack("!HH", 10, 2) + b"ab"
t.is_(dc.parse(dc.udp(P, good_opt))["status"], "NOERROR", "a well-formed option is fine")
r = dc.udp(P, dc.query("example.test", edns=1232))
t.ok(r and dc.parse(r)["status"] == "REFUSED" and has_opt(r), "REFUSED carries OPT")

# Amplification: at most 1,232 bytes over UDP whatever the client asks for.
q = dc.query("_http._tcp.big." + NS, "SRV", edns=4096)
raw = dc.udp(P, q)
t.ok(len(raw) <= 1232 and dc.parse(raw)["tc"], f"a {len(q)}-byte query gets {len(raw)} bytes over UDP "
     f"(amplification {len(raw) / len(q):.1f}x, at most 1232 bytes)")
t.ok(dc.parse(dc.tcp(P, [q])[0])["an"].__len__() == 60, "the whole answer over TCP")
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())

# A forwarded answer berth-dns has to stand in for (here: one larger than 512 bytes, which c-ares
# will not take over UDP) carries OPT too.
upstream = DnsServer({"many.test": [("A", 60, f"127.0.1.{k}") for k in range(1, 31)]})  # about 800 bytes
d = Dns({"recursors": [upstream.addr], "namespaces": [{"name": NS, "services": []}]})
r = dc.udp(d.port, dc.query("many.test", edns=512), timeout=8)
t.ok(r and dc.parse(r)["status"] in ("SERVFAIL", "NOERROR") and has_opt(r), "a forwarded query's stand-in answer carries OPT",
     r and dc.parse(r))
d.stop()
upstream.close()

# Response-rate limiting per source prefix: a spoofed flood gets few full answers; slipped ones are
# truncated stand-ins that send a real client to TCP.
def burst(port, n=200):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(0.5)
    qs = [dc.query("big." + NS, "A", qid=k, edns=1232) for k in range(n)]
    for m in qs:
        s.sendto(m, ("127.0.0.1", port))
    got = []
    try:
        while True:
            got.append(s.recv(65535))
    except socket.timeout:
        pass
    s.close()
    return sum(map(len, qs)), got

zone = [{"name": NS, "services": [{"name": "big", "instances": inst}]}]
d = Dns({"rate_limit": {"responses_per_s": 10, "slip": 2, "exempt": []}, "namespaces": zone})
sent, got = burst(d.port)
full = [g for g in got if dc.parse(g)["an"]]
slipped = [dc.parse(g) for g in got if not dc.parse(g)["an"]]
t.ok(len(full) < 60, f"rate limit 10/s: {len(full)} full answers to a burst of 200")
t.ok(slipped and all(r["tc"] and any(x[1] == "OPT" for x in r["ar"]) for r in slipped),
     f"{len(slipped)} limited answers slipped as empty TC answers (with OPT)")
answered = sum(map(len, got))
t.ok(answered < 3 * sent, f"bytes out / bytes in under the limit: {answered / sent:.2f}")
m = d.admin("GET", "/metrics")[1]
t.ok('berth_dns_rate_limited_total{action="dropped"}' in m, "limited answers are counted in /metrics")
d.stop()
d = Dns({"namespaces": zone})
sent, got = burst(d.port)
t.is_(len(got), 200, "loopback is exempt by default: every query answered")
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
t.done()
