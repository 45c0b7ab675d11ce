#!/usr/bin/env python3
"""Acceptance 9: bad configs exit 2 with a message naming the file and the JSON path; --help, --version, -t."""
from harness import *

t = Tap()
exe = os.path.join(BIN, "proxy", "berth-proxy")


def run(cfg_text, *extra):
    fd, path = tempfile.mkstemp(prefix="bad-", suffix=".json")
    os.write(fd, cfg_text.encode())
    os.close(fd)
    r = subprocess.run([exe, "-c", path, *extra], capture_output=True, text=True, timeout=20)
    os.unlink(path)
    return r.returncode, r.stderr.strip(), path


lst = '{"listen":"127.0.0.1:%d","default_action":{"forward":[{"target_group":"web"}]}}' % free_port()
cases = [
    ("unknown key", '{"listeners":[],"colour":"red"}', "colour: unknown key"),
    ("unknown nested key", '{"target_groups":[{"name":"web","health_check":{"intervl_s":5}}]}',
     "target_groups[0].health_check.intervl_s: unknown key"),
    ("wrong type", '{"target_groups":[{"name":"web","slow_start_s":"10"}]}',
     "target_groups[0].slow_start_s: must be a number 0..900, got a string"),
    ("out of range", '{"target_groups":[{"name":"web","health_check":{"interval_s":0}}]}',
     "target_groups[0].health_check.interval_s: must be 0.1..300"),
    ("out of range threshold", '{"target_groups":[{"name":"web","health_check":{"unhealthy_threshold":11}}]}',
     "target_groups[0].health_check.unhealthy_threshold: must be 1..10"),
    ("duplicate target group", '{"target_groups":[{"name":"web"},{"name":"web"}]}',
     'target_groups[1].name: target group "web" is defined twice (also target_groups[0])'),
    ("rule to a missing group", '{"target_groups":[{"name":"web"}],"listeners":[{"listen":"127.0.0.1:1",'
     '"rules":[{"priority":1,"conditions":{"path_pattern":["/a"]},"action":{"forward":[{"target_group":"api"}]}}],'
     '"default_action":{"forward":[{"target_group":"web"}]}}]}',
     'listeners[0].rules[priority 1].action.forward[0].target_group: no target group named "api"'),
    ("bad algorithm", '{"target_groups":[{"name":"web","algorithm":"fastest"}]}',
     'target_groups[0].algorithm: "fastest" is not one of: round_robin, least_outstanding_requests'),
    ("bad matcher", '{"target_groups":[{"name":"web","health_check":{"matcher":"2xx"}}]}',
     'target_groups[0].health_check.matcher: "2xx": codes must be 100..599'),
    ("bad target", '{"target_groups":[{"name":"web","targets":[{"address":"localhost"}]}]}',
     'target_groups[0].targets[0].address: "localhost" is not an address of the form IP:PORT'),
    ("duplicate rule priority", '{"target_groups":[{"name":"web"}],"listeners":[{"listen":"127.0.0.1:1","rules":['
     '{"priority":1,"conditions":{},"action":{"fixed_response":{}}},{"priority":1,"conditions":{},"action":{"fixed_response":{}}}],'
     '"default_action":{"fixed_response":{}}}]}', "listeners[0].rules[1]: priority 1 is used by rules[0] too"),
    ("missing default action", '{"listeners":[{"listen":"127.0.0.1:1"}]}', "listeners[0].default_action: is required"),
    ("bad source_ip", '{"listeners":[{"listen":"127.0.0.1:1","rules":[{"priority":1,"conditions":{"source_ip":["10.0.0.0/99"]},'
     '"action":{"fixed_response":{}}}],"default_action":{"fixed_response":{}}}]}',
     'listeners[0].rules[0].conditions.source_ip[0]: "10.0.0.0/99" is not an IP prefix like 10.0.0.0/8'),
    ("invalid JSON", '{"listeners": [', ".json:1:"),
]
for name, text, want in cases:
    code, err, path = run(text)
    t.is_(code, 2, f"{name}: exit 2")
    t.ok(want in err and path in err, f"{name}: message names file and path", err)

code, err, _ = run('{"target_groups":[{"name":"web"}],"listeners":[%s]}' % lst, "-t")
t.is_(code, 0, "-t accepts a valid config")
r = subprocess.run([exe, "-t", "-c", os.path.join(HERE, "..", "..", "examples", "proxy.json")], capture_output=True, text=True)
t.is_(r.returncode, 0, "examples/proxy.json is valid")
r = subprocess.run([exe, "--help"], capture_output=True, text=True)
t.ok(r.returncode == 0 and "usage: berth-proxy" in r.stdout and "SIGHUP" in r.stdout, "--help")
r = subprocess.run([exe, "--version"], capture_output=True, text=True)
t.ok(r.returncode == 0 and r.stdout.startswith("berth-proxy "), "--version")
r = subprocess.run([exe, "--bogus"], capture_output=True, text=True)
t.is_(r.returncode, 2, "unknown flag exits 2")
r = subprocess.run([exe, "-c", "/nonexistent/proxy.json"], capture_output=True, text=True)
t.ok(r.returncode == 2 and "/nonexistent/proxy.json" in r.stderr, "missing file exits 2 naming it", r.stderr)

# A listener that cannot bind: exit 2 with the path.
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
code, err, _ = run('{"target_groups":[{"name":"web"}],"listeners":[{"listen":"127.0.0.1:%d",'
                   '"default_action":{"forward":[{"target_group":"web"}]}}]}' % busy.getsockname()[1])
busy.close()
t.ok(code == 2 and "listeners[0].listen: cannot listen on" in err, "unbindable listener exits 2", err)

# Admin API: invalid group settings get 400 with the path.
lp = free_port()
p = Proxy({"target_groups": [{"name": "web"}], "listeners": [json.loads(lst.replace(lst.split('"')[3], f"127.0.0.1:{lp}"))]})
st, body = p.admin("PUT", "/v1/target-groups/web", {"health_check": {"timeout_s": 10, "interval_s": 5}})
t.is_(st, 400, "admin PUT with a bad value is 400")
t.is_(body["error"]["message"], "target_group.health_check.timeout_s: must be less than interval_s (5)", "with the path")
st, body = p.admin("PUT", "/v1/target-groups/web", {"bogus": 1})
t.is_(body["error"]["message"], "target_group.bogus: unknown key", "unknown keys are rejected")
t.is_(p.stop(), 0, "proxy exits 0")
t.ok(p.sanitizer_clean(), "no sanitizer report", p.log())
t.done()
