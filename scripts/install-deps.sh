#!/usr/bin/env bash
# Installs everything clusterctl needs to build, test and run the demo on Debian 12.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential cmake pkg-config git ca-certificates clang-format
  libyaml-cpp-dev libgit2-dev libssh-dev libhiredis-dev librocksdb-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  libvalijson-dev libhowardhinnant-date-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libboost-dev
  openssh-server openssh-client redis-server procps curl strace nftables)
# libfaketime: the fault suite steps clusterd's wall clock (tests/faults/).
PKGS+=(faketime)
# --browser (scripts/test.sh): also what the dashboard's browser test needs
# (tests/dashboard/): Debian's chromium, and Node.js when there is none.
BROWSER=""
if [ "${1:-}" = "--browser" ]; then
  BROWSER=1
  PKGS+=(chromium)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The browser test's driver (playwright-core) runs on Node.js 20 or later;
# Debian's nodejs package is only installed when there is no node at all.
if [ -n "$BROWSER" ] && ! command -v node >/dev/null 2>&1; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
