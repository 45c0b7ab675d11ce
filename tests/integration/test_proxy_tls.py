#!/usr/bin/env python3
"""HTTPS listeners (SPEC §6): certificates chosen by SNI, security policies, session resumption (also
across workers), certificates replaced under wrk load through the admin API and by SIGHUP, bad
certificates refused with the old ones serving, handshake timeouts against clients that never
finish, the HTTP->HTTPS redirect, X-Forwarded-Proto, and HTTPS target groups with verification."""
import re, shutil, threading
from harness import *

t = Tap()
d = tempfile.mkdtemp(prefix="berth-tls-")
atexit.register(shutil.rmtree, d, True)
ca = make_ca(d)
a = make_cert(d, "a", ["DNS:a.example", "DNS:*.wild.example"], ca=ca, kind="ec")
b = make_cert(d, "b", ["DNS:b.example"], ca=ca, kind="rsa")
a2 = make_cert(d, "a2", ["DNS:a2.example", "DNS:a.example", "DNS:*.wild.example"], ca=ca)
a3 = make_cert(d, "a3", ["DNS:a3.example", "DNS:a.example", "DNS:*.wild.example"], ca=ca)
tgt = make_cert(d, "target", ["IP:127.0.0.1"], ca=ca)
untrusted = make_cert(d, "untrusted", ["IP:127.0.0.1"])  # self-signed: not under the CA
certs = lambda *cs: [{"cert": c, "key": k} for c, k in cs]

web = Backend("web")
sec = Backend("sec", tls=tgt)
bad = Backend("bad", tls=untrusted)
L, L13, LEG, LH = free_port(), free_port(), free_port(), free_port()
HC = {"path": "/health", "interval_s": 0.5, "timeout_s": 0.4, "healthy_threshold": 1, "unhealthy_threshold": 1}
by_host = lambda prio, host, tg: {"priority": prio, "conditions": {"host_header": [host]},
                                  "action": {"forward": [{"target_group": tg}]}}


def config(main_certs):
    return {
        "listeners": [
            {"name": "https", "listen": f"127.0.0.1:{L}", "protocol": "HTTPS", "certificates": certs(*main_certs),
             "handshake_timeout_s": 2, "rules": [by_host(1, "sec.example", "sec"), by_host(2, "bad.example", "bad")],
             "default_action": {"forward": [{"target_group": "web"}]}},
            {"name": "tls13", "listen": f"127.0.0.1:{L13}", "protocol": "HTTPS", "certificates": certs(a),
             "ssl_policy": "ELBSecurityPolicy-TLS13-1-3-2021-06", "default_action": {"forward": [{"target_group": "web"}]}},
            {"name": "legacy", "listen": f"127.0.0.1:{LEG}", "protocol": "HTTPS", "certificates": certs(b),
             "ssl_policy": "ELBSecurityPolicy-2016-08", "default_action": {"forward": [{"target_group": "web"}]}},
            {"name": "http", "listen": f"127.0.0.1:{LH}",
             "rules": [{"priority": 1, "conditions": {"path_pattern": ["/*"]},
                        "action": {"redirect": {"status": 301, "location": "https://#{host}:" + str(L) + "/#{path}?#{query}"}}}],
             "default_action": {"forward": [{"target_group": "web"}]}}],
        "target_groups": [
            {"name": "web", "targets": [{"address": web.addr}], "health_check": HC},
            {"name": "sec", "protocol": "HTTPS", "ca_file": ca[0], "targets": [{"address": sec.addr}], "health_check": HC},
            {"name": "bad", "protocol": "HTTPS", "ca_file": ca[0], "targets": [{"address": bad.addr}], "health_check": HC}]}


p = Proxy(config([a, b]))
t.ok(wait_healthy(p, "web", 1), "plain target healthy")


def curl(port, host, path="/", extra=()):
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", ca[0], "--resolve",
                        f"{host}:{port}:127.0.0.1", *extra, f"https://{host}:{port}{path}"],
                       capture_output=True, text=True, timeout=10)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


# 1. SNI: exact, then wildcard, else the first certificate.
t.is_(peer_subject(L, "a.example"), "a.example", "SNI a.example: the ECDSA certificate")
t.is_(peer_subject(L, "b.example"), "b.example", "SNI b.example: the RSA certificate")
t.is_(peer_subject(L, "x.wild.example"), "a.example", "SNI x.wild.example: the wildcard's certificate")
t.is_(peer_subject(L, "other.example"), "a.example", "an unknown name: the first certificate")
t.is_(peer_subject(L, None), "a.example", "no SNI: the first certificate")
t.is_(curl(L, "b.example"), (200, "web"), "curl --resolve b.example verifies the chain and name, and is served")

