// The audit record (audit/record.h): the known values, its JSON, its
// canonical form and hash.
#include "audit/record.h"

#include <cstdint>
#include <iterator>

#include "audit/codec.h"
#include "base/sha256.h"
#include "base/time_format.h"

namespace clusterctl::audit {
using nlohmann::json;

namespace {

constexpr const char* kTriggerNames[] = {"revision", "drift",    "rollback",
                                         "manual",   "recovery", "auto-rollback"};
constexpr const char* kPhaseNames[] = {"intent", "result", "event"};
constexpr const char* kOutcomeNames[] = {"ok", "failed", "interrupted", "skipped", "fenced"};

}  // namespace

const char* Name(Trigger t) { return kTriggerNames[static_cast<size_t>(t)]; }
const char* Name(Phase p) { return kPhaseNames[static_cast<size_t>(p)]; }
const char* Name(Outcome o) { return kOutcomeNames[static_cast<size_t>(o)]; }

std::optional<Trigger> ParseTrigger(const std::string& name) {
  for (size_t i = 0; i < std::size(kTriggerNames); ++i) {
    if (name == kTriggerNames[i]) return static_cast<Trigger>(i);
  }
  return std::nullopt;
}

const std::vector<std::string>& AuditTriggers() {
  static const auto* v =
      new std::vector<std::string>(std::begin(kTriggerNames), std::end(kTriggerNames));
  return *v;
}

const std::vector<std::string>& AuditResults() {
  static const auto* v =
      new std::vector<std::string>(std::begin(kOutcomeNames), std::end(kOutcomeNames));
  return *v;
}

const std::vector<std::string>& AuditKnownActions() {
  static const auto* v = new std::vector<std::string>{"start",
                                                      "stop",
                                                      "restart",
                                                      "revision_applied",
                                                      "revision_rejected",
                                                      "probe_failed",
                                                      "machine_unreachable",
                                                      "interrupted",
                                                      "rollback",
                                                      "suspend",
                                                      "resume",
                                                      "audit_trimmed",
                                                      "alert_acknowledged",
                                                      "lease_granted",
                                                      "lease_ended",
                                                      "lease_expired",
                                                      "window_override"};
  return *v;
}

json ToJson(const AuditRecord& r) {
  json j = json::object();
  j["seq"] = r.seq;
  j["time"] = FormatRfc3339Ms(r.time);
  j["actor"] = r.actor;
  j["trigger"] = r.trigger;
  j["revision"] = r.revision;
  j["action"] = r.action;
  j["machine"] = r.machine;
  j["service"] = r.service;
  j["phase"] = r.phase;
  j["result"] = r.result;
  j["duration_ms"] = r.duration_ms;
  j["detail"] = r.detail;
  j["prev_hash"] = r.prev_hash;
  j["hash"] = r.hash;
  if (r.intent_seq != 0) j["intent_seq"] = r.intent_seq;
  if (!r.leader.empty()) j["leader"] = r.leader;
  if (r.fencing_token != 0) j["fencing_token"] = r.fencing_token;
  return j;
}

std::string ToJsonLine(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["seq"] = r.seq;
  j["time"] = FormatRfc3339Ms(r.time);
  j["actor"] = r.actor;
  j["trigger"] = r.trigger;
  j["revision"] = r.revision;
  j["action"] = r.action;
  j["machine"] = r.machine;
  j["service"] = r.service;
  j["phase"] = r.phase;
  j["result"] = r.result;
  j["duration_ms"] = r.duration_ms;
  j["detail"] = r.detail;
  if (r.intent_seq != 0) j["intent_seq"] = r.intent_seq;
  if (!r.leader.empty()) j["leader"] = r.leader;
  if (r.fencing_token != 0) j["fencing_token"] = r.fencing_token;
  j["prev_hash"] = r.prev_hash;
  j["hash"] = r.hash;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<AuditRecord> FromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("audit record: not a JSON object");
  AuditRecord r;
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Invalid(std::string("audit record: missing \"") + key + "\"");
    if (!it->is_string()) {
      return Status::Invalid(std::string("audit record: \"") + key + "\" must be a string");
    }
    *out = it->get<std::string>();
    return Status::Ok();
  };
  auto uint = [&](const char* key, uint64_t* out, bool required) -> Status {
    auto it = j.find(key);
    if (it == j.end()) {
      if (!required) return Status::Ok();
      return Status::Invalid(std::string("audit record: missing \"") + key + "\"");
    }
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
      return Status::Invalid(std::string("audit record: \"") + key +
                             "\" must be a non-negative integer");
    }
    *out = it->get<uint64_t>();
    return Status::Ok();
  };
  CLUSTERCTL_RETURN_IF_ERROR(uint("seq", &r.seq, true));
  std::string time;
  CLUSTERCTL_RETURN_IF_ERROR(str("time", &time));
  Result<int64_t> t = ParseRfc3339(time);
  if (!t.ok()) return t.status().Annotate("audit record: \"time\"");
  r.time = *t;
  CLUSTERCTL_RETURN_IF_ERROR(str("actor", &r.actor));
  CLUSTERCTL_RETURN_IF_ERROR(str("trigger", &r.trigger));
  CLUSTERCTL_RETURN_IF_ERROR(str("revision", &r.revision));
  CLUSTERCTL_RETURN_IF_ERROR(str("action", &r.action));
  CLUSTERCTL_RETURN_IF_ERROR(str("machine", &r.machine));
  CLUSTERCTL_RETURN_IF_ERROR(str("service", &r.service));
  CLUSTERCTL_RETURN_IF_ERROR(str("phase", &r.phase));
  CLUSTERCTL_RETURN_IF_ERROR(str("result", &r.result));
  auto d = j.find("duration_ms");
  if (d == j.end() || !d->is_number_integer()) {
    return Status::Invalid("audit record: \"duration_ms\" must be an integer");
  }
  r.duration_ms = d->get<int64_t>();
  CLUSTERCTL_RETURN_IF_ERROR(str("detail", &r.detail));
  CLUSTERCTL_RETURN_IF_ERROR(str("prev_hash", &r.prev_hash));
  CLUSTERCTL_RETURN_IF_ERROR(str("hash", &r.hash));
  CLUSTERCTL_RETURN_IF_ERROR(uint("intent_seq", &r.intent_seq, false));
  CLUSTERCTL_RETURN_IF_ERROR(uint("fencing_token", &r.fencing_token, false));
  if (j.contains("leader")) CLUSTERCTL_RETURN_IF_ERROR(str("leader", &r.leader));
  return r;
}

std::string CanonicalForm(const AuditRecord& r) {
  json j = ToJson(r);
  j.erase("hash");
  return Dump(j);
}

std::string ComputeHash(const AuditRecord& r) { return Sha256Hex(CanonicalForm(r)); }

}  // namespace clusterctl::audit
