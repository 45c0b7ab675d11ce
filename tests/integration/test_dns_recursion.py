#!/usr/bin/env python3
"""berth-dns acceptance 6: out-of-zone names are REFUSED without recursors; with a recursor (a second
DNS server on loopback) the answer is relayed to clients in recursion_allow, REFUSED for others."""
from harness import *
from dnsserver import DnsServer
import dnsclient as dc

t = Tap()
NS = "berth.internal"
upstream = DnsServer({"example.test": [("A", 60, "127.0.0.99")]})
d = Dns({"namespaces": [{"name": NS, "services": []}]})
r = dc.parse(dc.udp(d.port, dc.query("example.test")))
t.ok(r["status"] == "REFUSED" and not r["ra"], "no recursors: REFUSED, RA clear")
t.is_(upstream.queries, 0, "and nothing was forwarded")
d.stop()

d = Dns({"recursors": [upstream.addr], "recursion_allow": ["127.0.0.1/32"], "namespaces": [{"name": NS, "services": []}]})
r = dc.parse(dc.udp(d.port, dc.query("example.test", qid=4242)))
t.ok(r["status"] == "NOERROR" and [x[3] for x in r["an"]] == ["127.0.0.99"] and r["id"] == 4242,
     "allowed client: the upstream answer is relayed with the client's id", r)
r = dc.parse(dc.tcp(d.port, [dc.query("example.test", qid=7)])[0])
t.is_([x[3] for x in r["an"]], ["127.0.0.99"], "recursion over TCP too")
r = dc.parse(dc.udp(d.port, dc.query("missing.test")))
t.is_(r["status"], "NXDOMAIN", "the upstream's NXDOMAIN is relayed")
r = dc.parse(dc.udp(d.port, dc.query("example.test"), src="127.0.0.2"))
t.is_(r["status"], "REFUSED", "a client outside recursion_allow is REFUSED (never an open resolver)")
r = dc.parse(dc.udp(d.port, dc.query(NS, "SOA"), src="127.0.0.2"))
t.is_(r["status"], "NOERROR", "but still gets authoritative answers")
n = upstream.queries
upstream.close()
r = dc.udp(d.port, dc.query("example.test"), timeout=8)
t.ok(r is not None and dc.parse(r)["status"] == "SERVFAIL", "upstream down: SERVFAIL")
t.ok('berth_dns_forwarded_total' in d.admin("GET", "/metrics")[1], "forwarded queries are counted")
t.is_(d.stop(), 0, "berth-dns exits 0")
t.ok(d.sanitizer_clean(), "no sanitizer report", d.log())
t.done()
