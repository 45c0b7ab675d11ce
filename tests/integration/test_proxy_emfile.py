#!/usr/bin/env python3
"""Out of file descriptors (issue 9, acceptance 3): with `ulimit -n 256` and 400 clients the proxy
pauses accepting instead of spinning (CPU below 50%, fewer than 100 log lines), established clients
keep getting answers, and it accepts again once descriptors free up."""
import resource
from harness import *


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SmallProxy(Proxy):
    preexec = staticmethod(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))


t = Tap()
be = Backend("a", log=False)
lp = free_port()
cfg = basic_config(lp, [be.addr])
cfg["target_groups"][0]["health_check"] = {"enabled": False}
cfg["listeners"][0]["header_timeout_s"] = 60  # idle flood connections are not timed out during the test
cfg["listeners"][0]["max_connections"] = 100000  # far above what 256 descriptors allow: EMFILE it is
p = SmallProxy(cfg)

# Five established keep-alive clients; their target connections are pooled.
est = [socket.create_connection(("127.0.0.1", lp), 5) for _ in range(5)]
for s in est:
    t.is_(http_request("127.0.0.1", lp, sock=s)[0], 200, "an established client is served")
log_before = len(p.log().splitlines())

flood = []
for _ in range(400):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", lp))  # completes in the kernel's backlog once the proxy stops accepting
    flood.append(s)
time.sleep(0.5)
c0, t0 = cpu_seconds(p.proc.pid), time.time()
time.sleep(2.0)
cpu = (cpu_seconds(p.proc.pid) - c0) / (time.time() - t0)
t.ok(cpu < 0.5, f"CPU while out of descriptors: {cpu:.0%} (< 50%)")
for s in est:
    t.is_(http_request("127.0.0.1", lp, sock=s)[0], 200, "an established client still gets answers")
lines = p.log().splitlines()[log_before:]
t.ok(len(lines) < 100, f"log lines while out of descriptors: {len(lines)} (< 100)", "\n".join(lines[:5]))
t.ok(any("out of file descriptors" in l for l in lines), "the shortage is logged", "\n".join(lines[:5]))

for s in flood:
    s.close()
time.sleep(0.3)
st = wait_until(lambda: http_request("127.0.0.1", lp, timeout=2)[0] == 200, 10)
t.ok(st, "a new client is served once descriptors are free again")
for s in est:
    s.close()
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
