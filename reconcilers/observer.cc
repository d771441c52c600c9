#include "reconcilers/observer.h"

#include <mutex>

#include "base/parallel.h"

namespace clusterctl::reconcilers {

using desired_state::DesiredState;
using desired_state::Machine;
using desired_state::Service;

PlanInput PlanInputOf(const DesiredState& desired, const DesiredState* previous,
                      const ClusterObservation& obs, int64_t now_ms) {
  PlanInput in;
  in.desired = &desired;
  in.previous = previous;
  in.observed = obs.instances;
  in.unreachable = obs.unreachable;
  in.ready = obs.ready;
  in.now_ms = now_ms;
  return in;
}

ClusterObservation ObserveCluster(const DesiredState& desired, const DesiredState* previous,
                                  ServiceDriver& driver, Prober* prober,
                                  const ObserveOptions& options) {
  const Clock& clock = ClockOr(options.clock);
  const auto now = [&clock] { return clock.WallMs(); };
  const int64_t t0 = now();
  // Machines and the services to ask each about: desired first, then what
  // only the previous revision had (to be pruned).
  struct Work {
    const Machine* machine;
    std::vector<const Service*> services;
  };
  std::map<std::string, Work> work;
  auto add = [&](const DesiredState& d) {
    for (const auto& m : d.machines) {
      if (!work.count(m.name)) work[m.name] = Work{&m, {}};
    }
    for (const auto& i : d.instances) {
      auto it = work.find(i.machine);
      const Service* s = d.FindService(i.service);
      if (it == work.end() || s == nullptr) continue;
      auto& svcs = it->second.services;
      bool present = std::any_of(svcs.begin(), svcs.end(),
                                 [&](const Service* x) { return x->name == s->name; });
      if (!present) svcs.push_back(s);
    }
  };
  add(desired);
  if (previous != nullptr) add(*previous);

  std::vector<Work*> items;
  for (auto& [name, w] : work) {
    if (options.only_machines == nullptr || options.only_machines->count(name)) items.push_back(&w);
  }
  ClusterObservation out;
  std::mutex mu;
  ParallelFor(items.size(), options.max_parallel, [&](size_t i) {
    const Work& w = *items[i];
    auto obs = driver.Observe(*w.machine, w.services);
    std::lock_guard<std::mutex> g(mu);
    if (obs.ok()) {
      out.facts.push_back(obs->facts);
      for (auto& inst : obs->instances) out.instances.push_back(std::move(inst));
    } else {
      MachineFacts f;
      f.machine = w.machine->name;
      f.reachable = false;
      f.error = obs.status().message();
      f.observed_at_ms = now();
      out.facts.push_back(f);
      out.unreachable[w.machine->name] = obs.status().message();
    }
  });
  std::sort(out.facts.begin(), out.facts.end(),
            [](const MachineFacts& a, const MachineFacts& b) { return a.machine < b.machine; });
  std::sort(out.instances.begin(), out.instances.end(),
            [](const ObservedInstance& a, const ObservedInstance& b) { return a.Key() < b.Key(); });

  if (options.probe_readiness && prober != nullptr) {
    std::vector<ProbeRequest> requests;
    for (const auto& inst : out.instances) {
      if (inst.state != ObservedState::kRunning) continue;
      const Service* s = desired.FindService(inst.service);
      const Machine* m = desired.FindMachine(inst.machine);
      if (s == nullptr || m == nullptr || !s->readiness) continue;
      requests.push_back({s, m, ProbeRole::kReadiness});
    }
    out.readiness = RunProbes(*prober, requests, options.max_parallel);
    for (const auto& r : out.readiness) out.ready[r.Key()] = r.ok;
  }
  out.duration_ms = now() - t0;
  return out;
}

}  // namespace clusterctl::reconcilers
