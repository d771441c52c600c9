// AlertBook: the daemon's open alerts, as a pure value.
//
//   - Raise(id, severity, message, now): opens the alert, or updates an open
//     one; an alert raised again keeps the time it was first raised (`since`)
//     and takes the new message with its severity. The same message again
//     changes nothing (a condition that persists is not news).
//   - Clear(id) closes it; ClearIf(pred) closes every alert it selects (an
//     instance or machine that left the desired state takes its alerts).
//   - All() lists the open alerts ordered by id, the order of
//     GET /api/v1/alerts and of the status document's `alerts`.
//
// Messages are stored as given: the caller redacts credentials first. Pure;
// not thread-safe (the daemon guards it with its mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "api/daemon_view.h"
#include "controller/daemon_memory.h"

namespace clusterctl::controller {

class AlertBook {
 public:
  enum class Change { kNone, kOpened, kUpdated };
  Change Raise(const std::string& id, const std::string& severity, const std::string& message,
               int64_t now_ms);
  // Whether it was open.
  bool Clear(const std::string& id);
  // Closes every alert whose id `pred` selects; returns how many.
  size_t ClearIf(const std::function<bool(const std::string& id)>& pred);

  bool IsOpen(const std::string& id) const { return alerts_.count(id) > 0; }
  const DaemonAlert* Find(const std::string& id) const;
  std::vector<api::AlertView> All() const;
  // The messages, ordered by id.
  std::vector<std::string> Messages() const;

  // For persistence across restarts (daemon_memory.h).
  const std::map<std::string, DaemonAlert>& entries() const { return alerts_; }
  void Restore(std::map<std::string, DaemonAlert> alerts) { alerts_ = std::move(alerts); }

 private:
  std::map<std::string, DaemonAlert> alerts_;
};

}  // namespace clusterctl::controller
