// The parse cache (parse_cache.h): a load with the cache gives exactly what a
// cold load gives (model and diagnostics) over random edits of a real git
// repository, parses only the files that changed, drops what is gone, and
// misses everything when the schemas or the YAML limits change.
#include "desired-state/parse_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "desired-state/git_source.h"
#include "desired-state/loader.h"
#include "desired-state/schema.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

using ::clusterctl::testing::GitRepo;
using ::clusterctl::testing::RunShell;
using ::clusterctl::testing::TempDir;

constexpr char kCluster[] = R"(apiVersion: clusterctl/v1
kind: Cluster
metadata: {name: lab}
spec:
  defaults:
    ssh: {user: ops}
)";

std::string MachineYaml(const std::string& name) {
  return "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: " + name +
         "}\nspec: {address: 10.0.0.1}\n";
}

std::string ServiceYaml(const std::string& name, const std::string& machine,
                        const std::string& command, const std::string& dependency) {
  std::string s = "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: " + name +
                  "}\nspec:\n  machines: [" + machine + "]\n  process: {command: [" + command +
                  "]}\n";
  if (!dependency.empty()) s += "  dependsOn: [{service: " + dependency + "}]\n";
  return s;
}

// The files of a revision under test, by path, and the repository they are
// committed to.
class Repo {
 public:
  Repo() : git_(dir_.Sub("repo")) {}

  void Write(const std::string& path, const std::string& content) {
    files_[path] = content;
    git_.Write(path, content);
  }
  void Remove(const std::string& path) {
    files_.erase(path);
    ASSERT_EQ(RunShell("rm -f '" + git_.path() + "/" + path + "'"), 0);
  }
  // Commits and reads the head back through GitSource.
  Snapshot Commit() {
    git_.CommitAll("edit");
    if (source_ == nullptr) {
      GitSource::Options o;
      o.repo = git_.path();
      auto s = GitSource::Open(o);
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      source_ = std::move(*s);
    }
    auto snap = source_->Read("");
    EXPECT_TRUE(snap.ok()) << snap.status().ToString();
    return snap.ok() ? std::move(*snap) : Snapshot{};
  }
  const std::map<std::string, std::string>& files() const { return files_; }

 private:
  TempDir dir_;
  GitRepo git_;
  std::unique_ptr<GitSource> source_;
  std::map<std::string, std::string> files_;
};

// Loads `snap` with `cache` and without, and expects the same answer.
// Returns the cached load's result.
LoadResult ExpectSameAsCold(const Snapshot& snap, const std::shared_ptr<ParseCache>& cache,
                            LoadOptions options = {}) {
  options.cache = nullptr;
  LoadResult cold = Load(snap, options);
  options.cache = cache;
  LoadResult cached = Load(snap, options);
  EXPECT_EQ(cached.errors.ToString(), cold.errors.ToString());
  EXPECT_EQ(cached.errors.size(), cold.errors.size());
  EXPECT_EQ(cached.warnings, cold.warnings);
  EXPECT_EQ(cached.state.has_value(), cold.state.has_value());
  if (cached.state && cold.state) {
    EXPECT_TRUE(*cached.state == *cold.state);
  }
  return cached;
}

// The service of file services/<name>.yaml: named after its file, on one of
// machines m0..m5 (machines/base.yaml), now and then depending on a service
// of a file made before it (so valid edits make no cycle).
std::string ServiceOfFile(const std::string& name, const std::vector<std::string>& others,
                          const std::function<int(int)>& pick) {
  auto number = [](const std::string& n) { return std::stoi(n.substr(1)); };
  std::vector<std::string> before;
  for (const auto& o : others) {
    if (number(o) < number(name)) before.push_back(o);
  }
  const std::string dep =
      before.empty() || pick(2) == 0 ? "" : before[pick(static_cast<int>(before.size()))];
  return ServiceYaml(name, "m" + std::to_string(pick(6)), "/bin/x" + std::to_string(pick(1000)),
                     dep);
}

