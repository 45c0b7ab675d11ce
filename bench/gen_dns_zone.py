#!/usr/bin/env python3
"""gen_dns_zone.py DIR PORT -- writes the same zone (1,000 services x 3 instances in berth.internal) as
berth-dns JSON, a Knot zone file, dnsmasq config, and a mixed dnsperf query file (A, SRV, NXDOMAIN)."""
import json, random, sys

out, port = sys.argv[1], int(sys.argv[2])
NS, SVCS, INST = "berth.internal", 1000, 3
random.seed(7)


def addr(s, i):
    n = s * INST + i
    return f"127.1.{n // 250}.{n % 250 + 1}"


services = []
zone = [f"$ORIGIN {NS}.", "$TTL 5", "@ SOA ns1 hostmaster 1 3600 600 86400 5", "@ NS ns1", "ns1 A 127.0.0.1"]
dnsmasq = ["no-resolv", "no-hosts", f"local=/{NS}/", "local-ttl=5", "auth-ttl=5"]
hosts = []
for s in range(SVCS):
    name = f"svc-{s:04d}"
    inst = []
    for i in range(INST):
        a, p = addr(s, i), 20000 + i
        inst.append({"id": f"i{i}", "address": a, "port": p, "port_name": "http"})
        zone += [f"{name} A {a}", f"{name} SRV 0 1 {p} i{i}.{name}", f"_http._tcp.{name} SRV 0 1 {p} i{i}.{name}",
                 f"i{i}.{name} A {a}"]
        hosts += [f"{a} {name}.{NS}", f"{a} i{i}.{name}.{NS}"]
        dnsmasq += [f"srv-host={name}.{NS},i{i}.{name}.{NS},{p},0,1", f"srv-host=_http._tcp.{name}.{NS},i{i}.{name}.{NS},{p},0,1"]
    services.append({"name": name, "instances": inst})
json.dump({"listen": f"127.0.0.1:{port}", "ttl_s": 5, "namespaces": [{"name": NS, "services": services}]},
          open(f"{out}/berth-dns.json", "w"))
open(f"{out}/berth.internal.zone", "w").write("\n".join(zone) + "\n")
open(f"{out}/dnsmasq.hosts", "w").write("\n".join(hosts) + "\n")
open(f"{out}/dnsmasq.conf", "w").write("\n".join(dnsmasq + [f"addn-hosts={out}/dnsmasq.hosts"]) + "\n")
with open(f"{out}/queries.txt", "w") as f:
    for q in range(30000):
        s = random.randrange(SVCS)
        r = random.random()
        if r < 0.4:
            f.write(f"svc-{s:04d}.{NS} A\n")
        elif r < 0.7:
            f.write(f"_http._tcp.svc-{s:04d}.{NS} SRV\n")
        else:
            f.write(f"nope-{q}.{NS} A\n")
