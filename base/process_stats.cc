#include "base/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace clusterctl {
namespace {

Status ErrnoStatus(const std::string& path, int err) {
  std::string m = path + ": " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return Status::NotFound(std::move(m));
  if (err == EACCES || err == EPERM) return Status::Permission(std::move(m));
  return Status::Unavailable(std::move(m));
}

// The names in directory `path`, "." and ".." left out. `*listing_fd` is the
// descriptor the listing used (closed again when this returns).
Result<std::vector<std::string>> ListDir(const std::string& path, int* listing_fd = nullptr) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return ErrnoStatus(path, errno);
  if (listing_fd != nullptr) *listing_fd = ::dirfd(dir);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
    errno = 0;
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoStatus(path, err);
  return names;
}

double Seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; }

}  // namespace

Result<ProcessStats> ReadProcessStats() {
  ProcessStats s;
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return ErrnoStatus("getrusage", errno);
  s.cpu_seconds = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);

  // statm: size resident shared text lib data dt, in pages.
  {
    std::ifstream statm("/proc/self/statm");
    int64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) {
      return Status::Unavailable("/proc/self/statm: cannot be read");
    }
    s.rss_bytes = resident * ::sysconf(_SC_PAGESIZE);
  }
  {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Threads:", 0) == 0) {
        std::istringstream(line.substr(8)) >> s.threads;
        break;
      }
    }
    if (s.threads <= 0) return Status::Unavailable("/proc/self/status: no Threads line");
  }
  int listing_fd = -1;
  auto fds = ListDir("/proc/self/fd", &listing_fd);
  if (!fds.ok()) return fds.status();
  s.open_fds = static_cast<int64_t>(fds->size());
  // The listing's own descriptor is among the entries.
  for (const auto& name : *fds) {
    if (name == std::to_string(listing_fd)) --s.open_fds;
  }
  return s;
}

Result<DirUsage> DirectoryUsage(const std::string& path, uint64_t max_entries) {
  struct stat root {};
  if (::stat(path.c_str(), &root) != 0) return ErrnoStatus(path, errno);
  DirUsage u;
  u.bytes = static_cast<uint64_t>(root.st_blocks) * 512;
  if (!S_ISDIR(root.st_mode)) {
    if (S_ISREG(root.st_mode)) u.files = 1;
    return u;
  }
  std::vector<std::string> pending = {path};
  uint64_t entries = 0;
  while (!pending.empty()) {
    const std::string dir = std::move(pending.back());
    pending.pop_back();
    auto names = ListDir(dir);
    if (!names.ok()) {
      if (names.status().code() == Code::kNotFound && dir != path) continue;  // deleted meanwhile
      return names.status();
    }
    for (const auto& name : *names) {
      if (entries >= max_entries) {
        u.truncated = true;
        return u;
      }
      ++entries;
      const std::string child = dir + "/" + name;
      struct stat st {};
      if (::lstat(child.c_str(), &st) != 0) {
        if (errno == ENOENT) continue;  // deleted meanwhile
        return ErrnoStatus(child, errno);
      }
      if (S_ISREG(st.st_mode)) {
        u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
        ++u.files;
      } else if (S_ISDIR(st.st_mode) && st.st_dev == root.st_dev) {
        u.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
        pending.push_back(child);
      }
    }
  }
  return u;
}

}  // namespace clusterctl