// Rewrites every service file valid (dependencies of deleted files dropped).
void Repair(std::mt19937* rng, Repo* repo) {
  std::function<int(int)> pick = [&](int n) {
    return static_cast<int>((*rng)() % static_cast<unsigned>(n));
  };
  std::vector<std::string> names;
  for (const auto& [p, _] : repo->files()) {
    if (p.rfind("services/", 0) == 0) names.push_back(p.substr(9, p.size() - 14));
  }
  for (const auto& n : names) repo->Write("services/" + n + ".yaml", ServiceOfFile(n, names, pick));
}

// One random edit of the repository: add, edit or delete a service file.
// Mostly valid changes; one edit in four is hostile (broken YAML, a schema
// error, a duplicate name, an unknown machine), and deletes and dependencies
// may leave references dangling or close a cycle.
void RandomEdit(std::mt19937* rng, Repo* repo, int* next_file) {
  std::function<int(int)> pick = [&](int n) {
    return static_cast<int>((*rng)() % static_cast<unsigned>(n));
  };
  std::vector<std::string> names;  // Services, by file stem.
  for (const auto& [p, _] : repo->files()) {
    if (p.rfind("services/", 0) == 0) names.push_back(p.substr(9, p.size() - 14));
  }
  const int what = names.empty() ? 0 : pick(10);
  if (what >= 8) {  // Delete a file.
    repo->Remove("services/" + names[pick(static_cast<int>(names.size()))] + ".yaml");
    return;
  }
  std::string name = what <= 3 ? "s" + std::to_string((*next_file)++)          // Add a file.
                               : names[pick(static_cast<int>(names.size()))];  // Edit one.
  std::string content = ServiceOfFile(name, names, pick);
  switch (pick(16)) {
    case 0:
      content = "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: [unclosed\n";
      break;
    case 1:
      content += "  comand: [/bin/typo]\n";  // Schema error.
      break;
    case 2:  // A second document, named like another service.
      content += "---\n" + ServiceOfFile(names.empty() ? name : names[0], names, pick);
      break;
    case 3:
      content = ServiceYaml(name, "m9", "/bin/x", "");  // Unknown machine.
      break;
    default:
      break;
  }
  repo->Write("services/" + name + ".yaml", content);
}

TEST(ParseCacheTest, CachedLoadEqualsColdLoadOverRandomEdits) {
  for (unsigned seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    Repo repo;
    repo.Write("cluster.yaml", kCluster);
    std::string machines;
    for (int m = 0; m < 6; ++m)
      machines += (m ? "---\n" : "") + MachineYaml("m" + std::to_string(m));
    repo.Write("machines/base.yaml", machines);
    int next_file = 0;
    for (int i = 0; i < 6; ++i) RandomEdit(&rng, &repo, &next_file);
    auto cache = std::make_shared<ParseCache>();
    ExpectSameAsCold(repo.Commit(), cache);
    EXPECT_EQ(cache->stats().hits, 0u);
    size_t valid = 0;
    for (int step = 0; step < 25; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const std::map<std::string, std::string> before = repo.files();
      if (step % 6 == 5) {
        Repair(&rng, &repo);
      } else {
        RandomEdit(&rng, &repo, &next_file);
        if (rng() % 3 == 0) RandomEdit(&rng, &repo, &next_file);
      }
      size_t changed_present = 0;  // Files added or edited.
      for (const auto& [p, content] : repo.files()) {
        auto old = before.find(p);
        changed_present += old == before.end() || old->second != content;
      }
      const size_t present = repo.files().size();

      LoadResult r = ExpectSameAsCold(repo.Commit(), cache);
      valid += r.ok();
      // Only the files that changed were parsed; nothing else is kept.
      ParseCache::Stats stats = cache->stats();
      EXPECT_EQ(stats.misses, changed_present);
      EXPECT_EQ(stats.hits, present - changed_present);
      EXPECT_EQ(stats.entries, present);
    }
    // The edits reach both valid and invalid revisions.
    EXPECT_GT(valid, 0u);
    EXPECT_LT(valid, 25u);
  }
}

