#!/usr/bin/env bash
# check-hardening.sh -- verifies the release binaries are hardened: PIE, full RELRO (BIND_NOW),
# a non-executable stack, the stack protector and fortified libc calls. TAP output.
# usage: scripts/check-hardening.sh BUILD_DIR
set -uo pipefail
dir=${1:?usage: check-hardening.sh BUILD_DIR}
bins=(proxy/berth-proxy discovery/berth-dns scheduler/berth-scheduler scheduler/berth-agent cli/berth)
n=0 fail=0
check() { # name, condition-result
  n=$((n + 1))
  if [[ $2 == 0 ]]; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=$((fail + 1)); fi
}
for b in "${bins[@]}"; do
  f=$dir/$b
  hdr=$(readelf -h "$f" 2>/dev/null); dyn=$(readelf -d "$f" 2>/dev/null); ph=$(readelf -lW "$f" 2>/dev/null)
  syms=$(readelf -sW --dyn-syms "$f" 2>/dev/null)
  grep -q "Type:.*DYN" <<<"$hdr"; check "$b: position-independent executable" $?
  grep -q "GNU_RELRO" <<<"$ph" && grep -Eq "BIND_NOW|FLAGS.*NOW" <<<"$dyn"; check "$b: full RELRO" $?
  grep -E "GNU_STACK" <<<"$ph" | grep -vq "RWE"; check "$b: non-executable stack" $?
  grep -q "__stack_chk_fail" <<<"$syms"; check "$b: stack protector" $?
  grep -Eq "__[a-z_]+_chk" <<<"$(grep -v __stack_chk <<<"$syms")"; check "$b: fortified libc calls" $?
done
echo "1..$n"
exit $((fail > 0))
