#include "reconcilers/watch.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "reconcilers/observer.h"
#include "reconcilers/target.h"
#include "reconcilers/watch_scripts.h"

namespace clusterctl::reconcilers {

using desired_state::DesiredState;
using desired_state::DriverKind;
using desired_state::Service;
using std::chrono::milliseconds;

struct DriftWatch::TickResult {
  Status status;
  WatchReport report;
};

namespace {

bool SameTarget(const SshTarget& a, const SshTarget& b) {
  return a.address == b.address && a.port == b.port && a.user == b.user &&
         a.identity_file == b.identity_file;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

DriftWatch::DriftWatch(CommandRunner* runner, Options options)
    : runner_(runner), options_(std::move(options)) {}

DriftWatch::~DriftWatch() { Stop(); }

int64_t DriftWatch::Now() const { return ClockOr(options_.clock).WallMs(); }

void DriftWatch::SetDesired(std::shared_ptr<const DesiredState> desired) {
  // Machine name -> (machine, its watched services in desired-state order).
  std::map<std::string, std::pair<const desired_state::Machine*, std::vector<const Service*>>> want;
  if (desired) {
    for (const auto& i : desired->instances) {
      const Service* s = desired->FindService(i.service);
      const desired_state::Machine* m = desired->FindMachine(i.machine);
      if (s == nullptr || m == nullptr || s->driver != DriverKind::kProcess) continue;
      auto& entry = want[m->name];
      entry.first = m;
      entry.second.push_back(s);
    }
  }
  std::lock_guard<std::mutex> g(mu_);
  for (auto it = machines_.begin(); it != machines_.end();) {
    it = want.count(it->first) ? std::next(it) : machines_.erase(it);
  }
  for (const auto& [name, entry] : want) {
    const auto& [machine, services] = entry;
    const std::string set = WatchSetScript(*machine, services);
    std::vector<std::string> names;
    for (const Service* s : services) names.push_back(s->name);
    auto [it, added] = machines_.try_emplace(name);
    MachineWatch& mw = it->second;
    const SshTarget target = TargetFor(*machine);
    if (added) {
      mw.id = ++next_id_;
      mw.due = SteadyNow();
    } else if (!SameTarget(mw.target, target)) {
      mw.need_set = true;
      mw.known.clear();
    }
    mw.target = target;
    if (added || mw.set_script != set) {
      mw.set_script = set;
      mw.services = names;
      ++mw.generation;
      mw.need_set = true;
      for (auto k = mw.known.begin(); k != mw.known.end();) {
        k = std::count(names.begin(), names.end(), k->first) ? std::next(k) : mw.known.erase(k);
      }
    }
  }
  cv_.notify_all();
}

void DriftWatch::Start() {
  std::lock_guard<std::mutex> ss(start_stop_mu_);
  if (!threads_.empty()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = false;
  }
  const int n = std::max(1, options_.threads);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Worker(); });
}

void DriftWatch::Stop() {
  std::lock_guard<std::mutex> ss(start_stop_mu_);
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

int64_t DriftWatch::TicksForTest(const std::string& machine) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = machines_.find(machine);
  return it == machines_.end() ? 0 : it->second.ticks;
}

std::map<std::string, DriftWatch::MachineWatch>::iterator DriftWatch::NextDue(SteadyTime* wake) {
  auto best = machines_.end();
  for (auto it = machines_.begin(); it != machines_.end(); ++it) {
    if (it->second.in_flight) continue;
    if (best == machines_.end() || it->second.due < best->second.due) best = it;
  }
  if (best == machines_.end()) {
    *wake = SteadyNow() + milliseconds(1000);
    return best;
  }
  if (best->second.due > SteadyNow()) {
    *wake = best->second.due;
    return machines_.end();
  }
  return best;
}

DriftWatch::TickResult DriftWatch::RunTick(const SshTarget& target, const std::string& set_script,
                                           bool with_set) {
  const std::string script = with_set ? set_script + WatchTickScript() : WatchTickScript();
  auto r = runner_->Run(target, Command(script, WatchLibrary(), /*trusted=*/true, Purpose::kWatch),
                        options_.tick_timeout);
  if (!r.ok()) return {r.status(), {}};
  if (r->exit_code != 0) {
    return {Status::Internal("the watch tick exited " + std::to_string(r->exit_code) + ": " +
                             FirstLine(r->err)),
            {}};
  }
  return {Status::Ok(), ParseWatchEvents(r->out)};
}

void DriftWatch::Worker() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    SteadyTime wake;
    auto it = NextDue(&wake);
    if (it == machines_.end()) {
      cv_.wait_until(l, wake);
      continue;
    }
    const std::string name = it->first;
    MachineWatch& mw = it->second;
    mw.in_flight = true;
    const uint64_t id = mw.id, generation = mw.generation;
    const bool with_set = mw.need_set || mw.stateless;
    const bool after_set = mw.last_was_set;
    const SshTarget target = mw.target;
    const std::string set_script = mw.set_script;
    const auto started = SteadyNow();
    l.unlock();

