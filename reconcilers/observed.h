// Observed state: what the controller learned from the machines, as plain
// values. Produced by the drivers (one SSH round trip per machine) and the
// probes; recorded by the state store (store/state_store.h); read by the
// diff. No I/O here.
//
// Thread-safety: value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace clusterctl::reconcilers {

enum class ObservedState {
  kUnknown,  // the machine could not be observed: never a reason to act
  kRunning,
  kStopped,  // not running, and it did not die on its own (or never ran)
  kFailed,   // it was started by clusterctl and is gone without a stop
};
const char* ObservedStateName(ObservedState s);             // "unknown", "running", ...
ObservedState ParseObservedState(const std::string& name);  // kUnknown if not known

// One service instance as seen on its machine.
struct ObservedInstance {
  std::string service;
  std::string machine;
  ObservedState state = ObservedState::kUnknown;
  int64_t pid = 0;             // 0 when not running (process driver) or unknown.
  int64_t started_at = 0;      // Process start, seconds since the epoch; 0 if unknown.
  std::string spec_hash;       // The hash recorded when clusterctl started it; may be empty.
  int64_t restarts = 0;        // Starts recorded by clusterctl for this instance.
  int64_t observed_at_ms = 0;  // When it was observed (controller clock).
  std::string detail;          // e.g. "exited", "pid 123 is another process", systemd's SubState.

  std::string Key() const { return service + "@" + machine; }
};

// Machine facts, as the monitoring service of a typical lab reports them.
struct MachineFacts {
  std::string machine;
  bool reachable = false;
  std::string error;  // Why it is unreachable ("host_key_mismatch: ...", "timeout ...").
  int64_t observed_at_ms = 0;
  double uptime_seconds = 0;
  double load1 = 0, load5 = 0, load15 = 0;
  int64_t mem_total_kb = 0, mem_available_kb = 0;
  int64_t disk_total_kb = 0, disk_available_kb = 0;  // Of the state directory's filesystem.
  int cpus = 0;
};

// Everything one observation of one machine returned.
struct MachineObservation {
  MachineFacts facts;
  std::vector<ObservedInstance> instances;  // One per instance asked about.
};

enum class ProbeRole { kReadiness, kLiveness };
const char* ProbeRoleName(ProbeRole r);

// One run of one probe against one instance.
struct ProbeResult {
  std::string service;
  std::string machine;
  ProbeRole role = ProbeRole::kReadiness;
  std::string kind;  // "http", "tcp", "exec", "redis"
  bool ok = false;
  int64_t latency_ms = 0;
  int64_t time_ms = 0;  // When it ran (controller clock, ms since the epoch).
  std::string detail;   // "200 OK", "connection refused", "timeout after 2000 ms", ...
  std::map<std::string, std::string> info;  // redis: connected_clients, used_memory_human, ...
  // The probe could not run (an exec probe found every probe shell of the
  // machine busy): ok is false, but it is not a failure of the service and
  // never counts toward a liveness failure threshold.
  bool inconclusive = false;

  std::string Key() const { return service + "@" + machine; }
};

}  // namespace clusterctl::reconcilers
