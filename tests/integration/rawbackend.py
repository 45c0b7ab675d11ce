"""rawbackend.py -- a recording raw HTTP/1.1 target and two independent request parsers.

RawBackend runs in the test's own process (a thread): it keeps every byte each connection
received, frames requests with the strict parser to answer them, and answers by path:
  HEAD /head-late    200 with Content-Length: 5, then 5 body bytes it should not send
  GET  /204-body     204 that also sends a body
  GET  /conn-cl      200 whose Connection header names Content-Length
  GET  /switch       101 Switching Protocols nobody asked for
  anything else      200, body "<method> <target> host=<Host>"
parse_strict() and parse_lenient() read a recorded stream back into request lines: strict as RFC
9112 says; lenient as a forgiving server would (Content-Length wins over Transfer-Encoding, bare LF
ends lines, obs-fold joins, a missing Host is fine). A proxy that emits one unambiguous stream gives
both the same requests; a desynced one does not.
"""
import re, socket, threading, time


class ParseError(Exception):
    pass


def _lines_head(data, pos, lenient):
    """Returns (request line, [(name, value)], position after the head)."""
    if lenient:
        m = re.compile(rb"\r?\n\r?\n").search(data, pos)
        end, endlen = (m.start(), m.end() - m.start()) if m else (-1, 0)
    else:
        end, endlen = data.find(b"\r\n\r\n", pos), 4
    if end < 0:
        raise ParseError("incomplete head")
    raw = data[pos:end].decode("latin-1")
    lines = re.split(r"\r?\n", raw) if lenient else raw.split("\r\n")
    if not lenient and any("\n" in l or "\r" in l for l in lines):
        raise ParseError("bare CR/LF")
    reqline, fields = lines[0], []
    for l in lines[1:]:
        if l[:1] in (" ", "\t"):
            if not lenient or not fields:
                raise ParseError("obs-fold")
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + l.strip())
            continue
        if ":" not in l:
            raise ParseError("no colon")
        k, v = l.split(":", 1)
        if not lenient and (k != k.strip() or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", k)):
            raise ParseError("bad field name")
        fields.append((k.strip().lower(), v.strip()))
    return reqline, fields, end + endlen


def _chunked(data, pos, lenient):
    while True:
        m = re.compile(rb"([0-9A-Fa-f]+)[^\r\n]*\r?\n" if lenient else rb"([0-9A-Fa-f]+)(;[^\r\n]*)?\r\n").match(data, pos)
        if not m:
            raise ParseError("bad chunk size")
        size = int(m.group(1), 16)
        pos = m.end() + size
        if size == 0:
            while True:  # trailers
                e = data.find(b"\n", pos)
                if e < 0:
                    raise ParseError("incomplete trailers")
                line, pos = data[pos:e + 1], e + 1
                if line in (b"\r\n", b"\n"):
                    return pos
        if data[pos:pos + 2] != b"\r\n" and not (lenient and data[pos:pos + 1] == b"\n"):
            raise ParseError("chunk not followed by CRLF")
        pos += 2 if data[pos:pos + 2] == b"\r\n" else 1


def parse_one(data, pos, lenient):
    """Parses one request at <pos>: (request line, fields, body, next position)."""
    reqline, fields, pos = _lines_head(data, pos, lenient)
    parts = reqline.split(" ")
    if len(parts) != 3 or not re.fullmatch(r"HTTP/1\.[01]", parts[2]):
        raise ParseError(f"bad request line {reqline!r}")
    names = [k for k, _ in fields]
    if not lenient and (names.count("host") != 1 and parts[2] == "HTTP/1.1"):
        raise ParseError("Host count")
    cls = [v for k, v in fields if k == "content-length"]
    tes = [v for k, v in fields if k == "transfer-encoding"]
    if lenient and cls:
        n = int(cls[0].split(",")[0])
        return reqline, fields, data[pos:pos + n], pos + n
    if tes:
        codings = [c.strip().lower() for t in tes for c in t.split(",")]
        if not lenient and (cls or codings[-1] != "chunked" or codings.count("chunked") != 1):
            raise ParseError("bad Transfer-Encoding framing")
        if "chunked" in codings:
            start = pos
            pos = _chunked(data, pos, lenient)
            return reqline, fields, data[start:pos], pos
    if cls:
        if len(cls) != 1 or not re.fullmatch(r"[0-9]+", cls[0]):
            raise ParseError("bad Content-Length")
        n = int(cls[0])
        if pos + n > len(data):
            raise ParseError("incomplete body")
        return reqline, fields, data[pos:pos + n], pos + n
    return reqline, fields, b"", pos


def parse_stream(data, lenient):
    """All requests in one connection's bytes: [(request line, fields)]; raises ParseError."""
    out, pos = [], 0
    while pos < len(data):
        reqline, fields, _, pos = parse_one(data, pos, lenient)
        out.append((reqline, fields))
    return out


class RawBackend:
    def __init__(self, late_delay=0.05):
        self.late_delay = late_delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.streams = []  # bytearray per connection
        self.heads = []  # every request head as received (bytes), in order
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = bytearray()
        with self.lock:
            self.streams.append(buf)
        pending = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                with self.lock:
                    buf += d
                pending += d
                while True:
                    try:
                        reqline, fields, body, pos = parse_one(pending, 0, False)
                    except ParseError as e:
                        if "incomplete" in str(e):
                            break
                        with self.lock:
                            self.errors.append(f"{e}: {bytes(pending[:200])!r}")
                        return
                    with self.lock:
                        self.heads.append(pending[:pending.find(b"\r\n\r\n") + 4])
                    pending = pending[pos:]
                    self._answer(c, reqline, dict(fields))
        except OSError:
            return
        finally:
            c.close()

    def _answer(self, c, reqline, fields):
        method, target, _ = reqline.split(" ")
        if target == "/head-late":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            time.sleep(self.late_delay)
            c.sendall(b"hello")
            return
        if target == "/204-body":
            c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\ngarbage")
            return
        if target == "/switch":
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")
            return
        if target == "/conn-cl":
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello")
            return
        body = f"{method} {target} host={fields.get('host')}".encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + (b"" if method == "HEAD" else body))

    def received(self, lenient):
        """The request lines of every recorded stream, parsed again from the raw bytes."""
        with self.lock:
            streams = [bytes(s) for s in self.streams]
        out = []
        for s in streams:
            out += [r for r, _ in parse_stream(s, lenient)]
        return out

    def stream_of(self, request_line):
        """The request lines of the connection that carried <request_line>."""
        with self.lock:
            streams = [bytes(s) for s in self.streams]
        for s in streams:
            lines = [r for r, _ in parse_stream(s, False)]
            if request_line in lines:
                return lines
        return None

    def connections(self):
        with self.lock:
            return len(self.streams)

    def close(self):
        self.sock.close()
