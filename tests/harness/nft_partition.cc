#include "tests/harness/nft_partition.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

bool NftPartition::Available(std::string* why) {
  if (geteuid() != 0) {
    *why =
        "nftables partitions need root (this test runs as uid " + std::to_string(geteuid()) + ")";
    return false;
  }
  std::string out;
  if (RunShell("command -v nft >/dev/null 2>&1", &out) != 0) {
    *why = "nft is not installed (Debian package nftables: scripts/install-deps.sh)";
    return false;
  }
  if (RunShell("nft list tables", &out) != 0) {
    *why = "nft cannot use nf_tables here: " + out;
    return false;
  }
  return true;
}

NftPartition::NftPartition(const std::string& address) {
  static std::atomic<int> counter{0};
  table_ = "clusterctl_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  const std::string t = "inet " + table_;
  std::string out;
  const int rc = RunShell("nft add table " + t + " && nft add chain " + t +
                              " out '{ type filter hook output priority 0; }' && nft add rule " +
                              t + " out ip daddr " + address + " drop && nft add rule " + t +
                              " out ip saddr " + address + " drop",
                          &out);
  active_ = true;  // Whatever part was made goes in Heal().
  EXPECT_EQ(0, rc) << "nft: " << out;
}

NftPartition::~NftPartition() { Heal(); }

void NftPartition::Heal() {
  if (!active_) return;
  std::string out;
  RunShell("nft delete table inet " + table_, &out);
  active_ = false;
}

}  // namespace clusterctl::testing
