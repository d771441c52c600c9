// Cross-document checks of a revision: one Cluster, unique names, every
// reference resolves, no dependency cycle, no service on zero machines.
#include <algorithm>
#include <map>
#include <queue>
#include <set>
#include <unordered_map>

#include "desired-state/internal.h"

namespace clusterctl::desired_state::internal {
namespace {

using nlohmann::json;

// Sorts `items` (and their `docs` alike) by name, ties by place, and keeps
// the first of each name: every later one is reported as a duplicate. One
// pass of moves over a sorted index.
template <typename T>
void SortByNameAndRemoveDuplicates(const char* kind, std::vector<T>* items,
                                   std::vector<const YamlDocument*>* docs, Diagnostics* diags) {
  std::vector<size_t> idx(items->size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    const T& x = (*items)[a];
    const T& y = (*items)[b];
    const int c = x.name.compare(y.name);
    return c != 0 ? c < 0 : x.where < y.where;
  });
  std::vector<T> kept;
  std::vector<const YamlDocument*> kept_docs;
  kept.reserve(idx.size());
  kept_docs.reserve(idx.size());
  for (size_t i : idx) {
    T& item = (*items)[i];
    if (!kept.empty() && kept.back().name == item.name) {
      diags->Add(item.where,
                 std::string("duplicate ") + kind + " \"" + item.name + "\" (first defined at " +
                     kept.back().where.ToString() + ")",
                 "rename or remove one of them");
      continue;
    }
    kept.push_back(std::move(item));
    kept_docs.push_back((*docs)[i]);
  }
  *items = std::move(kept);
  *docs = std::move(kept_docs);
}

bool Matches(const Machine& m, const std::map<std::string, std::string>& selector) {
  for (const auto& [k, v] : selector) {
    auto it = m.labels.find(k);
    if (it == m.labels.end() || it->second != v) return false;
  }
  return true;
}

void ResolveSsh(const Cluster& cluster, const YamlDocument& doc, Machine* m) {
  m->ssh = cluster.default_ssh;
  // The parse cache keeps only spec.ssh and spec.reconcile of a decoded
  // document (loader.cc KeepWhatTheRevisionStepsRead): read nothing else.
  const json& spec = doc.value["spec"];
  if (!spec.contains("ssh")) return;
  const json& ssh = spec["ssh"];
  if (ssh.contains("user")) m->ssh.user = ssh["user"].get<std::string>();
  if (ssh.contains("port")) m->ssh.port = ssh["port"].get<int>();
  if (ssh.contains("identityFile")) m->ssh.identity_file = ssh["identityFile"].get<std::string>();
}

// Finds dependency cycles among services (names sorted); reports each once
// with its full path, at the dependsOn entry that closes it.
void CheckCycles(const std::vector<Service>& services, Diagnostics* diags) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < services.size(); ++i) index[services[i].name] = i;
  enum Color { kWhite, kGrey, kBlack };
  std::vector<Color> color(services.size(), kWhite);
  std::set<std::vector<std::string>> reported;
  for (size_t root = 0; root < services.size(); ++root) {
    if (color[root] != kWhite) continue;
    // Iterative DFS: (service, next dependency to visit).
    std::vector<std::pair<size_t, size_t>> stack = {{root, 0}};
    color[root] = kGrey;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const auto& deps = services[node].depends_on;
      if (next == deps.size()) {
        color[node] = kBlack;
        stack.pop_back();
        continue;
      }
      const Dependency& dep = deps[next++];
      auto it = index.find(dep.service);
      if (it == index.end() || it->second == node) continue;  // Reported elsewhere.
      size_t child = it->second;
      if (color[child] == kWhite) {
        color[child] = kGrey;
        stack.push_back({child, 0});
      } else if (color[child] == kGrey) {
        std::vector<std::string> cycle;
        size_t start = 0;
        while (stack[start].first != child) ++start;
        for (size_t i = start; i < stack.size(); ++i)
          cycle.push_back(services[stack[i].first].name);
        // Normalise: rotate so the smallest name comes first, report once.
        auto min_it = std::min_element(cycle.begin(), cycle.end());
        std::vector<std::string> key(min_it, cycle.end());
        key.insert(key.end(), cycle.begin(), min_it);
        if (!reported.insert(key).second) continue;
        std::string path;
        for (const auto& n : key) path += n + " -> ";
        path += key.front();
        // Place it at the dependsOn entry of the first service in the path.
        const Service& first = services[index[key.front()]];
        Location where = first.where;
        for (const auto& d : first.depends_on) {
          if (key.size() > 1 && d.service == key[1]) where = d.where;
        }
        diags->Add(where, "dependency cycle: " + path, "remove one of these dependsOn entries");
      }
    }
  }
}

