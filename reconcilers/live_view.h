// LiveView: one shared, live picture of the cluster's instances for one
// reconcile pass. The executor asks it whether a requirement holds ("is
// redis@m1 ready?") and waits on it; the answer is a lookup, never an SSH
// observation.
//
// What feeds it:
//   - Seed(observation): the pass's one full observation (instance states,
//     readiness verdicts, unreachable machines). The verdict in `ready` wins
//     over the raw probe result in `readiness` (clusterd applies
//     readiness.failureThreshold to it).
//   - Step results: RecordStarted (a start or restart succeeded: the driver
//     said "started pid N" or "already running"), RecordStopped, RecordFailed.
//   - External events: Update(key, state, detail) (the drift watch: "redis@m1
//     exited") and UpdateReadiness(probe result).
//   - Readiness probes it runs itself, through the Prober, for waiters.
//
// Answers, for an instance key "svc@machine":
//   running  the view's state is running.
//   ready    running, and either its service has no readiness probe (ready
//            once running, as in Kubernetes) or the last readiness result
//            since it (re)started passed. A passing result stays until the
//            instance's state changes.
//   unknown  the view has never seen the instance (its machine could not be
//            observed), or an Update said unknown: neither running nor ready,
//            with a detail saying why ("machine m1 unreachable: timeout").
//
// Waiting (WaitFor) is event driven: a waiter blocks on a condition variable
// and wakes on every update, on Cancel() (if it is interruptible) and at its
// deadline. A wait for readiness of a running instance with a readiness probe
// runs the probe itself, single-flight: at most one probe of an instance is in
// flight at any time and its result is shared by every waiter. Probes of an
// instance are spaced by a quarter of the time since it started running,
// clamped to [min_probe_interval, max_probe_interval] (25 ms .. 200 ms by
// default): 0, 25, 50, 75, 100, 125, 156, 195, 244, ... ms, then every 200 ms.
// So readiness is noticed within ~25% of the time it took (a service ready
// after 200 ms is seen by ~245 ms) while a slow one costs one probe per
// max_probe_interval, however many steps wait for it.
//
// Thread-safety: every method may be called from any thread. Prober calls are
// made without the view's lock held, from the waiting threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "desired-state/model.h"
#include "reconcilers/observed.h"
#include "reconcilers/observer.h"
#include "reconcilers/probes.h"

namespace clusterctl::reconcilers {

enum class WaitResult {
  kHolds,      // The condition holds.
  kTimedOut,   // The deadline passed first.
  kUnknown,    // The instance is unknown (machine not observed): waiting cannot help.
  kCancelled,  // Cancel() was called (interruptible waits only).
};

class LiveView {
 public:
  struct Options {
    const Clock* clock = nullptr;  // The view reads SteadyMs(). Default: RealClock().
    // Blocks on `cv` (`lock` holds the view's mutex) until notified or
    // `timeout` passed, like cv.wait_for (spurious wake-ups are fine). A fake
    // clock advances itself by `timeout` and returns. Default: cv.wait_for.
    std::function<void(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                       std::chrono::milliseconds timeout)>
        wait_for;
    std::chrono::milliseconds min_probe_interval{25};   // Default: 25 ms.
    std::chrono::milliseconds max_probe_interval{200};  // Default: 200 ms.
  };

  // Service and machine definitions (for readiness probes) come from
  // `desired`, or `previous` (may be null) for pruned instances. `prober` may
  // be null: a readiness probe then fails with a detail saying so. Not owned;
  // all must outlive the view.
  LiveView(const desired_state::DesiredState* desired, const desired_state::DesiredState* previous,
           Prober* prober, Options options);
  LiveView(const desired_state::DesiredState* desired, const desired_state::DesiredState* previous,
           Prober* prober)
      : LiveView(desired, previous, prober, Options{}) {}

  // Takes the states and readiness results of an observation. Instances on
  // machines it could not observe stay unknown, with the reason.
  void Seed(const ClusterObservation& observed);

  // Step results. `detail` is the driver's outcome ("started pid 42").
  // RecordStarted: running, readiness to be probed again.
  void RecordStarted(const std::string& key, const std::string& detail);
  void RecordStopped(const std::string& key, const std::string& detail);
  // The action failed: the instance counts as failed (not running).
  void RecordFailed(const std::string& key, const std::string& detail);

  // An external event: `key` is now in `state` ("exited", "pid 42").
  void Update(const std::string& key, ObservedState state, const std::string& detail);
  // A readiness result obtained elsewhere (clusterd's probe loop).
  void UpdateReadiness(const ProbeResult& result);

  // Whether `key` is ready (ready=true) or running (false) now; no probe, no
  // wait. `detail` (may be null) says what is known: "running", "stopped
  // (exited)", "HTTP 503, expected 200", "machine m1 unreachable: ...".
  bool Holds(const std::string& key, bool ready, std::string* detail) const;

  // Blocks until `key` is ready (or running), `deadline_ms` (on the view's
  // clock) passes, the instance is unknown, or (if `interruptible`) Cancel()
  // was called. Probes readiness as described above. `detail` (may be null)
  // gets the last known state or probe detail; `probes` (may be null) the
  // number of probe results that came in during the wait.
  WaitResult WaitFor(const std::string& key, bool ready, int64_t deadline_ms, std::string* detail,
                     bool interruptible = true, int* probes = nullptr);

  // Wakes every interruptible wait, now and later, with kCancelled.
  void Cancel();

  // The view's clock (Options::clock), in steady ms.
  int64_t NowMs() const { return ClockOr(options_.clock).SteadyMs(); }

 private:
  struct Entry {
    bool known = false;  // False: never seen, or the last word was "unknown".
    ObservedState state = ObservedState::kUnknown;
    std::string detail;        // The state's detail ("exited", "started pid 42").
    bool has_result = false;   // A readiness result since it (re)started.
    bool ready = false;        // That result.
    std::string probe_detail;  // Its detail.
    int64_t running_since_ms = 0;
    int64_t next_probe_ms = 0;
    bool probing = false;     // A probe is in flight (single-flight).
    uint64_t generation = 0;  // Bumped on every state change; stale probes are dropped.
    uint64_t probes = 0;      // Probe results taken in.
  };

  // Sets `key`'s state (mu_ held). A change to running, or `new_life` (a
  // restart), resets readiness.
  void SetState(const std::string& key, ObservedState state, const std::string& detail,
                bool new_life = false);
  bool HasProbe(const std::string& key) const;
  bool HoldsLocked(const std::string& key, const Entry* e, bool ready, std::string* detail) const;
  std::string UnknownDetail(const std::string& key) const;
  // Runs one probe of `key` with mu_ released, and takes in its result.
  void ProbeLocked(const std::string& key, std::unique_lock<std::mutex>& lock);
  int64_t ProbeIntervalMs(const Entry& e, int64_t now) const;

  const desired_state::DesiredState* desired_;
  const desired_state::DesiredState* previous_;
  Prober* prober_;
  Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;            // By instance key.
  std::map<std::string, std::string> unreachable_;  // machine -> reason
  bool cancelled_ = false;
};

// The short form of an instance state for details: "running", "stopped
// (exited)".
std::string DescribeState(ObservedState state, const std::string& detail);

}  // namespace clusterctl::reconcilers
