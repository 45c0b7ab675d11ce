#!/usr/bin/env bash
# autoscale.sh -- the autoscaler under a scripted load: idle, then a paced wrk burst, then idle. Runs
# berth-proxy and berth-scheduler (embedded agent, berth-demo-web tasks, autoscaling min 1, max 10,
# 200 req/s per task) and prints a timeline each second: offered and served rate, desired, running
# and healthy tasks; then the time to the first scale-out, to settled capacity and back to min, and
# the errors.
# usage: bench/autoscale.sh [burst_seconds=30] [connections=16]   (each connection sends every 10 ms,
# so 16 connections offer about 1,500 req/s: ceil(1500/200) = 8 tasks)
set -euo pipefail
cd "$(dirname "$0")/.."
BURST=${1:-30}
CONNS=${2:-16}
. bench/lib.sh

LP=$(port); PADMIN=$(port); SPORT=$(port)
cat > "$work/proxy.json" <<JSON
{"admin": {"listen": "127.0.0.1:$PADMIN"},
 "listeners": [{"name": "http", "listen": "127.0.0.1:$LP",
                "default_action": {"fixed_response": {"status": 404, "body": "no such service"}}}]}
JSON
cat > "$work/scheduler.json" <<JSON
{"listen": "127.0.0.1:$SPORT", "data_dir": "$work/data", "proxy_admin": "http://127.0.0.1:$PADMIN",
 "autoscale_interval_s": 2}
JSON
build/proxy/berth-proxy -c "$work/proxy.json" --log-level warn & pids+=($!)
build/scheduler/berth-scheduler -c "$work/scheduler.json" --stop-tasks --log-level warn & pids+=($!)
python3 bench/autoscale.py "$SPORT" "$PADMIN" "$LP" "$BURST" "$CONNS" "$(pwd)/build/demo/berth-demo-web" "$work"
