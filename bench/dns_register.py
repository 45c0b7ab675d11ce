#!/usr/bin/env python3
"""dns_register.py ADMIN_PORT N -- registers N instances through berth-dns's admin API over one
keep-alive connection and prints the elapsed time."""
import http.client, json, sys, time

port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
t0 = time.time()
for k in range(n):
    body = json.dumps({"address": f"127.2.{k // 250 % 250}.{k % 250 + 1}", "port": 30000 + k % 1000})
    c.request("PUT", f"/v1/namespaces/berth.internal/services/reg-{k % 100}/instances/r{k}", body,
              {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status not in (200, 201):
        sys.exit(f"registration {k}: HTTP {r.status}")
dt = time.time() - t0
print(f"  {n} instance registrations through the admin API: {dt:.2f} s ({n / dt:.0f}/s)")
