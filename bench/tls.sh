#!/usr/bin/env bash
# tls.sh -- TLS termination: berth-proxy vs haproxy vs nginx (Debian's, all on OpenSSL 3), one
# worker/thread each, the same fixed 200 answer (no backend: the TLS work is what is measured).
# Prints, with ratios to HAProxy and nginx:
#   full-ecdsa / full-rsa   new full handshakes per second (wrk, "Connection: close": one request per
#                           connection, no resumption), ECDSA P-256 and RSA 2048 certificates
#   resumed                 resumed handshakes per second (openssl s_time -reuse, TLS 1.2 session
#                           IDs or tickets as the server offers)
#   keepalive               requests per second over 64 keep-alive TLS connections (wrk)
# then the RSS per idle TLS connection of each (2,000 connections).
# usage: bench/tls.sh [seconds=8]   (ROUNDS=3 by default; PIN=1 pins servers to the last CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
. bench/lib.sh
ulimit -n "$(ulimit -Hn)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ec.key" -out "$work/ec.pem" \
  -days 30 -subj /CN=bench.example -addext "subjectAltName=DNS:bench.example" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rsa.key" -out "$work/rsa.pem" \
  -days 30 -subj /CN=bench.example -addext "subjectAltName=DNS:bench.example" 2>/dev/null
cat "$work/ec.pem" "$work/ec.key" > "$work/ec.both"
cat "$work/rsa.pem" "$work/rsa.key" > "$work/rsa.both"

B_EC=$(port); B_RSA=$(port); B_ADM=$(port); H_EC=$(port); H_RSA=$(port); N_EC=$(port); N_RSA=$(port)
CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
cat > "$work/berth.json" <<JSON
{"workers": 1, "admin": {"listen": "127.0.0.1:$B_ADM"},
 "listeners": [
  {"name": "ec", "listen": "127.0.0.1:$B_EC", "protocol": "HTTPS", "certificates": [{"cert": "$work/ec.pem", "key": "$work/ec.key"}],
   "default_action": {"fixed_response": {"status": 200, "content_type": "text/plain", "body": "ok"}}},
  {"name": "rsa", "listen": "127.0.0.1:$B_RSA", "protocol": "HTTPS", "certificates": [{"cert": "$work/rsa.pem", "key": "$work/rsa.key"}],
   "default_action": {"fixed_response": {"status": 200, "content_type": "text/plain", "body": "ok"}}}]}
JSON
cat > "$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 9000
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-default-bind-ciphers $CIPHERS
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend ec
  bind 127.0.0.1:$H_EC ssl crt $work/ec.both alpn http/1.1
  http-request return status 200 content-type text/plain string ok
frontend rsa
  bind 127.0.0.1:$H_RSA ssl crt $work/rsa.both alpn http/1.1
  http-request return status 200 content-type text/plain string ok
HAP
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 9000; }
http {
  access_log off;
  keepalive_requests 1000000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ciphers $CIPHERS;
  ssl_session_tickets on;
  server { listen 127.0.0.1:$N_EC ssl; ssl_certificate $work/ec.pem; ssl_certificate_key $work/ec.key;
           location / { return 200 "ok"; } }
  server { listen 127.0.0.1:$N_RSA ssl; ssl_certificate $work/rsa.pem; ssl_certificate_key $work/rsa.key;
           location / { return 200 "ok"; } }
}
NGINX
"${BERTH_BIN:-build/proxy/berth-proxy}" -c "$work/berth.json" --log-level error & pids+=($!)
BERTH_PID=$!
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)
HAP_PID=$!
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
for p in $B_EC $B_RSA $H_EC $H_RSA $N_EC $N_RSA; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
sleep 0.5
NGX_PID=$(pgrep -f "nginx: worker process" -P "$(cat "$work/nginx.pid")" | head -1)
[[ -s $work/haproxy.log ]] && { echo "== haproxy"; cat "$work/haproxy.log"; }
WRK="wrk -t1"; STIME="openssl s_time"
if [[ ${PIN:-0} == 1 ]]; then
  last=$(( $(nproc) - 1 )); rest="0-$(( last > 0 ? last - 1 : 0 ))"
  for p in $BERTH_PID $HAP_PID $NGX_PID; do taskset -a -p -c "$last" "$p" >/dev/null; done
  WRK="taskset -c $rest wrk -t1"; STIME="taskset -c $rest openssl s_time"
  echo "pinned: servers on CPU $last, clients on CPU $rest"
fi

declare -A PORT=([berth.ec]=$B_EC [berth.rsa]=$B_RSA [haproxy.ec]=$H_EC [haproxy.rsa]=$H_RSA [nginx.ec]=$N_EC [nginx.rsa]=$N_RSA)
rate() { # name test -> one number per call, appended to $work/<name>.<test>
  local out
  case $2 in
    full-ecdsa) out=$($WRK -c32 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:${PORT[$1.ec]}/" | awk '/Requests\/sec/ {print $2}') ;;
    full-rsa) out=$($WRK -c32 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:${PORT[$1.rsa]}/" | awk '/Requests\/sec/ {print $2}') ;;
    keepalive) out=$($WRK -c64 -d"${DUR}s" "https://127.0.0.1:${PORT[$1.ec]}/" | awk '/Requests\/sec/ {print $2}') ;;
    resumed) out=$($STIME -connect "127.0.0.1:${PORT[$1.ec]}" -reuse -time "$DUR" -tls1_2 2>/dev/null \
               | awk '/connections in/ && /real seconds/ {split($0, a, " "); print a[1] / a[4]}' | tail -1) ;;
  esac
  echo "${out:-0}" >>"$work/$1.$2"
}
ROUNDS=${ROUNDS:-3}
echo "TLS termination, one worker/thread each, ${DUR}s per run, $ROUNDS rounds (servers interleaved), $(nproc) cores, $(date -u +%FT%TZ)"
echo "$(openssl version); $(haproxy -v | head -1); $(nginx -v 2>&1)"
for test in ${TESTS:-full-ecdsa full-rsa resumed keepalive}; do
  for r in $(seq "$ROUNDS"); do for n in berth haproxy nginx; do rate $n $test; done; done
  declare -A M
  printf "%-11s" "$test"
  for n in berth haproxy nginx; do M[$n]=$(median <"$work/$n.$test"); printf "  %-8s %9.0f/s [%s]" $n "${M[$n]}" "$(tr '\n' ' ' <"$work/$n.$test" | sed 's/ $//')"; done
  echo "   berth/haproxy $(ratio "${M[berth]}" "${M[haproxy]}")x  berth/nginx $(ratio "${M[berth]}" "${M[nginx]}")x"
done
echo "memory per idle TLS connection (goal <= 8 KiB for berth):"
python3 bench/idle_conns.py "$B_EC" "$BERTH_PID" 2000 --tls berth
python3 bench/idle_conns.py "$H_EC" "$HAP_PID" 2000 --tls haproxy
python3 bench/idle_conns.py "$N_EC" "$NGX_PID" 2000 --tls nginx
