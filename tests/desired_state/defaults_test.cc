// The schema is the one source of truth for defaults: a field left out of a
// document gets the default of schemas/*.schema.json, and the model's in-code
// initializers (model.h, used by code that builds model values itself) agree
// with it. Each expectation reads the default from the schema file, so
// changing a default in the schema alone makes these tests fail until the
// model agrees.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "desired-state/loader.h"
#include "tests/harness/paths.h"

namespace clusterctl::desired_state {
namespace {

using nlohmann::json;

json Schema(const std::string& name) {
  std::ifstream in(testing::SourceDir() + "/schemas/" + name + ".schema.json");
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

// The "default" at `pointer` (a JSON pointer into the schema).
json DefaultAt(const json& schema, const std::string& pointer) {
  const json& node = schema.at(json::json_pointer(pointer));
  EXPECT_TRUE(node.contains("default")) << pointer << " has no default in the schema";
  return node.value("default", json());
}

DesiredState LoadMinimal(const std::string& service_spec) {
  std::vector<SourceFile> files = {
      {"cluster.yaml",
       "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\nspec: {}\n"},
      {"machines.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\nspec: {address: "
       "127.0.0.1}\n"},
      {"services.yaml",
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + service_spec},
  };
  Revision rev;
  rev.commit = "0123456789abcdef0123456789abcdef01234567";
  LoadResult r = LoadFiles(files, rev);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.ToString());
  return r.ok() ? *r.state : DesiredState{};
}

TEST(DefaultsTest, ClusterAndMachineFieldsLeftOutGetTheSchemaDefaults) {
  const json cluster = Schema("cluster");
  const json machine = Schema("machine");
  DesiredState s = LoadMinimal("  machines: [m1]\n  process: {command: [/bin/true]}\n");
  EXPECT_EQ(s.cluster.reconcile.interval_seconds,
            DefaultAt(cluster, "/properties/reconcile/properties/intervalSeconds").get<int>());
  EXPECT_EQ(s.cluster.reconcile.max_parallel,
            DefaultAt(cluster, "/properties/reconcile/properties/maxParallel").get<int>());
  EXPECT_EQ(s.cluster.reconcile.allow_mass_stop,
            DefaultAt(cluster, "/properties/reconcile/properties/allowMassStop").get<bool>());
  EXPECT_EQ(ReconcileModeName(s.cluster.reconcile.mode),
            DefaultAt(cluster, "/properties/reconcile/properties/mode").get<std::string>());
  EXPECT_EQ(RepairDriftName(s.cluster.repair_drift),
            DefaultAt(cluster, "/properties/repairDrift").get<std::string>());
  EXPECT_EQ(s.cluster.default_ssh.user,
            DefaultAt(cluster, "/definitions/ssh/properties/user").get<std::string>());
  EXPECT_EQ(s.cluster.default_ssh.port,
            DefaultAt(cluster, "/definitions/ssh/properties/port").get<int>());
  ASSERT_EQ(1u, s.machines.size());
  EXPECT_EQ(s.machines[0].state_dir, DefaultAt(machine, "/properties/stateDir").get<std::string>());
}

TEST(DefaultsTest, ServiceFieldsLeftOutGetTheSchemaDefaults) {
  const json schema = Schema("service");
  DesiredState s = LoadMinimal(
      "  machines: [m1]\n  process: {command: [/bin/true]}\n"
      "  dependsOn: []\n"
      "  readiness: {http: {port: 8080}}\n"
      "  liveness: {redis: {}}\n");
  ASSERT_EQ(1u, s.services.size());
  const Service& svc = s.services[0];
  EXPECT_EQ(svc.state == RunState::kRunning ? "running" : "stopped",
            DefaultAt(schema, "/properties/state").get<std::string>());
  EXPECT_EQ(svc.critical, DefaultAt(schema, "/properties/critical").get<bool>());
  EXPECT_EQ(svc.stop_timeout_seconds,
            DefaultAt(schema, "/properties/stopTimeoutSeconds").get<int>());
  EXPECT_EQ(svc.backoff_seconds,
            DefaultAt(schema, "/properties/restart/properties/backoffSeconds").get<int>());
  EXPECT_EQ(svc.max_backoff_seconds,
            DefaultAt(schema, "/properties/restart/properties/maxBackoffSeconds").get<int>());
  EXPECT_EQ(svc.max_unavailable,
            DefaultAt(schema, "/properties/rollout/properties/maxUnavailable").get<int>());
  EXPECT_EQ(svc.process.log_max_bytes,
            DefaultAt(schema, "/properties/process/properties/logMaxBytes").get<int64_t>());

  ASSERT_TRUE(svc.readiness.has_value());
  const Probe& r = *svc.readiness;
  EXPECT_EQ(r.period_seconds,
            DefaultAt(schema, "/properties/readiness/properties/periodSeconds").get<int>());
  EXPECT_EQ(r.timeout_seconds,
            DefaultAt(schema, "/properties/readiness/properties/timeoutSeconds").get<int>());
  EXPECT_EQ(r.failure_threshold,
            DefaultAt(schema, "/properties/readiness/properties/failureThreshold").get<int>());
  EXPECT_EQ(r.start_timeout_seconds,
            DefaultAt(schema, "/properties/readiness/properties/startTimeoutSeconds").get<int>());
  EXPECT_EQ(r.scheme,
            DefaultAt(schema, "/definitions/httpProbe/properties/scheme").get<std::string>());
  EXPECT_EQ(r.path, DefaultAt(schema, "/definitions/httpProbe/properties/path").get<std::string>());
  EXPECT_EQ(r.expect_status,
            DefaultAt(schema, "/definitions/httpProbe/properties/expectStatus").get<int>());

  ASSERT_TRUE(svc.liveness.has_value());
  const Probe& l = *svc.liveness;
  EXPECT_EQ(l.period_seconds,
            DefaultAt(schema, "/properties/liveness/properties/periodSeconds").get<int>());
  EXPECT_EQ(l.port, DefaultAt(schema, "/definitions/redisProbe/properties/port").get<int>());
}

TEST(DefaultsTest, TheModelsInCodeInitializersAgreeWithTheSchema) {
  const json service = Schema("service");
  const json cluster = Schema("cluster");
  const json machine = Schema("machine");
  const Service svc;
  EXPECT_EQ(svc.stop_timeout_seconds,
            DefaultAt(service, "/properties/stopTimeoutSeconds").get<int>());
  EXPECT_EQ(svc.backoff_seconds,
            DefaultAt(service, "/properties/restart/properties/backoffSeconds").get<int>());
  EXPECT_EQ(svc.max_backoff_seconds,
            DefaultAt(service, "/properties/restart/properties/maxBackoffSeconds").get<int>());
  EXPECT_EQ(svc.max_unavailable,
            DefaultAt(service, "/properties/rollout/properties/maxUnavailable").get<int>());
  EXPECT_EQ(svc.process.log_max_bytes,
            DefaultAt(service, "/properties/process/properties/logMaxBytes").get<int64_t>());
  // A Probe built in code is a readiness probe: its defaults are readiness's.
  const Probe probe;
  EXPECT_EQ(probe.period_seconds,
            DefaultAt(service, "/properties/readiness/properties/periodSeconds").get<int>());
  EXPECT_EQ(probe.timeout_seconds,
            DefaultAt(service, "/properties/readiness/properties/timeoutSeconds").get<int>());
  EXPECT_EQ(probe.failure_threshold,
            DefaultAt(service, "/properties/readiness/properties/failureThreshold").get<int>());
  EXPECT_EQ(probe.start_timeout_seconds,
            DefaultAt(service, "/properties/readiness/properties/startTimeoutSeconds").get<int>());
  EXPECT_EQ(probe.scheme,
            DefaultAt(service, "/definitions/httpProbe/properties/scheme").get<std::string>());
  EXPECT_EQ(probe.path,
            DefaultAt(service, "/definitions/httpProbe/properties/path").get<std::string>());
  EXPECT_EQ(probe.expect_status,
            DefaultAt(service, "/definitions/httpProbe/properties/expectStatus").get<int>());
  const Cluster c;
  EXPECT_EQ(c.reconcile.interval_seconds,
            DefaultAt(cluster, "/properties/reconcile/properties/intervalSeconds").get<int>());
  EXPECT_EQ(c.reconcile.max_parallel,
            DefaultAt(cluster, "/properties/reconcile/properties/maxParallel").get<int>());
  EXPECT_EQ(ReconcileModeName(c.reconcile.mode),
            DefaultAt(cluster, "/properties/reconcile/properties/mode").get<std::string>());
  EXPECT_EQ(RepairDriftName(c.repair_drift),
            DefaultAt(cluster, "/properties/repairDrift").get<std::string>());
  const SyncWindow w;
  EXPECT_EQ(w.time_zone,
            DefaultAt(cluster, "/definitions/window/properties/timeZone").get<std::string>());
  EXPECT_EQ(w.manual_override,
            DefaultAt(cluster, "/definitions/window/properties/manualOverride").get<bool>());
  const Machine m;
  EXPECT_EQ(m.state_dir, DefaultAt(machine, "/properties/stateDir").get<std::string>());
}

}  // namespace
}  // namespace clusterctl::desired_state
