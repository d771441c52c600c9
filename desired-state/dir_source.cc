#include "desired-state/dir_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace clusterctl::desired_state {
namespace fs = std::filesystem;

namespace {
bool IsYamlName(const std::string& name) {
  auto ends = [&](const std::string& suffix) {
    return name.size() > suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".yaml") || ends(".yml");
}
}  // namespace

Result<Snapshot> ReadDirectory(const std::string& dir, const SourceLimits& limits) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::NotFound("\"" + dir + "\" is not a directory or git repository");
  }
  Snapshot snap;
  snap.revision.commit = "working-tree";
  snap.revision.message = "files of " + dir;
  size_t total = 0;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::none, ec);
  if (ec) return Status::Unavailable("reading \"" + dir + "\": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::Unavailable("reading \"" + dir + "\": " + ec.message());
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    const std::string rel = fs::relative(p, dir, ec).generic_string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec)) {
      if (IsYamlName(name)) {
        snap.problems.Add(
            Location{rel},
            "symbolic link \"" + rel + "\" is not allowed in a desired-state repository",
            "replace it with the file itself");
      } else {
        snap.warnings.push_back("symbolic link \"" + rel + "\" ignored");
      }
      continue;
    }
    if (!it->is_regular_file(ec) || !IsYamlName(name)) continue;
    const auto size = static_cast<size_t>(it->file_size(ec));
    if (size > limits.max_file_bytes) {
      snap.problems.Add(Location{rel},
                        "file is " + std::to_string(size) + " bytes, over the limit of " +
                            std::to_string(limits.max_file_bytes) + " bytes",
                        "split it into smaller files");
      continue;
    }
    total += size;
    if (total > limits.max_total_bytes || snap.files.size() >= limits.max_files) {
      snap.problems.Add(Location{rel},
                        "the repository holds more than " + std::to_string(limits.max_total_bytes) +
                            " bytes or " + std::to_string(limits.max_files) + " YAML files",
                        "split the cluster into several repositories");
      break;
    }
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad()) {
      // An unreadable file must not load as an empty one.
      const int err = errno;
      snap.problems.Add(Location{rel},
                        "cannot read \"" + rel + "\": " + std::strerror(err != 0 ? err : EIO),
                        "make it readable by the user running clusterctl");
      continue;
    }
    snap.files.push_back({rel, ss.str()});
  }
  std::sort(snap.files.begin(), snap.files.end(),
            [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });
  return snap;
}

}  // namespace clusterctl::desired_state
