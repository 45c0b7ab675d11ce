#!/usr/bin/env bash
# scheduler.sh -- berth-scheduler: (1) acknowledged API writes per second with fsync on, 64 concurrent
# clients (wrk with PATCH requests), and how many writes shared each fdatasync; (2) the time from
# creating a service with desired_count 50 to 50 tasks RUNNING and registered in berth-proxy and
# berth-dns; (3) the placement benchmark (1,000,000 tasks on 10,000 simulated nodes).
# usage: bench/scheduler.sh [write_seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
. bench/lib.sh

SPORT=$(port); PADMIN=$(port); DNSP=$(port); DADMIN=$(port); LP=$(port)
cat > "$work/scheduler.json" <<JSON
{"listen": "127.0.0.1:$SPORT", "data_dir": "$work/data", "proxy_admin": "http://127.0.0.1:$PADMIN",
 "dns_admin": "http://127.0.0.1:$DADMIN", "dns_server": "127.0.0.1:$DNSP",
 "agent": {"port_range": [33000, 33999]}}
JSON
cat > "$work/proxy.json" <<JSON
{"admin": {"listen": "127.0.0.1:$PADMIN"},
 "listeners": [{"name": "http", "listen": "127.0.0.1:$LP", "default_action": {"fixed_response": {"status": 404}}}]}
JSON
cat > "$work/dns.json" <<JSON
{"listen": "127.0.0.1:$DNSP", "admin": {"listen": "127.0.0.1:$DADMIN"}, "namespaces": [{"name": "berth.internal"}]}
JSON
build/proxy/berth-proxy -c "$work/proxy.json" --log-level warn & pids+=($!)
build/discovery/berth-dns -c "$work/dns.json" --log-level warn & pids+=($!)
build/scheduler/berth-scheduler -c "$work/scheduler.json" --stop-tasks --log-level warn & pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$SPORT/healthz" >/dev/null && break; sleep 0.1; done
df -h "$work" | awk 'NR==2 {print "data_dir on " $1 " (" $NF ")"}'

# (1) writes: PATCH a service (desired_count 0, so no task starts) with a new value each time.
curl -fs -X POST "http://127.0.0.1:$SPORT/v1/task-definitions" \
  -d "{\"family\":\"bench\",\"containers\":[{\"name\":\"b\",\"command\":[\"$(pwd)/build/demo/berth-demo-web\"],\"port_mappings\":[{\"name\":\"http\"}]}]}" >/dev/null
curl -fs -X POST "http://127.0.0.1:$SPORT/v1/services" -d '{"name":"bench","task_definition":"bench","desired_count":0}' >/dev/null
cat > "$work/patch.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("PATCH", "/v1/services/bench", {["Content-Type"] = "application/json"},
                    '{"health_check_grace_period_s": ' .. (n % 3600) .. '}')
end
LUA
m0=$(curl -fs "http://127.0.0.1:$SPORT/metrics")
out=$(wrk -t2 -c64 -d"${DUR}s" -s "$work/patch.lua" "http://127.0.0.1:$SPORT/")
m1=$(curl -fs "http://127.0.0.1:$SPORT/metrics")
val() { awk -v k="$1" '$1 == k {print $2}' <<<"$2"; }
recs=$(( $(val berth_scheduler_journal_records_total "$m1") - $(val berth_scheduler_journal_records_total "$m0") ))
syncs=$(( $(val berth_scheduler_journal_fsyncs_total "$m1") - $(val berth_scheduler_journal_fsyncs_total "$m0") ))
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
lat=$(awk '/Latency/ && !/Distribution/ {print $2 " avg, " $4 " max"; exit}' <<<"$out")
errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
echo "API writes (PATCH /v1/services, fsync before the answer), wrk -t2 -c64 -d${DUR}s:"
echo "  ${rps} acknowledged writes/s (goal >= 5,000), latency ${lat}"
echo "  ${recs} journal records in ${syncs} fdatasyncs: $(python3 -c "print(f'{$recs/max($syncs,1):.1f}')") writes per fsync"
echo "  ${errs:-no errors}"

# (2) 50 tasks
python3 bench/scheduler_start.py "$SPORT" "$PADMIN" "$DNSP" "$(pwd)/build/demo/berth-demo-web"

# (3) placement
echo "placement (one core):"
taskset -c 0 build/bench/placement | sed 's/^/  /'
