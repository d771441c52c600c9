// clusterctl why SERVICE [--machine M] and clusterctl history [--limit N].
#include <cstdio>
#include <iostream>
#include <set>

#include "api/status_view.h"
#include "base/clock.h"
#include "cli/commands.h"
#include "cli/session.h"

namespace clusterctl::cli {
namespace {

using nlohmann::json;
using reconcilers::InstanceDiff;

struct Explainer {
  const desired_state::DesiredState& desired;
  std::map<std::string, const InstanceDiff*> diffs;
  std::map<std::string, const reconcilers::ProbeResult*> probes;
  const std::map<std::string, std::string>& unreachable;
  store::StateStore* state;
  int64_t now_ms;

  // How long the readiness of `key` has been failing, from the probe history.
  std::string FailingFor(const std::string& key) {
    auto at = key.rfind('@');
    auto history = state->ProbeHistory(key.substr(0, at), key.substr(at + 1),
                                       reconcilers::ProbeRole::kReadiness, 1000);
    if (!history.ok() || history->empty() || (*history)[0].ok) return "";
    int64_t since = (*history)[0].time_ms;
    for (const auto& p : *history) {
      if (p.ok) break;
      since = p.time_ms;
    }
    return " for " + std::to_string((now_ms - since) / 1000) + "s";
  }

  // Why `key` is not ready/running, in a few words; empty if it is fine.
  std::string Problem(const InstanceDiff& d) {
    if (d.observed == reconcilers::ObservedState::kUnknown) return d.reason;
    if (d.observed != reconcilers::ObservedState::kRunning) {
      return std::string(reconcilers::ObservedStateName(d.observed)) + " (" + d.reason + ")";
    }
    if (!d.ready) {
      auto p = probes.find(d.Key());
      return "readiness failing" + FailingFor(d.Key()) +
             (p != probes.end() ? " (" + p->second->detail + ")" : "");
    }
    return "";
  }

