#include "controller/leases.h"

#include <algorithm>

#include "base/time_format.h"

namespace clusterctl::controller {

using nlohmann::json;

std::string DriftLease::Describe() const {
  return "drift lease " + std::to_string(id) + " by " + actor + " until " +
         FormatRfc3339Ms(until_ms) + (reason.empty() ? "" : ": " + reason);
}

json LeaseToJson(const DriftLease& l) {
  return {{"id", l.id},
          {"service", l.service},
          {"machine", l.machine},
          {"reason", l.reason},
          {"actor", l.actor},
          {"granted_ms", l.granted_ms},
          {"until_ms", l.until_ms}};
}

Result<DriftLease> LeaseBook::Grant(const desired_state::DesiredState& desired,
                                    const std::string& service, const std::string& machine,
                                    int64_t for_ms, const std::string& reason,
                                    const std::string& actor, int64_t now_ms) {
  const desired_state::Service* s = desired.FindService(service);
  if (s == nullptr) {
    std::string names;
    for (const auto& x : desired.services) names += (names.empty() ? "" : ", ") + x.name;
    return Status::NotFound("no service \"" + service + "\" in revision " +
                            desired.revision.Short() + "; services: " + names);
  }
  if (!machine.empty()) {
    bool placed = false;
    std::string on;
    for (const auto& i : desired.instances) {
      if (i.service != service) continue;
      placed |= i.machine == machine;
      on += (on.empty() ? "" : ", ") + i.machine;
    }
    if (!placed) {
      return Status::NotFound("service \"" + service + "\" is not placed on machine \"" + machine +
                              "\"" + (on.empty() ? std::string() : "; it runs on " + on));
    }
  }
  if (for_ms <= 0 || for_ms > kMaxLeaseMs) {
    return Status::Invalid("a lease lasts from 1 second to 24 hours; longer changes belong in git");
  }
  if (reason.empty()) return Status::Invalid("say why (--reason): it is shown and audited");
  DriftLease l;
  l.id = next_id_++;
  l.service = service;
  l.machine = machine;
  l.reason = reason;
  l.actor = actor;
  l.granted_ms = now_ms;
  l.until_ms = now_ms + for_ms;
  leases_[l.id] = l;
  return l;
}

Result<DriftLease> LeaseBook::End(int64_t id, int64_t now_ms) {
  auto it = leases_.find(id);
  if (it == leases_.end()) {
    return Status::NotFound("no active drift lease " + std::to_string(id) +
                            "; list them with `clusterctl lease list`");
  }
  DriftLease l = it->second;
  l.until_ms = std::min(l.until_ms, now_ms);
  leases_.erase(it);
  return l;
}

std::vector<DriftLease> LeaseBook::Expire(int64_t now_ms) {
  std::vector<DriftLease> out;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.until_ms <= now_ms) {
      out.push_back(it->second);
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<DriftLease> LeaseBook::Active() const {
  std::vector<DriftLease> out;
  for (const auto& [id, l] : leases_) out.push_back(l);
  return out;
}

std::map<std::string, std::string> LeaseBook::Holds(
    const desired_state::DesiredState& desired) const {
  std::map<std::string, std::string> out;
  for (const auto& i : desired.instances) {
    for (const auto& [id, l] : leases_) {
      if (l.Covers(i.service, i.machine) && !out.count(i.Key())) out[i.Key()] = l.Describe();
    }
  }
  return out;
}

json LeaseBook::ToJson() const {
  json list = json::array();
  for (const auto& [id, l] : leases_) list.push_back(LeaseToJson(l));
  return {{"next_id", next_id_}, {"leases", list}};
}

void LeaseBook::Restore(const json& j, bool* ok) {
  leases_.clear();
  next_id_ = 1;
  if (ok != nullptr) *ok = false;
  if (!j.is_object() || !j.contains("leases") || !j["leases"].is_array()) return;
  std::map<int64_t, DriftLease> leases;
  int64_t next = j.value("next_id", int64_t{1});
  try {
    for (const json& e : j["leases"]) {
      DriftLease l;
      l.id = e.at("id").get<int64_t>();
      l.service = e.at("service").get<std::string>();
      l.machine = e.value("machine", "");
      l.reason = e.value("reason", "");
      l.actor = e.value("actor", "");
      l.granted_ms = e.at("granted_ms").get<int64_t>();
      l.until_ms = e.at("until_ms").get<int64_t>();
      next = std::max(next, l.id + 1);
      leases[l.id] = l;
    }
  } catch (const json::exception&) {
    return;
  }
  leases_ = std::move(leases);
  next_id_ = next;
  if (ok != nullptr) *ok = true;
}

}  // namespace clusterctl::controller
