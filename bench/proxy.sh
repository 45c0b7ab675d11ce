#!/usr/bin/env bash
# proxy.sh -- berth-proxy vs haproxy vs nginx (as proxy), same backend, same wrk load, one run.
# Prints req/s, p50/p99 latency and ratios; then measures RSS per idle keep-alive client connection.
# usage: bench/proxy.sh [seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-64}
scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ulimit -n 65536

work=$(mktemp -d /tmp/berth-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
  maxconn 20000
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
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!)
build/proxy/berth-proxy -c "$work/berth.json" --log-level warn & pids+=($!)
BERTH_PID=$!
for p in $BACK $NGX $HAP $BERTH; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
sleep 1

declare -A RPS P50 P99
run() { # name port
  wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$2/" >/dev/null 2>&1 || true   # warm up pools
  local out; out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$2/")
  RPS[$1]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  P50[$1]=$(awk '$1=="50%" {print $2}' <<<"$out")
  P99[$1]=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errs; errs=$(grep -E "Socket errors|Non-2xx" <<<"$out" || true)
  [[ -n $errs ]] && echo "  $1: $errs"
  return 0
}
echo "wrk -t1 -c$CONNS -d${DUR}s, $(nproc) cores, $(date -u +%FT%TZ)"
for n in backend berth haproxy nginx; do
  case $n in backend) p=$BACK;; berth) p=$BERTH;; haproxy) p=$HAP;; nginx) p=$NGX;; esac
  run $n $p
done
printf "%-10s %12s %10s %10s\n" target "req/s" p50 p99
for n in backend berth haproxy nginx; do printf "%-10s %12s %10s %10s\n" $n "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}"; done
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }
echo "berth/haproxy req/s: $(ratio "${RPS[berth]}" "${RPS[haproxy]}")x   berth/nginx req/s: $(ratio "${RPS[berth]}" "${RPS[nginx]}")x"

echo "idle keep-alive connections:"
python3 bench/idle_conns.py "$BERTH" "$BERTH_PID" 10000
