#!/usr/bin/env bash
# containers.sh -- the container runtime against the engine alone, in the same run (bench/containers.py):
# 50 containers of a pre-pulled image started by `podman run`, by the Docker Engine API alone, and by
# berth (service create with desired_count 50 until RUNNING, healthy in the proxy and in DNS); and the
# start latency of one container (p50/p99). Uses a Podman API service and a registry of its own.
# usage: bench/containers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BERTH_BIN_DIR=$PWD/build python3 bench/containers.py
