#include "alerts/alert_book.h"

#include <algorithm>

#include "base/time_format.h"

namespace clusterctl::alerts {

using nlohmann::json;

namespace {
json TimeOrNull(int64_t ms) { return ms > 0 ? json(FormatRfc3339Ms(ms)) : json(nullptr); }
}  // namespace

const std::vector<std::string>& Kinds() {
  static const std::vector<std::string> kKinds = {
      kind::kMachineUnreachable, kind::kHostKeyMismatch,     kind::kCrashLoop,
      kind::kReadinessTimeout,   kind::kCriticalServiceDown, kind::kRevisionRejected,
      kind::kMassStopRefused,    kind::kSourceFetch,         kind::kProbeSlow,
      kind::kMachineDisk,        kind::kMachineMemory,       kind::kQuarantine,
      kind::kPruneBlocked,       kind::kStoreWrite,          kind::kSuspended,
      kind::kDriftObserved,      kind::kRolloutFailed};
  return kKinds;
}

const std::vector<std::string>& Severities() {
  static const std::vector<std::string> kSeverities = {"info", "warning", "critical"};
  return kSeverities;
}

std::string Key(const std::string& kind, const std::string& machine, const std::string& service) {
  return kind + "/" + machine + "/" + service;
}

bool Alert::operator==(const Alert& o) const {
  auto same_ack = [](const std::optional<Ack>& a, const std::optional<Ack>& b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || (a->by == b->by && a->note == b->note && a->at_ms == b->at_ms &&
                  a->until_ms == b->until_ms);
  };
  return id == o.id && key == o.key && kind == o.kind && machine == o.machine &&
         service == o.service && severity == o.severity && message == o.message &&
         firing == o.firing && first_seen_ms == o.first_seen_ms && last_seen_ms == o.last_seen_ms &&
         resolved_ms == o.resolved_ms && count == o.count && level == o.level &&
         same_ack(ack, o.ack);
}

const char* EventName(EventType t) {
  switch (t) {
    case EventType::kFiring:
      return "firing";
    case EventType::kEscalated:
      return "escalated";
    case EventType::kResolved:
      return "resolved";
    case EventType::kAckExpired:
      return "ack_expired";
  }
  return "firing";
}

std::string AlertEvent::Id() const {
  const std::string id = std::to_string(alert.id);
  switch (type) {
    case EventType::kFiring:
      return id + "-firing";
    case EventType::kEscalated:
      return id + "-escalated-" + std::to_string(alert.level);
    case EventType::kResolved:
      return id + "-resolved";
    case EventType::kAckExpired:
      return id + "-ack-expired-" + std::to_string(alert.ack ? alert.ack->until_ms : 0);
  }
  return id;
}

json AlertToJson(const Alert& a) {
  json j = {{"id", a.id},
            {"key", a.key},
            {"kind", a.kind},
            {"machine", a.machine},
            {"service", a.service},
            {"severity", a.severity},
            {"message", a.message},
            {"state", a.State()},
            {"first_seen_ms", a.first_seen_ms},
            {"last_seen_ms", a.last_seen_ms},
            {"count", a.count},
            {"level", a.level}};
  if (!a.firing) j["resolved_ms"] = a.resolved_ms;
  if (a.ack) {
    j["ack"] = {{"by", a.ack->by},
                {"note", a.ack->note},
                {"at_ms", a.ack->at_ms},
                {"until_ms", a.ack->until_ms}};
  }
  return j;
}

json PublicJson(const Alert& a) {
  json j = {{"id", std::to_string(a.id)},
            {"key", a.key},
            {"kind", a.kind},
            {"machine", a.machine.empty() ? json(nullptr) : json(a.machine)},
            {"service", a.service.empty() ? json(nullptr) : json(a.service)},
            {"severity", a.severity},
            {"message", a.message},
            {"state", a.State()},
            {"since", FormatRfc3339Ms(a.first_seen_ms)},
            {"last_seen", FormatRfc3339Ms(a.last_seen_ms)},
            {"resolved", a.firing ? json(nullptr) : TimeOrNull(a.resolved_ms)},
            {"count", a.count},
            {"level", a.level},
            {"acknowledged", nullptr}};
  if (a.ack) {
    j["acknowledged"] = {{"by", a.ack->by},
                         {"note", a.ack->note},
                         {"at", FormatRfc3339Ms(a.ack->at_ms)},
                         {"until", FormatRfc3339Ms(a.ack->until_ms)}};
  }
  return j;
}

std::optional<Alert> AlertFromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  try {
    Alert a;
    a.id = j.at("id").get<int64_t>();
    a.key = j.at("key").get<std::string>();
    a.kind = j.at("kind").get<std::string>();
    a.machine = j.value("machine", "");
    a.service = j.value("service", "");
    a.severity = j.at("severity").get<std::string>();
    a.message = j.at("message").get<std::string>();
    a.firing = j.at("state").get<std::string>() == "firing";
    a.first_seen_ms = j.at("first_seen_ms").get<int64_t>();
    a.last_seen_ms = j.at("last_seen_ms").get<int64_t>();
    a.resolved_ms = j.value("resolved_ms", int64_t{0});
    a.count = j.value("count", 1);
    a.level = j.value("level", 0);
    if (auto it = j.find("ack"); it != j.end() && it->is_object()) {
      a.ack = Ack{it->at("by").get<std::string>(), it->value("note", ""),
                  it->at("at_ms").get<int64_t>(), it->at("until_ms").get<int64_t>()};
    }
    return a;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

AlertBook::AlertBook(std::vector<int64_t> escalate_after_ms, size_t keep_resolved)
    : keep_resolved_(keep_resolved) {
  SetEscalation(std::move(escalate_after_ms));
}

void AlertBook::SetEscalation(std::vector<int64_t> escalate_after_ms) {
  std::sort(escalate_after_ms.begin(), escalate_after_ms.end());
  escalate_after_ms_ = std::move(escalate_after_ms);
}

Alert* AlertBook::Firing(const std::string& key) {
  auto it = firing_.find(key);
  return it == firing_.end() ? nullptr : &it->second;
}

const Alert* AlertBook::FindFiring(const std::string& key) const {
  auto it = firing_.find(key);
  return it == firing_.end() ? nullptr : &it->second;
}

AlertBook::Change AlertBook::Raise(const std::string& kind, const std::string& machine,
                                   const std::string& service, const std::string& severity,
                                   const std::string& message, int64_t now_ms) {
  const std::string key = Key(kind, machine, service);
  ++version_;
  if (Alert* a = Firing(key)) {
    a->last_seen_ms = std::max(a->last_seen_ms, now_ms);
    if (a->message == message && a->severity == severity) return Change::kNone;
    a->message = message;
    a->severity = severity;
    ++a->count;
    return Change::kUpdated;
  }
  Alert a;
  a.id = next_id_++;
  a.key = key;
  a.kind = kind;
  a.machine = machine;
  a.service = service;
  a.severity = severity;
  a.message = message;
  a.first_seen_ms = a.last_seen_ms = now_ms;
  Emit(EventType::kFiring, a, now_ms);
  firing_.emplace(key, std::move(a));
  return Change::kOpened;
}

bool AlertBook::Resolve(const std::string& key, int64_t now_ms) {
  auto it = firing_.find(key);
  if (it == firing_.end()) return false;
  Alert a = std::move(it->second);
  firing_.erase(it);
  a.firing = false;
  a.resolved_ms = now_ms;
  Emit(EventType::kResolved, a, now_ms);
  resolved_.push_back(std::move(a));
  if (resolved_.size() > keep_resolved_) {
    resolved_.erase(resolved_.begin(), resolved_.end() - static_cast<ptrdiff_t>(keep_resolved_));
  }
  ++version_;
  return true;
}

size_t AlertBook::ResolveIf(const std::function<bool(const Alert&)>& pred, int64_t now_ms) {
  std::vector<std::string> keys;
  for (const auto& [key, a] : firing_) {
    if (pred(a)) keys.push_back(key);
  }
  for (const auto& key : keys) Resolve(key, now_ms);
  return keys.size();
}

void AlertBook::Tick(int64_t now_ms) {
  for (auto& [key, a] : firing_) {
    if (a.ack && a.ack->until_ms <= now_ms) {
      Emit(EventType::kAckExpired, a, now_ms);
      a.ack.reset();
      ++version_;
    }
    int level = 0;
    for (int64_t after : escalate_after_ms_) {
      if (now_ms - a.first_seen_ms >= after) ++level;
    }
    while (a.level < level) {
      ++a.level;
      ++version_;
      Emit(EventType::kEscalated, a, now_ms);
    }
  }
}

Result<Alert> AlertBook::Acknowledge(const std::string& ref, const std::string& by,
                                     int64_t until_ms, const std::string& note, int64_t now_ms) {
  Alert* target = Firing(ref);
  if (target == nullptr && !ref.empty() &&
      std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    for (auto& [key, a] : firing_) {
      if (std::to_string(a.id) == ref) target = &a;
    }
    if (target == nullptr) {
      for (const Alert& a : resolved_) {
        if (std::to_string(a.id) == ref) {
          return Status(Code::kConflict,
                        "alert " + ref + " (" + a.key +
                            ") is resolved; only a firing alert can be acknowledged");
        }
      }
    }
  }
  if (target == nullptr) {
    return Status(Code::kNotFound, "no firing alert with id or key \"" + ref +
                                       "\"; list them with `clusterctl alerts`");
  }
  if (until_ms <= now_ms)
    return Status(Code::kInvalid, "the acknowledgement must end in the future");
  target->ack = Ack{by, note, now_ms, until_ms};
  ++version_;
  return *target;
}

std::vector<Alert> AlertBook::Firing() const {
  std::vector<Alert> out;
  out.reserve(firing_.size());
  for (const auto& [key, a] : firing_) out.push_back(a);
  return out;
}

std::vector<Alert> AlertBook::All(int64_t since_ms) const {
  std::vector<Alert> out;
  for (const auto& [key, a] : firing_) {
    if (a.last_seen_ms >= since_ms) out.push_back(a);
  }
  for (const Alert& a : resolved_) {
    if (a.resolved_ms >= since_ms) out.push_back(a);
  }
  std::sort(out.begin(), out.end(), [](const Alert& a, const Alert& b) { return a.id > b.id; });
  return out;
}

std::vector<std::string> AlertBook::Messages() const {
  std::vector<std::string> out;
  out.reserve(firing_.size());
  for (const auto& [key, a] : firing_) out.push_back(a.message);
  return out;
}

std::vector<AlertEvent> AlertBook::TakeEvents() {
  std::vector<AlertEvent> out;
  out.swap(events_);
  return out;
}

json AlertBook::ToJson() const {
  json firing = json::array(), resolved = json::array();
  for (const auto& [key, a] : firing_) firing.push_back(AlertToJson(a));
  for (const Alert& a : resolved_) resolved.push_back(AlertToJson(a));
  return {{"next_id", next_id_}, {"firing", firing}, {"resolved", resolved}};
}

void AlertBook::Restore(const json& j, bool* ok) {
  firing_.clear();
  resolved_.clear();
  events_.clear();
  next_id_ = 1;
  ++version_;
  if (ok != nullptr) *ok = false;
  if (!j.is_object() || !j.contains("firing") || !j["firing"].is_array()) return;
  std::map<std::string, Alert> firing;
  std::vector<Alert> resolved;
  int64_t next_id = 1;
  for (const auto& e : j["firing"]) {
    auto a = AlertFromJson(e);
    if (!a || !a->firing) return;
    next_id = std::max(next_id, a->id + 1);
    firing[a->key] = *a;
  }
  if (auto it = j.find("resolved"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      auto a = AlertFromJson(e);
      if (!a || a->firing) return;
      next_id = std::max(next_id, a->id + 1);
      resolved.push_back(*a);
    }
  }
  if (auto it = j.find("next_id"); it != j.end() && it->is_number_integer()) {
    next_id = std::max(next_id, it->get<int64_t>());
  }
  firing_ = std::move(firing);
  resolved_ = std::move(resolved);
  next_id_ = next_id;
  if (ok != nullptr) *ok = true;
}

}  // namespace clusterctl::alerts
