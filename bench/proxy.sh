#!/usr/bin/env bash
# proxy.sh -- berth-proxy vs haproxy vs nginx (as proxy), same backend, same wrk load, one run.
# Prints req/s, p50/p99 latency, CPU per request and ratios; then measures RSS per idle keep-alive
# client connection.
# usage: bench/proxy.sh [seconds=8] ["settings"="close32 64 256"]   (ROUNDS=3 by default)
#   N        keep-alive: wrk with N connections
#   closeN   connection churn: wrk with N connections sending "Connection: close", so every request
#            is a new TCP connection (accept, parse, forward, close) on the client side
# BERTH_BIN=path/to/berth-proxy compares another build (default build/proxy/berth-proxy).
# PIN=1 pins the proxies to the last CPU and wrk and the backend to the others (taskset), the same for
# every proxy: on a small machine the three processes otherwise compete for the same cores, and the
# scheduler's choices move req/s more than the proxies do.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
CONNS_LIST=${2:-close32 64 256}
. bench/lib.sh
ulimit -n "$(ulimit -Hn)"  # 10,000 idle connections need more than the usual 1024

BACK=$(port); BERTH=$(port); ADMIN=$(port); NGX=$(port); HAP=$(port)

cat > "$work/backend.conf" <<NGINX
worker_processes 1;
pid $work/backend.pid;
error_log $work/backend.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACK; location / { return 200 "hello from the backend\n"; } }
}
NGINX
cat > "$work/proxy-nginx.conf" <<NGINX
worker_processes 1;
pid $work/proxy-nginx.pid;
error_log $work/proxy-nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream b { server 127.0.0.1:$BACK; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
cat > "$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option http-keep-alive
frontend f
  bind 127.0.0.1:$HAP
  default_backend b
backend b
  server s1 127.0.0.1:$BACK
HAP
cat > "$work/berth.json" <<JSON
{"workers": 1, "admin": {"listen": "127.0.0.1:$ADMIN"},
 "listeners": [{"name": "http", "listen": "127.0.0.1:$BERTH", "default_action": {"forward": [{"target_group": "b"}]}}],
 "target_groups": [{"name": "b", "targets": [{"address": "127.0.0.1:$BACK"}]}]}
JSON

nginx -c "$work/backend.conf" -g 'daemon off;' & pids+=($!)
nginx -c "$work/proxy-nginx.conf" -g 'daemon off;' & pids+=($!)
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)
HAP_PID=$!
"${BERTH_BIN:-build/proxy/berth-proxy}" -c "$work/berth.json" --log-level warn & pids+=($!)
BERTH_PID=$!
for p in $BACK $NGX $HAP $BERTH; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
sleep 1

for f in "$work"/*.err "$work"/haproxy.log; do [[ -s $f ]] && { echo "== $f"; cat "$f"; }; done
declare -A RPS P50 P99 CPU
ROUNDS=${ROUNDS:-3}
sleep 0.5
NGX_PID=$(pgrep -f "nginx: worker process" -P "$(cat "$work/proxy-nginx.pid")" | head -1)
BACK_PID=$(pgrep -f "nginx: worker process" -P "$(cat "$work/backend.pid")" | head -1)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# wrk's arguments for a setting, into LOAD.
load() { case $1 in close*) LOAD=(-c"${1#close}" -H "Connection: close") ;; *) LOAD=(-c"$1") ;; esac; }
run() { # name port pid setting -> appends "rps p50_us p99_us cpu_ns_per_request" to $work/$name.$4
  local t0 t1 out; t0=$(ticks "$3")
  load "$4"
  out=$($WRK "${LOAD[@]}" -d"${DUR}s" --latency "http://127.0.0.1:$2/")
  t1=$(ticks "$3")
  local errs; errs=$(grep -E "Socket errors|Non-2xx" <<<"$out" || true)
  [[ -n $errs ]] && echo "  $1: $errs"
  awk -v OFS=' ' -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
    /requests in/ {n=$1} /Requests\/sec/ {r=$2} $1=="50%" {p50=us($2)} $1=="99%" {p99=us($2)}
    END {printf "%s %d %d %d\n", r, p50, p99, ticks * 1e9 / hz / n}' <<<"$out" >>"$work/$1.$4"
}
WRK="wrk -t1"
if [[ ${PIN:-0} == 1 ]]; then
  last=$(( $(nproc) - 1 )); rest="0-$(( last > 0 ? last - 1 : 0 ))"
  for p in $BERTH_PID $HAP_PID $NGX_PID; do taskset -a -p -c "$last" "$p" >/dev/null; done
  taskset -a -p -c "$rest" "$BACK_PID" >/dev/null
  WRK="taskset -c $rest wrk -t1"
  echo "pinned: proxies on CPU $last, wrk and the backend on CPU $rest"
fi
echo "wrk -t1 -d${DUR}s, $ROUNDS rounds per setting (targets interleaved), $(nproc) cores, $(date -u +%FT%TZ)"
for CONNS in $CONNS_LIST; do
  load "$CONNS"
  for p in $BACK $BERTH $HAP $NGX; do $WRK "${LOAD[@]}" -d1s "http://127.0.0.1:$p/" >/dev/null 2>&1 || true; done
  for r in $(seq "$ROUNDS"); do
    run berth $BERTH $BERTH_PID $CONNS; run haproxy $HAP $HAP_PID $CONNS; run nginx $NGX $NGX_PID $CONNS; run backend $BACK $BACK_PID $CONNS
  done
  echo
  echo "$CONNS: wrk -t1 ${LOAD[*]}"
  printf "%-10s %12s %8s %8s %14s   %s\n" target "req/s" "p50 us" "p99 us" "CPU ns/req" "(medians; req/s of every round)"
  for n in backend berth haproxy nginx; do
    f="$work/$n.$CONNS"
    RPS[$n]=$(cut -d' ' -f1 "$f" | median); P50[$n]=$(cut -d' ' -f2 "$f" | median)
    P99[$n]=$(cut -d' ' -f3 "$f" | median); CPU[$n]=$(cut -d' ' -f4 "$f" | median)
    printf "%-10s %12s %8s %8s %14s   %s\n" $n "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "${CPU[$n]}" "$(cut -d' ' -f1 "$f" | tr '\n' ' ')"
  done
  echo "berth/haproxy: req/s $(ratio "${RPS[berth]}" "${RPS[haproxy]}")x, p99 $(ratio "${P99[berth]}" "${P99[haproxy]}")x, CPU/req $(ratio "${CPU[berth]}" "${CPU[haproxy]}")x" \
       "  berth/nginx: req/s $(ratio "${RPS[berth]}" "${RPS[nginx]}")x, p99 $(ratio "${P99[berth]}" "${P99[nginx]}")x, CPU/req $(ratio "${CPU[berth]}" "${CPU[nginx]}")x"
done
echo
echo "idle keep-alive connections:"
python3 bench/idle_conns.py "$BERTH" "$BERTH_PID" 10000