    TickResult r = RunTick(target, set_script, with_set);
    bool sent_set = with_set;
    bool lost_shell = false;
    if (r.status.ok() && r.report.unset && !with_set) {
      // A new shell: send the set with the tick at once.
      lost_shell = true;
      r = RunTick(target, set_script, true);
      sent_set = true;
    }
    const int64_t at = Now();

    std::vector<Event> events;
    std::vector<LogRotation> rotations;
    bool report_error = false, report_back = false;
    l.lock();
    it = machines_.find(name);
    if (it == machines_.end() || it->second.id != id) continue;  // Left the desired state.
    MachineWatch& m = it->second;
    if (m.generation != generation) {
      // The set changed during the tick: its result is for the old set.
      m.in_flight = false;
      m.due = SteadyNow();
      cv_.notify_all();
      continue;
    }
    if (!r.status.ok() || r.report.unset) {
      if (r.status.ok()) r.status = Status::Internal("the watch set did not hold in the shell");
      report_error = m.failures == 0;
      ++m.failures;
      m.known.clear();
      m.need_set = true;
      m.last_was_set = false;
      const int64_t backoff =
          std::min<int64_t>(options_.backoff_max.count(), options_.backoff_initial.count()
                                                              << std::min(m.failures - 1, 20));
      m.due = SteadyNow() + milliseconds(backoff);
    } else {
      report_back = m.failures > 0;
      m.failures = 0;
      // A tick right after a working set found no set: the runner keeps no
      // shell state between commands, so every tick carries the set.
      if (lost_shell && after_set && !m.stateless) {
        m.stateless = true;
        spdlog::debug("watch {}: the shell keeps no state between commands", name);
      }
      m.need_set = false;
      m.last_was_set = sent_set;
      ++m.ticks;
      for (const auto& c : r.report.changes) {
        if (!std::count(m.services.begin(), m.services.end(), c.service)) continue;
        Known& k = m.known[c.service];
        if (k.state == c.state && k.pid == c.pid) continue;
        k.state = c.state;
        k.pid = c.pid;
        events.push_back({name, c.service, c.state, c.pid, c.detail, at});
      }
      for (const auto& rot : r.report.rotations)
        rotations.push_back({name, rot.service, rot.bytes, at});
      m.due = started + options_.interval;
    }
    l.unlock();

    // Callbacks with the machine still in flight, so its events stay in order.
    if (report_error) {
      spdlog::debug("watch {}: {}", name, r.status.ToString());
      if (options_.on_machine) options_.on_machine(name, r.status);
    }
    if (report_back && options_.on_machine) options_.on_machine(name, Status::Ok());
    for (const auto& e : events) {
      if (options_.on_event) options_.on_event(e);
    }
    for (const auto& rot : rotations) {
      if (options_.on_log_rotated) options_.on_log_rotated(rot);
    }

    l.lock();
    it = machines_.find(name);
    if (it != machines_.end() && it->second.id == id) it->second.in_flight = false;
    cv_.notify_all();
  }
}

}  // namespace clusterctl::reconcilers
