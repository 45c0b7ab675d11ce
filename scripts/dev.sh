#!/usr/bin/env bash
# dev.sh -- installs what is missing, builds, and runs `berth dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh dev
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/cli/berth dev "$@"
