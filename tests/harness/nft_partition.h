// NftPartition: cuts one loopback address (127.0.0.N, an SshHost's) off the
// network with an nftables drop rule, for tests of what clusterd does when a
// machine vanishes without a RST or FIN (a partition, not a crash).
//
// It creates its own table `inet clusterctl_test_<pid>_<n>` (n counts the
// partitions of this process) with an output-hook chain that drops every
// packet to and from the address (`ip daddr A drop`, `ip saddr A drop`):
// on loopback every packet passes the output hook once, so both directions
// are cut and a connection attempt or a write just hangs. Heal() deletes the
// table; the destructor always deletes it (also when the test failed).
//
// The rule holds for the whole network namespace: any process talking to
// that address is cut, including the machine's service probes. SshHost picks
// addresses from a random base so parallel test binaries rarely share one.
//
//   std::string why;
//   if (!NftPartition::Available(&why)) GTEST_SKIP() << why;
//   NftPartition cut(host.address());   // cut now
//   ...
//   cut.Heal();                         // or let it go out of scope
//
// Thread-safety: not thread-safe.
#pragma once

#include <string>

namespace clusterctl::testing {

class NftPartition {
 public:
  // True when partitions can be made here: running as root with `nft` on
  // the PATH and nf_tables usable; otherwise false with the reason in *why.
  static bool Available(std::string* why);

  // Cuts `address` ("127.0.0.N") at once; EXPECTs that nft succeeded.
  explicit NftPartition(const std::string& address);
  ~NftPartition();
  NftPartition(const NftPartition&) = delete;
  NftPartition& operator=(const NftPartition&) = delete;

  // Deletes the table: traffic flows again. Idempotent.
  void Heal();
  bool active() const { return active_; }
  const std::string& table() const { return table_; }

 private:
  std::string table_;
  bool active_ = false;
};

}  // namespace clusterctl::testing
