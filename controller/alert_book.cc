#include "controller/alert_book.h"

namespace clusterctl::controller {

AlertBook::Change AlertBook::Raise(const std::string& id, const std::string& severity,
                                   const std::string& message, int64_t now_ms) {
  auto it = alerts_.find(id);
  if (it == alerts_.end()) {
    alerts_[id] = DaemonAlert{severity, message, now_ms};
    return Change::kOpened;
  }
  if (it->second.message == message) return Change::kNone;
  it->second.severity = severity;
  it->second.message = message;
  return Change::kUpdated;
}

bool AlertBook::Clear(const std::string& id) { return alerts_.erase(id) > 0; }

size_t AlertBook::ClearIf(const std::function<bool(const std::string& id)>& pred) {
  size_t n = 0;
  for (auto it = alerts_.begin(); it != alerts_.end();) {
    if (pred(it->first)) {
      it = alerts_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

const DaemonAlert* AlertBook::Find(const std::string& id) const {
  auto it = alerts_.find(id);
  return it == alerts_.end() ? nullptr : &it->second;
}

std::vector<api::AlertView> AlertBook::All() const {
  std::vector<api::AlertView> out;
  out.reserve(alerts_.size());
  for (const auto& [id, a] : alerts_) out.push_back({id, a.severity, a.message, a.since_ms});
  return out;
}

std::vector<std::string> AlertBook::Messages() const {
  std::vector<std::string> out;
  out.reserve(alerts_.size());
  for (const auto& [id, a] : alerts_) out.push_back(a.message);
  return out;
}

}  // namespace clusterctl::controller
