// The desired-state model: typed values for every kind of document in a
// desired-state repository (SPEC.md section 2), after defaults are applied.
//
// The model is produced by desired_state::Load (loader.h) and never changed
// afterwards; every later stage (diff, plan, execute) reads it. Defaults come
// from the JSON Schemas in schemas/, the one source of truth: the loader fills
// them into each document (Schemas::ValidateAndDefault, schema.cc) before
// decode.cc reads it, so a loaded field always holds its effective value. The
// initializers below serve values built in code (tests, in-code defaults) and
// must equal the schema's; tests/desired_state/defaults_test.cc checks it.
//
// Thread-safety: plain value types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "desired-state/diagnostics.h"
#include "desired-state/sync_windows.h"

namespace clusterctl::desired_state {

enum class RunState { kRunning, kStopped };
const char* RunStateName(RunState s);  // "running" / "stopped"

struct SshSettings {
  std::string user;           // Default: the Cluster's defaults.ssh.user, else "root".
  int port = 22;              // Default: Cluster defaults, else 22.
  std::string identity_file;  // A file on the controller host. Default: Cluster defaults.

  bool operator==(const SshSettings&) const = default;
};

// Whether drift of an instance is corrected (enforce) or only reported
// (observe: detected, shown in diff, status and the API, alerted; never
// corrected).
enum class ReconcileMode { kEnforce, kObserve };
const char* ReconcileModeName(ReconcileMode m);  // "enforce" / "observe"

// Whether the repair of drift (a crashed or stopped instance) waits for the
// sync windows like the changes of a new revision do.
enum class RepairDrift { kAlways, kWindow };
const char* RepairDriftName(RepairDrift r);  // "always" / "window"

struct ReconcileSettings {
  int interval_seconds = 30;                     // Default: 30.
  int max_parallel = 8;                          // Default: 8.
  bool allow_mass_stop = false;                  // Default: false.
  ReconcileMode mode = ReconcileMode::kEnforce;  // Services' default. Default: enforce.

  bool operator==(const ReconcileSettings&) const = default;
};

struct Cluster {
  std::string name;
  std::optional<std::string> profile;  // Absent: every service is selected.
  RunState state = RunState::kRunning;
  SshSettings default_ssh;
  ReconcileSettings reconcile;
  // Sync windows (sync_windows.h), in file order; names are unique.
  std::vector<SyncWindow> windows;
  RepairDrift repair_drift = RepairDrift::kAlways;  // Default: always.
  Location where;

  bool operator==(const Cluster&) const = default;
};

struct Machine {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string address;
  SshSettings ssh;  // Resolved: the machine's own settings over the Cluster's defaults.
  std::string state_dir = "/var/lib/clusterctl";
  Location where;

  bool operator==(const Machine&) const = default;
};

enum class ProbeKind { kHttp, kTcp, kExec, kRedis };
const char* ProbeKindName(ProbeKind k);

struct Probe {
  ProbeKind kind = ProbeKind::kTcp;
  // http
  std::string scheme = "http";
  std::string path = "/";
  int expect_status = 200;
  std::map<std::string, std::string> headers;
  std::string body_contains;  // Empty: the body is not checked.
  // http, tcp, redis. host empty = the machine's address.
  std::string host;
  int port = 0;
  // exec
  std::vector<std::string> command;
  // redis
  std::string password_file;  // On the controller host; its content is a secret.
  // timing
  int period_seconds = 2;
  int timeout_seconds = 2;
  int failure_threshold = 3;
  int start_timeout_seconds = 60;  // Readiness only.
  int slow_ms = 0;                 // 0: no probe_slow alert.

  bool operator==(const Probe&) const = default;
};

enum class DriverKind { kProcess, kSystemd };

struct ProcessSpec {
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string working_dir;  // Empty: the state directory of the service.
  std::string user;         // Empty: the SSH user; otherwise run with `sudo -n -u`.
  // Cap of <stateDir>/<service>/log in bytes, enforced by the drift watch
  // (reconcilers/watch_scripts.h): over it, the log is rotated to log.1.
  // Not part of the spec hash: changing it restarts nothing.
  int64_t log_max_bytes = 10485760;  // Default: 10 MiB.

