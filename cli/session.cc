#include "cli/session.h"

#include <filesystem>
#include <iostream>

#include "base/clock.h"
#include "base/paths.h"
#include "controller/daemon_memory.h"
#include "controller/leases.h"

namespace clusterctl::cli {
namespace fs = std::filesystem;

std::optional<desired_state::DesiredState> LoadDesired(const Globals& g, const std::string& rev,
                                                       Status* status) {
  auto snap = g.ReadRevision(rev);
  if (!snap.ok()) {
    *status = snap.status();
    return std::nullopt;
  }
  desired_state::LoadResult r = desired_state::Load(*snap, g.load_options);
  for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
  if (!r.ok()) {
    std::cerr << r.errors.ToString();
    *status = Status::Invalid("revision " + snap->revision.Short() + " is invalid (" +
                              std::to_string(r.errors.Sorted().size()) +
                              " errors above); nothing was done");
    return std::nullopt;
  }
  return std::move(*r.state);
}

Status Session::Open(const std::string& rev, bool read_only_ok) {
  Status s;
  desired_ = LoadDesired(*g_, rev, &s);
  if (!desired_) return s;
  CLUSTERCTL_RETURN_IF_ERROR(OpenStore(read_only_ok));
  auto last = revisions_->LastApplied();
  if (last.ok() && last->has_value()) last_applied_ = **last;
  // Everything earlier runs started and that is not desired now is pruned,
  // whichever revision started it.
  bool found = false;
  auto managed = controller::LoadManaged(*state_, &found);
  if (!managed.ok()) return managed.status();
  managed_ = std::move(*managed);
  controller::PruneBasisLoader loader(
      [this](const std::string& commit) -> Result<desired_state::DesiredState> {
        auto snap = g_->ReadRevision(commit);
        if (!snap.ok()) return snap.status();
        auto r = desired_state::Load(*snap, g_->load_options);
        if (!r.ok()) return Status::Invalid(r.errors.ToString());
        return std::move(*r.state);
      });
  if (!found && last_applied_ && last_applied_->commit != desired_->revision.commit &&
      last_applied_->commit != "working-tree") {
    // A data directory from before the record: what the last run applied.
    auto snap = g_->ReadRevision(last_applied_->commit);
    auto r = snap.ok() ? desired_state::Load(*snap, g_->load_options) : desired_state::LoadResult{};
    if (r.ok()) {
      managed_ = controller::SeedManaged(*r.state);
    } else {
      std::cerr << "warning: the last applied revision " << last_applied_->commit.substr(0, 7)
                << " cannot be read; instances removed since then are not pruned\n";
    }
  }
  std::vector<std::string> unreadable;
  prune_ = loader.Build(*desired_, managed_, &unreadable);
  for (const auto& u : unreadable) {
    std::cerr << "warning: " << u
              << " is not pruned: the revision that started it cannot be read\n";
  }
  return SetUpSsh();
}

Status Session::RecordManaged(const reconcilers::ClusterObservation& observed,
                              const reconcilers::Plan& plan,
                              const reconcilers::ExecutionReport& report) {
  if (read_only_) return Status::Ok();
  controller::ManagedInstances next =
      controller::NextManaged(managed_, *desired_, observed, plan, report);
  if (next == managed_) return Status::Ok();
  CLUSTERCTL_RETURN_IF_ERROR(controller::SaveManaged(state_.get(), next));
  managed_ = std::move(next);
  return Status::Ok();
}

Status Session::OpenStore(bool read_only_ok) {
  auto store = store::Store::OpenPrimary(g_->data_dir);
  if (!store.ok() && store.status().code() == Code::kConflict && read_only_ok) {
    store = store::Store::OpenReadOnly(g_->data_dir);
    read_only_ = true;
  }
  if (!store.ok()) return store.status();
  store_ = std::move(store.value());
  state_ = std::make_unique<store::StateStore>(store_.get());
  auto audit = audit::AuditLog::Open(store_.get());
  if (!audit.ok()) return audit.status();
  audit_ = std::move(audit.value());
  revisions_ = std::make_unique<store::RevisionLog>(store_.get());
  return Status::Ok();
}

reconcilers::SshOptions SshOptionsOf(const Globals& g) {
  const controller::Config& c = g.config;
  reconcilers::SshOptions o;
  o.known_hosts = !c.known_hosts.empty() ? c.known_hosts : g.data_dir + "/known_hosts";
  if (c.host_key_policy == "accept-new") o.policy = reconcilers::HostKeyPolicy::kAcceptNew;
  o.default_identity_file = ExpandHome(c.identity_file);
  o.secrets = g.load_options.secrets;
  o.connect_timeout_ms = c.connect_timeout_seconds * 1000;
  o.command_timeout_ms = c.command_timeout_seconds * 1000;
  std::error_code ec;
  if (!fs::exists(o.known_hosts, ec) && o.policy == reconcilers::HostKeyPolicy::kStrict) {
    std::cerr << "warning: known_hosts file " << o.known_hosts
              << " does not exist; every machine will be refused (host_key_unknown). Add the "
                 "machines' keys or set ssh.hostKeyPolicy: accept-new in the config.\n";
  }
  return o;
}

Status Session::SetUpSsh() {
  const controller::Config& c = g_->config;
  ssh_ = std::make_unique<reconcilers::SshPool>(SshOptionsOf(*g_));
  reconcilers::ShellDriver::Options driver_options;
  driver_options.command_timeout = std::chrono::seconds(c.command_timeout_seconds);
  driver_ = std::make_unique<reconcilers::ShellDriver>(ssh_.get(), driver_options);
  prober_ =
      std::make_unique<reconcilers::RealProber>(ssh_.get(), nullptr, *g_->load_options.secrets);
  return Status::Ok();
}

controller::ReconcileDeps Session::deps() {
  controller::ReconcileDeps d;
  d.state = read_only_ ? nullptr : state_.get();
  d.audit = audit_.get();
  d.driver = driver_.get();
  d.prober = prober_.get();
  d.actor = CurrentActor();
  return d;
}

std::map<std::string, std::string> Session::LeaseHolds() const {
  if (!store_ || !desired_) return {};
  auto memory = controller::LoadMemory(*store_);
  if (!memory.ok() || memory->leases.is_null()) return {};
  controller::LeaseBook leases;
  leases.Restore(memory->leases);
  (void)leases.Expire(WallClockMs());  // Ended ones hold nothing.
  return leases.Holds(*desired_);
}

controller::RolloutBook Session::Rollouts() const {
  controller::RolloutBook book;
  if (!store_) return book;
  auto memory = controller::LoadMemory(*store_);
  if (memory.ok() && !memory->rollouts.is_null()) book.Restore(memory->rollouts);
  return book;
}

}  // namespace clusterctl::cli
