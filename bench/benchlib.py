"""benchlib.py -- helpers for the Python halves of the bench scripts: JSON calls to berth APIs."""
import json, socket, struct, time, urllib.request


def api(port, method, path, body=None):
    """A JSON request to 127.0.0.1:<port>; returns (status, decoded body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait(fn, timeout):
    """Polls fn() every 0.1 s until it is true (True) or <timeout> seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if fn():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def srv_count(port, name):
    """How many SRV records berth-dns on 127.0.0.1:<port> answers for <name> (over TCP)."""
    q = struct.pack(">HHHHHH", 1, 0, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) \
        + b"\0" + struct.pack(">HH", 33, 1)
    with socket.create_connection(("127.0.0.1", int(port)), 2) as s:
        s.sendall(struct.pack(">H", len(q)) + q)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return struct.unpack(">H", data[2 + 6:2 + 8])[0] if len(data) >= 10 else 0
