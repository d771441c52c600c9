#include "cli/app.h"

#include <iostream>

#include "cli/audit.h"
#include "cli/commands.h"

namespace clusterctl::cli {

const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kCommands = {
      {"validate",
       "Load and check the desired state of a revision; touches no machine.\n"
       "Exit 0 valid, 1 invalid.",
       SetupValidate},
      {"diff",
       "Observe, then print the ordered plan to reach a revision.\n"
       "Exit 0 in sync, 2 changes pending, 1 error.",
       SetupDiff},
      {"apply",
       "Observe, plan and execute with live progress; every step audited.\n"
       "Exit 0 converged, 1 failed or partial.",
       SetupApply},
      {"status",
       "Per machine and service: state, readiness, pid, uptime; overall health.\n"
       "Exit 0 healthy, 3 degraded, 4 unhealthy, 1 error.",
       SetupStatus},
      {"probe",
       "Run every probe once: pass/fail and latency per instance.\n"
       "Exit 0 when every critical probe passes.",
       SetupProbe},
      {"stop", "Stop a service (or the cluster) through git: a commit clusterd converges.",
       SetupStop},
      {"start", "Start a service (or the cluster) through git: a commit clusterd converges.",
       SetupStart},
      {"restart", "Rolling restart of a service without a desired-state change.", SetupRestart},
      {"why", "Explain an instance: desired vs observed, the planned step, what blocks it.",
       SetupWhy},
      {"logs", "Print or follow a service's log from its machines (-f, --since, --lines).",
       SetupLogs},
      {"alerts", "The running clusterd's alerts (--all for history); alerts ack ID to silence one.",
       SetupAlerts},
      {"lease", "Tolerate a service's drift while you fix it by hand (lease list, lease end ID).",
       SetupLease},
      {"windows", "The sync windows: open now or not, next openings and closings.", SetupWindows},
      {"history", "Revisions applied: commit, author, time, result.", SetupHistory},
      {"rollback", "Undo a change through git: a new commit restoring an earlier revision.",
       SetupRollback},
      {"rollout", "Canary rollouts of the running clusterd: list, or pause|resume|abort SERVICE.",
       SetupRollout},
      {"audit",
       "Query the audit log: filters, --follow, verify, export, show SEQ (SPEC.md section 5).\n"
       "Exit 0 (also when nothing matches), 1 error; audit verify: 0 intact, 1 broken.",
       SetupAudit},
      {"suspend", "Pause automatic reconciliation of the running clusterd.", SetupSuspend},
      {"resume", "Resume automatic reconciliation of the running clusterd.", SetupResume},
  };
  return kCommands;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "clusterctl: GitOps reconciliation for fleets of plain Linux machines.\n"
      "The desired state (machines, services, profiles) lives in a git repository;\n"
      "clusterctl checks it, compares it with what runs, and converges the machines.",
      "clusterctl"};
  app.footer(
      "Examples:\n"
      "  clusterctl validate --repo examples/langgraph\n"
      "  clusterctl validate --repo /srv/cluster.git --rev v1.2 --json\n"
      "  clusterctl diff                 # what apply would do, and why\n"
      "  clusterctl apply --dry-run\n"
      "  clusterctl status --verbose\n"
      "  clusterctl why tools-server     # what blocks it, down to the root cause\n"
      "Config: --config FILE, $CLUSTERCTL_CONFIG, ./clusterctl.yaml or\n"
      "~/.config/clusterctl/config.yaml (see docs/configuration.md). Flags override it.");
  app.require_subcommand(1);
  app.set_version_flag("--version", "clusterctl 0.1.0");

  Globals g;
  app.add_option("--config", g.config_flag, "Config file (see docs/configuration.md)")
      ->type_name("FILE");
  app.add_option("--repo", g.repo_flag,
                 "Desired-state repository: a path (bare or not, or a plain directory) "
                 "or a URL. Default: the config's repo.url, else the current directory")
      ->type_name("PATH|URL");
  app.add_option("--branch", g.branch_flag, "Branch to read. Default: main")->type_name("NAME");
  app.add_option("--data-dir", g.data_dir_flag,
                 "State store, audit log and repository cache. Default: "
                 "~/.local/state/clusterctl")
      ->type_name("DIR");
  app.add_option("--server", g.server_flag, "Talk to a running clusterd at this URL")
      ->type_name("URL");
  app.add_flag("--json", g.json, "Machine-readable output on stdout");
  app.add_flag("-v,--verbose", g.verbosity, "More detail; repeat for more");

  CommandFn selected;
  for (const auto& cmd : AllCommands()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.help);
    sub->fallthrough();  // Global flags may follow the subcommand.
    CommandFn fn = cmd.setup(sub, &g);
    sub->final_callback([&selected, fn] { selected = fn; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitError;
  }
  if (Status s = g.Resolve(); !s.ok()) return ReportError(g, s);
  return selected ? selected() : kExitError;
}

}  // namespace clusterctl::cli