  // The chain of blockers of a service, dependencies first: each entry is
  // "dep@machine: problem". Follows the dependency graph to root causes.
  void Blockers(const std::string& service, std::set<std::string>* seen,
                std::vector<std::string>* out, int depth) {
    const auto* s = desired.FindService(service);
    if (s == nullptr || depth > 32) return;
    for (const auto& dep : s->depends_on) {
      for (const auto& [key, d] : diffs) {
        if (d->service != dep.service || d->desired != desired_state::RunState::kRunning) continue;
        const bool ok = dep.condition == desired_state::DependencyCondition::kReady
                            ? d->ready
                            : d->observed == reconcilers::ObservedState::kRunning;
        if (ok || !seen->insert(key).second) continue;
        Blockers(dep.service, seen, out, depth + 1);  // Root causes first.
        out->push_back(key + " " + Problem(*d));
      }
    }
  }
};

int RunWhy(Globals* g, const std::string& service, const std::string& machine) {
  Session session(g);
  if (Status s = session.Open("", /*read_only_ok=*/true); !s.ok()) return ReportError(*g, s);
  const auto& desired = session.desired();
  if (desired.FindService(service) == nullptr) {
    return ReportError(*g, Status::NotFound("no service \"" + service + "\" in revision " +
                                            desired.revision.Short()));
  }
  auto obs = controller::ObserveAndRecord(session.deps(), desired, session.previous());
  controller::PassOptions po;
  po.hold = session.LeaseHolds();
  auto in = controller::MakePlanInput(desired, session.previous(), obs, po);
  const controller::RolloutBook rollouts = session.Rollouts();
  rollouts.AddHolds(desired, reconcilers::Diff(in), &in.hold);
  reconcilers::Plan plan = reconcilers::MakePlan(in);
  std::string rollout_text;  // The service's canary rollout, if any.
  if (auto r = rollouts.rollouts().find(service); r != rollouts.rollouts().end()) {
    rollout_text = r->second.Describe(WallClockMs());
  }
  Explainer ex{desired, {}, {}, obs.unreachable, &session.state(), WallClockMs()};
  for (const auto& d : plan.diffs) ex.diffs[d.Key()] = &d;
  for (const auto& p : obs.readiness) ex.probes[p.Key()] = &p;

  json out = json::array();
  for (const auto& d : plan.diffs) {
    if (d.service != service || (!machine.empty() && d.machine != machine)) continue;
    const reconcilers::Step* step = nullptr;
    for (const auto& st : plan.steps) {
      if (st.Key() == d.Key()) step = &st;
    }
    std::set<std::string> seen;
    std::vector<std::string> blockers;
    ex.Blockers(service, &seen, &blockers, 0);
    std::string desired_text =
        d.pruned
            ? "stopped (pruned: removed from the desired state)"
            : std::string(desired_state::RunStateName(d.desired)) +
                  (desired.cluster.profile ? " (profile " + *desired.cluster.profile + ")" : "");
    std::string plan_text =
        step ? std::string(reconcilers::ActionName(step->action)) + ": " + step->reason
        : plan.blocked.count(d.Key()) ? "none: " + plan.blocked.at(d.Key())
                                      : "none: " + d.reason;
    if (g->json) {
      out.push_back({{"instance", d.Key()},
                     {"desired", desired_text},
                     {"observed", reconcilers::ObservedStateName(d.observed)},
                     {"ready", d.ready},
                     {"plan", plan_text},
                     {"rollout", rollout_text},
                     {"blocked_by", blockers}});
      continue;
    }
    std::printf("%s\n", d.Key().c_str());
    std::printf("  desired:  %s\n", desired_text.c_str());
    std::printf("  observed: %s%s\n", reconcilers::ObservedStateName(d.observed),
                d.observed_hash.empty() || d.observed_hash == d.desired_hash
                    ? ""
                    : (" (spec " + d.observed_hash.substr(0, 7) + ", desired " +
                       d.desired_hash.substr(0, 7) + ")")
                          .c_str());
    std::printf("  ready:    %s\n", d.ready ? "yes" : "no");
    std::printf("  plan:     %s\n", plan_text.c_str());
    if (!rollout_text.empty()) std::printf("  rollout:  %s\n", rollout_text.c_str());
    if (blockers.empty()) {
      std::printf("  blocked:  no\n");
    } else {
      // The first entry is the deepest root cause.
      std::printf("  blocked:  %s%s\n", blockers.front().c_str(),
                  blockers.size() > 1 ? "   (root cause)" : "");
      for (size_t i = 1; i < blockers.size(); ++i)
        std::printf("            then %s\n", blockers[i].c_str());
    }
  }
  if (g->json) std::cout << out.dump(2) << "\n";
  return kExitOk;
}

int RunHistory(Globals* g, size_t limit) {
  auto store = store::Store::OpenReadOnly(g->data_dir);
  if (!store.ok()) return ReportError(*g, store.status());
  store::RevisionLog log(store->get());
  auto history = log.History(limit);
  if (!history.ok()) return ReportError(*g, history.status());
  if (g->json) {
    for (const auto& r : *history) {
      std::cout << json{{"seq", r.seq},
                        {"commit", r.commit},
                        {"author", r.author},
                        {"message", r.message},
                        {"commit_time", r.commit_time},
                        {"applied_at", FormatRfc3339Ms(r.applied_at_ms)},
                        {"result", r.result},
                        {"actor", r.actor},
                        {"trigger", r.trigger},
                        {"detail", r.detail}}
                       .dump()
                << "\n";
    }
    return kExitOk;
  }
  if (history->empty()) {
    std::cerr << "no revision has been applied from " << g->data_dir << " yet\n";
    return kExitOk;
  }
  std::printf("%-24s %-8s %-8s %-9s %-20s %s\n", "APPLIED", "COMMIT", "RESULT", "TRIGGER", "ACTOR",
              "AUTHOR: MESSAGE");
  for (const auto& r : *history) {
    std::printf("%-24s %-8s %-8s %-9s %-20s %s: %s\n", FormatRfc3339Ms(r.applied_at_ms).c_str(),
                r.commit.substr(0, 7).c_str(), r.result.c_str(), r.trigger.c_str(), r.actor.c_str(),
                r.author.c_str(), r.message.c_str());
  }
  return kExitOk;
}

}  // namespace

CommandFn SetupWhy(CLI::App* sub, Globals* g) {
  auto service = std::make_shared<std::string>();
  auto machine = std::make_shared<std::string>();
  sub->add_option("SERVICE", *service, "Service to explain")->required();
  sub->add_option("--machine", *machine, "Only this machine's instance")->type_name("M");
  sub->footer(
      "Explains each instance: desired versus observed, the step the plan would take,\n"
      "and what blocks it, following the dependency graph to the root cause:\n"
      "  blocked: redis-server@cpu-coordinator readiness failing for 40s (root cause)");
  return [g, service, machine] { return RunWhy(g, *service, *machine); };
}

CommandFn SetupHistory(CLI::App* sub, Globals* g) {
  auto limit = std::make_shared<size_t>(20);
  sub->add_option("--limit", *limit, "At most N revisions, newest first. Default: 20")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
  sub->footer("Revisions applied (or rejected): commit, author, time, result, who applied it.");
  return [g, limit] { return RunHistory(g, *limit); };
}

}  // namespace clusterctl::cli
