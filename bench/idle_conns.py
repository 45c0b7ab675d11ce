#!/usr/bin/env python3
"""idle_conns.py PORT PID N [--tls NAME] -- opens N keep-alive connections to the server, does one
request on each, leaves them idle, and prints the server's RSS growth per connection. With --tls,
over TLS (a full handshake each; NAME labels the line)."""
import socket, ssl, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tls = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--tls" else None
ctx = None
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    time.sleep(0.5)
before = rss_kib(pid)
socks = []
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if ctx:
        s = ctx.wrap_socket(s, server_hostname="bench.example")
    s.sendall(req)
    socks.append(s)
    if ctx or len(socks) % 500 == 0:  # read answers in batches so the server never holds many at once
        for x in socks[-1 if ctx else -500:]:
            x.recv(4096)
time.sleep(1.0)
after = rss_kib(pid)
per = (after - before) * 1024 / n
label = f"  {tls:8} {n} idle TLS connections" if tls else f"  {n} idle connections"
print(f"{label}: RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
for s in socks:
    s.close()
