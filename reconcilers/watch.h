// DriftWatch: event-driven drift detection. Every `interval` it sends each
// machine a fork-free tick (watch_scripts.h) on its watch shell
// (Purpose::kWatch) and reports every instance whose state or pid changed,
// within about one interval of the change (a `kill -9` is seen in ~200 ms
// instead of on the next reconcile pass).
//
//   DriftWatch::Options o;
//   o.on_event = [&](const DriftWatch::Event& e) { if (e.state == kFailed) Wake(); };
//   DriftWatch watch(&ssh_pool, o);
//   watch.SetDesired(desired);  // and again on every new revision
//   watch.Start();
//   ...
//   watch.Stop();
//
// What is watched: every process-driver instance of the desired state
// (desired running or stopped; systemd units are not watched). Events are
// computed against the watch's own map of the last state and pid reported
// per instance, so they stay right when a machine's shell is lost and
// reopened: the map, not the shell, decides what is a change. The first
// successful tick of a machine reports every instance on it once.
//
// Failures: a tick that fails (machine unreachable, timeout, a script error)
// forgets what is known of that machine and retries it after a backoff
// (backoff_initial doubling to backoff_max); the next successful tick reports
// every instance again. A lost transport never produces an event: the watch
// says nothing about a machine it cannot see (the reconcile pass reports it
// unreachable). The periodic observation stays the level-based safety net;
// the watch only makes it react sooner.
//
// Thread-safety: every method is safe from any thread. The callbacks run on
// the watch's worker threads, possibly concurrently for different machines
// (never for the same machine): keep them short and thread-safe, and do not
// call Stop() from them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "desired-state/model.h"
#include "reconcilers/observed.h"
#include "reconcilers/ssh.h"

namespace clusterctl::reconcilers {

class DriftWatch {
 public:
  // A change of one instance.
  struct Event {
    std::string machine;
    std::string service;
    ObservedState state = ObservedState::kUnknown;  // running, stopped or failed
    int64_t pid = 0;     // From the pid file (also when the process is gone); 0 if none.
    std::string detail;  // "exited", "exited; pid N is now another process", "stopped", ...
    int64_t at_ms = 0;   // When the tick that saw it ended (controller wall clock).

    std::string Key() const { return service + "@" + machine; }
  };

  // A service log that went over its cap and was rotated.
  struct LogRotation {
    std::string machine;
    std::string service;
    int64_t bytes = 0;  // Size of the log when it was rotated.
    int64_t at_ms = 0;
  };

  struct Options {
    // Between two ticks of a machine (start to start). Default: 200 ms.
    std::chrono::milliseconds interval{200};
    // Machines ticked at once. Default: 4. When the machines need more
    // ticks per interval than the threads can run, ticks come later than
    // `interval` (no machine is skipped: the one due first goes first).
    int threads = 4;
    // Bound on one tick, passed to the CommandRunner. Default: 5 s.
    std::chrono::milliseconds tick_timeout{5000};
    // Retry delay after a failed tick: doubles per further failure up to
    // backoff_max. Defaults: 500 ms, 30 s.
    std::chrono::milliseconds backoff_initial{500};
    std::chrono::milliseconds backoff_max{30000};
    // Called for each change. Default: none.
    std::function<void(const Event&)> on_event;
    // Called for each log rotation. Default: none.
    std::function<void(const LogRotation&)> on_log_rotated;
    // Called when a machine's ticks start failing (`error` set) and when they
    // work again (`error` OK). Default: none.
    std::function<void(const std::string& machine, const Status& error)> on_machine;
    // Stamps Event::at_ms (WallMs). Default: RealClock().
    const Clock* clock = nullptr;
  };

  // `runner` must outlive the watch.
  DriftWatch(CommandRunner* runner, Options options);
  // Stop().
  ~DriftWatch();
  DriftWatch(const DriftWatch&) = delete;
  DriftWatch& operator=(const DriftWatch&) = delete;

  // The desired state to watch; nullptr watches nothing. Machines that left
  // it are forgotten, machines that joined are ticked at once, and a machine
  // whose set of watched services changed is sent its new set.
  void SetDesired(std::shared_ptr<const desired_state::DesiredState> desired);

  // Starts the worker threads. No-op when running.
  void Start();
  // Stops the worker threads and joins them. A tick in flight finishes first,
  // so this takes at most tick_timeout (plus the runner's connect timeout).
  // No callback runs after it returns. Start() may be called again.
  void Stop();

  // Ticks that completed (successfully) on `machine` since the watch was made.
  int64_t TicksForTest(const std::string& machine) const;

 private:
  struct Known {
    ObservedState state = ObservedState::kUnknown;
    int64_t pid = 0;
  };
  struct MachineWatch {
    SshTarget target;
    std::string set_script;             // WatchSetScript of its services.
    std::vector<std::string> services;  // Watched, by name.
    uint64_t id = 0;            // Unique per entry (a machine removed and re-added differs).
    uint64_t generation = 0;    // Bumped when the set changes.
    bool need_set = true;       // The next command carries the set.
    bool stateless = false;     // The runner keeps no shell state: always send the set.
    bool last_was_set = false;  // The last command carried the set and worked.
    bool in_flight = false;
    int failures = 0;
    std::chrono::steady_clock::time_point due;
    std::map<std::string, Known> known;  // By service.
    int64_t ticks = 0;
  };
  struct TickResult;

  void Worker();
  // Picks the machine due first that is idle; REQUIRES mu_ held.
  std::map<std::string, MachineWatch>::iterator NextDue(
      std::chrono::steady_clock::time_point* wake);
  TickResult RunTick(const SshTarget& target, const std::string& set_script, bool with_set);
  int64_t Now() const;

  CommandRunner* const runner_;
  const Options options_;

  mutable std::mutex mu_;  // Guards the members below; never held during a Run.
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, MachineWatch> machines_;
  uint64_t next_id_ = 0;
  std::vector<std::thread> threads_;
  std::mutex start_stop_mu_;  // Serializes Start() and Stop().
};

}  // namespace clusterctl::reconcilers
