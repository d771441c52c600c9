#include "api/status_view.h"

#include <map>
#include <utility>

#include "base/time_format.h"
#include "store/observed_json.h"

namespace clusterctl::api {

using nlohmann::json;

StatusView BuildStatus(const desired_state::DesiredState& desired,
                       const desired_state::DesiredState* previous,
                       const reconcilers::ClusterObservation& obs, int64_t now_ms,
                       const std::vector<std::string>& alerts,
                       const std::map<std::string, std::string>& hold) {
  StatusView v;
  reconcilers::PlanInput in = reconcilers::PlanInputOf(desired, previous, obs, now_ms);
  in.hold = hold;  // Drift leases: shown in each held instance's reason.
  v.diffs = reconcilers::Diff(in);
  v.health = reconcilers::AssessHealth(desired, v.diffs, obs.unreachable);

  std::map<std::string, const reconcilers::ObservedInstance*> observed;
  for (const auto& o : obs.instances) observed[o.Key()] = &o;
  std::map<std::string, const reconcilers::ProbeResult*> probes;
  for (const auto& p : obs.readiness) probes[p.Key()] = &p;

  json machines = json::object();
  for (const auto& f : obs.facts) {
    json m = f;
    m.erase("machine");
    machines[f.machine] = m;
  }
  json services = json::object();
  for (const auto& d : v.diffs) {
    const desired_state::Service* s = d.service_def;
    json& svc = services[d.service];
    if (!svc.contains("critical")) {
      svc["critical"] = s != nullptr && s->critical;
      svc["instances"] = json::object();
    }
    json inst = {{"desired", d.pruned ? "pruned" : desired_state::RunStateName(d.desired)},
                 {"state", reconcilers::ObservedStateName(d.observed)},
                 {"ready", d.ready},
                 {"in_sync", d.action == reconcilers::Action::kNone},
                 {"reason", d.reason}};
    auto o = observed.find(d.Key());
    inst["pid"] = o != observed.end() ? o->second->pid : 0;
    inst["restarts"] = o != observed.end() ? o->second->restarts : 0;
    inst["started_at"] = o != observed.end() ? o->second->started_at : 0;
    auto p = probes.find(d.Key());
    if (p != probes.end()) {
      inst["last_probe"] = {{"ok", p->second->ok},
                            {"latency_ms", p->second->latency_ms},
                            {"detail", p->second->detail}};
      if (!p->second->info.empty()) inst["last_probe"]["info"] = p->second->info;
    } else {
      inst["last_probe"] = nullptr;
    }
    svc["instances"][d.machine] = inst;
  }
  json alert_list = json::array();
  for (const auto& a : alerts) alert_list.push_back(a);
  v.json = {{"timestamp", FormatRfc3339Ms(now_ms)},
            {"overall_status", reconcilers::HealthName(v.health.overall)},
            {"revision", desired.revision.commit},
            {"cluster", desired.cluster.name},
            {"profile", desired.cluster.profile.value_or("")},
            {"machines", std::move(machines)},
            {"services", std::move(services)},
            {"reasons", v.health.reasons},
            {"alerts", alert_list}};
  return v;
}

}  // namespace clusterctl::api
