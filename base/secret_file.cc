#include "base/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace clusterctl {
namespace {

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// Lexically normal absolute form of an absolute path: no ".", no "//", no
// trailing "/". ".." components are kept (callers refuse them).
std::string Normal(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string comp = path.substr(i, j - i);
    if (!comp.empty() && comp != ".") out += "/" + comp;
    i = j + 1;
  }
  return out.empty() ? "/" : out;
}

std::string Canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) != nullptr) return buf;
  return Normal(path);
}

bool Within(const std::string& path, const std::string& dir, std::string* rest) {
  if (dir == "/") {
    *rest = path.substr(1);
    return true;
  }
  if (path.size() <= dir.size() + 1 || path.compare(0, dir.size(), dir) != 0 ||
      path[dir.size()] != '/') {
    return false;
  }
  *rest = path.substr(dir.size() + 1);
  return true;
}

// The checked components of `written` below the canonical secrets dir.
struct Parsed {
  std::string dir;                 // canonical secrets dir
  std::vector<std::string> comps;  // relative components, none "." or ".."
  std::string absolute;            // dir + "/" + comps joined
};

Result<Parsed> Parse(const SecretsPolicy& policy, const std::string& written) {
  if (policy.dir.empty()) {
    return Status::Invalid(Quoted(written) +
                           " cannot be used: the controller has no secretsDir configured");
  }
  if (written.empty()) return Status::Invalid("an empty path names no secret file");
  if (written[0] == '~') {
    return Status::Invalid(Quoted(written) + " is outside secretsDir " + policy.dir +
                           " (\"~\" is not expanded in the repository)");
  }
  Parsed p;
  p.dir = Canonical(policy.dir);
  std::string rel = written;
  if (written[0] == '/') {
    const std::string normal = Normal(written);
    if (!Within(normal, Normal(policy.dir), &rel) && !Within(normal, p.dir, &rel)) {
      return Status::Invalid(Quoted(written) + " is outside secretsDir " + policy.dir);
    }
  }
  size_t i = 0;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    std::string comp = rel.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      return Status::Invalid(Quoted(written) + " contains \"..\"; name a file inside secretsDir " +
                             policy.dir + " without \"..\"");
    }
    p.comps.push_back(std::move(comp));
  }
  if (p.comps.empty()) {
    return Status::Invalid(Quoted(written) + " names secretsDir itself, not a file in it");
  }
  p.absolute = p.dir == "/" ? "" : p.dir;
  for (const auto& c : p.comps) p.absolute += "/" + c;
  return p;
}

std::string SoFar(const Parsed& p, size_t n) {
  std::string s;
  for (size_t k = 0; k <= n && k < p.comps.size(); ++k) s += (k ? "/" : "") + p.comps[k];
  return s;
}

Status SymlinkRefused(const std::string& written, const Parsed& p, size_t n) {
  return Status::Invalid(Quoted(written) + " goes through the symlink " + Quoted(SoFar(p, n)) +
                         " in secretsDir; symlinks below secretsDir are not followed");
}

// The reserved entry `st` (or `absolute`) is, if any.
std::optional<std::string> ReservedName(const SecretsPolicy& policy, const std::string& absolute,
                                        const struct stat* st) {
  for (const auto& [name, path] : policy.reserved) {
    if (path.empty()) continue;
    if (Normal(path) == absolute || Canonical(path) == absolute) return name;
    struct stat rs;
    if (st != nullptr && ::stat(path.c_str(), &rs) == 0 && rs.st_dev == st->st_dev &&
        rs.st_ino == st->st_ino) {
      return name;
    }
  }
  return std::nullopt;
}

Status ReservedRefused(const std::string& written, const std::string& name) {
  return Status::Invalid(Quoted(written) + " is the controller's own " + name +
                         "; the repository can never name it");
}

// Opens the directories of `p` one by one without following symlinks.
// Returns the descriptor of the last directory, or -1 with *absent set when a
// component does not exist.
Result<int> OpenParent(const std::string& written, const Parsed& p, bool* absent) {
  *absent = false;
  Fd fd(::open(p.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      *absent = true;
      return -1;
    }
    return Status::Permission("secretsDir " + p.dir + ": " + std::strerror(errno));
  }
  for (size_t k = 0; k + 1 < p.comps.size(); ++k) {
    int next =
        ::openat(fd.get(), p.comps[k].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      const int err = errno;
      struct stat st;
      if (::fstatat(fd.get(), p.comps[k].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        return SymlinkRefused(written, p, k);
      }
      if (err == ENOENT) {
        *absent = true;
        return -1;
      }
      if (err == ENOTDIR) {
        return Status::Invalid(Quoted(written) + ": " + Quoted(SoFar(p, k)) +
                               " is not a directory");
      }
      return Status::Permission(p.dir + "/" + SoFar(p, k) + ": " + std::strerror(err));
    }
    fd.Reset(next);
  }
  return fd.Release();
}

}  // namespace

Result<std::string> ResolveSecretFile(const SecretsPolicy& policy, const std::string& written) {
  auto parsed = Parse(policy, written);
  if (!parsed.ok()) return parsed.status();
  const Parsed& p = *parsed;
  if (auto name = ReservedName(policy, p.absolute, nullptr)) return ReservedRefused(written, *name);
  bool absent = false;
  auto parent = OpenParent(written, p, &absent);
  if (!parent.ok()) return parent.status();
  if (absent) return p.absolute;
  Fd dir(*parent);
  struct stat st;
  if (::fstatat(dir.get(), p.comps.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return p.absolute;
    return Status::Permission(p.absolute + ": " + std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) return SymlinkRefused(written, p, p.comps.size() - 1);
  if (!S_ISREG(st.st_mode)) return Status::Invalid(Quoted(written) + " is not a regular file");
  if (auto name = ReservedName(policy, p.absolute, &st)) return ReservedRefused(written, *name);
  return p.absolute;
}

Result<std::string> ReadSecretFile(const SecretsPolicy& policy, const std::string& written,
                                   size_t max_bytes) {
  auto parsed = Parse(policy, written);
  if (!parsed.ok()) return parsed.status();
  const Parsed& p = *parsed;
  if (auto name = ReservedName(policy, p.absolute, nullptr)) return ReservedRefused(written, *name);
  bool absent = false;
  auto parent = OpenParent(written, p, &absent);
  if (!parent.ok()) return parent.status();
  if (absent) return Status::NotFound(p.absolute + ": no such file");
  Fd dir(*parent);
  Fd fd(
      ::openat(dir.get(), p.comps.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP) return SymlinkRefused(written, p, p.comps.size() - 1);
    if (err == ENOENT) return Status::NotFound(p.absolute + ": no such file");
    return Status::Permission(p.absolute + ": " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::Invalid(Quoted(written) + " is not a regular file");
  }
  if (auto name = ReservedName(policy, p.absolute, &st)) return ReservedRefused(written, *name);
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return Status::Exhausted(p.absolute + " is larger than " + std::to_string(max_bytes) +
                             " bytes");
  }
  std::string content;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Permission(p.absolute + ": " + std::strerror(errno));
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > max_bytes) {
      return Status::Exhausted(p.absolute + " is larger than " + std::to_string(max_bytes) +
                               " bytes");
    }
  }
  return content;
}

std::string Redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

}  // namespace clusterctl