TEST(ParseCacheTest, InvalidFileEditedToValidAndBackLoadsAsCold) {
  Repo repo;
  repo.Write("cluster.yaml", kCluster);
  repo.Write("machines/m.yaml", MachineYaml("m0"));
  const std::string valid = ServiceYaml("web", "m0", "/bin/web", "");
  const std::vector<std::pair<std::string, bool>> versions = {
      {valid, true},
      {"apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: [unclosed\n", false},
      {valid, true},
      {valid + "  comand: [/bin/typo]\n", false},
      {ServiceYaml("web", "m9", "/bin/web", ""), false},  // Unknown machine.
      {valid, true},
  };
  auto cache = std::make_shared<ParseCache>();
  for (size_t i = 0; i < versions.size(); ++i) {
    SCOPED_TRACE("version " + std::to_string(i));
    repo.Write("services/web.yaml", versions[i].first);
    LoadResult r = ExpectSameAsCold(repo.Commit(), cache);
    EXPECT_EQ(r.ok(), versions[i].second) << r.errors.ToString();
    EXPECT_EQ(cache->stats().hits, i == 0 ? 0u : 2u);
  }
}

// The compiled-in schemas, rebuilt from their texts, with the default of a
// Service's stopTimeoutSeconds changed from 15 to `seconds`.
std::unique_ptr<Schemas> SchemasWithStopTimeout(int seconds) {
  std::vector<std::string> texts;
  std::vector<schemas::EmbeddedSchema> changed = schemas::All();
  texts.reserve(changed.size());
  for (auto& s : changed) {
    std::string text(s.text);
    if (s.kind == "service" && seconds != 15) {
      auto json = nlohmann::json::parse(text);
      EXPECT_EQ(json["properties"]["stopTimeoutSeconds"]["default"], 15);
      json["properties"]["stopTimeoutSeconds"]["default"] = seconds;
      text = json.dump();
    }
    texts.push_back(text);
  }
  for (size_t i = 0; i < changed.size(); ++i) changed[i].text = texts[i];
  return Schemas::FromTextsForTest(changed);  // Copies what it needs.
}

// A Cluster, a Machine and a Service "web" on it, committed.
Snapshot CommitWebService(Repo* repo) {
  repo->Write("cluster.yaml", kCluster);
  repo->Write("machines/m.yaml", MachineYaml("m0"));
  repo->Write("services/web.yaml", ServiceYaml("web", "m0", "/bin/web", ""));
  return repo->Commit();
}

// A cached document keeps only part of its JSON (internal.h); what the
// whole-revision steps read of it still comes out the same: the secret files
// (checked on every load, against the policy of that load), a machine's own
// ssh settings and a service's reconcile mode.
TEST(ParseCacheTest, CachedEntriesStillAnswerSecretFilesSshAndReconcileMode) {
  Repo repo;
  repo.Write("cluster.yaml", kCluster);
  repo.Write("machines/base.yaml",
             "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m0}\nspec:\n"
             "  address: 10.0.0.1\n  ssh: {user: root, port: 2222, identityFile: /etc/key}\n");
  repo.Write("services/s0.yaml",
             ServiceYaml("s0", "m0", "/bin/x", "") + "  reconcile: {mode: observe}\n");
  const Snapshot snap = repo.Commit();
  auto cache = std::make_shared<ParseCache>();
  LoadOptions strict;
  strict.secrets = SecretsPolicy{"/var/lib/clusterd/secrets", {}};
  for (int load = 0; load < 2; ++load) {  // Cold, then every file from the cache.
    SCOPED_TRACE("load " + std::to_string(load));
    LoadResult r = ExpectSameAsCold(snap, cache, strict);
    EXPECT_EQ(cache->stats().hits, load == 0 ? 0u : 3u);
    ASSERT_EQ(r.errors.size(), 1u) << r.errors.ToString();
    EXPECT_EQ(r.errors.ToString().find("machines/base.yaml:6:"), 0u) << r.errors.ToString();
    EXPECT_NE(r.errors.ToString().find("identityFile \"/etc/key\" is outside secretsDir"),
              std::string::npos)
        << r.errors.ToString();
  }
  // The same entries under a load without a policy: no secret-file error.
  LoadResult r = ExpectSameAsCold(snap, cache);
  EXPECT_EQ(cache->stats().hits, 3u);
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  ASSERT_EQ(r.state->machines.size(), 1u);
  EXPECT_EQ(r.state->machines[0].ssh.user, "root");
  EXPECT_EQ(r.state->machines[0].ssh.port, 2222);
  EXPECT_EQ(r.state->machines[0].ssh.identity_file, "/etc/key");
  ASSERT_EQ(r.state->services.size(), 1u);
  EXPECT_EQ(r.state->services[0].reconcile_mode, ReconcileMode::kObserve);
}

