#!/usr/bin/env python3
"""berth dev: one command runs scheduler, proxy and DNS and deploys the demo service through the
scheduler; it answers through the proxy (web.localhost) and by name in DNS; Ctrl-C (SIGINT) stops
everything, tasks included, with no process left behind."""
import urllib.request
from harness import *
import dnsclient as dc

t = Tap()
ports = {k: free_port() for k in ("port", "admin-port", "dns-port", "dns-admin-port", "scheduler-port")}
args = [os.path.join(BIN, "cli", "berth"), "dev"] + [x for k, v in ports.items() for x in (f"--{k}", str(v))]
dev = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
banner = ""
while "Ctrl-C" not in banner:
    line = dev.stdout.readline()
    if not line:
        break
    banner += line
t.ok(f"http://127.0.0.1:{ports['port']}/" in banner and "web.berth.internal" in banner and
     f"127.0.0.1:{ports['scheduler-port']}" in banner, "berth dev prints what is where", banner)


def tasks():
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['scheduler-port']}/v1/tasks?service=web&status=RUNNING", timeout=5) as r:
        return json.loads(r.read())["tasks"]


t.ok(wait_until(lambda: len(tasks()) == 2, 15), "the scheduler runs two demo tasks")
ids = {x["id"] for x in tasks()}
pids = [x["containers"][0]["pid"] for x in tasks()]


def bodies():
    return {http_request("127.0.0.1", ports["port"], headers={"Host": "web.localhost"})[2] for _ in range(8)}


t.ok(wait_until(lambda: bodies() == {f"hello from {i}\n".encode() for i in ids}, 15),
     "http://web.localhost/ answers through the proxy from both tasks")
t.is_(http_request("127.0.0.1", ports["port"], headers={"Host": "other"})[0], 404, "other hosts get the default 404")
t.ok(wait_until(lambda: len(dc.parse(dc.udp(ports["dns-port"], dc.query("web.berth.internal", "SRV")))["an"]) == 2, 10),
     "web.berth.internal SRV lists both tasks")
kids = subprocess.run(["pgrep", "-P", str(dev.pid)], capture_output=True, text=True).stdout.split()
t.is_(len(kids), 3, "three daemons: scheduler, proxy, dns")
dev.send_signal(signal.SIGINT)
t.is_(dev.wait(20), 0, "berth dev exits 0 on Ctrl-C")
time.sleep(0.5)
alive = [p for p in kids + [str(p) for p in pids]
         if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
t.is_(alive, [], "no berth or task process left behind")
t.done()