# 2. Policies.
old = ("-cipher", "DEFAULT@SECLEVEL=0")  # lets the client offer TLS 1.0/1.1 at all
t.ok(peer_subject(L, "a.example", ("-tls1_1", *old)).startswith("error"), "default policy: TLS 1.1 refused")
t.ok(peer_subject(L, "a.example", ("-tls1", *old)).startswith("error"), "default policy: TLS 1.0 refused")
t.is_(peer_subject(L, "a.example", ("-tls1_2",)), "a.example", "default policy: TLS 1.2 accepted")
t.ok(peer_subject(L13, "a.example", ("-tls1_2",)).startswith("error"), "TLS 1.3-only policy: TLS 1.2 refused")
t.is_(peer_subject(L13, "a.example", ("-tls1_3",)), "a.example", "TLS 1.3-only policy: TLS 1.3 accepted")
t.is_(peer_subject(LEG, "b.example", ("-tls1", *old)), "b.example",
      "ELBSecurityPolicy-2016-08 accepts TLS 1.0 (the refusals above are the policy's)")
st, body = p.admin("GET", "/v1/listeners")
https = [x for x in body["listeners"] if x["name"] == "https"][0]
t.is_((https["protocol"], https["ssl_policy"], [c["name"] for c in https["loaded_certificates"]]),
      ("HTTPS", "ELBSecurityPolicy-TLS13-1-2-2021-06", ["a.example", "b.example"]), "the listener as the admin API shows it")


# 3. Resumption with openssl s_client -sess_out / -sess_in (the ticket arrives after the handshake).
def s_client(port, *args):
    return subprocess.run(f"(sleep 0.4) | openssl s_client -connect 127.0.0.1:{port} -servername a.example "
                          + " ".join(args), shell=True, capture_output=True, text=True, timeout=15).stdout


sess = os.path.join(d, "sess.pem")
first = s_client(L, "-sess_out", sess)
t.ok("New, TLS" in first, "a first connection is a full handshake")
t.ok("Reused, TLS" in s_client(L, "-sess_in", sess), "a second connection with its session resumes (Reused)")

# 7. Redirect, X-Forwarded-Proto, HTTPS targets.
st, hd, _ = http_request("127.0.0.1", LH, path="/x/y?q=1", headers={"Host": "shop.example"})
t.is_((st, hd.get("location")), (301, f"https://shop.example:{L}/x/y?q=1"), "HTTP->HTTPS is one redirect rule")
code, echo = curl(L, "a.example", "/echo")
t.ok(code == 200 and "X-Forwarded-Proto: https" in echo and f"X-Forwarded-Port: {L}" in echo,
     "X-Forwarded-Proto: https and the port reach the target", echo)
t.ok(wait_healthy(p, "sec", 1), "an HTTPS target verified against ca_file passes health checks over TLS")
t.is_(curl(L, "a.example", extra=("-H", "Host: sec.example")), (200, "sec"), "requests reach it over TLS")
t.ok(wait_until(lambda: p.target_states("bad") == {bad.addr: "unhealthy"}, 5), "an untrusted target fails its health checks")
t.is_(curl(L, "a.example", extra=("-H", "Host: bad.example"))[0], 502, "a request to the untrusted target: 502")
t.ok(re.search(r"target 127\.0\.0\.1:\d+: TLS handshake failed: certificate verify failed", p.log()),
     "with a clear log line", p.log()[-2000:])
t.ok(not any(ln.startswith("GET") for ln in bad.requests()), "and nothing reached the untrusted target")

# 4. Rotation under load: through the API, then by SIGHUP; zero errors.
res = {}
th = threading.Thread(target=lambda: res.setdefault("wrk", run_wrk(L, 6, conns=16, scheme="https")))
th.start()
time.sleep(1.5)
st, body = p.admin("PUT", "/v1/listeners/https/certificates", {"certificates": certs(a2, b)})
t.is_(st, 200, "certificates replaced through the admin API under load")
t.is_(peer_subject(L, "a.example"), "a2.example", "new connections get the new certificate")
time.sleep(1.5)
p.rewrite(config([a3, b]))
p.reload()
t.ok(wait_until(lambda: peer_subject(L, "a.example") == "a3.example", 5), "SIGHUP re-read the files: the newest certificate")
th.join()
check_wrk_clean(t, res["wrk"], "while certificates were replaced twice")

