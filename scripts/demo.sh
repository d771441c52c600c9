#!/usr/bin/env bash
# The demo: installs dependencies, builds, starts the examples/langgraph
# topology as 5 loopback sshd machines with a real redis-server and test
# services, pushes the desired state to a local bare repository, runs clusterd
# and shows the cluster converging. Ctrl-C stops everything it started.
#
#   scripts/demo.sh            interactive: converge, then wait for Ctrl-C
#   scripts/demo.sh --check    converge, kill a service, see it repaired, stop
#   scripts/demo.sh --dir DIR  put the demo's files in DIR (default /tmp/clusterctl-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SKIP_INSTALL:-}" ]; then
  bash scripts/install-deps.sh
fi
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLUSTERCTL_BENCH=OFF >/dev/null
echo "== building clusterctl, clusterd and the demo (2-5 minutes on a fresh machine)"
cmake --build build-demo -j"${JOBS:-2}" --target clusterctl clusterd clusterctl-demo \
  clusterctl-test-service
exec build-demo/tests/clusterctl-demo "$@"
