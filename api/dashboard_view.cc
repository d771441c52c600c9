#include "api/dashboard_view.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace clusterctl::api {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool Flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

json BuildGraph(const desired_state::DesiredState& desired, const json& status) {
  const json empty = json::object();
  auto instances_of = [&](const std::string& service) -> const json& {
    auto s = status.find("services");
    if (s == status.end() || !s->is_object() || !s->contains(service)) return empty;
    const json& inst =
        (*s)[service].value("instances", empty).is_object() ? (*s)[service]["instances"] : empty;
    return inst;
  };
  json nodes = json::array(), edges = json::array();
  for (const auto& svc : desired.services) {
    const json& instances = instances_of(svc.name);
    json list = json::array();
    int should_run = 0, up = 0;
    for (const auto& [machine, i] : instances.items()) {
      if (Str(i, "desired") == "running") {
        ++should_run;
        up += Str(i, "state") == "running" && Flag(i, "ready") ? 1 : 0;
      }
      list.push_back({{"machine", machine},
                      {"desired", Str(i, "desired")},
                      {"state", Str(i, "state")},
                      {"ready", Flag(i, "ready")},
                      {"reason", Str(i, "reason")}});
    }
    const char* health = should_run == 0    ? "stopped"
                         : up == should_run ? "healthy"
                         : up > 0           ? "degraded"
                                            : "unhealthy";
    nodes.push_back({{"service", svc.name},
                     {"critical", svc.critical},
                     {"health", health},
                     {"instances", list}});
    for (const auto& dep : svc.depends_on) {
      const bool ready = dep.condition == desired_state::DependencyCondition::kReady;
      // The dependents held back, and the dependency instances that hold them.
      json blocked = json::array(), by = json::array();
      for (const auto& [machine, i] : instances.items()) {
        if (Str(i, "desired") == "running" && !(Str(i, "state") == "running" && Flag(i, "ready"))) {
          blocked.push_back(svc.name + "@" + machine);
        }
      }
      for (const auto& [machine, i] : instances_of(dep.service).items()) {
        if (Str(i, "desired") != "running") continue;
        const bool ok = ready ? Flag(i, "ready") : Str(i, "state") == "running";
        if (!ok) by.push_back(dep.service + "@" + machine);
      }
      const bool blocking = !blocked.empty() && !by.empty();
      edges.push_back({{"from", svc.name},
                       {"to", dep.service},
                       {"condition", ready ? "ready" : "started"},
                       {"blocking", blocking},
                       {"blocked", blocking ? blocked : json::array()},
                       {"by", blocking ? by : json::array()}});
    }
  }
  return {{"revision", desired.revision.commit},
          {"profile", desired.cluster.profile.value_or("")},
          {"nodes", nodes},
          {"edges", edges}};
}

std::string UnifiedDiff(const std::string& before, const std::string& after, size_t max_lines) {
  if (before == after) return "";
  const std::vector<std::string> a = Lines(before), b = Lines(after);
  if (a.size() > max_lines || b.size() > max_lines) {
    return "@@ -1," + std::to_string(a.size()) + " +1," + std::to_string(b.size()) +
           " @@\n (too large to compare line by line)\n";
  }
  // Longest common subsequence, then the edit script.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  struct Op {
    char kind;  // ' ', '-', '+'
    size_t ai, bi;
  };
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', i++, j++});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({'-', i++, j});  // Removals before additions, as diff(1) prints them.
    } else {
      ops.push_back({'+', i, j++});
    }
  }
  // Hunks: changes with up to 3 lines of context around them.
  constexpr size_t kContext = 3;
  std::string out;
  size_t k = 0;
  while (k < ops.size()) {
    while (k < ops.size() && ops[k].kind == ' ') ++k;
    if (k == ops.size()) break;
    size_t start = k >= kContext ? k - kContext : 0;
    size_t end = k;
    // Extend while the next change is within 2 * context.
    for (size_t x = k; x < ops.size(); ++x) {
      if (ops[x].kind != ' ')
        end = x;
      else if (x - end > 2 * kContext)
        break;
    }
    size_t stop = std::min(ops.size(), end + 1 + kContext);
    size_t a_start = ops[start].ai, b_start = ops[start].bi, a_len = 0, b_len = 0;
    std::string body;
    for (size_t x = start; x < stop; ++x) {
      const Op& op = ops[x];
      if (op.kind != '+') ++a_len;
      if (op.kind != '-') ++b_len;
      body += op.kind;
      body += op.kind == '+' ? b[op.bi] : a[op.ai];
      body += '\n';
    }
    out += "@@ -" + std::to_string(a_len ? a_start + 1 : a_start) + "," + std::to_string(a_len) +
           " +" + std::to_string(b_len ? b_start + 1 : b_start) + "," + std::to_string(b_len) +
           " @@\n" + body;
    k = stop;
  }
  return out;
}

}  // namespace clusterctl::api
