// Decoding of schema-valid JSON documents into model types. Types were checked
// by the schema and its defaults filled in (Schemas::ApplyDefaults), so lookups
// here cannot fail on type, and a defaulted field is read with Filled(): the
// schema is the one place a default is written. tests/desired_state/
// defaults_test.cc checks that every schema default arrives in the model and
// that the model's in-code initializers (model.h) agree with the schema.
#include <string>

#include "base/time_format.h"
#include "desired-state/internal.h"

namespace clusterctl::desired_state::internal {
namespace {

using nlohmann::json;

std::map<std::string, std::string> StringMap(const json& obj, const char* key) {
  std::map<std::string, std::string> out;
  if (obj.contains(key)) {
    for (const auto& [k, v] : obj[key].items()) out[k] = v.get<std::string>();
  }
  return out;
}

std::vector<std::string> Strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (obj.contains(key)) {
    for (const auto& v : obj[key]) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string Str(const json& obj, const char* key, std::string fallback = "") {
  return obj.contains(key) ? obj[key].get<std::string>() : fallback;
}

// A field the schema gives a default, which ApplyDefaults has filled in.
template <typename T>
T Filled(const json& obj, const char* key) {
  return obj.contains(key) ? obj[key].get<T>() : T{};
}

RunState State(const json& spec) {
  return Filled<std::string>(spec, "state") == "stopped" ? RunState::kStopped : RunState::kRunning;
}

// Exactly one of `keys` present in `obj`; reports otherwise.
const char* OneOf(const YamlDocument& doc, const std::string& pointer, const json& obj,
                  std::initializer_list<const char*> keys, const std::string& what,
                  Diagnostics* diags) {
  const char* found = nullptr;
  std::string names;
  int count = 0;
  for (const char* k : keys) {
    names += std::string(names.empty() ? "" : ", ") + k;
    if (obj.contains(k)) {
      if (found == nullptr) found = k;
      ++count;
    }
  }
  if (count == 1) return found;
  diags->Add(doc.Locate(pointer),
             count == 0 ? what + " has none of " + names : what + " has more than one of " + names,
             "give exactly one of " + names);
  return nullptr;
}

std::optional<Probe> DecodeProbe(const YamlDocument& doc, const json& spec, const char* which,
                                 Diagnostics* diags) {
  if (!spec.contains(which)) return std::nullopt;
  const json& p = spec[which];
  std::string pointer = std::string("/spec/") + which;
  const char* kind =
      OneOf(doc, pointer, p, {"http", "tcp", "exec", "redis"}, std::string("spec.") + which, diags);
  if (kind == nullptr) return std::nullopt;
  Probe probe;
  const json& k = p[kind];
  std::string name = kind;
  if (name == "http") {
    probe.kind = ProbeKind::kHttp;
    probe.scheme = Filled<std::string>(k, "scheme");
    probe.path = Filled<std::string>(k, "path");
    probe.expect_status = Filled<int>(k, "expectStatus");
    probe.headers = StringMap(k, "headers");
    probe.body_contains = Str(k, "bodyContains");
  } else if (name == "tcp") {
    probe.kind = ProbeKind::kTcp;
  } else if (name == "exec") {
    probe.kind = ProbeKind::kExec;
    probe.command = Strings(k, "command");
  } else {
    probe.kind = ProbeKind::kRedis;
    probe.password_file = Str(k, "passwordFile");
  }
  probe.host = Str(k, "host");
  probe.port = Filled<int>(k, "port");  // Required, but for redis (default 6379).
  probe.period_seconds = Filled<int>(p, "periodSeconds");
  probe.timeout_seconds = Filled<int>(p, "timeoutSeconds");
  probe.failure_threshold = Filled<int>(p, "failureThreshold");
  if (p.contains("slowMs")) probe.slow_ms = p["slowMs"].get<int>();
  if (p.contains("startTimeoutSeconds")) {  // Readiness only.
    probe.start_timeout_seconds = p["startTimeoutSeconds"].get<int>();
  }
  return probe;
}

// rollout.canary, waves and maxFailedInstances.
void DecodeCanary(const YamlDocument& doc, const json& rollout, Service* s, Diagnostics* diags) {
  s->max_failed_instances = Filled<int>(rollout, "maxFailedInstances");
  if (rollout.contains("waves")) {
    for (const json& w : rollout["waves"]) {
      WaveStep step;
      if (w.is_number_integer()) {
        step.count = w.get<int>();
      } else {
        step.percent = std::stoi(w.get<std::string>());
      }
      s->waves.push_back(step);
    }
  }
  if (!rollout.contains("canary")) {
    if (rollout.contains("waves")) {
      diags->Add(doc.Locate("/spec/rollout/waves"), "spec.rollout.waves needs spec.rollout.canary",
                 "add canary: {count: 1, analysisSeconds: 60}");
    }
    return;
  }
  const json& c = rollout["canary"];
  CanarySpec canary;
  if (OneOf(doc, "/spec/rollout/canary", c, {"machines", "count", "percent"}, "spec.rollout.canary",
            diags) != nullptr) {
    canary.machines = Strings(c, "machines");
    canary.count = c.contains("count") ? c["count"].get<int>() : 0;
    canary.percent = c.contains("percent") ? c["percent"].get<int>() : 0;
  }
  canary.analysis_seconds = Filled<int>(c, "analysisSeconds");
  for (size_t i = 0; i < s->waves.size(); ++i) {
    if (s->waves[i].percent > 100) {
      diags->Add(doc.Locate("/spec/rollout/waves/" + std::to_string(i)),
                 "wave " + std::to_string(i + 1) + " is over 100%", "write at most 100%");
    }
  }
  s->canary = std::move(canary);
}

Service DecodeService(const YamlDocument& doc, const json& spec, Diagnostics* diags) {
  Service s;
  s.machines = Strings(spec, "machines");
  s.machine_selector = StringMap(spec, "machineSelector");
  OneOf(doc, "/spec", spec, {"machines", "machineSelector"}, "Service spec", diags);
  s.state = State(spec);
  s.stopped_on = Strings(spec, "stoppedOn");
  s.critical = Filled<bool>(spec, "critical");
  const char* driver = OneOf(doc, "/spec", spec, {"process", "systemd"}, "Service spec", diags);
  if (driver != nullptr && std::string(driver) == "process") {
    const json& p = spec["process"];
    s.driver = DriverKind::kProcess;
    s.process.command = Strings(p, "command");
    s.process.env = StringMap(p, "env");
    s.process.working_dir = Str(p, "workingDir");
    s.process.user = Str(p, "user");
    s.process.log_max_bytes = Filled<int64_t>(p, "logMaxBytes");
  } else if (driver != nullptr) {
    s.driver = DriverKind::kSystemd;
    s.systemd.unit = Str(spec["systemd"], "unit");
    s.systemd.sudo = Filled<bool>(spec["systemd"], "sudo");
  }
  if (spec.contains("dependsOn")) {
    for (size_t i = 0; i < spec["dependsOn"].size(); ++i) {
      const json& d = spec["dependsOn"][i];
      Dependency dep;
      dep.service = Str(d, "service");
      dep.condition = Filled<std::string>(d, "condition") == "started"
                          ? DependencyCondition::kStarted
                          : DependencyCondition::kReady;
      dep.where = doc.Locate("/spec/dependsOn/" + std::to_string(i));
      s.depends_on.push_back(std::move(dep));
    }
  }
  s.readiness = DecodeProbe(doc, spec, "readiness", diags);
  s.liveness = DecodeProbe(doc, spec, "liveness", diags);
  s.stop_timeout_seconds = Filled<int>(spec, "stopTimeoutSeconds");
  s.backoff_seconds = Filled<int>(spec["restart"], "backoffSeconds");
  s.max_backoff_seconds = Filled<int>(spec["restart"], "maxBackoffSeconds");
  if (s.max_backoff_seconds < s.backoff_seconds) {
    diags->Add(doc.Locate("/spec/restart/maxBackoffSeconds"),
               "spec.restart.maxBackoffSeconds is smaller than backoffSeconds",
               "make it at least " + std::to_string(s.backoff_seconds));
  }
  s.max_unavailable = Filled<int>(spec["rollout"], "maxUnavailable");
  DecodeCanary(doc, spec["rollout"], &s, diags);
  return s;
}

// The windows of a Cluster spec. A cron that does not parse, an unknown time
// zone, a duration out of range and a repeated name are errors at the field.
std::vector<SyncWindow> DecodeWindows(const YamlDocument& doc, const json& spec,
                                      Diagnostics* diags) {
  std::vector<SyncWindow> out;
  if (!spec.contains("windows")) return out;
  std::map<std::string, Location> seen;
  for (size_t i = 0; i < spec["windows"].size(); ++i) {
    const json& w = spec["windows"][i];
    const std::string at = "/spec/windows/" + std::to_string(i);
    SyncWindow window;
    window.name = Str(w, "name");
    window.kind = Str(w, "kind") == "deny" ? SyncWindow::kDeny : SyncWindow::kAllow;
    window.time_zone = Filled<std::string>(w, "timeZone");
    window.machines = Strings(w, "machines");
    window.services = Strings(w, "services");
    window.manual_override = Filled<bool>(w, "manualOverride");
    auto [first, added] = seen.emplace(window.name, doc.Locate(at + "/name"));
    if (!added) {
      diags->Add(doc.Locate(at + "/name"),
                 "duplicate window \"" + window.name + "\" (first defined at " +
                     first->second.ToString() + ")",
                 "rename or remove one of them");
    }
    auto schedule = CronSchedule::Parse(Str(w, "schedule"));
    if (schedule.ok()) {
      window.schedule = *schedule;
    } else {
      diags->Add(doc.Locate(at + "/schedule"), schedule.status().message(),
                 "see Sync windows in docs/desired-state.md");
    }
    Status zone = CheckTimeZone(window.time_zone);
    if (!zone.ok()) {
      diags->Add(doc.Locate(at + "/timeZone"), zone.message(),
                 "use an IANA name such as Europe/Berlin or UTC (see /usr/share/zoneinfo)");
    }
    auto ms = ParseDurationMs(Str(w, "duration"));
    if (!ms.ok() || *ms < 60000 || *ms > 366 * 86400000LL || *ms % 1000 != 0) {
      diags->Add(doc.Locate(at + "/duration"),
                 "duration \"" + Str(w, "duration") + "\" of window \"" + window.name +
                     "\" is not a whole number of seconds from 1m to 366d",
                 "write it like 30m, 1h30m or 2d");
    } else {
      window.duration_s = *ms / 1000;
    }
    out.push_back(std::move(window));
  }
  return out;
}

}  // namespace

void NoteInvalid(const YamlDocument& doc, Decoded* out) {
  const json& v = doc.value;
  if (!v.is_object() || !v.contains("kind") || !v["kind"].is_string()) return;
  if (!v.contains("metadata") || !v["metadata"].is_object()) return;
  const json& name = v["metadata"].value("name", json());
  out->invalid[v["kind"].get<std::string>()].insert(name.is_string() ? name.get<std::string>()
                                                                     : std::string());
}

void Decode(const YamlDocument& doc, Decoded* out, Diagnostics* diags) {
  const json& v = doc.value;
  const std::string kind = v["kind"].get<std::string>();
  const json& meta = v["metadata"];
  const json& spec = v["spec"];
  const std::string name = meta["name"].get<std::string>();
  const Location where = doc.Locate("/metadata/name");
  if (kind == "Cluster") {
    Cluster c;
    c.name = name;
    if (spec.contains("profile")) c.profile = spec["profile"].get<std::string>();
    c.state = State(spec);
    const json& ssh = spec["defaults"]["ssh"];
    c.default_ssh.user = Filled<std::string>(ssh, "user");
    c.default_ssh.port = Filled<int>(ssh, "port");
    c.default_ssh.identity_file = Str(ssh, "identityFile");
    const json& r = spec["reconcile"];
    c.reconcile.interval_seconds = Filled<int>(r, "intervalSeconds");
    c.reconcile.max_parallel = Filled<int>(r, "maxParallel");
    c.reconcile.allow_mass_stop = Filled<bool>(r, "allowMassStop");
    c.reconcile.mode = Filled<std::string>(r, "mode") == "observe" ? ReconcileMode::kObserve
                                                                   : ReconcileMode::kEnforce;
    c.windows = DecodeWindows(doc, spec, diags);
    c.repair_drift = Filled<std::string>(spec, "repairDrift") == "window" ? RepairDrift::kWindow
                                                                          : RepairDrift::kAlways;
    c.where = where;
    out->clusters.push_back(std::move(c));
    out->cluster_docs.push_back(&doc);
  } else if (kind == "Machine") {
    Machine m;
    m.name = name;
    m.labels = StringMap(meta, "labels");
    m.address = Str(spec, "address");
    m.state_dir = Filled<std::string>(spec, "stateDir");
    m.where = where;
    out->machines.push_back(std::move(m));
    out->machine_docs.push_back(&doc);
  } else if (kind == "Service") {
    Service s = DecodeService(doc, spec, diags);
    s.name = name;
    s.labels = StringMap(meta, "labels");
    s.where = where;
    out->services.push_back(std::move(s));
    out->service_docs.push_back(&doc);
  } else if (kind == "Profile") {
    Profile p;
    p.name = name;
    p.services = Strings(spec, "services");
    p.where = where;
    out->profiles.push_back(std::move(p));
    out->profile_docs.push_back(&doc);
  }
}

}  // namespace clusterctl::desired_state::internal
