// ServiceDriver: starts, stops, restarts and observes service instances on
// machines. One interface for the process and systemd drivers (the script
// differs per Service, see driver_scripts.h), so the executor never branches
// on the driver kind.
//
// ShellDriver runs the scripts over a CommandRunner (SSH in production).
// Observation is batched: one round trip per machine returns every instance
// on it plus the machine's facts.
//
// A command whose connection dropped mid-way has an unknown outcome: the
// driver returns kUnavailable and the caller re-observes before any retry.
//
// Thread-safety: ShellDriver is safe to call from many threads; it holds no
// state beyond its CommandRunner, which must be thread-safe (SshPool is).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "desired-state/model.h"
#include "reconcilers/observed.h"
#include "reconcilers/ssh.h"
#include "reconcilers/target.h"

namespace clusterctl::reconcilers {

class ServiceDriver {
 public:
  virtual ~ServiceDriver() = default;

  // State of `services` on `machine` and the machine's facts.
  virtual Result<MachineObservation> Observe(
      const desired_state::Machine& machine,
      const std::vector<const desired_state::Service*>& services) = 0;

  // Each returns a short outcome for the audit log ("started pid 4242",
  // "terminated by SIGTERM", "killed by SIGKILL after 15 s", "already running").
  virtual Result<std::string> Start(const desired_state::Machine& machine,
                                    const desired_state::Service& service,
                                    const std::string& spec_hash) = 0;
  virtual Result<std::string> Stop(const desired_state::Machine& machine,
                                   const desired_state::Service& service) = 0;
  virtual Result<std::string> Restart(const desired_state::Machine& machine,
                                      const desired_state::Service& service,
                                      const std::string& spec_hash) = 0;
};

class ShellDriver : public ServiceDriver {
 public:
  struct Options {
    std::chrono::milliseconds observe_timeout{10000};  // Default: 10 s.
    std::chrono::milliseconds command_timeout{30000};  // Default: 30 s, plus stopTimeoutSeconds.
    const Clock* clock = nullptr;  // Stamps observed_at (WallMs). Default: RealClock().
  };

  // `runner` must outlive the driver.
  ShellDriver(CommandRunner* runner, Options options);
  explicit ShellDriver(CommandRunner* runner) : ShellDriver(runner, Options{}) {}

  Result<MachineObservation> Observe(
      const desired_state::Machine& machine,
      const std::vector<const desired_state::Service*>& services) override;
  Result<std::string> Start(const desired_state::Machine& machine,
                            const desired_state::Service& service,
                            const std::string& spec_hash) override;
  Result<std::string> Stop(const desired_state::Machine& machine,
                           const desired_state::Service& service) override;
  Result<std::string> Restart(const desired_state::Machine& machine,
                              const desired_state::Service& service,
                              const std::string& spec_hash) override;

 private:
  Result<std::string> RunAction(const desired_state::Machine& machine,
                                const desired_state::Service& service, const char* verb,
                                const std::string& script);

  CommandRunner* runner_;
  Options options_;
};

}  // namespace clusterctl::reconcilers
