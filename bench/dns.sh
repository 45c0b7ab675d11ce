#!/usr/bin/env bash
# dns.sh -- berth-dns vs knot (one UDP worker) vs dnsmasq: same zone (1,000 services x 3 instances),
# same dnsperf query mix (40% A, 30% SRV, 30% NXDOMAIN), one run; prints qps, latency, loss, ratios;
# then times 10,000 instance registrations through berth-dns's admin API.
# usage: bench/dns.sh [seconds=8]   (ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
ROUNDS=${ROUNDS:-3}
. bench/lib.sh

BERTH=$(port); ADMIN=$(port); KNOT=$(port); DNSMASQ=$(port)

python3 bench/gen_dns_zone.py "$work" "$BERTH"
python3 - "$work/berth-dns.json" "$ADMIN" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["admin"] = {"listen": f"127.0.0.1:{sys.argv[2]}"}; json.dump(c, open(sys.argv[1], "w"))
PY
mkdir -p "$work/knot-db"
cat > "$work/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    rundir: "$work"
database:
    storage: "$work/knot-db"
log:
  - target: stderr
    any: error
zone:
  - domain: berth.internal
    storage: "$work"
    file: "berth.internal.zone"
KNOT

build/discovery/berth-dns -c "$work/berth-dns.json" --log-level warn & pids+=($!)
knotd -c "$work/knot.conf" & pids+=($!)
dnsmasq --keep-in-foreground --conf-file="$work/dnsmasq.conf" --port="$DNSMASQ" --listen-address=127.0.0.1 \
  --bind-interfaces --user=root --pid-file="$work/dnsmasq.pid" & pids+=($!)
for p in $BERTH $KNOT $DNSMASQ; do
  for _ in $(seq 100); do dig +time=1 +tries=1 @127.0.0.1 -p "$p" svc-0001.berth.internal A +short | grep -q . && break; sleep 0.1; done
done
for p in $BERTH $KNOT $DNSMASQ; do
  echo "check :$p  A=$(dig @127.0.0.1 -p "$p" svc-0001.berth.internal A +short | wc -l)" \
       "SRV=$(dig @127.0.0.1 -p "$p" _http._tcp.svc-0001.berth.internal SRV +short | wc -l)" \
       "NX=$(dig @127.0.0.1 -p "$p" nope.berth.internal A | grep -o 'status: [A-Z]*')"
done

declare -A QPS LAT LOST
run() { # name port
  local out; out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries.txt" -l "$DUR" -c 8 -q 256 -T 1 2>&1)
  awk '/Queries per second:/ {q=$4} /Average Latency/ {l=$4*1e6} /Queries lost:/ {lost=$3}
       END {printf "%s %d %s\n", q, l, lost}' <<<"$out" >>"$work/$1"
}
echo "dnsperf -c 8 -q 256 -T 1 -l ${DUR}s x $ROUNDS rounds (interleaved), $(nproc) cores, $(date -u +%FT%TZ)"
for r in $(seq "$ROUNDS"); do run berth $BERTH; run knot $KNOT; run dnsmasq $DNSMASQ; done
printf "%-8s %12s %12s %8s   %s\n" server "queries/s" "avg lat us" lost "(medians; qps of every round)"
for n in berth knot dnsmasq; do
  QPS[$n]=$(cut -d' ' -f1 "$work/$n" | median); LAT[$n]=$(cut -d' ' -f2 "$work/$n" | median)
  LOST[$n]=$(cut -d' ' -f3 "$work/$n" | sort -n | tail -1)
  printf "%-8s %12s %12s %8s   %s\n" $n "${QPS[$n]}" "${LAT[$n]}" "${LOST[$n]}" "$(cut -d' ' -f1 "$work/$n" | tr '\n' ' ')"
done
echo "berth/knot queries/s: $(ratio "${QPS[berth]}" "${QPS[knot]}")x   berth/dnsmasq: $(ratio "${QPS[berth]}" "${QPS[dnsmasq]}")x"
python3 bench/dns_register.py "$ADMIN" 10000
