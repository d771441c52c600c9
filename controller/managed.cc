#include "controller/managed.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

namespace clusterctl::controller {

using desired_state::DesiredState;
using reconcilers::ObservedState;

namespace {
constexpr char kManagedKey[] = "managed_instances";
}  // namespace

ManagedInstances NextManaged(ManagedInstances managed, const DesiredState& desired,
                             const reconcilers::ClusterObservation& observed,
                             const reconcilers::Plan& plan,
                             const reconcilers::ExecutionReport& report) {
  std::set<std::string> wanted;
  for (const auto& i : desired.instances) {
    wanted.insert(i.Key());
    managed[i.Key()] = desired.revision.commit;
  }
  // Not desired and seen not running (an unreachable machine says nothing).
  for (const auto& o : observed.instances) {
    if (wanted.count(o.Key())) continue;
    if (o.state == ObservedState::kStopped || o.state == ObservedState::kFailed) {
      managed.erase(o.Key());
    }
  }
  for (const auto& st : plan.steps) {
    if (st.action != reconcilers::Action::kStop || wanted.count(st.Key())) continue;
    if (static_cast<size_t>(st.id) < report.outcomes.size() &&
        report.outcomes[st.id].result == reconcilers::StepResult::kOk) {
      managed.erase(st.Key());
    }
  }
  return managed;
}

DesiredState PruneBasis(
    const DesiredState& desired, const ManagedInstances& managed,
    const std::function<const DesiredState*(const std::string& commit)>& revision,
    std::vector<std::string>* unreadable) {
  std::set<std::string> wanted;
  for (const auto& i : desired.instances) wanted.insert(i.Key());
  DesiredState basis;
  basis.revision = desired.revision;
  basis.cluster = desired.cluster;
  std::map<std::string, int64_t> service_time, machine_time;  // Newest definition wins.
  std::map<std::string, desired_state::Service> services;
  std::map<std::string, desired_state::Machine> machines;
  for (const auto& [key, commit] : managed) {
    if (wanted.count(key)) continue;
    const DesiredState* rev = revision(commit);
    const desired_state::Instance* inst = nullptr;
    if (rev != nullptr) {
      for (const auto& i : rev->instances) {
        if (i.Key() == key) inst = &i;
      }
    }
    const desired_state::Service* s = inst ? rev->FindService(inst->service) : nullptr;
    const desired_state::Machine* m = inst ? rev->FindMachine(inst->machine) : nullptr;
    if (s == nullptr || m == nullptr) {
      if (unreadable != nullptr)
        unreadable->push_back(key + " (revision " + commit.substr(0, 7) + ")");
      continue;
    }
    basis.instances.push_back(*inst);
    if (!service_time.count(s->name) || service_time[s->name] < rev->revision.time) {
      service_time[s->name] = rev->revision.time;
      services[s->name] = *s;
    }
    if (!machines.count(m->name) || machine_time[m->name] < rev->revision.time) {
      machine_time[m->name] = rev->revision.time;
      machines[m->name] = *m;
    }
  }
  for (auto& [_, s] : services) basis.services.push_back(std::move(s));
  for (auto& [_, m] : machines) basis.machines.push_back(std::move(m));
  // Stops go in reverse dependency order: keep the order the revisions had,
  // restricted to the services here (dependencies first).
  std::set<std::string> listed;
  auto add_order = [&](const DesiredState& d) {
    for (const auto& name : d.service_order) {
      if (services.count(name) && listed.insert(name).second) basis.service_order.push_back(name);
    }
  };
  for (const auto& [_, commit] : managed) {
    if (const DesiredState* rev = revision(commit)) add_order(*rev);
  }
  for (const auto& s : basis.services) {
    if (listed.insert(s.name).second) basis.service_order.push_back(s.name);
  }
  std::sort(basis.instances.begin(), basis.instances.end(), [](const auto& a, const auto& b) {
    return std::tie(a.service, a.machine) < std::tie(b.service, b.machine);
  });
  return basis;
}

std::shared_ptr<const DesiredState> PruneBasisLoader::Build(const DesiredState& desired,
                                                            const ManagedInstances& managed,
                                                            std::vector<std::string>* unreadable) {
  std::set<std::string> wanted, needed;
  for (const auto& i : desired.instances) wanted.insert(i.Key());
  for (const auto& [key, commit] : managed) {
    if (!wanted.count(key)) needed.insert(commit);
  }
  if (needed.empty()) {
    cache_.clear();
    return nullptr;
  }
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = needed.count(it->first) ? std::next(it) : cache_.erase(it);
  }
  auto revision = [&](const std::string& commit) -> const DesiredState* {
    if (commit == desired.revision.commit) return &desired;
    auto it = cache_.find(commit);
    if (it == cache_.end()) {
      auto loaded = read_(commit);
      std::shared_ptr<const DesiredState> rev;
      if (loaded.ok()) rev = std::make_shared<DesiredState>(std::move(*loaded));
      it = cache_.emplace(commit, rev).first;  // A failure is cached too: not retried each pass.
    }
    return it->second.get();
  };
  auto basis = std::make_shared<DesiredState>(PruneBasis(desired, managed, revision, unreadable));
  if (basis->instances.empty()) return nullptr;
  return basis;
}

Result<ManagedInstances> LoadManaged(const store::StateStore& state, bool* found) {
  if (found != nullptr) *found = false;
  auto raw = state.GetMeta(kManagedKey);
  if (!raw.ok()) return raw.status();
  ManagedInstances out;
  if (!raw->has_value()) return out;
  auto j = nlohmann::json::parse(**raw, nullptr, false);
  if (!j.is_object())
    return Status::Internal("the managed-instances record in the store is corrupt");
  for (const auto& [key, commit] : j.items()) {
    if (commit.is_string()) out[key] = commit.get<std::string>();
  }
  if (found != nullptr) *found = true;
  return out;
}

Status SaveManaged(store::StateStore* state, const ManagedInstances& managed) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, commit] : managed) j[key] = commit;
  return state->PutMeta(kManagedKey, j.dump());
}

ManagedInstances SeedManaged(const DesiredState& last_applied) {
  ManagedInstances out;
  for (const auto& i : last_applied.instances) out[i.Key()] = last_applied.revision.commit;
  return out;
}

}  // namespace clusterctl::controller
