#!/usr/bin/env python3
"""Robustness: a bounded storm of misbehaving clients (aborts mid-request and mid-response,
half-closes, pipelining, slow readers, garbage, oversized heads) and a target that resets
connections. The proxy must keep serving, leak no connection, and (in the sanitizer build)
produce no sanitizer report."""
import random, struct, threading
from harness import *

t = Tap()
rng = random.Random(1234)
good, flaky = Backend("good", log=False), Backend("flaky", log=False)
lp = free_port()
cfg = basic_config(lp, [good.addr, flaky.addr], outlier_consecutive_failures=100)
cfg["listeners"][0]["header_timeout_s"] = 1
p = Proxy(cfg)
t.ok(wait_healthy(p, "web", 2), "targets healthy")

H = "Host: chaos\r\n"
actions = [
    lambda s: s.sendall(f"GET / HTTP/1.1\r\n{H}\r\n".encode()),                      # normal, then close
    lambda s: s.sendall(f"GET /slow?ms=300 HTTP/1.1\r\n{H}\r\n".encode()),           # close before the answer
    lambda s: s.sendall(f"POST /upload HTTP/1.1\r\n{H}Content-Length: 100000\r\n\r\n".encode() + b"x" * 5000),  # body cut
    lambda s: (s.sendall(f"GET / HTTP/1.1\r\n{H}\r\n".encode()), s.shutdown(socket.SHUT_WR)),  # half-close
    lambda s: s.sendall((f"GET / HTTP/1.1\r\n{H}\r\n" * 20).encode()),                # pipelined burst
    lambda s: s.sendall(f"GET /download?bytes=2000000 HTTP/1.1\r\n{H}\r\n".encode()),  # big answer, never read
    lambda s: s.sendall(bytes(rng.randrange(256) for _ in range(200))),             # garbage
    lambda s: s.sendall(f"GET / HTTP/1.1\r\n{H}X: {'a' * 30000}\r\n\r\n".encode()),  # oversized head
    lambda s: s.sendall(f"POST /upload HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nab".encode()),  # chunk cut
    lambda s: s.sendall(f"GET /ws HTTP/1.1\r\n{H}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw".encode()),
    lambda s: s.sendall(b"GET / HTTP/1.1\r\nHo"),                                     # partial head, then close
]
stop = time.time() + 6
count = [0]


def storm():
    while time.time() < stop and count[0] < 3000:
        count[0] += 1
        try:
            s = socket.create_connection(("127.0.0.1", lp), 2)
            s.settimeout(0.2)
            rng.choice(actions)(s)
            if rng.random() < 0.5:
                s.recv(rng.choice([1, 100, 4096]))
            if rng.random() < 0.3:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
            s.close()
        except OSError:
            pass


def reset_target():
    # The flaky target goes away and comes back while the storm runs.
    while time.time() < stop:
        time.sleep(1.5)
        flaky.kill()
        time.sleep(0.5)
        Backend.__init__(flaky, "flaky", port=flaky.port, log=False)


ths = [threading.Thread(target=storm) for _ in range(6)] + [threading.Thread(target=reset_target)]
[x.start() for x in ths]
[x.join(30) for x in ths]
t.diag(f"{count[0]} chaotic connections")
t.ok(count[0] > 300, "the storm ran")
t.ok(all(http_request("127.0.0.1", lp)[0] == 200 for _ in range(10)), "the proxy still serves afterwards")
t.ok(wait_until(lambda: "berth_proxy_connections_active 0\n" in p.admin("GET", "/metrics")[1], 15),
     "every client connection was released")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log()[-3000:])
t.done()
