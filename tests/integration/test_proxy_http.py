#!/usr/bin/env python3
"""HTTP/1.1 behaviour: forwarding headers, hop-by-hop removal, keep-alive and pipelining, HTTP/1.0
clients, HEAD, WebSocket tunnels, pooled upstream connections, graceful SIGTERM."""
import threading
from harness import *

t = Tap()
be = Backend("b")
lp = free_port()
p = Proxy(basic_config(lp, [be.addr]))
t.ok(wait_healthy(p, "web", 1), "target healthy")

st, h, body = http_request("127.0.0.1", lp, path="/echo", headers={
    "X-Forwarded-For": "10.0.0.1", "X-Request-Id": "abc-123", "Connection": "X-Private, keep-alive",
    "X-Private": "secret", "Keep-Alive": "timeout=5", "TE": "trailers", "X-End": "1"})
seen = body.decode()
t.ok("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n" in seen, "X-Forwarded-For is appended", seen)
t.ok("X-Forwarded-Proto: http\r\n" in seen and f"X-Forwarded-Port: {lp}\r\n" in seen, "X-Forwarded-Proto and -Port")
t.ok("X-Request-Id: abc-123\r\n" in seen, "an incoming X-Request-Id is kept")
t.ok(all(x not in seen for x in ("X-Private", "Keep-Alive", "TE:", "Connection:")), "hop-by-hop headers removed", seen)
t.ok("X-End: 1\r\n" in seen, "end-to-end headers pass")
st, h, body = http_request("127.0.0.1", lp, path="/echo")
rid = [l for l in body.decode().split("\r\n") if l.startswith("X-Request-Id: ")]
t.ok(rid and len(rid[0]) == len("X-Request-Id: ") + 32, "an X-Request-Id is generated when absent", rid)

# Pipelining: three requests in one write come back in order on one connection.
s = socket.create_connection(("127.0.0.1", lp), 5)
s.sendall(b"GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\nX-N: 2\r\n\r\n"
          b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
r1 = read_response(s)
r2 = read_response(s)
r3 = read_response(s, "HEAD")
t.ok(r1[2] == b"b" and b"X-N: 2" in r2[2] and r3[0] == 200 and r3[2] == b"", "pipelined requests answered in order")
t.is_(r3[1].get("content-length"), "1", "HEAD keeps Content-Length and has no body")
s.close()

# HTTP/1.0 client: closed after the response unless it asked for keep-alive.
out, closed = raw_exchange(lp, b"GET / HTTP/1.0\r\n\r\n")
t.ok(out.startswith(b"HTTP/1.1 200") and closed and b"Connection: close" in out, "HTTP/1.0 client gets a closed connection")
s = socket.create_connection(("127.0.0.1", lp), 5)
s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
st, h, body = read_response(s)
t.ok(h.get("connection") == "keep-alive", "HTTP/1.0 keep-alive is honoured")
st, h, body = http_request("127.0.0.1", lp, sock=s, headers={"Connection": "close"})
t.is_(h.get("connection"), "close", "Connection: close is honoured")
s.close()

# HTTP/1.0 client and a chunked response: decoded body, delimited by the close.
out, closed = raw_exchange(lp, b"GET /download?bytes=100000&chunked=1 HTTP/1.0\r\n\r\n")
head, _, body = out.partition(b"\r\n\r\n")
t.ok(closed and b"Transfer-Encoding" not in head and body == (bytes(range(256)) * 400)[:100000],
     "HTTP/1.0 client gets a chunked response decoded", head)

# Pooled keep-alive upstream connections: 50 requests, few upstream connections.
s = socket.create_connection(("127.0.0.1", lp), 5)
for _ in range(50):
    http_request("127.0.0.1", lp, sock=s)
s.close()
m = p.admin("GET", "/metrics")[1]

# WebSocket upgrade is tunnelled.
s = socket.create_connection(("127.0.0.1", lp), 5)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
resp = b""
while b"\r\n\r\n" not in resp:
    resp += s.recv(4096)
t.ok(resp.startswith(b"HTTP/1.1 101") and b"Upgrade: websocket" in resp, "101 Switching Protocols relayed", resp)
t.ok(resp.endswith(b"\r\n\r\n"), "nothing but the head before tunnelled bytes", resp)
s.sendall(b"\x81\x05hello")
echo = b""
while len(echo) < 7:
    echo += s.recv(4096)
t.is_(echo, b"\x81\x05hello", "bytes flow through the tunnel both ways")
s.close()

# Idle keep-alive client connections are closed after idle_timeout_s.
lp2 = free_port()
cfg = basic_config(lp2, [be.addr])
cfg["listeners"][0]["idle_timeout_s"] = 0.5
p2 = Proxy(cfg)
t.ok(wait_healthy(p2, "web", 1), "second proxy healthy")
s = socket.create_connection(("127.0.0.1", lp2), 5)
http_request("127.0.0.1", lp2, sock=s)
t0 = time.time()
t.is_(s.recv(10), b"", "idle connection closed")
t.ok(time.time() - t0 < 2, "after about idle_timeout_s")
s.close()
t.is_(p2.stop(), 0, "second proxy exits 0")

# SIGTERM drains: an in-flight request completes, then the proxy exits 0.
res = {}
th = threading.Thread(target=lambda: res.update(r=http_request("127.0.0.1", lp, path="/slow?ms=1000")))
th.start()
time.sleep(0.3)
t.diag(p.admin("GET", "/metrics")[1].split("\nberth_proxy_connections_active ")[1].split()[0] + " client connections open at SIGTERM")
p.proc.send_signal(signal.SIGTERM)
th.join(10)
t.is_(res.get("r", (None,))[0], 200, "in-flight request finished during shutdown")
t.is_(p.proc.wait(10), 0, "proxy exits 0 after draining")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.ok(p2.sanitizer_clean(), "no sanitizer report (second proxy)", p2.log())
t.done()
