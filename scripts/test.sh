#!/usr/bin/env bash
# Builds clusterctl and runs the whole test suite, twice: a normal build with
# warnings as errors, then an address+undefined sanitizer build.
#
#   scripts/test.sh            install dependencies (apt-get), build, test
#   SKIP_SANITIZE=1 scripts/test.sh   only the normal build
#   SKIP_INSTALL=1 scripts/test.sh    do not run apt-get
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"

if [ -z "${SKIP_INSTALL:-}" ]; then
  bash scripts/install-deps.sh
fi

echo "== clang-format check"
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h' | grep -v '^./build')
if [ -n "$files" ]; then
  clang-format --dry-run --Werror $files
fi

echo "== build (warnings are errors)"
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLUSTERCTL_WERROR=ON >/dev/null
cmake --build build-ci -j"$JOBS"
echo "== tests"
(cd build-ci && ctest --output-on-failure -j"$JOBS" --timeout 600)

if [ -z "${SKIP_SANITIZE:-}" ]; then
  echo "== build with address+undefined sanitizers"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCLUSTERCTL_WERROR=ON \
    -DCLUSTERCTL_SANITIZE=ON -DCLUSTERCTL_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$JOBS"
  echo "== tests under sanitizers"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$JOBS" --timeout 900)
fi
