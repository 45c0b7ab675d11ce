#!/usr/bin/env bash
# deploy.sh -- health-gated rolling deployments through berth-proxy (bench/deploy.py): the time to
# deploy 6 tasks with a 2 s start-up, and to detect and roll back a revision that fails its health check.
# usage: ROUNDS=3 bench/deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BERTH_BIN_DIR=$PWD/build python3 bench/deploy.py