# 5. A bad certificate is refused and the old one keeps serving.
st, body = p.admin("PUT", "/v1/listeners/https/certificates", {"certificates": [{"cert": a[0], "key": b[1]}]})
t.ok(st == 400 and "not the key of" in body["error"]["message"], "a key that does not match: 400 saying so", body)
st, body = p.admin("PUT", "/v1/listeners/https/certificates", {"certificates": [{"cert": d + "/none.pem", "key": a[1]}]})
t.ok(st == 400 and "cannot read" in body["error"]["message"], "a missing file: 400 saying so", body)
cfg = config([a, b])
cfg["listeners"][0]["certificates"][0]["key"] = b[1]
p.rewrite(cfg)
p.reload()
t.ok(wait_until(lambda: "reload refused" in p.log(), 5), "a bad certificate on SIGHUP: reload refused")
t.is_(peer_subject(L, "a.example"), "a3.example", "and the old certificate keeps serving")
cfgfile = os.path.join(d, "bad.json")
with open(cfgfile, "w") as f:
    json.dump(cfg, f)
chk = subprocess.run([os.path.join(BIN, "proxy", "berth-proxy"), "-t", "-c", cfgfile], capture_output=True, text=True)
t.ok(chk.returncode == 2 and "listeners[0].certificates[0].key" in chk.stderr and "not the key of" in chk.stderr,
     "-t names the certificate and what is wrong", chk.stderr)
old_cert = make_cert(d, "expired", ["DNS:old.example"], ca=ca, days=0)
cfg = config([a, old_cert])
with open(cfgfile, "w") as f:
    json.dump(cfg, f)
time.sleep(1.1)
chk = subprocess.run([os.path.join(BIN, "proxy", "berth-proxy"), "-t", "-c", cfgfile], capture_output=True, text=True)
t.ok(chk.returncode == 2 and "listeners[0].certificates[1].cert" in chk.stderr and "expired" in chk.stderr,
     "-t refuses an expired certificate", chk.stderr)

# 6. 500 clients that never finish the handshake are closed at the timeout; a normal client is served.
idle = []
for _ in range(500):
    s = socket.create_connection(("127.0.0.1", L), 5)
    s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never the rest
    idle.append(s)
t0 = time.time()
t.is_(curl(L, "a.example")[0], 200, "a normal client is served while 500 handshakes hang")


def closed(s):
    s.settimeout(0.05)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


t.ok(wait_until(lambda: all(closed(s) for s in idle), 15), "all 500 are closed by the proxy")
t.ok(time.time() - t0 < 10, f"at the 2 s handshake timeout (all gone {time.time() - t0:.1f} s later)")
for s in idle:
    s.close()

m = p.admin("GET", "/metrics")[1]
val = lambda pat: sum(float(x) for x in re.findall("^" + pat + r" (\S+)$", m, re.M))
t.ok(val(r'berth_proxy_tls_handshakes_total\{result="ok",version="TLSv1\.3"\}') > 0, "metrics: TLS 1.3 handshakes")
t.ok(val(r'berth_proxy_tls_handshakes_total\{result="ok",version="TLSv1\.2"\}') > 0, "metrics: TLS 1.2 handshakes")
t.ok(val(r'berth_proxy_tls_handshakes_total\{result="timeout",version=""\}') >= 500, "metrics: handshake timeouts")
t.ok(val(r'berth_proxy_tls_handshakes_total\{result="failed",version=""\}') >= 3, "metrics: failed handshakes")
t.ok(val("berth_proxy_tls_resumed_handshakes_total") >= 1, "metrics: resumed handshakes")
t.ok(val(r'berth_proxy_tls_certificate_expiry_seconds\{listener="https",certificate="a3\.example"\}') > time.time(),
     "metrics: the expiry time of each certificate")
t.is_(p.stop(), 0, "exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log()[-3000:])

# 3 (workers). Resumption across two workers: the ticket keys are shared.
LW = free_port()
pw = Proxy({"workers": 2, "listeners": [{"name": "https", "listen": f"127.0.0.1:{LW}", "protocol": "HTTPS",
                                         "certificates": certs(a), "default_action": {"fixed_response": {"status": 200, "body": "ok"}}}]})
sess2 = os.path.join(d, "sess2.pem")
s_client(LW, "-sess_out", sess2)
reused = sum("Reused, TLS" in s_client(LW, "-sess_in", sess2) for _ in range(12))
t.is_(reused, 12, "12 connections spread over two workers all resume one session")
mw = pw.admin("GET", "/metrics")[1]
t.ok(re.search(r"berth_proxy_tls_resumed_handshakes_total 1[2-9]", mw), "the master's metrics count them", mw[-800:])
t.is_(pw.stop(), 0, "workers proxy exits 0")
t.ok(pw.sanitizer_clean(), "no sanitizer report (workers)", pw.log()[-3000:])
for x in (web, sec, bad):
    x.stop()
t.done()
