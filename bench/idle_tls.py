#!/usr/bin/env python3
"""idle_tls.py PORT PID N [NAME] -- opens N TLS keep-alive connections (full handshake, one request
each), leaves them idle, and prints the server's RSS growth per connection."""
import socket, ssl, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
name = sys.argv[4] if len(sys.argv) > 4 else "server"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
time.sleep(0.5)
before = rss_kib(pid)
socks = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="bench.example")
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    s.recv(4096)
    socks.append(s)
time.sleep(1.0)
after = rss_kib(pid)
print(f"  {name:8} {n} idle TLS connections: RSS {before} KiB -> {after} KiB, "
      f"{(after - before) * 1024 / n:.0f} bytes per connection")
for s in socks:
    s.close()
