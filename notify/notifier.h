// Notifier: alert events in, notifications out, nothing lost.
//
// Enqueue() takes the events of the alert book (alerts/alert_book.h) in
// order and, for each sink that wants one (notification.h: severities,
// kinds, held while acknowledged), appends the notification to the sink's
// outbox in the store (outbox.h). A `firing` of a dedup key the sink was
// told about within its cooldown is suppressed, and so are the later events
// of that suppressed episode.
//
// The delivery thread (Start/Stop) sends each sink's outbox in order, one
// at a time: a receiver that is down blocks only its own sink, is retried
// with backoff (retry initial doubling to max), and gets the backlog in
// order when it is back. Delivery is at-least-once; each notification has an
// id receivers can deduplicate on. DeliverDue() is one round, for tests.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alerts/alert_book.h"
#include "base/clock.h"
#include "notify/notification.h"
#include "notify/outbox.h"
#include "store/store.h"

namespace clusterctl::notify {

struct SinkStats {
  std::string name, type;
  size_t queued = 0;
  uint64_t sent = 0, failed_attempts = 0, dropped = 0, suppressed = 0;
  int64_t last_success_ms = 0;
  std::string last_error;  // Of the last failed attempt, "" after a success.
};

class Notifier {
 public:
  using DeliverFn = std::function<Status(const SinkConfig&, const nlohmann::json&)>;

  // `deliver` defaults to notify::Deliver (sinks.h).
  static Result<std::unique_ptr<Notifier>> Create(NotifyConfig config, store::Store* store,
                                                  const Clock* clock, std::string controller,
                                                  DeliverFn deliver = nullptr);
  ~Notifier();

  void Enqueue(const std::vector<alerts::AlertEvent>& events);
  // Tries the head of every sink whose retry time has come; returns how
  // many attempts were made.
  size_t DeliverDue();
  void Start();
  void Stop();

  std::vector<SinkStats> Stats() const;
  bool empty() const { return config_.sinks.empty(); }

 private:
  Notifier() = default;
  void Run();
  // Milliseconds until the earliest retry of a non-empty outbox, or -1.
  int64_t NextDueInMs() const;

  NotifyConfig config_;
  store::Store* store_ = nullptr;
  const Clock* clock_ = nullptr;
  std::string controller_;
  DeliverFn deliver_;
  std::unique_ptr<Outbox> outbox_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::thread thread_;
  std::map<std::string, SinkStats> stats_;
  // Per sink: when each dedup key last fired to it, and the episodes
  // suppressed by the cooldown (their later events are not sent either).
  std::map<std::string, std::map<std::string, int64_t>> last_fired_ms_;
  std::map<std::string, std::set<int64_t>> suppressed_;
  // Per sink: not before this (steady ms), after a failed attempt.
  std::map<std::string, int64_t> next_attempt_ms_;
};

}  // namespace clusterctl::notify
