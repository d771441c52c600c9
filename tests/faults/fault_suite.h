// The fault-injection suite's fixture (issue 18): a DemoCluster (five real
// sshd hosts, real redis-server, the test services) converged by the built
// clusterd, and the invariants every fault test checks once its fault ends:
//
//   (a) every audit intent has a result (or an `interrupted` record) and
//       the hash chain verifies;
//   (b) no step was sent to a machine while it could not be observed (each
//       test that takes a machine away passes its name and the window);
//   (c) no service instance runs twice on a machine (processes counted by
//       their listening port's command line in /proc);
//   (d) the cluster converges to the branch head (every desired instance
//       running and ready, revision = head) within kConvergeBound;
//   (e) no secret (the API token, the webhook secret) appears in clusterd's
//       log, the audit records or the API's answers;
//   (f) clusterd is still running (or, for the crash faults, was restarted
//       by the test and lost nothing: (a) covers it).
//
// Each check's outcome and the recovery time go, as one JSON line per
// fault, to $CLUSTERCTL_FAULTS_REPORT when it is set
// (scripts/faults-report.py turns the lines into docs/reliability.md).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/harness/demo_cluster.h"
#include "tests/harness/process.h"

namespace clusterctl::testing {

class FaultSuite : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds kConvergeBound{90};

  FaultSuite() = default;
  // A cluster made with these options (a proxied machine, timeouts).
  explicit FaultSuite(DemoOptions options) : demo_(std::move(options)) {}

  void SetUp() override;
  void TearDown() override;
  // Runs before clusterd starts (a fault that needs the ground prepared).
  virtual void BeforeClusterd() {}

  // Audit sequence number of the newest record (0 when none).
  uint64_t LastSeq() const;
  // Intents addressed to `machine` with seq in (after, upto].
  size_t IntentsOn(const std::string& machine, uint64_t after, uint64_t upto) const;
  // The intents without a result (or `interrupted` record), as
  // "seq action service@machine; ..." (empty: none); only those addressed
  // to `machine` with seq > after when given.
  std::string OpenIntents(const std::string& machine = "", uint64_t after = 0) const;
  // The pid of service@machine in the status; 0 when it has none.
  int64_t InstancePid(const std::string& service, const std::string& machine) const;
  // Waits until service@machine runs with a pid other than `old_pid` and is
  // ready (a repair).
  bool WaitRepaired(const std::string& service, const std::string& machine, int64_t old_pid,
                    std::chrono::seconds timeout = std::chrono::seconds(30)) const;
  // Waits until an alert of `kind` (optionally on `machine`) is firing.
  bool WaitAlert(const std::string& kind, const std::string& machine = "",
                 std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  // Commits the working repository's changes with `message` and pushes.
  std::string CommitAndPush(const std::string& message);
  // The text of services/<file>.yaml with `from` replaced by `to` (once).
  void EditService(const std::string& file, const std::string& from, const std::string& to);
  // Makes monitoring-server (services/edge.yaml) ignore SIGTERM, with
  // `stop_timeout_seconds` before its stop kills it, pushes that and waits
  // until clusterd applied it and the instance is ready again. Returns the
  // revision; empty (with a failure recorded) when it was not applied.
  std::string MonitoringIgnoresSigterm(int stop_timeout_seconds);

  // Checks (a) to (f) once the fault ended at `fault_end`; records the
  // report line for `fault`. `unobserved`/(after, upto]: invariant (b).
  void CheckInvariants(const std::string& fault, std::chrono::steady_clock::time_point fault_end,
                       const std::string& unobserved = "", uint64_t after = 0, uint64_t upto = 0);

  DemoCluster demo_;
  std::unique_ptr<Process> clusterd_;
};

// A tmpfs of `bytes` mounted over `dir` (its files copied in first, modes
// kept), detached and removed when it goes, even when the test failed.
// Fill() takes all its free space; Free() gives it back.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, size_t bytes);
  ~SmallDisk();
  void Fill();
  void Free();

 private:
  std::string dir_, stash_;
  bool mounted_ = false;
};

}  // namespace clusterctl::testing
