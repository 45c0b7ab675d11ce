#!/usr/bin/env bash
# deps.sh -- installs the Debian packages berth needs to build, test and benchmark (only missing ones).
# usage: scripts/deps.sh [build|dev|test|bench]   (each level includes the previous)
set -euo pipefail
level=${1:-build}
pkgs=(build-essential cmake pkg-config libev-dev libc-ares-dev libjansson-dev libssl-dev curl python3 ca-certificates)
if [[ $level == dev || $level == test || $level == bench ]]; then
  # Containers (tests and berth dev): Podman's API service with runc (crun fails on hybrid cgroup v1;
  # naming runc keeps apt from choosing crun for podman's "crun | runc"), its network stack, a local
  # registry, and busybox for the images the tests build.
  pkgs+=(podman runc conmon netavark aardvark-dns iptables fuse-overlayfs slirp4netns uidmap catatonit
         docker-registry busybox-static)
fi
if [[ $level == test || $level == bench ]]; then
  pkgs+=(clang libclang-rt-14-dev wrk bind9-dnsutils prometheus openssl testssl.sh)
fi
if [[ $level == bench ]]; then
  pkgs+=(nginx-light haproxy knot dnsmasq-base dnsperf nghttp2-client)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  # Packages that ship a server (prometheus, for promtool; nginx, haproxy, knot for the benchmarks)
  # must not start one: a policy-rc.d that says no holds for the install, and the prometheus unit
  # the package enables is disabled again.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null && $sudo chmod 755 $policy && own_policy=1
  fi
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  [[ -n $own_policy ]] && $sudo rm -f $policy
  for unit in prometheus docker-registry; do
    if [[ " ${missing[*]} " == *" $unit "* ]] && command -v systemctl >/dev/null; then
      $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
  exit "${status:-0}"
fi
