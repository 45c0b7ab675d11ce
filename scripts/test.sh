#!/usr/bin/env bash
# test.sh -- the whole test suite: installs what is missing, builds twice and runs every test in both:
#   build/        gcc, -Werror, optimised
#   build-asan/   clang, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer, plus the libFuzzer smoke run
# A sanitizer report fails the test that provoked it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTH_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests (release build)"
(cd build && ctest --output-on-failure -j2)

CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBERTH_WERROR=ON -DBERTH_SANITIZE=ON -DBERTH_FUZZ=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (ASan + UBSan build)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2)
