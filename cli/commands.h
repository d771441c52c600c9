// The subcommand table of clusterctl. Each command registers its flags on a
// CLI11 subcommand and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "audit/record.h"
#include "cli/context.h"

namespace clusterctl::cli {

using CommandFn = std::function<int()>;

struct Command {
  const char* name;
  const char* help;
  // Adds the command's own flags to `sub`; returns what runs it.
  std::function<CommandFn(CLI::App* sub, Globals* globals)> setup;
};

// Every command, in the order --help lists them.
const std::vector<Command>& AllCommands();

// One registration function per command file.
CommandFn SetupValidate(CLI::App* sub, Globals* g);
CommandFn SetupDiff(CLI::App* sub, Globals* g);
CommandFn SetupApply(CLI::App* sub, Globals* g);
CommandFn SetupStatus(CLI::App* sub, Globals* g);
CommandFn SetupProbe(CLI::App* sub, Globals* g);
CommandFn SetupRestart(CLI::App* sub, Globals* g);
CommandFn SetupWhy(CLI::App* sub, Globals* g);
CommandFn SetupHistory(CLI::App* sub, Globals* g);
CommandFn SetupSuspend(CLI::App* sub, Globals* g);
CommandFn SetupRollback(CLI::App* sub, Globals* g);
CommandFn SetupLogs(CLI::App* sub, Globals* g);
CommandFn SetupAlerts(CLI::App* sub, Globals* g);
CommandFn SetupLease(CLI::App* sub, Globals* g);
CommandFn SetupWindows(CLI::App* sub, Globals* g);
CommandFn SetupStop(CLI::App* sub, Globals* g);
CommandFn SetupStart(CLI::App* sub, Globals* g);
CommandFn SetupRollout(CLI::App* sub, Globals* g);

// Applies revision `rev` locally (as clusterctl apply --rev) with `trigger`.
int ApplyRevision(Globals* g, const std::string& rev, audit::Trigger trigger);
CommandFn SetupResume(CLI::App* sub, Globals* g);

}  // namespace clusterctl::cli
