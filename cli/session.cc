#include "cli/session.h"

#include <filesystem>
#include <iostream>

namespace clusterctl::cli {
namespace fs = std::filesystem;

std::optional<desired_state::DesiredState> LoadDesired(const Globals& g, const std::string& rev,
                                                       Status* status) {
  auto snap = g.ReadRevision(rev);
  if (!snap.ok()) {
    *status = snap.status();
    return std::nullopt;
  }
  desired_state::LoadResult r = desired_state::Load(*snap);
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
  // The last applied revision names the instances to prune.
  auto last = revisions_->LastApplied();
  if (last.ok() && last->has_value()) {
    last_applied_ = **last;
    if ((*last)->commit != desired_->revision.commit && (*last)->commit != "working-tree") {
      Status ignored;
      auto snap = g_->ReadRevision((*last)->commit);
      if (snap.ok()) {
        auto r = desired_state::Load(*snap);
        if (r.ok()) previous_ = std::move(*r.state);
      }
      if (!previous_) {
        std::cerr << "warning: the last applied revision " << (*last)->commit.substr(0, 7)
                  << " cannot be read; instances removed since then are not pruned\n";
      }
    }
  }
  return SetUpSsh();
}

Status Session::OpenStore(bool read_only_ok) {
  auto store = controller::Store::OpenPrimary(g_->data_dir);
  if (!store.ok() && store.status().code() == Code::kConflict && read_only_ok) {
    store = controller::Store::OpenReadOnly(g_->data_dir);
    read_only_ = true;
  }
  if (!store.ok()) return store.status();
  store_ = std::move(store.value());
  state_ = std::make_unique<controller::StateStore>(store_.get());
  auto audit = controller::AuditLog::Open(store_.get());
  if (!audit.ok()) return audit.status();
  audit_ = std::move(audit.value());
  revisions_ = std::make_unique<controller::RevisionLog>(store_.get());
  return Status::Ok();
}

Status Session::SetUpSsh() {
  const controller::Config& c = g_->config;
  reconcilers::SshOptions o;
  o.known_hosts = !c.known_hosts.empty() ? c.known_hosts : g_->data_dir + "/known_hosts";
  if (c.host_key_policy == "accept-new") o.policy = reconcilers::HostKeyPolicy::kAcceptNew;
  o.default_identity_file = controller::ExpandHome(c.identity_file);
  o.connect_timeout_ms = c.connect_timeout_seconds * 1000;
  o.command_timeout_ms = c.command_timeout_seconds * 1000;
  std::error_code ec;
  if (!fs::exists(o.known_hosts, ec) && o.policy == reconcilers::HostKeyPolicy::kStrict) {
    std::cerr << "warning: known_hosts file " << o.known_hosts
              << " does not exist; every machine will be refused (host_key_unknown). Add the "
                 "machines' keys or set ssh.hostKeyPolicy: accept-new in the config.\n";
  }
  ssh_ = std::make_unique<reconcilers::SshPool>(o);
  reconcilers::ShellDriver::Options driver_options;
  driver_options.command_timeout = std::chrono::seconds(c.command_timeout_seconds);
  driver_ = std::make_unique<reconcilers::ShellDriver>(ssh_.get(), driver_options);
  prober_ = std::make_unique<reconcilers::RealProber>(ssh_.get());
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

}  // namespace clusterctl::cli
