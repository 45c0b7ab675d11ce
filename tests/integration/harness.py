"""harness.py -- TAP output, free ports, and real berth processes for integration tests.

Every process started here is stopped at exit, also when a test fails.
"""
import atexit, json, os, signal, socket, ssl, subprocess, sys, tempfile, time, urllib.request, weakref

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("BERTH_BIN_DIR", os.path.join(HERE, "..", "..", "build"))
_procs = []


class Tap:
    """Minimal TAP producer: ok(), is_(), then done() prints the plan and exits."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines() or [""]:
                    print(f"# {line}", flush=True)
        return cond

    def is_(self, got, want, name):
        return self.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}")

    def diag(self, msg):
        print(f"# {msg}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        stop_all()
        sys.exit(1 if self.failed else 0)


_handed_out = set()


def free_port():
    """A port nothing listens on now, and never one this test was given before: the kernel may hand
    the same free port to two binds in a row, and a test often asks for two before using either."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _handed_out:
            _handed_out.add(p)
            return p


def stop_all():
    for p in _procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(5)
            except Exception:
                p.kill()
    _procs.clear()


atexit.register(stop_all)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def wait_until(fn, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:
            pass
        time.sleep(step)
    return None


def wait_port(port, timeout=10.0):
    def up():
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    return wait_until(up, timeout)


class Backend:
    def __init__(self, name, port=None, log=True, delay_ms=0, tls=None):
        self.name = name
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log = tempfile.mktemp(prefix=f"berth-backend-{name}-") if log else None
        args = [sys.executable, os.path.join(HERE, "backend.py"), "--port", str(self.port), "--name", name]
        if self.log:
            args += ["--log", self.log]
        if delay_ms:
            args += ["--delay-ms", str(delay_ms)]
        if tls:  # (cert, key): HTTPS
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = spawn(args, stdout=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError(f"backend {name} did not start")

    def requests(self):
        if not self.log or not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def set_health(self, ok):
        http_request("127.0.0.1", self.port, "POST", f"/_health?ok={1 if ok else 0}")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Daemon:
    """A berth daemon run with <config> (a dict) written to a temporary file, stderr kept in a log."""

    binary = None  # path below the build directory
    extra_args = []
    api_in_listen = False  # the HTTP API is on "listen" rather than "admin.listen"
    preexec = None  # run in the child before exec (e.g. to set rlimits)
    token = None  # sent as "Authorization: Bearer" by admin() unless a call names another
    ca = None  # the API speaks HTTPS: admin() verifies it against this CA file

    def __init__(self, config, admin_port=None, check_ready=True, env=None):
        self.admin_port = admin_port or free_port()
        if self.api_in_listen:
            config.setdefault("listen", f"127.0.0.1:{self.admin_port}")
        else:
            config.setdefault("admin", {"listen": f"127.0.0.1:{self.admin_port}"})
        self.config = config
        name = os.path.basename(self.binary)
        fd, self.config_path = tempfile.mkstemp(prefix=name + "-", suffix=".json")
        os.write(fd, json.dumps(config).encode())
        os.close(fd)
        self.stderr_path = self.config_path + ".log"
        self.stderr = open(self.stderr_path, "w")
        self.proc = spawn([os.path.join(BIN, self.binary), "-c", self.config_path] + self.extra_args,
                          stderr=self.stderr, stdout=subprocess.DEVNULL, preexec_fn=self.preexec, env=env)
        if check_ready and not wait_until(lambda: self.admin("GET", "/healthz")[0] == 200, 10):
            raise RuntimeError(f"{name} did not become ready:\n" + self.log())

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def rewrite(self, config):
        if not self.api_in_listen:
            config.setdefault("admin", {"listen": f"127.0.0.1:{self.admin_port}"})
        with open(self.config_path, "w") as f:
            json.dump(config, f)

    def admin(self, method, path, body=None, token=False):
        """One API call; <token>: False for self.token, None for no token, or a token to send."""
        data = json.dumps(body).encode() if body is not None else None
        scheme = "https" if self.ca else "http"
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{self.admin_port}{path}", data=data, method=method)
        ctx = ssl.create_default_context(cafile=self.ca) if self.ca else None
        tok = self.token if token is False else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if r.headers.get("Content-Type", "").startswith("application/json") else raw.decode())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode()

    def sanitizer_clean(self):
        text = self.log()
        return not any(s in text for s in ("AddressSanitizer", "runtime error:", "LeakSanitizer"))


    def log(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM, wait, and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http_request(host, port, method="GET", path="/", headers=None, body=b"", timeout=10, sock=None):
    """One HTTP/1.1 request over a new (or given) connection; returns (status, headers dict, body)."""
    own = sock is None
    s = sock or socket.create_connection((host, port), timeout)
    h = {"Host": "test"}
    h.update(headers or {})
    if body and "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    raw = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    s.sendall(raw.encode() + body)
    resp = read_response(s, method)
    if own:
        s.close()
    return resp


class SockReader:
    """Buffered reads on a socket without makefile(), so socket.close() really closes it."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def _fill(self):
        d = self.s.recv(65536)
        self.buf += d
        return bool(d)

    def readline(self):
        while b"\n" not in self.buf:
            if not self._fill():
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read(self, n=None):
        while n is None or len(self.buf) < n:
            if not self._fill():
                break
        if n is None:
            n = len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


_readers = weakref.WeakKeyDictionary()


def read_response(s, method="GET"):
    # One buffered reader per socket, so pipelined responses are not lost between calls.
    f = _readers.get(s)
    if f is None:
        f = _readers[s] = SockReader(s)
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("closed without a response")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        l = f.readline()
        if l in (b"\r\n", b""):
            break
        k, v = l.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if method != "HEAD" and status not in (204, 304) and status >= 200:
        if "chunked" in headers.get("transfer-encoding", ""):
            while True:
                size = int(f.readline().split(b";")[0], 16)
                if size == 0:
                    f.readline()
                    break
                body += f.read(size)
                f.readline()
        elif "content-length" in headers:
            body = f.read(int(headers["content-length"]))
        else:
            body = f.read()
    return status, headers, body


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes, reads until the proxy closes; returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(data)
    out = b""
    closed = False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out, closed


def make_ca(d):
    """A private CA in directory <d> (made with openssl req); returns (cert, key)."""
    cert, key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=berth test CA"],
                   check=True, capture_output=True)
    return cert, key


def make_cert(d, name, sans, ca=None, kind="ec", days=30):
    """A certificate <name>.pem / <name>.key in <d> for <sans> ("DNS:a.example", "IP:127.0.0.1"), signed
    by <ca> (cert, key) or self-signed; <kind> "ec" (P-256) or "rsa" (2048). Returns (cert, key)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else ["-newkey", "rsa:2048"]
    cn = sans[0].split(":", 1)[1]
    ext = ["-addext", "subjectAltName=" + ",".join(sans)]
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert, "-days", str(days),
                        "-subj", f"/CN={cn}", *ext], check=True, capture_output=True)
    else:
        csr = os.path.join(d, name + ".csr")
        subprocess.run(["openssl", "req", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}", *ext],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                        "-out", cert, "-days", str(days), "-copy_extensions", "copy"], check=True, capture_output=True)
    return cert, key


def peer_subject(port, servername=None, extra=()):
    """The CN of the certificate a TLS server on <port> presents (openssl s_client), or the error."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra]
    args += ["-servername", servername] if servername else ["-noservername"]
    r = subprocess.run(args, input="", capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        if line.startswith("subject="):
            return line.split("CN = ", 1)[-1].strip()
    return "error: " + (r.stderr.strip().splitlines() or ["?"])[-1]


def basic_config(listen_port, targets, **tg):
    group = {"name": "web", "targets": [{"address": t} for t in targets],
             "health_check": {"path": "/health", "interval_s": 0.5, "timeout_s": 0.4,
                              "healthy_threshold": 1, "unhealthy_threshold": 2}}
    group.update(tg)
    return {"listeners": [{"name": "http", "listen": f"127.0.0.1:{listen_port}",
                           "default_action": {"forward": [{"target_group": "web"}]}}],
            "target_groups": [group]}


def wait_healthy(proxy, tg, n, timeout=10):
    return wait_until(lambda: sum(1 for s in proxy.target_states(tg).values() if s == "healthy") == n, timeout)


def run_wrk(port, seconds, conns=8, path="/", host="test", scheme="http"):
    """Runs wrk against the proxy; returns (requests, non2xx, socket_errors, raw output)."""
    import re
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-H", f"Host: {host}",
                          f"{scheme}://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return reqs, non2xx, errors, out


def check_wrk_clean(t, wrk, during):
    """Asserts that a run_wrk() result ran real load with no non-2xx and no socket errors."""
    reqs, non2xx, errors, out = wrk
    t.diag(f"wrk: {reqs} requests, {non2xx} non-2xx, {errors} socket errors")
    t.ok(reqs > 1000, "the load ran", out)
    t.is_(non2xx, 0, f"no non-2xx response {during}")
    t.is_(errors, 0, f"no socket errors {during}")


def exec_interactive(berth, env, task_id, script, timeout=20):
    """Runs `berth task exec ID -it -- sh` on a pseudo-terminal, types <script> once the shell shows
    its prompt, and reads until the end; returns (berth's exit code, what the terminal showed)."""
    import pty, select
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(berth, [berth, "task", "exec", task_id, "-it", "--", "sh"], env)
    seen, typed, end = b"", False, time.time() + timeout
    while time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: berth has exited
                break
            if not chunk:
                break
            seen += chunk
        if not typed and any(p in seen for p in (b"$ ", b"# ")):
            os.write(fd, script.encode())
            typed = True
    if time.time() >= end:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


SANITIZED = os.environ.get("BERTH_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")


class Proxy(Daemon):
    """Runs build/proxy/berth-proxy on free ports."""

    binary = "proxy/berth-proxy"

    def target_states(self, tg):
        st, body = self.admin("GET", f"/v1/target-groups/{tg}")
        return {t["address"]: t["state"] for t in body["targets"]}


class Dns(Daemon):
    """Runs build/discovery/berth-dns on free ports (DNS on self.port)."""

    binary = "discovery/berth-dns"

    def __init__(self, config, admin_port=None):
        self.port = free_port()
        config.setdefault("listen", f"127.0.0.1:{self.port}")
        super().__init__(config, admin_port=admin_port)


class Scheduler(Daemon):
    """Runs build/scheduler/berth-scheduler with its API on a free port and <data_dir>.
    Tasks it starts are killed when it stops (--stop-tasks), also if a test fails."""

    binary = "scheduler/berth-scheduler"
    api_in_listen = True
    extra_args = ["--stop-tasks"]

    def __init__(self, data_dir, admin_port=None, agent=None, env=None, **extra):
        self.data_dir = data_dir
        config = {"data_dir": data_dir, **extra}
        if agent:
            config["agent"] = agent
        super().__init__(config, admin_port=admin_port, env=env)

    def task_pids(self):
        return [c["pid"] for t in self.admin("GET", "/v1/tasks")[1]["tasks"] for c in t.get("containers", [])
                if c.get("pid") and t["last_status"] != "STOPPED"]


class Agent(Daemon):
    """Runs build/scheduler/berth-agent as node <node_id> of <scheduler>, its API on a free port.
    Tasks it runs are killed when it stops (--stop-tasks), also if a test fails."""

    binary = "scheduler/berth-agent"
    api_in_listen = True
    extra_args = ["--stop-tasks"]

    def __init__(self, scheduler, node_id, data_dir=None, **extra):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="berth-agent-")
        scheme = "https" if scheduler.ca else "http"
        super().__init__({"scheduler": f"{scheme}://127.0.0.1:{scheduler.admin_port}", "node_id": node_id,
                          "data_dir": self.data_dir, "heartbeat_interval_s": 0.3, **extra})