  bool operator==(const ProcessSpec&) const = default;
};

struct SystemdSpec {
  std::string unit;
  bool sudo = false;

  bool operator==(const SystemdSpec&) const = default;
};

enum class DependencyCondition { kReady, kStarted };

struct Dependency {
  std::string service;
  DependencyCondition condition = DependencyCondition::kReady;
  Location where;

  bool operator==(const Dependency&) const = default;
};

// rollout.canary: the instances that take a spec change first. Exactly one
// of machines, count and percent is given.
struct CanarySpec {
  std::vector<std::string> machines;  // These machines, in this order.
  int count = 0;                      // Or the first N instances (by machine name).
  int percent = 0;                    // Or P % of the instances, rounded up.
  int analysis_seconds = 60;          // Ready and healthy this long before the next wave.
  bool operator==(const CanarySpec&) const = default;
};

// One step of rollout.waves: how many instances have the new spec once the
// wave is done, as a count or a percentage (rounded up) of all of them.
struct WaveStep {
  int count = 0;    // When > 0.
  int percent = 0;  // Otherwise.
  bool operator==(const WaveStep&) const = default;
};

struct Service {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<std::string> machines;                    // Explicit list, or
  std::map<std::string, std::string> machine_selector;  // labels to match.
  RunState state = RunState::kRunning;
  // Machines whose instance is kept stopped whatever `state` says
  // (`clusterctl stop SERVICE --machine M` writes it). Default: none.
  std::vector<std::string> stopped_on;
  bool critical = false;
  DriverKind driver = DriverKind::kProcess;
  ProcessSpec process;  // When driver == kProcess.
  SystemdSpec systemd;  // When driver == kSystemd.
  std::vector<Dependency> depends_on;
  std::optional<Probe> readiness;
  std::optional<Probe> liveness;
  int stop_timeout_seconds = 15;
  int backoff_seconds = 1;
  int max_backoff_seconds = 300;
  int max_unavailable = 1;
  // Progressive rollout (rollout.canary, waves, maxFailedInstances): absent,
  // a spec change is a plain rolling restart (controller/rollout.h).
  std::optional<CanarySpec> canary;
  std::vector<WaveStep> waves;   // After the canary; a last 100% is implied.
  int max_failed_instances = 0;  // Failures tolerated; one more rolls back.
  // Resolved at load: spec.reconcile.mode, else the Cluster's reconcile.mode.
  ReconcileMode reconcile_mode = ReconcileMode::kEnforce;
  Location where;

  bool operator==(const Service&) const = default;
};

struct Profile {
  std::string name;
  std::vector<std::string> services;  // "*" selects every service.
  Location where;

  bool operator==(const Profile&) const = default;
};

// One (service, machine) pair and what it should be.
struct Instance {
  std::string service;
  std::string machine;
  RunState desired = RunState::kRunning;
  std::string spec_hash;  // Hex SHA-256 over what the running process depends on.

  std::string Key() const { return service + "@" + machine; }

  bool operator==(const Instance&) const = default;
};

// The commit a desired state was read from.
struct Revision {
  std::string commit;  // Full hex SHA-1 of the commit.
  std::string author;  // "Name <email>"
  std::string message;
  int64_t time = 0;  // Commit time, seconds since the epoch.

  std::string Short() const { return commit.substr(0, 7); }

  bool operator==(const Revision&) const = default;
};

// A validated desired state. Vectors are sorted by name; `service_order` is a
// topological order of services (dependencies first, ties by name).
struct DesiredState {
  Revision revision;
  Cluster cluster;
  std::vector<Machine> machines;
  std::vector<Service> services;
  std::vector<Profile> profiles;
  std::vector<Instance> instances;         // Sorted by (service, machine).
  std::vector<std::string> service_order;  // Dependencies before dependents.

  const Machine* FindMachine(const std::string& name) const;
  const Service* FindService(const std::string& name) const;
  const Profile* FindProfile(const std::string& name) const;

  bool operator==(const DesiredState&) const = default;
};

}  // namespace clusterctl::desired_state
