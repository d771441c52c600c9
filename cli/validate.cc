// clusterctl validate [--rev REV]: load and check a revision (exit 0/1).
#include <iostream>

#include "cli/commands.h"
#include "desired-state/loader.h"

namespace clusterctl::cli {
namespace ds = desired_state;
using nlohmann::json;

namespace {

json DiagnosticsJson(const ds::Diagnostics& diags) {
  json out = json::array();
  for (const auto& d : diags.Sorted()) {
    out.push_back({{"file", d.where.file},
                   {"line", d.where.line},
                   {"column", d.where.column},
                   {"message", d.message},
                   {"hint", d.hint},
                   {"text", d.ToString()}});
  }
  return out;
}

json RevisionJson(const ds::Revision& r) {
  return {{"commit", r.commit}, {"author", r.author}, {"time", r.time}, {"message", r.message}};
}

int RunValidate(const Globals& g, const std::string& rev) {
  Result<ds::Snapshot> snap = g.ReadRevision(rev);
  if (!snap.ok()) return ReportError(g, snap.status());
  ds::LoadResult r = ds::Load(*snap, g.load_options);
  const std::string shown =
      snap->revision.commit.size() > 12 ? snap->revision.Short() : snap->revision.commit;
  if (g.json) {
    json out = {{"valid", r.ok()},
                {"revision", RevisionJson(snap->revision)},
                {"errors", DiagnosticsJson(r.errors)},
                {"warnings", r.warnings}};
    if (r.ok()) {
      size_t running = 0;
      for (const auto& i : r.state->instances) running += i.desired == ds::RunState::kRunning;
      out["summary"] = {{"cluster", r.state->cluster.name},
                        {"profile", r.state->cluster.profile.value_or("")},
                        {"machines", r.state->machines.size()},
                        {"services", r.state->services.size()},
                        {"profiles", r.state->profiles.size()},
                        {"instances", r.state->instances.size()},
                        {"instances_to_run", running}};
    }
    std::cout << out.dump(2) << "\n";
    return r.ok() ? kExitOk : kExitError;
  }
  for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
  if (!r.ok()) {
    std::cerr << r.errors.ToString();
    std::cerr << "invalid: " << r.errors.Sorted().size() << " error(s) in revision " << shown
              << "; nothing was applied\n";
    return kExitError;
  }
  const ds::DesiredState& s = *r.state;
  size_t running = 0;
  for (const auto& i : s.instances) running += i.desired == ds::RunState::kRunning;
  std::cout << "valid: revision " << shown << " of cluster \"" << s.cluster.name << "\"";
  if (s.cluster.profile) std::cout << " (profile " << *s.cluster.profile << ")";
  std::cout << "\n  " << s.machines.size() << " machines, " << s.services.size() << " services, "
            << s.profiles.size() << " profiles; " << s.instances.size() << " instances, " << running
            << " to run\n";
  if (g.verbosity > 0) {
    std::cout << "  start order: ";
    for (size_t i = 0; i < s.service_order.size(); ++i) {
      std::cout << (i ? " -> " : "") << s.service_order[i];
    }
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

CommandFn SetupValidate(CLI::App* sub, Globals* g) {
  auto rev = std::make_shared<std::string>();
  sub->add_option("--rev", *rev, "Branch, tag or commit to check. Default: head of --branch")
      ->type_name("REV");
  sub->footer(
      "Every error names file:line:col and what to do; all errors of the revision are\n"
      "listed, sorted by file and line. Suitable for a pre-receive hook or CI:\n"
      "  clusterctl validate --repo . --rev \"$newrev\"");
  return [g, rev] { return RunValidate(*g, *rev); };
}

}  // namespace clusterctl::cli
