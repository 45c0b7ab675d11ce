"""containers.py -- a real container engine and a real registry for the container tests, each of the
test's own: Podman's API service (`podman system service`) with its storage, run state and config in a
temporary directory, and Debian's docker-registry on a free loopback port. Images are built by the
test from local files (busybox and berth-demo-web with its libraries), imported and pushed: nothing
comes from the internet. Everything is removed at exit, also when a test fails (after the berth
daemons, which remove their containers, have stopped)."""
import atexit, json, os, shutil, socket, subprocess, tempfile, time, http.client
import harness
from harness import BIN, free_port, wait_until

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "wget", "cat", "id", "ls", "ps", "sleep", "yes", "head", "grep", "env", "touch", "echo", "ip",
           "awk", "seq", "tr", "test", "printf", "kill", "true", "false", "rm", "mkdir", "hostname", "wc", "timeout",
           "mount"]
_cleanups = []


def _cleanup():
    harness.stop_all()  # first the berth daemons: --stop-tasks removes their containers through the engine
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception as e:
            print(f"# cleanup: {e}", flush=True)
    _cleanups.clear()


atexit.register(_cleanup)


class Registry:
    """docker-registry on 127.0.0.1:<free port>, its storage in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-registry-")
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: {self.addr}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "log"), "w"))
        _cleanups.append(self.close)
        if not wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), 0.5), 10):
            raise RuntimeError("docker-registry did not start")

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Engine:
    """Podman's Docker-compatible API service on a unix socket of its own: runc as the OCI runtime
    (crun fails on hybrid cgroup v1), cgroupfs, default nofile/nproc limits within the machine's hard
    limit, and <registry> marked insecure."""

    def __init__(self, registry):
        self.dir = tempfile.mkdtemp(prefix="berth-engine-")
        self.sock = os.path.join(self.dir, "podman.sock")
        self.url = "unix://" + self.sock
        conf, regs = os.path.join(self.dir, "containers.conf"), os.path.join(self.dir, "registries.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'exit_command_delay = 10\n')
        with open(regs, "w") as f:
            f.write(f'[[registry]]\nlocation = "{registry.addr}"\ninsecure = true\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_REGISTRIES_CONF=regs)
        self.podman = ["podman", "--root", os.path.join(self.dir, "root"), "--runroot", os.path.join(self.dir, "run")]
        self.proc = subprocess.Popen(self.podman + ["system", "service", "--time=0", self.url], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        _cleanups.append(self.close)
        if not wait_until(lambda: self.api("GET", "/_ping")[0] == 200, 20):
            raise RuntimeError("podman system service did not start:\n" + open(os.path.join(self.dir, "log")).read())

    def run(self, *args, check=True):
        return subprocess.run(self.podman + list(args), env=self.env, capture_output=True, text=True, check=check,
                              timeout=120)

    def api(self, method, path, body=None):
        """One Docker Engine API call on the socket: (status, parsed JSON or text)."""
        class Conn(http.client.HTTPConnection):
            def connect(self_):
                self_.sock = socket.socket(socket.AF_UNIX)
                self_.sock.settimeout(30)
                self_.sock.connect(self.sock)
        c = Conn("engine")
        try:
            c.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode(errors="replace")
        except OSError as e:
            return 0, str(e)
        finally:
            c.close()

    def containers(self, label=None):
        q = "?all=1" + ("&filters=" + json.dumps({"label": [label]}) if label else "")
        st, body = self.api("GET", "/containers/json" + q.replace('"', "%22").replace(" ", ""))
        return body if st == 200 else []

    def close(self):
        for c in self.containers():
            self.api("DELETE", f"/containers/{c['Id']}?force=1")
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # Storage the engine mounted under its root (overlay layers, the run directory's shm) goes first.
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(self.dir)]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def build_image(engine, registry, name, tag, env=None, entrypoint=None, keep_local=False):
    """Builds <registry>/<name>:<tag> from busybox and berth-demo-web (with the libraries it links),
    a user "app" (1000:1000), pushes it to the registry and, unless <keep_local>, removes the local
    copy so the agent has to pull it. Returns the image reference."""
    ref = f"{registry.addr}/{name}:{tag}"
    root = tempfile.mkdtemp(prefix="berth-rootfs-")
    try:
        for d in ("bin", "app", "tmp", "etc", "data", "proc", "sys", "dev"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", a))
        demo = os.path.join(BIN, "demo", "berth-demo-web")
        shutil.copy(demo, os.path.join(root, "app", "web"))
        ldd = subprocess.run(["ldd", demo], capture_output=True, text=True, check=True).stdout
        for line in ldd.splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 and parts[2].startswith("/") else (
                parts[0] if parts and parts[0].startswith("/") else None)
            if lib:
                dst = os.path.join(root, lib.lstrip("/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(lib, dst)
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")
        with open(os.path.join(root, "etc", "group"), "w") as f:
            f.write("root:x:0:\napp:x:1000:\n")
        tar = root + ".tar"
        subprocess.run(["tar", "-C", root, "-cf", tar, "."], check=True)
        changes = ["--change", f"ENTRYPOINT {json.dumps(entrypoint or ['/app/web'])}", "--change", "ENV BIND=0.0.0.0",
                   "--change", "WORKDIR /app"]
        for k, v in (env or {}).items():
            changes += ["--change", f"ENV {k}={v}"]
        engine.run("import", *changes, tar, ref)
        os.unlink(tar)
        engine.run("push", "--tls-verify=false", ref)
        if not keep_local:
            engine.run("rmi", ref)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return ref
