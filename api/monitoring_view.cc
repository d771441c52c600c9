#include "api/monitoring_view.h"

#include <map>

#include "base/time_format.h"

namespace clusterctl::api {

using nlohmann::json;

namespace {
json TimeOrNull(int64_t ms) { return ms > 0 ? json(FormatRfc3339Ms(ms)) : json(nullptr); }
json MsOrNull(int64_t ms) { return ms >= 0 ? json(ms) : json(nullptr); }
}  // namespace

json AlertJson(const alerts::Alert& a) { return alerts::PublicJson(a); }

json BuildHealth(const json& status, const std::vector<alerts::Alert>& firing) {
  json machines = {{"total", 0}, {"reachable", 0}, {"unreachable", 0}};
  std::map<std::string, int> by_state = {
      {"running", 0}, {"stopped", 0}, {"failed", 0}, {"unknown", 0}};
  int total = 0, ready = 0, in_sync = 0;
  json critical_down = json::array();
  if (status.contains("machines") && status["machines"].is_object()) {
    for (const auto& [name, m] : status["machines"].items()) {
      machines["total"] = machines["total"].get<int>() + 1;
      const char* key = m.value("reachable", false) ? "reachable" : "unreachable";
      machines[key] = machines[key].get<int>() + 1;
    }
  }
  if (status.contains("services") && status["services"].is_object()) {
    for (const auto& [name, svc] : status["services"].items()) {
      if (!svc.contains("instances") || !svc["instances"].is_object()) continue;
      json down = json::array();
      for (const auto& [machine, inst] : svc["instances"].items()) {
        ++total;
        ++by_state[inst.value("state", "unknown")];
        ready += inst.value("ready", false) ? 1 : 0;
        in_sync += inst.value("in_sync", false) ? 1 : 0;
        const bool should_run = inst.value("desired", "") == "running";
        if (should_run && (inst.value("state", "") != "running" || !inst.value("ready", false))) {
          down.push_back(machine);
        }
      }
      if (svc.value("critical", false) && !down.empty()) {
        critical_down.push_back({{"service", name}, {"machines", down}});
      }
    }
  }
  json alerts = {{"firing", 0}, {"info", 0}, {"warning", 0}, {"critical", 0}, {"acknowledged", 0}};
  for (const alerts::Alert& a : firing) {
    alerts["firing"] = alerts["firing"].get<int>() + 1;
    if (alerts.contains(a.severity)) alerts[a.severity] = alerts[a.severity].get<int>() + 1;
    if (a.ack) alerts["acknowledged"] = alerts["acknowledged"].get<int>() + 1;
  }
  json instances = {{"total", total}, {"ready", ready}, {"in_sync", in_sync}};
  for (const auto& [state, n] : by_state) instances[state] = n;
  return {{"status", status.value("overall_status", "unhealthy")},
          {"last_check", status.value("timestamp", "")},
          {"revision", status.value("revision", "")},
          {"suspended", status.value("suspended", false)},
          {"machines", machines},
          {"instances", instances},
          {"critical_services_down", critical_down},
          {"alerts", alerts},
          {"reasons", status.contains("reasons") ? status["reasons"] : json::array()}};
}

json StatsJson(const StatsView& s) {
  json sinks = json::array();
  for (const SinkView& k : s.sinks) {
    sinks.push_back({{"name", k.name},
                     {"type", k.type},
                     {"queued", k.queued},
                     {"sent", k.sent},
                     {"failed_attempts", k.failed_attempts},
                     {"dropped", k.dropped},
                     {"suppressed", k.suppressed},
                     {"last_success", TimeOrNull(k.last_success_ms)},
                     {"last_error", k.last_error.empty() ? json(nullptr) : json(k.last_error)}});
  }
  json services = json::object();
  for (const ServiceAvailability& a : s.services) {
    json windows = json::object();
    for (const AvailabilityWindow& w : a.windows) {
      windows[w.name] = {
          {"availability", w.availability >= 0 ? json(w.availability) : json(nullptr)},
          {"observed_seconds", w.observed_ms / 1000.0},
          {"down_seconds", w.down_ms / 1000.0},
          {"failures", w.failures},
          {"restarts", w.restarts},
          {"mttd_ms", MsOrNull(w.mttd_ms)},
          {"mttr_ms", MsOrNull(w.mttr_ms)}};
    }
    services[a.service] = {
        {"critical", a.critical}, {"down_now", a.down_now}, {"windows", windows}};
  }
  return {
      {"time", FormatRfc3339Ms(s.now_ms)},
      {"process",
       {{"started", TimeOrNull(s.started_ms)},
        {"uptime_seconds", s.started_ms > 0 ? (s.now_ms - s.started_ms) / 1000.0 : 0.0},
        {"cpu_seconds", s.cpu_seconds},
        {"rss_bytes", s.rss_bytes},
        {"open_files", s.open_fds},
        {"threads", s.threads},
        {"data_dir_bytes", s.data_dir_bytes >= 0 ? json(s.data_dir_bytes) : json(nullptr)}}},
      {"reconcile",
       {{"passes", s.passes},
        {"last_pass", TimeOrNull(s.last_pass_ms)},
        {"duration_ms", {{"p50", s.pass_p50_ms}, {"p95", s.pass_p95_ms}, {"max", s.pass_max_ms}}}}},
      {"queues", {{"probes_in_flight", s.probes_in_flight}, {"alerts_firing", s.alerts_firing}}},
      {"notify", {{"sinks", sinks}}},
      {"availability", services}};
}

}  // namespace clusterctl::api
