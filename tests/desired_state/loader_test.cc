// Load() on in-memory files: the example cluster, defaults, instances,
// profiles, ordering, and the spec hash.
#include "desired-state/loader.h"

#include <gtest/gtest.h>

#include "desired-state/dir_source.h"
#include "desired-state/spec_hash.h"
#include "tests/harness/paths.h"

namespace clusterctl::desired_state {
namespace {

const char* kCluster = R"(apiVersion: clusterctl/v1
kind: Cluster
metadata: {name: lab}
spec:
  defaults:
    ssh: {user: ops, identityFile: /keys/id}
)";

const char* kMachines = R"(apiVersion: clusterctl/v1
kind: Machine
metadata: {name: m1, labels: {gpu: "true"}}
spec: {address: 10.0.0.1, ssh: {port: 2222}}
---
apiVersion: clusterctl/v1
kind: Machine
metadata: {name: m2}
spec: {address: 10.0.0.2, ssh: {user: pi}, stateDir: /srv/state}
)";

LoadResult LoadText(std::vector<SourceFile> files) {
  Revision rev;
  rev.commit = "0123456789abcdef0123456789abcdef01234567";
  return LoadFiles(files, rev);
}

std::string ServiceYaml(const std::string& body) {
  return "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + body;
}

const Instance* FindInstance(const DesiredState& s, const std::string& service,
                             const std::string& machine) {
  for (const auto& i : s.instances) {
    if (i.service == service && i.machine == machine) return &i;
  }
  return nullptr;
}

TEST(LoaderTest, LoadsTheLanggraphExample) {
  auto snap = ReadDirectory(testing::SourceDir() + "/examples/langgraph");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  LoadResult r = Load(*snap);
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  const DesiredState& s = *r.state;
  EXPECT_EQ(s.cluster.name, "langgraph");
  EXPECT_EQ(s.machines.size(), 5u);
  EXPECT_EQ(s.services.size(), 7u);
  EXPECT_EQ(s.profiles.size(), 3u);
  // redis first, then the model servers, then the application, then the edge.
  EXPECT_EQ(s.service_order,
            (std::vector<std::string>{"redis-server", "embeddings-server", "llama-server", "ollama",
                                      "tools-server", "haproxy", "monitoring-server"}));
  // machineSelector {role: embeddings} resolves to the Raspberry Pi.
  EXPECT_EQ(s.FindService("embeddings-server")->machines,
            std::vector<std::string>{"rp-embeddings"});
  // Machine ssh settings: own fields over the Cluster's defaults.
  EXPECT_EQ(s.FindMachine("jetson")->ssh.user, "sanzad");
  EXPECT_EQ(s.FindMachine("cpu-coordinator")->ssh.user, "ops");
  EXPECT_EQ(s.FindMachine("jetson")->ssh.identity_file, "id_ed25519");
}

TEST(LoaderTest, AppliesSchemaDefaultsOnce) {
  LoadResult r =
      LoadText({{"c.yaml", kCluster},
                {"m.yaml", kMachines},
                {"s.yaml", ServiceYaml("  machines: [m1]\n  process: {command: [/bin/web]}\n"
                                       "  readiness: {tcp: {port: 80}}\n"
                                       "  liveness: {http: {port: 80}}\n")}});
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  const DesiredState& s = *r.state;
  EXPECT_EQ(s.cluster.reconcile.interval_seconds, 30);
  EXPECT_EQ(s.cluster.reconcile.max_parallel, 8);
  EXPECT_FALSE(s.cluster.reconcile.allow_mass_stop);
  EXPECT_EQ(s.cluster.state, RunState::kRunning);
  const Machine* m1 = s.FindMachine("m1");
  EXPECT_EQ(m1->ssh.user, "ops");
  EXPECT_EQ(m1->ssh.port, 2222);
  EXPECT_EQ(m1->ssh.identity_file, "/keys/id");
  EXPECT_EQ(m1->state_dir, "/var/lib/clusterctl");
  EXPECT_EQ(s.FindMachine("m2")->state_dir, "/srv/state");
  const Service* web = s.FindService("web");
  EXPECT_EQ(web->stop_timeout_seconds, 15);
  EXPECT_EQ(web->backoff_seconds, 1);
  EXPECT_EQ(web->max_backoff_seconds, 300);
  EXPECT_EQ(web->max_unavailable, 1);
  EXPECT_FALSE(web->critical);
  ASSERT_TRUE(web->readiness.has_value());
  EXPECT_EQ(web->readiness->kind, ProbeKind::kTcp);
  EXPECT_EQ(web->readiness->period_seconds, 2);
  EXPECT_EQ(web->readiness->failure_threshold, 3);
  EXPECT_EQ(web->readiness->start_timeout_seconds, 60);
  ASSERT_TRUE(web->liveness.has_value());
  EXPECT_EQ(web->liveness->kind, ProbeKind::kHttp);
  EXPECT_EQ(web->liveness->period_seconds, 10);
  EXPECT_EQ(web->liveness->path, "/");
  EXPECT_EQ(web->liveness->expect_status, 200);
}

