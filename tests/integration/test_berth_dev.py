#!/usr/bin/env python3
"""berth dev: one command runs the plane; the demo service answers through the proxy and by name in
DNS; Ctrl-C (SIGINT) stops everything with no process left behind."""
from harness import *
import dnsclient as dc

t = Tap()
ports = {k: free_port() for k in ("port", "admin-port", "dns-port", "dns-admin-port")}
args = [os.path.join(BIN, "cli", "berth"), "dev"] + [x for k, v in ports.items() for x in (f"--{k}", str(v))]
dev = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
banner = ""
while "Ctrl-C" not in banner:
    line = dev.stdout.readline()
    if not line:
        break
    banner += line
t.ok(f"http://127.0.0.1:{ports['port']}/" in banner and "web.berth.internal" in banner, "berth dev prints what is where",
     banner)
ok = wait_until(lambda: http_request("127.0.0.1", ports["port"], headers={"Host": "web.localhost"})[0] == 200, 15)
t.ok(ok, "http://web.localhost/ answers through the proxy")
bodies = {http_request("127.0.0.1", ports["port"], headers={"Host": "web.localhost"})[2] for _ in range(6)}
t.is_(bodies, {b"hello from web-1\n", b"hello from web-2\n"}, "from both demo tasks")
t.is_(http_request("127.0.0.1", ports["port"], headers={"Host": "other"})[0], 404, "other hosts get the default 404")
r = dc.parse(dc.udp(ports["dns-port"], dc.query("web.berth.internal", "SRV")))
t.is_(len(r["an"]), 2, "web.berth.internal SRV lists both tasks")
kids = subprocess.run(["pgrep", "-P", str(dev.pid)], capture_output=True, text=True).stdout.split()
t.is_(len(kids), 4, "four processes: two tasks, proxy, dns")
dev.send_signal(signal.SIGINT)
t.is_(dev.wait(15), 0, "berth dev exits 0 on Ctrl-C")
time.sleep(0.3)
t.ok(not any(os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().split()[2] != "Z" for k in kids),
     "no berth or task process left behind")
t.done()