TEST(ParseCacheTest, ChangedSchemasMissEveryEntry) {
  Repo repo;
  const Snapshot snap = CommitWebService(&repo);
  auto cache = std::make_shared<ParseCache>();
  LoadResult before = ExpectSameAsCold(snap, cache);
  ASSERT_TRUE(before.ok()) << before.errors.ToString();
  EXPECT_EQ(before.state->FindService("web")->stop_timeout_seconds, 15);

  // The same schemas rebuilt: same fingerprint, every file hits.
  std::unique_ptr<Schemas> same = SchemasWithStopTimeout(15);
  EXPECT_EQ(same->fingerprint(), Schemas::Get().fingerprint());
  LoadOptions options;
  options.schemas = same.get();
  ExpectSameAsCold(snap, cache, options);
  EXPECT_EQ(cache->stats().hits, 3u);

  std::unique_ptr<Schemas> changed = SchemasWithStopTimeout(99);
  EXPECT_NE(changed->fingerprint(), Schemas::Get().fingerprint());
  options.schemas = changed.get();
  LoadResult after = ExpectSameAsCold(snap, cache, options);
  ASSERT_TRUE(after.ok()) << after.errors.ToString();
  EXPECT_EQ(after.state->FindService("web")->stop_timeout_seconds, 99);
  EXPECT_EQ(cache->stats().misses, 3u);
  EXPECT_EQ(cache->stats().hits, 0u);
}

TEST(ParseCacheTest, ChangedYamlLimitsMissEveryEntry) {
  Repo repo;
  const Snapshot snap = CommitWebService(&repo);
  auto cache = std::make_shared<ParseCache>();
  ASSERT_TRUE(ExpectSameAsCold(snap, cache).ok());
  LoadOptions shallow;
  shallow.yaml.max_depth = 2;  // spec.process.command is nested 3 deep.
  LoadResult r = ExpectSameAsCold(snap, cache, shallow);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(cache->stats().hits, 0u);
}

TEST(ParseCacheTest, KeepsNoMoreThanItsBound) {
  Repo repo;
  repo.Write("cluster.yaml", kCluster);
  repo.Write("machines/m.yaml", MachineYaml("m0"));
  for (int i = 0; i < 4; ++i) {
    repo.Write("services/s" + std::to_string(i) + ".yaml",
               ServiceYaml("s" + std::to_string(i), "m0", "/bin/s", ""));
  }
  const Snapshot snap = repo.Commit();
  size_t all = 0;
  for (const auto& f : snap.files) all += f.content.size();
  auto cache = std::make_shared<ParseCache>(ParseCache::Options{all / 2});
  ExpectSameAsCold(snap, cache);
  ParseCache::Stats stats = cache->stats();
  EXPECT_LE(stats.bytes, all / 2);
  EXPECT_GT(stats.entries, 0u);
  EXPECT_LT(stats.entries, snap.files.size());
  ExpectSameAsCold(snap, cache);
  EXPECT_EQ(cache->stats().hits, stats.entries);
}

// Files that are not from git (no blob id) are keyed by their content.
TEST(ParseCacheTest, FilesWithoutBlobIdAreKeyedByContent) {
  auto cache = std::make_shared<ParseCache>();
  LoadOptions options;
  options.cache = cache;
  std::vector<SourceFile> files = {{"cluster.yaml", kCluster},
                                   {"machines.yaml", MachineYaml("m0")},
                                   {"web.yaml", ServiceYaml("web", "m0", "/bin/a", "")}};
  ASSERT_TRUE(LoadFiles(files, Revision{}, options).ok());
  files[2].content = ServiceYaml("web", "m0", "/bin/b", "");
  LoadResult r = LoadFiles(files, Revision{}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.state->FindService("web")->process.command, std::vector<std::string>{"/bin/b"});
  EXPECT_EQ(cache->stats().hits, 2u);
  EXPECT_EQ(cache->stats().misses, 1u);
}

}  // namespace
}  // namespace clusterctl::desired_state
