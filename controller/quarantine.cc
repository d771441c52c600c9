#include "controller/quarantine.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace clusterctl::controller {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::string PathOf(const std::string& data_dir) { return data_dir + "/quarantine.json"; }
}  // namespace

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
  if (std::rename(tmp.c_str(), PathOf(data_dir).c_str()) != 0) {
    return Status::Unavailable("cannot rename " + tmp + " to " + PathOf(data_dir));
  }
  return Status::Ok();
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
