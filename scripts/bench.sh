#!/bin/sh
# Builds the benchmarks in Release and runs the figures of issue 9
# ("Targets"; docs/benchmarks.md) on 20 loopback sshd machines: observation,
# processes per observation, reconcile (the service-level chain: converge,
# no-op, repair; in-process, as `clusterctl apply` processes, and with
# Ansible's best configuration when ansible-playbook is installed), the DAG
# converge and diff + plan of issue 4, and clusterd's reaction to `kill -9`
# and to `git push`; and the desired-state load of issue 17 (1,000 machines,
# 10,000 services: cold, and a reload after a one-file change with the parse
# cache). Prints the goals table at the end.
#
# The scale harness of issue 17 (bench/scale_bench.cc: N machines x 10
# services on loopback sshd under the built clusterd; 100 machines take
# ~5 minutes, 1,000 about half an hour) runs only when asked for:
#   scripts/bench.sh --only scale [--machines N] [--soak-minutes M]
#
# Usage: scripts/bench.sh [--no-build] [--quick] [--only observe|reconcile|clusterd|load|scale]
#          [--machines N] [--soak-minutes M]
#   --no-build  use the binaries already in the build directory
#   --quick     one run per scenario (BENCH_RUNS=1): checks the benchmark
#               itself, the figures are not medians
#   --only B    run one benchmark program
#   --machines N      scale: the machine count (default 100; 1000 for issue
#                     17's targets)
#   --soak-minutes M  scale: M more minutes of back-to-back passes for the
#                     RSS (the hour soak: 60)
# Environment: BUILD_DIR (default: <repo>/build-bench), JOBS (default: 2).
# Output: the logs and summary.md under $BUILD_DIR/bench-results/<UTC time>/.
# Never run in CI: it takes ~15 minutes and wants an otherwise quiet machine.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
jobs=${JOBS:-2}
do_build=yes
only=
machines=100
soak=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) do_build=no ;;
    --quick) export BENCH_RUNS=1 ;;
    --only) only=$2; shift ;;
    --machines) machines=$2; shift ;;
    --soak-minutes) soak=$2; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ $do_build = yes ]; then
  launcher=
  if command -v ccache >/dev/null 2>&1; then launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache; fi
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release $launcher >/dev/null
  cmake --build "$build" -j"$jobs" --target observe_bench reconcile_bench clusterd_bench load_bench \
    scale_bench clusterctl clusterd clusterctl-test-service
fi

out=$build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
export BENCH_SUMMARY="$out/summary.md"
{
  echo "# Benchmark run $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
  echo "$(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  if command -v ansible-playbook >/dev/null 2>&1; then
    ansible-playbook --version | head -n 1
  else
    echo "ansible-playbook not installed: the Ansible comparisons are skipped" \
      "(install: apt-get install ansible-core)"
  fi
} >"$BENCH_SUMMARY"
cat "$BENCH_SUMMARY"

failed=
run() {
  name=$1
  shift
  [ -z "$only" ] || [ "$only" = "${name%_bench}" ] || return 0
  echo
  echo "=== $name $*"
  start=$(date +%s)
  { "$build/bench/$name" "$@" 2>&1; echo $? >"$out/$name.rc"; } | tee "$out/$name.log"
  echo "=== $name: exit $(cat "$out/$name.rc"), $(($(date +%s) - start)) s"
  [ "$(cat "$out/$name.rc")" = 0 ] || failed="$failed $name"
}

run observe_bench --benchmark_filter='BM_SshRoundTrip$|BM_ObserveOneMachine|BM_ObserveWarm/parallel:32|BM_ObserveCold|BM_ProcessesPerObservation'
run reconcile_bench --benchmark_filter='BM_SshRoundTrip|BM_ColdConverge/poll_ms:200/parallel:40|BM_Chain|BM_ApplyChain|BM_AnsibleChain|BM_DiffPlan10k'
run clusterd_bench
run load_bench --benchmark_filter='BM_LoadValidateExpand/10000|BM_Git' \
  --benchmark_report_aggregates_only=true
# Long: only when asked for by name.
if [ "$only" = scale ]; then
  run scale_bench --machines "$machines" --soak-minutes "$soak"
fi

echo
echo "=================================================================="
cat "$BENCH_SUMMARY"
echo
echo "Logs: $out"
if [ -n "$failed" ]; then
  echo "failed:$failed" >&2
  exit 1
fi
