#!/usr/bin/env python3
"""testssl.sh (Debian's `testssl`) against an HTTPS listener with the default policy: protocols,
cipher categories and every vulnerability check; none it rates HIGH or CRITICAL. (Certificate
findings are left out: the test's own CA is not trusted by testssl, which says nothing of berth.)
Run once, in the release build: the TLS code under the sanitizers is test_proxy_tls's."""
import collections, shutil
from harness import *

if os.environ.get("BERTH_SANITIZE") == "ON":
    print("1..0 # SKIP testssl runs in the release build")
    sys.exit(0)
t = Tap()
d = tempfile.mkdtemp(prefix="berth-testssl-")
atexit.register(shutil.rmtree, d, True)
ca = make_ca(d)
ec = make_cert(d, "ec", ["DNS:localhost", "IP:127.0.0.1"], ca=ca)
rsa = make_cert(d, "rsa", ["DNS:localhost", "IP:127.0.0.1"], ca=ca, kind="rsa")
L = free_port()
p = Proxy({"listeners": [{"name": "https", "listen": f"127.0.0.1:{L}", "protocol": "HTTPS",
                          "certificates": [{"cert": ec[0], "key": ec[1]}, {"cert": rsa[0], "key": rsa[1]}],
                          "default_action": {"fixed_response": {"status": 200, "body": "ok"}}}]})
report = os.path.join(d, "testssl.json")
r = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "batch", "-p", "-s", "-f", "-U",
                    "--jsonfile", report, f"127.0.0.1:{L}"], capture_output=True, text=True, timeout=280)
findings = json.load(open(report)) if os.path.exists(report) else []
t.ok(len(findings) > 30, f"testssl ran its checks ({len(findings)} findings)", r.stdout[-2000:] + r.stderr[-1000:])
sev = collections.Counter(f["severity"] for f in findings)
t.diag("testssl summary: " + ", ".join(f"{k} {v}" for k, v in sorted(sev.items())))
for f in findings:
    if f["severity"] not in ("OK", "INFO"):
        t.diag(f"  {f['severity']}: {f['id']}: {f['finding']}")
bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
t.is_(bad, [], "no finding rated HIGH or CRITICAL")
ids = {f["id"]: f for f in findings}
for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    t.ok(proto in ids and "not offered" in ids[proto]["finding"], f"{proto} not offered", ids.get(proto))
for proto in ("TLS1_2", "TLS1_3"):
    t.ok(proto in ids and ids[proto]["finding"].startswith("offered"), f"{proto} offered", ids.get(proto))
for vuln in ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_client_renego", "CRIME_TLS", "POODLE_SSL",
             "SWEET32", "FREAK", "LOGJAM", "BEAST"):
    t.ok(vuln in ids and ids[vuln]["severity"] in ("OK", "INFO"), f"{vuln}: not vulnerable", ids.get(vuln))
t.is_(p.stop(), 0, "exits 0")
t.done()
