#include "store/observed_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace clusterctl::reconcilers {
using nlohmann::json;

namespace {

// Reads j[key] into `out` when present and not null; a wrong type throws.
template <typename T>
void Optional(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  it->get_to(out);
}

// Non-finite numbers have no JSON form; nlohmann writes them as null, which
// Optional() reads back as the default.
json Number(double d) { return std::isfinite(d) ? json(d) : json(nullptr); }

}  // namespace

void to_json(json& j, const ObservedInstance& v) {
  j = json{{"service", v.service},
           {"machine", v.machine},
           {"state", ObservedStateName(v.state)},
           {"pid", v.pid},
           {"started_at", v.started_at},
           {"spec_hash", v.spec_hash},
           {"restarts", v.restarts},
           {"observed_at_ms", v.observed_at_ms},
           {"detail", v.detail}};
}

void from_json(const json& j, ObservedInstance& v) {
  v = ObservedInstance();
  j.at("service").get_to(v.service);
  j.at("machine").get_to(v.machine);
  std::string state = "unknown";
  Optional(j, "state", state);
  v.state = ParseObservedState(state);
  Optional(j, "pid", v.pid);
  Optional(j, "started_at", v.started_at);
  Optional(j, "spec_hash", v.spec_hash);
  Optional(j, "restarts", v.restarts);
  Optional(j, "observed_at_ms", v.observed_at_ms);
  Optional(j, "detail", v.detail);
}

void to_json(json& j, const MachineFacts& v) {
  j = json{{"machine", v.machine},
           {"reachable", v.reachable},
           {"error", v.error},
           {"observed_at_ms", v.observed_at_ms},
           {"uptime_seconds", Number(v.uptime_seconds)},
           {"load1", Number(v.load1)},
           {"load5", Number(v.load5)},
           {"load15", Number(v.load15)},
           {"mem_total_kb", v.mem_total_kb},
           {"mem_available_kb", v.mem_available_kb},
           {"disk_total_kb", v.disk_total_kb},
           {"disk_available_kb", v.disk_available_kb},
           {"cpus", v.cpus}};
}

void from_json(const json& j, MachineFacts& v) {
  v = MachineFacts();
  j.at("machine").get_to(v.machine);
  Optional(j, "reachable", v.reachable);
  Optional(j, "error", v.error);
  Optional(j, "observed_at_ms", v.observed_at_ms);
  Optional(j, "uptime_seconds", v.uptime_seconds);
  Optional(j, "load1", v.load1);
  Optional(j, "load5", v.load5);
  Optional(j, "load15", v.load15);
  Optional(j, "mem_total_kb", v.mem_total_kb);
  Optional(j, "mem_available_kb", v.mem_available_kb);
  Optional(j, "disk_total_kb", v.disk_total_kb);
  Optional(j, "disk_available_kb", v.disk_available_kb);
  Optional(j, "cpus", v.cpus);
}

void to_json(json& j, const MachineObservation& v) {
  j = json{{"facts", v.facts}, {"instances", v.instances}};
}

void from_json(const json& j, MachineObservation& v) {
  v = MachineObservation();
  j.at("facts").get_to(v.facts);
  Optional(j, "instances", v.instances);
}

void to_json(json& j, const ProbeResult& v) {
  j = json{{"service", v.service}, {"machine", v.machine}, {"role", ProbeRoleName(v.role)},
           {"kind", v.kind},       {"ok", v.ok},           {"latency_ms", v.latency_ms},
           {"time_ms", v.time_ms}, {"detail", v.detail},   {"info", v.info}};
}

void from_json(const json& j, ProbeResult& v) {
  v = ProbeResult();
  j.at("service").get_to(v.service);
  j.at("machine").get_to(v.machine);
  std::string role = ProbeRoleName(ProbeRole::kReadiness);
  Optional(j, "role", role);
  Result<ProbeRole> parsed = store::ParseProbeRole(role);
  if (!parsed.ok()) throw json::other_error::create(501, parsed.status().message(), &j);
  v.role = *parsed;
  Optional(j, "kind", v.kind);
  Optional(j, "ok", v.ok);
  Optional(j, "latency_ms", v.latency_ms);
  Optional(j, "time_ms", v.time_ms);
  Optional(j, "detail", v.detail);
  Optional(j, "info", v.info);
}

}  // namespace clusterctl::reconcilers

namespace clusterctl::store {
using nlohmann::json;

namespace {

template <typename T>
std::string Dump(const T& v) {
  return json(v).dump(-1, ' ', false, json::error_handler_t::replace);
}

template <typename T>
Result<T> Parse(std::string_view text, const char* what) {
  try {
    return json::parse(text).get<T>();
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("parsing ") + what + " JSON: " + e.what());
  }
}

}  // namespace

Result<reconcilers::ProbeRole> ParseProbeRole(std::string_view name) {
  if (name == ProbeRoleName(reconcilers::ProbeRole::kReadiness)) {
    return reconcilers::ProbeRole::kReadiness;
  }
  if (name == ProbeRoleName(reconcilers::ProbeRole::kLiveness)) {
    return reconcilers::ProbeRole::kLiveness;
  }
  return Status::Invalid("unknown probe role \"" + std::string(name) +
                         "\" (expected readiness or liveness)");
}

std::string ToJsonString(const reconcilers::ObservedInstance& v) { return Dump(v); }
std::string ToJsonString(const reconcilers::MachineFacts& v) { return Dump(v); }
std::string ToJsonString(const reconcilers::MachineObservation& v) { return Dump(v); }
std::string ToJsonString(const reconcilers::ProbeResult& v) { return Dump(v); }

Result<reconcilers::ObservedInstance> ParseObservedInstance(std::string_view text) {
  return Parse<reconcilers::ObservedInstance>(text, "observed instance");
}
Result<reconcilers::MachineFacts> ParseMachineFacts(std::string_view text) {
  return Parse<reconcilers::MachineFacts>(text, "machine facts");
}
Result<reconcilers::MachineObservation> ParseMachineObservation(std::string_view text) {
  return Parse<reconcilers::MachineObservation>(text, "machine observation");
}
Result<reconcilers::ProbeResult> ParseProbeResult(std::string_view text) {
  return Parse<reconcilers::ProbeResult>(text, "probe result");
}

}  // namespace clusterctl::store
