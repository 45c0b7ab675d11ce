#!/usr/bin/env python3
"""DNS targets: a target group member list from SRV (with glue or separate A lookups) or A records,
re-resolved at the TTL, so members come and go without a reload; a DNS outage keeps the last members."""
from harness import *
from dnsserver import DnsServer

t = Tap()
b1, b2, b3 = Backend("b1", log=False), Backend("b2", log=False), Backend("b3", log=False)
NAME = "_http._tcp.web.berth.internal"
dns = DnsServer({
    NAME.lower(): [("SRV", 1, (0, 1, b1.port, "t1.web.berth.internal")), ("SRV", 1, (0, 1, b2.port, "t2.web.berth.internal"))],
    "t1.web.berth.internal": [("A", 1, "127.0.0.1")],
    "t2.web.berth.internal": [("A", 1, "127.0.0.1")],
    "t3.web.berth.internal": [("A", 1, "127.0.0.1")],
    "plain.berth.internal": [("A", 1, "127.0.0.1")],
})
lp = free_port()
cfg = basic_config(lp, [])
cfg["target_groups"][0]["targets"] = [{"dns": NAME}]
cfg["target_groups"][0]["dns_server"] = dns.addr
p = Proxy(cfg)


def members():
    tg = p.admin("GET", "/v1/target-groups/web")[1]
    return sorted((x["address"], x.get("id")) for x in tg["targets"] if x["state"] != "draining")


want = sorted([(b1.addr, "t1.web.berth.internal"), (b2.addr, "t2.web.berth.internal")])
t.ok(wait_until(lambda: members() == want, 5), "SRV records become targets (ids are the SRV targets)", members())
t.ok(wait_healthy(p, "web", 2), "and pass health checks")
t.is_({http_request("127.0.0.1", lp)[2] for _ in range(4)}, {b"b1", b"b2"}, "traffic reaches both")

# Membership changes in DNS show up after the TTL, without a reload.
dns.records[NAME.lower()] = [("SRV", 1, (0, 1, b2.port, "t2.web.berth.internal")),
                             ("SRV", 1, (0, 1, b3.port, "t3.web.berth.internal"))]
want = sorted([(b2.addr, "t2.web.berth.internal"), (b3.addr, "t3.web.berth.internal")])
t0 = time.time()
t.ok(wait_until(lambda: members() == want, 5), "a changed SRV set is picked up", members())
t.diag(f"picked up after {time.time() - t0:.2f}s (TTL 1s)")
t.ok(wait_healthy(p, "web", 2), "new member healthy")
t.is_({http_request("127.0.0.1", lp)[2] for _ in range(4)}, {b"b2", b"b3"}, "traffic follows DNS")

# Without glue the addresses are looked up separately.
dns.glue = False
dns.records[NAME.lower()] = [("SRV", 1, (0, 1, b1.port, "t1.web.berth.internal"))]
t.ok(wait_until(lambda: members() == [(b1.addr, "t1.web.berth.internal")], 5), "SRV without glue resolves via A lookups")

# A DNS outage keeps the last known members.
queries = dns.queries
dns.close()
time.sleep(2.5)
t.is_(members(), [(b1.addr, "t1.web.berth.internal")], "members kept while DNS is down")
t.ok("keeping 1 known members" in p.log(), "the outage is logged")

# A plain A-record name with a port, and a config mixing static and dns targets.
dns2 = DnsServer({"plain.berth.internal": [("A", 1, "127.0.0.1")]})
st, body = p.admin("PUT", "/v1/target-groups/web", {"targets": [{"dns": "plain.berth.internal", "port": b3.port},
                                                                {"address": b2.addr}],
                                                    "dns_server": dns2.addr,
                                                    "health_check": {"path": "/health", "interval_s": 0.5, "timeout_s": 0.4}})
t.is_(st, 200, "group replaced with an A-record dns target and a static one")
t.ok(wait_until(lambda: sorted(a for a, _ in members()) == sorted([b3.addr, b2.addr]), 5), "A record + port becomes a target",
     members())
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