// Kahn's algorithm; ties broken by name so the order is stable. `services`
// are sorted by name with no name twice, so an index stands for its name and
// the smallest ready index is the smallest ready name.
std::vector<std::string> TopologicalOrder(const std::vector<Service>& services) {
  const size_t n = services.size();
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<size_t>> dependents(n);
  for (size_t i = 0; i < n; ++i) {
    for (const auto& d : services[i].depends_on) {
      const Service* dep = FindByName(services, d.service);
      if (dep == nullptr || d.service == services[i].name) continue;
      ++indegree[i];
      dependents[static_cast<size_t>(dep - services.data())].push_back(i);
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push(i);
  }
  std::vector<std::string> order;
  order.reserve(n);
  while (!ready.empty()) {
    const size_t i = ready.top();
    ready.pop();
    order.push_back(services[i].name);
    for (size_t d : dependents[i]) {
      if (--indegree[d] == 0) ready.push(d);
    }
  }
  return order;
}

// A window selector without a glob must name a machine or service: a typo
// in a deny window would otherwise protect nothing, silently.
void CheckWindowSelectors(const Decoded& in, const Cluster& cluster, Diagnostics* diags) {
  for (size_t i = 0; i < cluster.windows.size(); ++i) {
    const SyncWindow& w = cluster.windows[i];
    auto check = [&](const std::vector<std::string>& names, const char* field, const char* kind,
                     auto exists) {
      for (size_t j = 0; j < names.size(); ++j) {
        const std::string& n = names[j];
        if (n.find_first_of("*?") != std::string::npos || exists(n) || in.IsInvalid(kind, n)) {
          continue;
        }
        diags->Add(in.cluster_docs[0]->Locate("/spec/windows/" + std::to_string(i) + "/" + field +
                                              "/" + std::to_string(j)),
                   std::string("unknown ") + (kind[0] == 'M' ? "machine" : "service") + " \"" + n +
                       "\" in spec.windows of window \"" + w.name + "\"",
                   std::string("define a ") + kind + " named \"" + n +
                       "\", fix the name, or use a glob (*)");
      }
    };
    check(w.machines, "machines", "Machine",
          [&](const std::string& n) { return FindByName(in.machines, n) != nullptr; });
    check(w.services, "services", "Service",
          [&](const std::string& n) { return FindByName(in.services, n) != nullptr; });
  }
}

}  // namespace

