#!/usr/bin/env bash
# run.sh -- longer libFuzzer runs: tests/fuzz/run.sh [http|dns|member_of] [seconds=300]
# Builds build-fuzz (clang, ASan+UBSan, coverage) and fuzzes with the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-http}
secs=${2:-300}
case $which in
  http) target=fuzz_http_request; seeds=tests/fuzz/corpus ;;
  dns) target=fuzz_dns_query; seeds=tests/fuzz/corpus-dns ;;
  member_of) target=fuzz_member_of; seeds=tests/fuzz/corpus-member-of ;;
  *) echo "usage: tests/fuzz/run.sh [http|dns|member_of] [seconds]" >&2; exit 2 ;;
esac
scripts/deps.sh test
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBERTH_SANITIZE=ON -DBERTH_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "$target"
mkdir -p "build-fuzz/$target-corpus"
"build-fuzz/tests/$target" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/ "build-fuzz/$target-corpus" "$seeds"
