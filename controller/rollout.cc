#include "controller/rollout.h"

#include <algorithm>

#include "base/time_format.h"

namespace clusterctl::controller {

using nlohmann::json;
using reconcilers::Cause;
using reconcilers::InstanceDiff;
using reconcilers::ObservedState;

namespace {

constexpr const char* kPhaseNames[] = {"progressing", "paused", "succeeded", "failed"};

int CeilPercent(int percent, int n) { return (percent * n + 99) / 100; }

bool Updated(const InstanceDiff& x) {
  return !x.desired_hash.empty() && x.observed_hash == x.desired_hash;
}

// The wave (0-based) machine number `index` of the order belongs to.
int WaveOf(const Rollout& r, size_t index) {
  for (size_t w = 0; w < r.waves.size(); ++w) {
    if (static_cast<int>(index) < r.waves[w]) return static_cast<int>(w);
  }
  return static_cast<int>(r.waves.size()) - 1;
}

std::string WaveText(const Rollout& r) {
  return "wave " + std::to_string(r.wave + 1) + " of " + std::to_string(r.waves.size()) +
         (r.wave == 0 ? " (canary)" : "");
}

}  // namespace

const char* RolloutPhaseName(RolloutPhase p) { return kPhaseNames[static_cast<size_t>(p)]; }

std::vector<int> WaveSizes(const desired_state::Service& s, int n) {
  std::vector<int> out;
  if (n <= 0) return out;
  auto add = [&](int size) {
    size = std::clamp(size, 1, n);
    if (out.empty() || size > out.back()) out.push_back(size);
  };
  if (s.canary) {
    const auto& c = *s.canary;
    add(!c.machines.empty() ? static_cast<int>(c.machines.size())
        : c.count > 0       ? c.count
                            : CeilPercent(c.percent, n));
  }
  for (const auto& w : s.waves) add(w.count > 0 ? w.count : CeilPercent(w.percent, n));
  add(n);
  return out;
}

std::vector<std::string> RolloutOrder(const desired_state::Service& s,
                                      const std::vector<std::string>& machines) {
  std::vector<std::string> out;
  if (s.canary) {
    for (const auto& m : s.canary->machines) {
      if (std::find(machines.begin(), machines.end(), m) != machines.end()) out.push_back(m);
    }
  }
  std::vector<std::string> rest;
  for (const auto& m : machines) {
    if (std::find(out.begin(), out.end(), m) == out.end()) rest.push_back(m);
  }
  std::sort(rest.begin(), rest.end());
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

std::string Rollout::Describe(int64_t now_ms) const {
  std::string s = "rollout of " + service + " to " + revision.substr(0, 7) + ": ";
  const std::string progress = std::to_string(ready) + "/" + std::to_string(Allowed()) + " ready";
  switch (phase) {
    case RolloutPhase::kProgressing:
      s += WaveText(*this) + ", " + progress;
      if (analysis_start_ms > 0) {
        const int64_t left = analysis_start_ms + analysis_seconds * 1000LL - now_ms;
        s += ", analysis " + std::to_string(std::max<int64_t>(0, (left + 999) / 1000)) + " s left";
      }
      break;
    case RolloutPhase::kPaused:
      s += "paused at " + WaveText(*this) + ", " + progress + (why.empty() ? "" : " (" + why + ")");
      break;
    case RolloutPhase::kSucceeded:
      s += "succeeded: " + std::to_string(Allowed()) + " instance(s) in " +
           std::to_string(waves.size()) + " wave(s)";
      break;
    case RolloutPhase::kFailed:
      s += "failed at " + WaveText(*this) + ": " + why + "; rolled back to " +
           (from_revision.empty() ? std::string("the last good revision")
                                  : from_revision.substr(0, 7));
      break;
  }
  return s;
}

json Rollout::ToJson(int64_t now_ms) const {
  json failures = json::object();
  for (const auto& [m, w] : failed) failures[m] = w;
  json j = {{"service", service},
            {"revision", revision},
            {"from_revision", from_revision},
            {"phase", RolloutPhaseName(phase)},
            {"wave", wave + 1},
            {"waves", waves.size()},
            {"wave_sizes", waves},
            {"order", order},
            {"instances", order.size()},
            {"allowed", Allowed()},
            {"ready", ready},
            {"failed", failures},
            {"max_failed_instances", max_failed},
            {"analysis_seconds", analysis_seconds},
            {"analysis_left_seconds", nullptr},
            {"started", FormatRfc3339Ms(started_ms)},
            {"ended", ended_ms > 0 ? json(FormatRfc3339Ms(ended_ms)) : json(nullptr)},
            {"why", why},
            {"rollback_commit", rollback_commit},
            {"summary", Describe(now_ms)}};
  if (phase == RolloutPhase::kProgressing && analysis_start_ms > 0) {
    j["analysis_left_seconds"] =
        std::max<int64_t>(0, (analysis_start_ms + analysis_seconds * 1000LL - now_ms + 999) / 1000);
  }
  return j;
}

std::vector<RolloutEvent> RolloutBook::Update(const desired_state::DesiredState& desired,
                                              const std::vector<InstanceDiff>& diffs,
                                              const std::string& from_revision, bool exempt,
                                              int64_t now_ms) {
  std::vector<RolloutEvent> events;
  // A service gone from the desired state takes its rollout with it (the
  // book is kept in memory and in the daemon's stored state), unless that
  // rollout failed and its rollback is not written yet.
  for (auto it = rollouts_.begin(); it != rollouts_.end();) {
    const bool pending = it->second.phase == RolloutPhase::kFailed && !it->second.rollback_done;
    it = pending || desired.FindService(it->first) != nullptr ? std::next(it) : rollouts_.erase(it);
  }
  for (const auto& s : desired.services) {
    if (!s.canary) continue;
    std::vector<const InstanceDiff*> mine;
    std::vector<std::string> machines;
    bool changed = false;
    for (const auto& x : diffs) {
      if (x.service != s.name || x.pruned || x.desired != desired_state::RunState::kRunning) {
        continue;
      }
      mine.push_back(&x);
      machines.push_back(x.machine);
      changed |= x.cause == Cause::kSpecChanged;
    }
    auto it = rollouts_.find(s.name);
    const bool current = it != rollouts_.end() && it->second.revision == desired.revision.commit;
    if (!current && changed && !exempt) {
      Rollout r;
      r.service = s.name;
      r.revision = desired.revision.commit;
      // A rollout replaced before it succeeded leaves its own last good
      // revision as the one to go back to.
      r.from_revision = it != rollouts_.end() && it->second.phase != RolloutPhase::kSucceeded &&
                                !it->second.from_revision.empty()
                            ? it->second.from_revision
                            : from_revision;
      r.order = RolloutOrder(s, machines);
      r.waves = WaveSizes(s, static_cast<int>(r.order.size()));
      r.analysis_seconds = s.canary->analysis_seconds;
      r.max_failed = s.max_failed_instances;
      r.started_ms = now_ms;
      std::string sizes;
      for (int w : r.waves) sizes += (sizes.empty() ? "" : ", ") + std::to_string(w);
      events.push_back({s.name, "rollout_started",
                        "rollout of " + s.name + " to " + desired.revision.Short() +
                            " started: " + std::to_string(r.order.size()) +
                            " instance(s) in waves of " + sizes + "; canary " + r.order.front() +
                            ", budget " + std::to_string(r.max_failed) + " failed instance(s)"});
      it = rollouts_.insert_or_assign(s.name, std::move(r)).first;
    } else if (!current) {
      continue;
    }
    Rollout& r = it->second;
    if (r.phase != RolloutPhase::kProgressing) continue;
    const std::set<std::string> allowed(
        r.order.begin(), r.order.begin() + std::min<size_t>(r.order.size(), r.Allowed()));
    int ready = 0;
    for (const InstanceDiff* x : mine) {
      if (!allowed.count(x->machine) || !Updated(*x)) continue;
      if (x->observed == ObservedState::kRunning && x->ready) {
        ++ready;
      } else if (x->observed == ObservedState::kFailed) {
        r.failed.emplace(x->machine, "crashed with the new spec");
      } else if (x->observed == ObservedState::kRunning && r.analysis_start_ms > 0) {
        r.failed.emplace(x->machine, "readiness failed during the analysis");
      }
    }
    r.ready = ready;
    if (static_cast<int>(r.failed.size()) > r.max_failed) {
      r.phase = RolloutPhase::kFailed;
      r.ended_ms = now_ms;
      std::string list;
      for (const auto& [m, w] : r.failed) list += (list.empty() ? "" : "; ") + m + ": " + w;
      r.why = std::to_string(r.failed.size()) + " failed instance(s), budget " +
              std::to_string(r.max_failed) + " (" + list + ")";
      events.push_back({s.name, "rollout_failed", r.Describe(now_ms)});
      continue;
    }
    if (ready < r.Allowed()) {
      r.analysis_start_ms = 0;  // The analysis starts again once all are ready.
      continue;
    }
    if (r.analysis_start_ms == 0) {
      r.analysis_start_ms = now_ms;
      events.push_back({s.name, "rollout_analysis", r.Describe(now_ms)});
    }
    if (now_ms - r.analysis_start_ms < r.analysis_seconds * 1000LL) continue;
    if (static_cast<size_t>(r.wave) + 1 >= r.waves.size()) {
      r.phase = RolloutPhase::kSucceeded;
      r.ended_ms = now_ms;
      events.push_back({s.name, "rollout_succeeded", r.Describe(now_ms)});
      continue;
    }
    ++r.wave;
    r.analysis_start_ms = 0;
    r.ready = 0;
    events.push_back({s.name, "rollout_wave",
                      r.Describe(now_ms) + "; " + std::to_string(r.Allowed()) + "/" +
                          std::to_string(r.order.size()) + " instance(s) may change"});
  }
  return events;
}

void RolloutBook::RecordFailure(const std::string& revision, const std::string& service,
                                const std::string& machine, const std::string& why) {
  auto it = rollouts_.find(service);
  if (it == rollouts_.end() || it->second.revision != revision) return;
  Rollout& r = it->second;
  if (r.phase != RolloutPhase::kProgressing && r.phase != RolloutPhase::kPaused) return;
  auto pos = std::find(r.order.begin(), r.order.end(), machine);
  if (pos == r.order.end() || pos - r.order.begin() >= r.Allowed()) return;
  r.failed.emplace(machine, why);
}

void RolloutBook::AddHolds(const desired_state::DesiredState& desired,
                           const std::vector<InstanceDiff>& diffs,
                           std::map<std::string, std::string>* hold) const {
  for (const auto& x : diffs) {
    if (x.action == reconcilers::Action::kNone || hold->count(x.Key())) continue;
    auto it = rollouts_.find(x.service);
    if (it == rollouts_.end() || it->second.revision != desired.revision.commit) continue;
    const Rollout& r = it->second;
    if (r.phase == RolloutPhase::kSucceeded) continue;
    if (r.phase == RolloutPhase::kFailed) {
      (*hold)[x.Key()] = "rollout of " + r.service + " to " + r.revision.substr(0, 7) +
                         " failed; rolling back to " +
                         (r.from_revision.empty() ? std::string("the last good revision")
                                                  : r.from_revision.substr(0, 7));
      continue;
    }
    if (x.cause != Cause::kSpecChanged) continue;
    auto pos = std::find(r.order.begin(), r.order.end(), x.machine);
    const size_t index = static_cast<size_t>(pos - r.order.begin());
    if (r.phase == RolloutPhase::kProgressing && pos != r.order.end() &&
        static_cast<int>(index) < r.Allowed()) {
      continue;
    }
    std::string why = r.phase == RolloutPhase::kPaused ? "rollout of " + r.service + " paused"
                                                       : "rollout of " + r.service;
    why += " to " + r.revision.substr(0, 7) + ": " + WaveText(r) + ", " + std::to_string(r.ready) +
           "/" + std::to_string(r.Allowed()) + " ready";
    if (pos != r.order.end()) {
      why += "; this instance is in wave " + std::to_string(WaveOf(r, index) + 1);
    }
    (*hold)[x.Key()] = why;
  }
}

Rollout* RolloutBook::Active(const std::string& service) {
  auto it = rollouts_.find(service);
  if (it == rollouts_.end()) return nullptr;
  const RolloutPhase p = it->second.phase;
  return p == RolloutPhase::kProgressing || p == RolloutPhase::kPaused ? &it->second : nullptr;
}

Result<Rollout> RolloutBook::Pause(const std::string& service, const std::string& actor) {
  Rollout* r = Active(service);
  if (r == nullptr) return Status::NotFound("no rollout of " + service + " in progress");
  if (r->phase == RolloutPhase::kPaused) return Status::Invalid(r->service + " is paused already");
  r->phase = RolloutPhase::kPaused;
  r->analysis_start_ms = 0;
  r->why = "paused by " + actor;
  return *r;
}

Result<Rollout> RolloutBook::Resume(const std::string& service, const std::string& actor) {
  Rollout* r = Active(service);
  if (r == nullptr) return Status::NotFound("no rollout of " + service + " in progress");
  if (r->phase != RolloutPhase::kPaused) {
    return Status::Invalid("the rollout of " + service + " is not paused");
  }
  r->phase = RolloutPhase::kProgressing;
  r->why = "resumed by " + actor;
  return *r;
}

Result<Rollout> RolloutBook::Abort(const std::string& service, const std::string& actor,
                                   int64_t now_ms) {
  Rollout* r = Active(service);
  if (r == nullptr) return Status::NotFound("no rollout of " + service + " in progress");
  r->phase = RolloutPhase::kFailed;
  r->ended_ms = now_ms;
  r->why = "aborted by " + actor;
  return *r;
}

const Rollout* RolloutBook::PendingRollback() const {
  for (const auto& [_, r] : rollouts_) {
    if (r.phase == RolloutPhase::kFailed && !r.rollback_done) return &r;
  }
  return nullptr;
}

void RolloutBook::RollbackDone(const std::string& service, const std::string& commit) {
  auto it = rollouts_.find(service);
  if (it == rollouts_.end()) return;
  it->second.rollback_done = true;
  it->second.rollback_commit = commit;
}

bool RolloutBook::IsAutoRollback(const std::string& commit) const {
  for (const auto& [_, r] : rollouts_) {
    if (r.phase != RolloutPhase::kFailed || !r.rollback_done) continue;
    if (commit == r.rollback_commit || (r.rollback_commit.empty() && commit == r.from_revision)) {
      return true;
    }
  }
  return false;
}

int64_t RolloutBook::NextDeadlineMs() const {
  int64_t next = 0;
  for (const auto& [_, r] : rollouts_) {
    if (r.phase != RolloutPhase::kProgressing || r.analysis_start_ms == 0) continue;
    const int64_t at = r.analysis_start_ms + r.analysis_seconds * 1000LL;
    if (next == 0 || at < next) next = at;
  }
  return next;
}

json RolloutBook::ToJson() const {
  json out = json::array();
  for (const auto& [_, r] : rollouts_) {
    out.push_back({{"service", r.service},
                   {"revision", r.revision},
                   {"from_revision", r.from_revision},
                   {"order", r.order},
                   {"waves", r.waves},
                   {"wave", r.wave},
                   {"analysis_seconds", r.analysis_seconds},
                   {"max_failed", r.max_failed},
                   {"phase", RolloutPhaseName(r.phase)},
                   {"started_ms", r.started_ms},
                   {"analysis_start_ms", r.analysis_start_ms},
                   {"ended_ms", r.ended_ms},
                   {"failed", r.failed},
                   {"why", r.why},
                   {"rollback_commit", r.rollback_commit},
                   {"rollback_done", r.rollback_done},
                   {"ready", r.ready}});
  }
  return out;
}

void RolloutBook::Restore(const json& j, bool* ok) {
  rollouts_.clear();
  if (ok != nullptr) *ok = true;
  if (j.is_null()) return;
  try {
    for (const json& x : j) {
      Rollout r;
      r.service = x.at("service").get<std::string>();
      r.revision = x.at("revision").get<std::string>();
      r.from_revision = x.at("from_revision").get<std::string>();
      r.order = x.at("order").get<std::vector<std::string>>();
      r.waves = x.at("waves").get<std::vector<int>>();
      r.wave = x.at("wave").get<int>();
      r.analysis_seconds = x.at("analysis_seconds").get<int>();
      r.max_failed = x.at("max_failed").get<int>();
      const std::string phase = x.at("phase").get<std::string>();
      bool known = false;
      for (size_t i = 0; i < std::size(kPhaseNames); ++i) {
        if (phase == kPhaseNames[i]) {
          r.phase = static_cast<RolloutPhase>(i);
          known = true;
        }
      }
      if (!known || r.waves.empty() || r.wave < 0 ||
          static_cast<size_t>(r.wave) >= r.waves.size()) {
        throw std::runtime_error("bad rollout");
      }
      r.started_ms = x.at("started_ms").get<int64_t>();
      r.analysis_start_ms = x.at("analysis_start_ms").get<int64_t>();
      r.ended_ms = x.at("ended_ms").get<int64_t>();
      r.failed = x.at("failed").get<std::map<std::string, std::string>>();
      r.why = x.at("why").get<std::string>();
      r.rollback_commit = x.at("rollback_commit").get<std::string>();
      r.rollback_done = x.at("rollback_done").get<bool>();
      r.ready = x.value("ready", 0);
      rollouts_[r.service] = std::move(r);
    }
  } catch (const std::exception&) {
    rollouts_.clear();
    if (ok != nullptr) *ok = false;
  }
}

}  // namespace clusterctl::controller
