#include "controller/quarantine.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace clusterctl::controller {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::string PathOf(const std::string& data_dir) { return data_dir + "/quarantine.json"; }

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool IsTrailerKey(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

bool IsFullSha(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status SyncFd(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot open " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::Unavailable("cannot fsync " + path + ": " + std::strerror(err));
  return Status::Ok();
}
}  // namespace

std::string RollbackMessage(const std::string& body, const std::string& target_commit) {
  return Trim(body) + "\n\n" + kRollbackTrailer + ": " + target_commit + "\n";
}

std::optional<std::string> RollbackTarget(const std::string& message) {
  const std::string text = Trim(message);
  const size_t blank = text.rfind("\n\n");
  if (blank == std::string::npos) return std::nullopt;  // A subject alone has no trailers.
  std::istringstream block(text.substr(blank + 2));
  std::optional<std::string> target;
  for (std::string line; std::getline(block, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || !IsTrailerKey(line.substr(0, colon))) return std::nullopt;
    std::string key = line.substr(0, colon);
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string value = Trim(line.substr(colon + 1));
    if (key == kRollbackTrailer && IsFullSha(value)) target = value;
  }
  return target;
}

Status WriteQuarantine(const std::string& data_dir, const Quarantine& q) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  const std::string tmp = PathOf(data_dir) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"rollback_commit", q.rollback_commit},
                {"target_commit", q.target_commit},
                {"commits", q.commits},
                {"created_ms", q.created_ms}}
               .dump(2)
        << "\n";
    out.flush();
    if (!out) return Status::Unavailable("cannot write " + tmp);
  }
  if (Status s = SyncFd(tmp, O_RDONLY); !s.ok()) return s;
  if (std::rename(tmp.c_str(), PathOf(data_dir).c_str()) != 0) {
    return Status::Unavailable("cannot rename " + tmp + " to " + PathOf(data_dir));
  }
  return SyncFd(data_dir, O_RDONLY | O_DIRECTORY);  // The rename itself.
}

std::optional<Quarantine> ReadQuarantine(const std::string& data_dir) {
  std::ifstream in(PathOf(data_dir));
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Quarantine q;
  q.rollback_commit = j.value("rollback_commit", "");
  q.target_commit = j.value("target_commit", "");
  if (j.contains("commits") && j["commits"].is_array()) {
    for (const auto& c : j["commits"]) {
      if (c.is_string()) q.commits.insert(c.get<std::string>());
    }
  }
  q.created_ms = j.value("created_ms", int64_t{0});
  if (q.rollback_commit.empty()) return std::nullopt;
  return q;
}

Status ClearQuarantine(const std::string& data_dir) {
  std::error_code ec;
  fs::remove(PathOf(data_dir), ec);
  return ec ? Status::Unavailable("cannot remove " + PathOf(data_dir) + ": " + ec.message())
            : Status::Ok();
}

}  // namespace clusterctl::controller
