#!/usr/bin/env python3
"""Request smuggling and desync regression suite (acceptance 4 of the proxy; issue 9's 1 and 2).

The target is a recording raw backend (rawbackend.py). Every malformed vector gets its status code
and a closed connection; every accepted request arrives as exactly one request, and the bytes the
target received parse as exactly the requests berth accepted under a strict and a lenient parser.
Rules may not be bypassed through absolute-form targets, a trailing dot in Host or unnormalised
paths, and no pooled target connection is reused after a tunnel or after bytes it should not send.
"""
import threading
from harness import *
from rawbackend import RawBackend

t = Tap()
be = RawBackend()
lp = free_port()
cfg = basic_config(lp, [be.addr], response_timeout_s=1.0)
cfg["target_groups"][0]["health_check"] = {"enabled": False}  # keep the target's log for requests only
fixed = lambda body: {"fixed_response": {"status": 403, "content_type": "text/plain", "body": body}}
cfg["listeners"][0]["rules"] = [
    {"priority": 1, "conditions": {"host_header": ["admin.local"]}, "action": fixed("blocked-host")},
    {"priority": 2, "conditions": {"path_pattern": ["/admin*"]}, "action": fixed("blocked-path")},
]
p = Proxy(cfg)

H = "Host: x\r\n"
vectors = [
    ("CL + TE", f"POST / HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE + CL (CL second)", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    ("duplicate Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("differing Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("Content-Length list", f"POST / HTTP/1.1\r\n{H}Content-Length: 3, 3\r\n\r\nabc", 400),
    ("malformed Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: 3x\r\n\r\nabc", 400),
    ("negative Content-Length", f"POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n", 400),
    ("TE not ending in chunked", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("TE chunked twice", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("unknown transfer coding", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n", 501),
    ("TE with trailing junk", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunkedx\r\n\r\n", 501),
    ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", f"GET / HTTP/1.1\r\n{H}X-A: 1\r\n  folded\r\n\r\n", 400),
    ("obs-fold on TE", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("whitespace before colon", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("bare CR in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\rX-B: 2\r\n\r\n", 400),
    ("bare LF in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\nX-B: 2\r\n\r\n", 400),
    ("NUL in header", f"GET / HTTP/1.1\r\n{H}X-A: 1\x002\r\n\r\n", 400),
    ("bad chunk size", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size overflow", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk data too long", f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),
    ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("oversized headers", f"GET / HTTP/1.1\r\n{H}X-Big: {'a' * 20000}\r\n\r\n", 431),
    ("garbage request line", "HELLO\r\n\r\n", 400),
]
for name, raw, want in vectors:
    out, closed = raw_exchange(lp, raw.encode("latin-1"))
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None
    t.is_(status, want, f"{name}: {want}")
    t.ok(closed, f"{name}: connection closed")
    t.ok(b"Connection: close" in out, f"{name}: response says Connection: close")

# The classic CL.TE smuggle: a second request hidden in a body must never reach the target.
smuggle = (f"POST / HTTP/1.1\r\n{H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           f"GET /smuggled HTTP/1.1\r\n{H}\r\n")
raw_exchange(lp, smuggle.encode())
time.sleep(0.3)
t.is_(be.received(False), [], "the target saw none of the bad requests")
bad_requests = len(vectors) + 1


def exchange(data, methods):
    """Sends raw bytes; reads one response per entry of <methods>, then whether the proxy closed."""
    s = socket.create_connection(("127.0.0.1", lp), 5)
    s.sendall(data)
    out = []
    try:
        for m in methods:
            out.append(read_response(s, m))
        s.settimeout(0.5)
        closed = read_response.__globals__["_readers"][s].read(1) == b""
    except (ConnectionError, socket.timeout, OSError):
        closed = False
    s.close()
    return out, closed


SMUGGLED = f"GET /smuggled HTTP/1.1\r\n{H}\r\n"
accepted = []  # request lines berth forwarded, in the order sent
# (name, raw, methods of the responses, statuses, forwarded request lines, body check)
cases = [
    ("Connection names Content-Length",
     f"POST /v1/cl HTTP/1.1\r\n{H}Connection: close, Content-Length\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n{SMUGGLED}",
     ["POST"], [200], ["POST /v1/cl HTTP/1.1"], None),
    ("Connection names Host",
     f"GET /v2/h HTTP/1.1\r\n{H}Connection: close, host\r\n\r\n", ["GET"], [200], ["GET /v2/h HTTP/1.1"], b"host=x"),
    ("Connection names Transfer-Encoding",
     f"POST /v3/te HTTP/1.1\r\n{H}Connection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
     f"{len(SMUGGLED):x}\r\n{SMUGGLED}\r\n0\r\n\r\n", ["POST"], [200], ["POST /v3/te HTTP/1.1"], None),
    ("HTTP/1.0 without Host gets a Host", "GET /v4/x HTTP/1.0\r\n\r\n", ["GET"], [200], ["GET /v4/x HTTP/1.1"],
     b"host=127.0.0.1:"),
    ("absolute-form cannot bypass a host rule",
     f"GET http://admin.local/v5/x HTTP/1.1\r\nHost: public\r\nConnection: close\r\n\r\n", ["GET"], [403], [], b"blocked-host"),
    ("absolute-form: the authority is routed and forwarded",
     f"GET http://public.local/v6/x?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n", ["GET"], [200],
     ["GET /v6/x?q=1 HTTP/1.1"], b"host=public.local"),
    ("absolute-form with userinfo", f"GET http://u@public.local/ HTTP/1.1\r\n{H}\r\n", ["GET"], [400], [], None),
    ("absolute-form with another scheme", f"GET ftp://public.local/ HTTP/1.1\r\n{H}\r\n", ["GET"], [400], [], None),
    ("Host with a trailing dot", "GET /v9 HTTP/1.1\r\nHost: admin.local.\r\nConnection: close\r\n\r\n", ["GET"], [403], [],
     b"blocked-host"),
    ("Host with a trailing dot, a port and capitals", "GET /v9 HTTP/1.1\r\nHost: ADMIN.local.:80\r\nConnection: close\r\n\r\n",
     ["GET"], [403], [], b"blocked-host"),
    ("Host with a slash", "GET /v9 HTTP/1.1\r\nHost: x/y\r\n\r\n", ["GET"], [400], [], None),
    ("Host with userinfo", "GET /v9 HTTP/1.1\r\nHost: a@admin.local\r\n\r\n", ["GET"], [400], [], None),
    ("CONNECT is refused", "CONNECT public.local:443 HTTP/1.1\r\nHost: public.local:443\r\n\r\n", ["GET"], [405], [], None),
    ("normalised path forwarded", f"GET /v14/a/./b/../c//%7Euser%2f?x=%2e HTTP/1.1\r\n{H}Connection: close\r\n\r\n",
     ["GET"], [200], ["GET /v14/a/c/~user%2F?x=%2e HTTP/1.1"], None),
    ("malformed percent-escape", f"GET /v15/%zz HTTP/1.1\r\n{H}\r\n", ["GET"], [400], [], None),
    ("relative target", f"GET v16 HTTP/1.1\r\n{H}\r\n", ["GET"], [400], [], None),
    ("response Connection names Content-Length: still framed",
     f"GET /conn-cl HTTP/1.1\r\n{H}\r\nGET /v17/after HTTP/1.1\r\n{H}Connection: close\r\n\r\n", ["GET", "GET"],
     [200, 200], ["GET /conn-cl HTTP/1.1", "GET /v17/after HTTP/1.1"], b"GET /v17/after host=x"),
    ("late body after HEAD does not poison the next response",
     f"HEAD /head-late HTTP/1.1\r\n{H}\r\nGET /v18/next HTTP/1.1\r\n{H}Connection: close\r\n\r\n", ["HEAD", "GET"],
     [200, 200], ["HEAD /head-late HTTP/1.1", "GET /v18/next HTTP/1.1"], b"GET /v18/next host=x"),
    ("a 204 with a body does not poison the next response",
     f"GET /204-body HTTP/1.1\r\n{H}\r\nGET /v19/next HTTP/1.1\r\n{H}Connection: close\r\n\r\n", ["GET", "GET"],
     [204, 200], ["GET /204-body HTTP/1.1", "GET /v19/next HTTP/1.1"], b"GET /v19/next host=x"),
    ("an unasked 101 is a 502 and its connection is closed",
     f"GET /v23/before HTTP/1.1\r\n{H}\r\nGET /switch HTTP/1.1\r\n{H}\r\nGET /v23/after HTTP/1.1\r\n{H}\r\n",
     ["GET", "GET"], [200, 502], ["GET /v23/before HTTP/1.1", "GET /switch HTTP/1.1"], None),
    ("Transfer-Encoding gzip, chunked keeps its coding",
     f"POST /v20/gz HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     ["POST"], [200], ["POST /v20/gz HTTP/1.1"], None),
]
for path in ["/public/../admin/x", "/%61dmin/x", "//admin/x", "/./admin", "/public/%2e%2E/admin", "/admin/."]:
    cases.append((f"path {path} cannot bypass a path rule", f"GET {path} HTTP/1.1\r\n{H}Connection: close\r\n\r\n",
                  ["GET"], [403], [], b"blocked-path"))
for name, raw, methods, want, fwd, body in cases:
    got, closed = exchange(raw.encode("latin-1"), methods)
    t.is_([r[0] for r in got], want, f"{name}: {want}")
    if body is not None:
        t.ok(got and body in got[-1][2], f"{name}: the answer says {body!r}", got)
    t.ok(closed, f"{name}: connection closed")
    accepted += fwd
    bad_requests += sum(1 for s in want if s in (400, 405))
    time.sleep(0.1)  # a late body lands in the pool before the next case

# A late body that arrives after the answer, while the connection idles in the pool.
be.late_delay = 0.3
got, _ = exchange(f"HEAD /head-late HTTP/1.1\r\n{H}Connection: close\r\n\r\n".encode(), ["HEAD"])
time.sleep(0.5)
got += exchange(f"GET /v21/next HTTP/1.1\r\n{H}Connection: close\r\n\r\n".encode(), ["GET"])[0]
t.is_([(r[0], r[2]) for r in got], [(200, b""), (200, b"GET /v21/next host=x")], "late bytes in the pool: next answer is its own")
accepted += ["HEAD /head-late HTTP/1.1", "GET /v21/next HTTP/1.1"]

sw = be.stream_of("GET /switch HTTP/1.1") or []
t.ok(sw[-1:] == ["GET /switch HTTP/1.1"], "the switched connection carried nothing after the 101", sw)
gz = [h for h in be.heads if h.startswith(b"POST /v20/gz ")]
t.ok(gz and b"Transfer-Encoding: gzip, chunked\r\n" in gz[0], "the target got Transfer-Encoding: gzip, chunked", gz)
t.is_(be.errors, [], "the target never saw a stream it could not parse")
for lenient in (False, True):
    kind = "lenient" if lenient else "strict"
    try:
        got = be.received(lenient)
    except Exception as e:
        got = f"parse error: {e}"
    t.is_(got, accepted, f"{kind} parser: the target's bytes are exactly the accepted requests")

# Slow upload: the response timeout (1 s here) starts when the request is sent, not before.
s = socket.create_connection(("127.0.0.1", lp), 10)
s.sendall(f"POST /v22/slow HTTP/1.1\r\n{H}Content-Length: 5\r\nConnection: close\r\n\r\n".encode())
for ch in b"abcde":
    time.sleep(0.5)
    s.sendall(bytes([ch]))
st = read_response(s, "POST")[0]
s.close()
t.is_(st, 200, "an upload slower than the response timeout is answered, not 504")

# 431 and 400 close gracefully (a lingering close): the client reads the whole answer and then EOF,
# not a reset, even while it is still sending.
for what, raw, want in [("431", f"GET / HTTP/1.1\r\n{H}X-Big: " + "a" * 300000, 431),
                        ("400", f"GET / HTTP/1.1\r\n{H}Content-Length: 1x\r\n\r\n" + "b" * 300000, 400)]:
    s = socket.create_connection(("127.0.0.1", lp), 10)
    sender = threading.Thread(target=lambda: [s.sendall(raw.encode()) if True else None], daemon=True)
    try:
        sender.start()
        out, reset = b"", False
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except ConnectionResetError:
        reset = True
    t.ok(out.startswith(f"HTTP/1.1 {want} ".encode()) and not reset, f"{what}: full answer, then EOF (no reset)",
         (out[:80], reset))
    s.close()
    bad_requests += 1

st, m = p.admin("GET", "/metrics")
t.ok(f"berth_proxy_bad_requests_total {bad_requests}\n" in m, "bad requests are counted in /metrics",
     [l for l in m.splitlines() if "bad_requests" in l])
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
be.close()
t.done()
