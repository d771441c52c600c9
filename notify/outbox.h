// Outbox: the notifications not delivered yet, per sink, in the store, so
// a receiver that is down (or a clusterd restart) loses nothing.
//
// Keys in the "meta" family: "notify/outbox/<sink>/<seq, 16 digits>" ->
// {notification, attempts, next_attempt_ms, last_error}. Push() writes with
// sync (the notification exists before the event is forgotten); delivery
// bookkeeping is not synced (at worst one more attempt after a crash:
// at-least-once). Past `max_per_sink` entries the oldest of that sink is
// dropped (counted, logged by the caller).
//
// Thread-safety: all methods lock one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/status.h"
#include "store/store.h"

namespace clusterctl::notify {

struct OutboxEntry {
  std::string sink;
  uint64_t seq = 0;
  nlohmann::json notification;
  int attempts = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;
};

class Outbox {
 public:
  // Loads the sequence and the sizes of what a previous run left.
  static Result<std::unique_ptr<Outbox>> Open(store::Store* store, size_t max_per_sink);

  // Appends; *dropped: how many old entries of the sink were dropped for it.
  Status Push(const std::string& sink, const nlohmann::json& notification, size_t* dropped);
  // The oldest entry of `sink`, if any.
  Result<std::optional<OutboxEntry>> Head(const std::string& sink) const;
  // Delivered: removed.
  Status Remove(const OutboxEntry& e);
  // A failed attempt: stored with its new attempts, next time and error.
  Status Update(const OutboxEntry& e);
  size_t Size(const std::string& sink) const;

 private:
  Outbox(store::Store* store, size_t max) : store_(store), max_(max) {}
  static std::string Prefix(const std::string& sink);
  static std::string KeyOf(const std::string& sink, uint64_t seq);

  store::Store* store_;
  size_t max_;
  mutable std::mutex mu_;
  uint64_t next_seq_ = 1;
  std::map<std::string, size_t> sizes_;
};

}  // namespace clusterctl::notify
