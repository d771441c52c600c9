#!/usr/bin/env bash
# Builds clusterctl and runs the test suite three times: a normal build with
# warnings as errors (every test), an address+undefined sanitizer build (every
# test), and a ThreadSanitizer build of the multi-threaded suites (executor,
# live view, async prober, drift watch, SSH pool, state store, audit log, API,
# the daemon on fakes, leader election, and clusterd end to end).
#
#   scripts/test.sh            install dependencies (apt-get), build, test
#   SKIP_SANITIZE=1 scripts/test.sh   only the normal build
#   SKIP_TSAN=1 scripts/test.sh       no ThreadSanitizer stage
#   SKIP_INSTALL=1 scripts/test.sh    do not run apt-get
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"

if [ -z "${SKIP_INSTALL:-}" ]; then
  bash scripts/install-deps.sh --browser
  echo "== the browser test's driver (npm ci in tests/dashboard)"
  (cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error)
  # Installed: a missing browser is now a failure, not a skip.
  export CLUSTERCTL_REQUIRE_BROWSER=1
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

# The suites whose code runs on several threads. clusterd itself is built
# with TSan too, so the end-to-end daemon test checks its loops.
TSAN_TESTS=(reconcilers_executor_test reconcilers_live_view_test reconcilers_async_prober_test
  reconcilers_watch_test reconcilers_ssh_test store_state_store_test audit_audit_log_test
  api_api_test api_api_limits_test controller_daemon_test ha_leader_election_test notify_notifier_test
  controller_replicas_e2e_test desired_state_parse_cache_test ha_shard_coordinator_test
  controller_shards_e2e_test
  controller_clusterd_e2e_test)
if [ -z "${SKIP_SANITIZE:-}" ] && [ -z "${SKIP_TSAN:-}" ]; then
  echo "== build with ThreadSanitizer (the multi-threaded suites)"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLUSTERCTL_WERROR=ON \
    -DCLUSTERCTL_TSAN=ON -DCLUSTERCTL_BENCH=OFF >/dev/null
  cmake --build build-tsan -j"$JOBS" --target clusterd clusterctl clusterctl-test-service \
    "${TSAN_TESTS[@]}"
  echo "== tests under ThreadSanitizer"
  # Every report fails its binary (halt_on_error); scripts/tsan.supp names the
  # uninstrumented libraries whose internal synchronization TSan cannot see.
  # Two binaries at a time, each bounded by `timeout`; every binary runs even
  # when one fails (xargs then exits 123).
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
  printf '%s\n' "${TSAN_TESTS[@]}" | (cd build-tsan/tests && xargs -P"$JOBS" -I{} \
    sh -c 'timeout 1500 ./{} --gtest_brief=1 > {}.tsan.log 2>&1 && echo "ok   {}" ||
           { echo "FAIL {}"; tail -60 {}.tsan.log; exit 1; }')
fi
