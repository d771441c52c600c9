// What every clusterctl subcommand shares: the global flags of SPEC.md
// section 3 merged with the config file, and the output conventions.
//
// Output: human text on stdout, problems on stderr; with --json exactly one
// JSON document (or JSON lines for streams) on stdout and nothing else there.
#pragma once

#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"
#include "controller/config.h"
#include "desired-state/git_source.h"
#include "desired-state/loader.h"

namespace clusterctl::cli {

// Exit codes of SPEC.md section 3.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitChangesPending = 2;
inline constexpr int kExitDegraded = 3;
inline constexpr int kExitUnhealthy = 4;

struct Globals {
  // Flags as given; empty = not given.
  std::string config_flag, repo_flag, branch_flag, data_dir_flag, server_flag;
  bool json = false;
  int verbosity = 0;

  // Effective settings after Resolve(): flags over config over defaults.
  controller::Config config;
  std::string repo;      // Default: "." (the current directory).
  std::string branch;    // Default: "main".
  std::string data_dir;  // Default: controller::DefaultDataDir().
  // How every revision is loaded: with the secrets rule of the config and
  // data_dir (secretsDir, default <data_dir>/secrets), as clusterd does.
  desired_state::LoadOptions load_options;

  // Loads the config file (lookup order of SPEC.md) and applies the flags.
  Status Resolve();

  // The repository of the desired state as a GitSource (a URL is cloned into
  // or fetched in <data_dir>/repos first).
  Result<std::unique_ptr<desired_state::GitSource>> OpenSource() const;

  // Reads the files of `rev` (empty: head of the branch). A local directory
  // that is not a git repository is read from disk (rev must be empty).
  Result<desired_state::Snapshot> ReadRevision(const std::string& rev) const;
};

// Prints a failed Status the way every command does ("clusterctl: error: ...")
// on stderr, or as {"error": {...}} on stdout with --json, with the
// credentials of any URL in it redacted. Returns kExitError.
int ReportError(const Globals& g, const Status& status);

// "user@host" of whoever runs the command (audit actor).
std::string CurrentActor();

// The author of commits clusterctl writes: $GIT_AUTHOR_NAME (else $USER)
// and $GIT_AUTHOR_EMAIL (else CurrentActor()).
struct CommitAuthor {
  std::string name, email;
};
CommitAuthor CurrentAuthor();

}  // namespace clusterctl::cli
