#!/usr/bin/env python3
"""Journal compaction: after more than 10,000 writes the state is folded into snapshot.json and the
journal starts again; kill -9 and a restart (snapshot + journal replay) keep every acknowledged write."""
import http.client, threading
from harness import *

t = Tap()
data = tempfile.mkdtemp(prefix="berth-sched-")
s = Scheduler(data)
s.admin("POST", "/v1/task-definitions", {"family": "w", "containers": [{"name": "w", "command": ["true"]}]})
THREADS, WRITES = 16, 700  # 11,200 writes, more than one snapshot's worth
for k in range(THREADS):
    s.admin("POST", "/v1/services", {"name": f"s{k}", "task_definition": "w", "desired_count": 0})
last = {}


def writer(k):
    c = http.client.HTTPConnection("127.0.0.1", s.admin_port, timeout=10)
    for i in range(1, WRITES + 1):
        c.request("PATCH", f"/v1/services/s{k}", json.dumps({"health_check_grace_period_s": i}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status == 200:
            last[k] = i
    c.close()


t0 = time.monotonic()
ths = [threading.Thread(target=writer, args=(k,)) for k in range(THREADS)]
[x.start() for x in ths]
[x.join() for x in ths]
t.diag(f"{THREADS * WRITES} writes in {time.monotonic() - t0:.1f} s")
t.is_(last, {k: WRITES for k in range(THREADS)}, "every write was acknowledged")
t.ok(os.path.exists(os.path.join(data, "snapshot.json")), "snapshot.json was written")
journal_lines = sum(1 for _ in open(os.path.join(data, "journal")))
t.ok(journal_lines < 10000, f"the journal was emptied by the snapshot ({journal_lines} records since)")
s.proc.kill()
s.proc.wait()
s = Scheduler(data)
got = {k: s.admin("GET", f"/v1/services/s{k}")[1]["health_check_grace_period_s"] for k in range(THREADS)}
t.is_(got, last, "after kill -9 and a restart (snapshot + journal) every acknowledged write is there")
t.is_(s.stop(), 0, "scheduler exits 0")
t.ok(s.sanitizer_clean(), "no sanitizer report", s.log())
t.done()
