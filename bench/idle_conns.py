#!/usr/bin/env python3
"""idle_conns.py PORT PID N -- opens N keep-alive connections to the proxy, does one request on each,
leaves them idle, and prints the proxy's RSS growth per connection."""
import selectors, socket, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
before = rss_kib(pid)
socks = []
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
    if len(socks) % 500 == 0:  # read answers in batches so the proxy never holds many at once
        for x in socks[-500:]:
            x.recv(4096)
for x in socks[-(n % 500 or 500):]:
    pass
time.sleep(1.0)
after = rss_kib(pid)
per = (after - before) * 1024 / n
print(f"  {n} idle connections: RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
for s in socks:
    s.close()
