#include "cli/context.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "base/paths.h"
#include "desired-state/dir_source.h"
#include "desired-state/redact_url.h"

namespace clusterctl::cli {
namespace fs = std::filesystem;

Status Globals::Resolve() {
  Result<std::string> path = controller::FindConfig(config_flag);
  if (!path.ok()) return path.status();
  if (!path->empty()) {
    Result<controller::Config> c = controller::LoadConfig(*path);
    if (!c.ok()) return c.status().Annotate(*path);
    config = std::move(c.value());
  }
  repo = !repo_flag.empty() ? repo_flag : !config.repo_url.empty() ? config.repo_url : ".";
  branch = !branch_flag.empty() ? branch_flag : config.branch;
  data_dir = !data_dir_flag.empty()     ? data_dir_flag
             : !config.data_dir.empty() ? config.data_dir
                                        : controller::DefaultDataDir();
  load_options = controller::LoadOptionsOf(config, data_dir);
  return Status::Ok();
}

Result<desired_state::Snapshot> Globals::ReadRevision(const std::string& rev) const {
  std::error_code ec;
  const bool remote = desired_state::IsRemoteUrl(repo);
  if (!remote && fs::is_directory(repo, ec) && !fs::exists(fs::path(repo) / ".git", ec) &&
      !fs::exists(fs::path(repo) / "HEAD", ec)) {
    if (!rev.empty()) {
      return Status::Invalid("--rev needs a git repository, and \"" + repo +
                             "\" is a plain directory");
    }
    return desired_state::ReadDirectory(repo);
  }
  auto source = OpenSource();
  if (!source.ok()) return source.status();
  return (*source)->Read(rev);
}

Result<std::unique_ptr<desired_state::GitSource>> Globals::OpenSource() const {
  desired_state::GitSource::Options opts;
  opts.repo = repo;
  opts.branch = branch;
  opts.cache_dir = data_dir + "/repos";
  opts.fetch_timeout_seconds = config.fetch_timeout_seconds;
  auto source = desired_state::GitSource::Open(opts);
  if (!source.ok()) return source.status();
  CLUSTERCTL_RETURN_IF_ERROR((*source)->Fetch());  // A no-op for a local repository.
  return source;
}

int ReportError(const Globals& g, const Status& status) {
  if (g.json) {
    std::cout << nlohmann::json{{"error",
                                 {{"code", CodeName(status.code())},
                                  {"message", desired_state::RedactUrls(status.message())}}}}
                     .dump()
              << "\n";
  } else {
    std::cerr << "clusterctl: error: " << desired_state::RedactUrls(status.message()) << "\n";
  }
  return kExitError;
}

std::string CurrentActor() {
  const PasswdEntry me = PasswdEntry::Of(geteuid());
  const std::string user = me.found ? me.name : "unknown";
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return user + "@" + host;
}

CommitAuthor CurrentAuthor() {
  auto env_or = [](const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v ? std::string(v) : fallback;
  };
  return {env_or("GIT_AUTHOR_NAME", env_or("USER", "clusterctl")),
          env_or("GIT_AUTHOR_EMAIL", CurrentActor())};
}

}  // namespace clusterctl::cli
