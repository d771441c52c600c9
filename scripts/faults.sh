#!/bin/sh
# Runs the fault-injection suite (tests/faults/, issue 18) several times and
# regenerates the table of docs/reliability.md from what it recorded.
#
# Usage: scripts/faults.sh [--runs N] [--long] [--no-build]
#   --runs N    how many runs of the suite (default 3); the table has the
#               median recovery time per fault
#   --long      CLUSTERCTL_LONG_TESTS=1: 50 SIGKILLs of clusterd instead of 3
#   --no-build  use the test binary already in the build directory
# Environment: BUILD_DIR (default: <repo>/build-ci).
# The suite also runs in CI (scripts/test.sh, one run, short loops); this
# script is for the report and the long loops.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-ci}
runs=3
do_build=yes
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift ;;
    --long) export CLUSTERCTL_LONG_TESTS=1 ;;
    --no-build) do_build=no ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "faults.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$do_build" = yes ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j2 --target faults_faults_test faults_faults_process_test clusterd \
    clusterctl clusterctl-test-service
fi
out=$build/faults-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
export CLUSTERCTL_FAULTS_REPORT="$out/report.jsonl"
status=0
i=1
while [ "$i" -le "$runs" ]; do
  echo "faults.sh: run $i of $runs" >&2
  # Every binary of the suite (tests/faults/*_test.cc).
  for bin in "$build"/tests/faults_*_test; do
    name=$(basename "$bin")
    "$bin" >"$out/run-$i-$name.log" 2>&1 || {
      status=1
      echo "faults.sh: run $i had failures: $out/run-$i-$name.log" >&2
    }
  done
  i=$((i + 1))
done
python3 "$root/scripts/faults-report.py" "$CLUSTERCTL_FAULTS_REPORT" "$root/docs/reliability.md" \
  --runs "$runs" --machine "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "faults.sh: docs/reliability.md regenerated from $CLUSTERCTL_FAULTS_REPORT" >&2
exit $status
