#!/usr/bin/env bash
# run.sh -- longer libFuzzer runs of the parsers: tests/fuzz/run.sh [seconds=300]
# Builds build-fuzz (clang, ASan+UBSan, coverage) and fuzzes with the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-300}
scripts/deps.sh test
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=ON -DBERTH_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_http_request
mkdir -p build-fuzz/fuzz-corpus
build-fuzz/tests/fuzz_http_request -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/ build-fuzz/fuzz-corpus tests/fuzz/corpus