void CheckAndResolve(Decoded& in, DesiredState* state, Diagnostics* diags) {
  // Exactly one Cluster.
  if (in.clusters.empty() && !in.invalid.count("Cluster")) {
    diags->Add(Location{}, "no Cluster document in the repository",
               "add one, e.g. cluster.yaml with apiVersion: clusterctl/v1 and kind: Cluster");
  }
  for (size_t i = 1; i < in.clusters.size(); ++i) {
    diags->Add(in.clusters[i].where,
               "more than one Cluster document (the first is \"" + in.clusters[0].name + "\" at " +
                   in.clusters[0].where.ToString() + ")",
               "keep exactly one Cluster document");
  }
  SortByNameAndRemoveDuplicates("Machine", &in.machines, &in.machine_docs, diags);
  SortByNameAndRemoveDuplicates("Service", &in.services, &in.service_docs, diags);
  SortByNameAndRemoveDuplicates("Profile", &in.profiles, &in.profile_docs, diags);

  Cluster cluster = in.clusters.empty() ? Cluster{} : in.clusters[0];
  for (size_t i = 0; i < in.machines.size(); ++i) {
    ResolveSsh(cluster, *in.machine_docs[i], &in.machines[i]);
  }

  // Machine references and selectors.
  for (size_t i = 0; i < in.services.size(); ++i) {
    Service& s = in.services[i];
    const YamlDocument& doc = *in.service_docs[i];
    for (size_t j = 0; j < s.machines.size(); ++j) {
      if (FindByName(in.machines, s.machines[j]) != nullptr ||
          in.IsInvalid("Machine", s.machines[j])) {
        continue;
      }
      diags->Add(doc.Locate("/spec/machines/" + std::to_string(j)),
                 "unknown machine \"" + s.machines[j] + "\" in spec.machines of Service \"" +
                     s.name + "\"",
                 "define a Machine named \"" + s.machines[j] + "\" or remove it from the list");
    }
    for (size_t j = 0; j < s.stopped_on.size(); ++j) {
      if (FindByName(in.machines, s.stopped_on[j]) != nullptr ||
          in.IsInvalid("Machine", s.stopped_on[j])) {
        continue;
      }
      diags->Add(doc.Locate("/spec/stoppedOn/" + std::to_string(j)),
                 "unknown machine \"" + s.stopped_on[j] + "\" in spec.stoppedOn of Service \"" +
                     s.name + "\"",
                 "remove it from the list (clusterctl start " + s.name + " --machine " +
                     s.stopped_on[j] + " does)");
    }
    if (!s.machine_selector.empty()) {
      for (const auto& m : in.machines) {
        if (Matches(m, s.machine_selector)) s.machines.push_back(m.name);
      }
      if (s.machines.empty()) {
        std::string sel;
        for (const auto& [k, v] : s.machine_selector)
          sel += (sel.empty() ? "" : ", ") + k + "=" + v;
        diags->Add(
            doc.Locate("/spec/machineSelector"),
            "Service \"" + s.name + "\" runs on no machine: no Machine has the labels " + sel,
            "label a machine with them or fix spec.machineSelector");
      }
    }
    std::sort(s.machines.begin(), s.machines.end());
    for (size_t j = 0; s.canary && j < s.canary->machines.size(); ++j) {
      const std::string& m = s.canary->machines[j];
      if (std::binary_search(s.machines.begin(), s.machines.end(), m)) continue;
      diags->Add(
          doc.Locate("/spec/rollout/canary/machines/" + std::to_string(j)),
          "canary machine \"" + m + "\" of Service \"" + s.name + "\" is not one of its machines",
          "name a machine the service runs on");
    }
    for (const auto& d : s.depends_on) {
      if (d.service == s.name) {
        diags->Add(d.where, "Service \"" + s.name + "\" depends on itself",
                   "remove this dependsOn entry");
      } else if (FindByName(in.services, d.service) == nullptr &&
                 !in.IsInvalid("Service", d.service)) {
        diags->Add(
            d.where,
            "unknown service \"" + d.service + "\" in spec.dependsOn of Service \"" + s.name + "\"",
            "define a Service named \"" + d.service + "\" or remove the dependency");
      }
    }
  }
  CheckCycles(in.services, diags);

  // Each service's reconcile mode, over the Cluster's default.
  for (size_t i = 0; i < in.services.size(); ++i) {
    // Only spec.ssh and spec.reconcile are kept (loader.cc).
    const json& spec = in.service_docs[i]->value["spec"];
    in.services[i].reconcile_mode = cluster.reconcile.mode;
    if (spec.contains("reconcile") && spec["reconcile"].contains("mode")) {
      in.services[i].reconcile_mode = spec["reconcile"]["mode"] == "observe"
                                          ? ReconcileMode::kObserve
                                          : ReconcileMode::kEnforce;
    }
  }
  if (!in.clusters.empty()) CheckWindowSelectors(in, cluster, diags);

  // Profiles.
  for (size_t i = 0; i < in.profiles.size(); ++i) {
    const Profile& p = in.profiles[i];
    for (size_t j = 0; j < p.services.size(); ++j) {
      if (p.services[j] == "*" || FindByName(in.services, p.services[j]) != nullptr ||
          in.IsInvalid("Service", p.services[j])) {
        continue;
      }
      diags->Add(in.profile_docs[i]->Locate("/spec/services/" + std::to_string(j)),
                 "unknown service \"" + p.services[j] + "\" in Profile \"" + p.name + "\"",
                 "define the service or remove it from the profile");
    }
  }
  const Profile* active = nullptr;
  if (cluster.profile) {
    active = FindByName(in.profiles, *cluster.profile);
    if (active == nullptr && !in.IsInvalid("Profile", *cluster.profile)) {
      diags->Add(in.cluster_docs[0]->Locate("/spec/profile"),
                 "unknown profile \"" + *cluster.profile + "\" in spec.profile of Cluster \"" +
                     cluster.name + "\"",
                 "define a Profile named \"" + *cluster.profile + "\" or remove spec.profile");
    }
  }
  state->cluster = cluster;
  state->machines = std::move(in.machines);
  state->services = std::move(in.services);
  state->profiles = std::move(in.profiles);
  state->service_order = TopologicalOrder(state->services);
}

void CheckDesiredDependencies(const DesiredState& state, Diagnostics* diags) {
  std::set<std::string> running;
  for (const auto& i : state.instances) {
    if (i.desired == RunState::kRunning) running.insert(i.service);
  }
  for (const auto& s : state.services) {
    if (!running.count(s.name)) continue;
    for (const auto& d : s.depends_on) {
      if (running.count(d.service) || state.FindService(d.service) == nullptr) continue;
      std::string why =
          state.cluster.profile && state.FindService(d.service)->state == RunState::kRunning
              ? "is not in profile \"" + *state.cluster.profile + "\""
              : "has state: stopped";
      diags->Add(
          d.where,
          "Service \"" + s.name + "\" is to run but its dependency \"" + d.service + "\" " + why,
          "run the dependency too, or stop \"" + s.name + "\"");
    }
  }
}

}  // namespace clusterctl::desired_state::internal
