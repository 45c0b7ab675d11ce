#!/usr/bin/env bash
# placement.sh -- builds and runs build/bench/placement: 1,000,000 tasks onto 10,000 simulated nodes
# (member_of + spread + binpack), on one core. usage: bench/placement.sh [tasks] [nodes] [services]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
echo "$(nproc) cores, $(date -u +%FT%TZ); pinned to one core"
taskset -c 0 build/bench/placement "$@"