TEST(LoaderTest, ExpandsOneInstancePerServiceAndMachine) {
  LoadResult r = LoadText(
      {{"c.yaml", kCluster},
       {"m.yaml", kMachines},
       {"s.yaml", ServiceYaml("  machines: [m2, m1]\n  process: {command: [/bin/web]}\n")}});
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  ASSERT_EQ(r.state->instances.size(), 2u);
  EXPECT_EQ(r.state->instances[0].Key(), "web@m1");
  EXPECT_EQ(r.state->instances[1].Key(), "web@m2");
  EXPECT_EQ(r.state->instances[0].desired, RunState::kRunning);
  EXPECT_EQ(r.state->instances[0].spec_hash, r.state->instances[1].spec_hash);
}

TEST(LoaderTest, ProfileAndStateDecideTheDesiredState) {
  std::string services = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: cache}
spec: {machines: [m1], process: {command: [/bin/cache]}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: web}
spec: {machines: [m1], process: {command: [/bin/web]}, dependsOn: [{service: cache}]}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: batch}
spec: {machines: [m2], state: stopped, process: {command: [/bin/batch]}}
---
apiVersion: clusterctl/v1
kind: Profile
metadata: {name: small}
spec: {services: [cache]}
)";
  std::string cluster = std::string(kCluster) + "  profile: small\n";
  LoadResult r = LoadText({{"c.yaml", cluster}, {"m.yaml", kMachines}, {"s.yaml", services}});
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  EXPECT_EQ(FindInstance(*r.state, "cache", "m1")->desired, RunState::kRunning);
  EXPECT_EQ(FindInstance(*r.state, "web", "m1")->desired, RunState::kStopped);
  EXPECT_EQ(FindInstance(*r.state, "batch", "m2")->desired, RunState::kStopped);

  std::string stopped = std::string(kCluster) + "  state: stopped\n";
  r = LoadText({{"c.yaml", stopped}, {"m.yaml", kMachines}, {"s.yaml", services}});
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  for (const auto& i : r.state->instances) EXPECT_EQ(i.desired, RunState::kStopped) << i.Key();
}

TEST(LoaderTest, ReportsEveryErrorSortedByFileAndLine) {
  LoadResult r = LoadText(
      {{"z.yaml", ServiceYaml("  machines: [nope]\n  process: {command: [/bin/web]}\n")},
       {"a.yaml", "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m9}\nspec: {}\n"},
       {"c.yaml", kCluster},
       {"m.yaml", kMachines}});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.errors.ToString(),
            "a.yaml:4:1: error: missing required field \"address\" in spec; add it (see "
            "docs/desired-state.md)\n"
            "z.yaml:5:14: error: unknown machine \"nope\" in spec.machines of Service \"web\"; "
            "define a Machine named \"nope\" or remove it from the list\n");
}

TEST(LoaderTest, RejectsAnEmptyRevision) {
  LoadResult r = LoadText({});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.errors.ToString().find("the revision has no YAML document"), std::string::npos);
}

// The spec hash: stable across key order and layout, changed by what the
// process depends on, not by probes or metadata.
class SpecHashTest : public ::testing::Test {
 protected:
  std::string HashOf(const std::string& service_body) {
    LoadResult r = LoadText(
        {{"c.yaml", kCluster}, {"m.yaml", kMachines}, {"s.yaml", ServiceYaml(service_body)}});
    EXPECT_TRUE(r.ok()) << r.errors.ToString();
    return r.ok() ? r.state->instances.at(0).spec_hash : "";
  }
};

TEST_F(SpecHashTest, IsStableAcrossKeyOrderAndWhitespace) {
  std::string a = HashOf(
      "  machines: [m1]\n  process:\n    command: [/bin/web, --port, '80']\n"
      "    env: {A: '1', B: '2'}\n");
  std::string b = HashOf(
      "  process:   {env: {B: '2',   A: '1'},\n     command: [\"/bin/web\", \"--port\", \"80\"]}\n"
      "  # a comment\n  machines: [m1]\n");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, b);
}

TEST_F(SpecHashTest, ChangesWithCommandEnvWorkingDirAndUnit) {
  std::string base = HashOf("  machines: [m1]\n  process: {command: [/bin/web]}\n");
  EXPECT_NE(base, HashOf("  machines: [m1]\n  process: {command: [/bin/web, -v]}\n"));
  EXPECT_NE(base, HashOf("  machines: [m1]\n  process: {command: [/bin/web], env: {A: x}}\n"));
  EXPECT_NE(base, HashOf("  machines: [m1]\n  process: {command: [/bin/web], workingDir: /srv}\n"));
  std::string unit = HashOf("  machines: [m1]\n  systemd: {unit: web.service}\n");
  EXPECT_NE(base, unit);
  EXPECT_NE(unit, HashOf("  machines: [m1]\n  systemd: {unit: web2.service}\n"));
}

TEST_F(SpecHashTest, DoesNotChangeWithProbesMetadataOrRollout) {
  std::string base = HashOf("  machines: [m1]\n  process: {command: [/bin/web]}\n");
  EXPECT_EQ(base, HashOf("  machines: [m1]\n  process: {command: [/bin/web]}\n"
                         "  readiness: {http: {port: 80, path: /health}}\n"
                         "  liveness: {tcp: {port: 80}}\n"));
  EXPECT_EQ(base, HashOf("  machines: [m1]\n  process: {command: [/bin/web]}\n"
                         "  rollout: {maxUnavailable: 2}\n  stopTimeoutSeconds: 3\n"
                         "  critical: true\n"));
}

}  // namespace
}  // namespace clusterctl::desired_state
