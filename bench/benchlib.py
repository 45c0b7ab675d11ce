"""benchlib.py -- helpers for the Python halves of the bench scripts: JSON calls to berth APIs."""
import json, time, urllib.request


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
