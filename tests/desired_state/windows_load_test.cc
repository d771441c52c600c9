// Load() of the Cluster's sync windows, repairDrift and reconcile modes:
// decoding, the Service's mode resolved over the Cluster's, and the errors
// (cron, time zone, duration, duplicate names, unknown selectors) at their
// file:line:col.
#include <gtest/gtest.h>

#include "desired-state/loader.h"

namespace clusterctl::desired_state {
namespace {

const char* kMachines = R"(apiVersion: clusterctl/v1
kind: Machine
metadata: {name: m1}
spec: {address: 10.0.0.1}
)";

const char* kServices = R"(apiVersion: clusterctl/v1
kind: Service
metadata: {name: web}
spec: {machines: [m1], process: {command: [/bin/web]}, reconcile: {mode: enforce}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: db-main}
spec: {machines: [m1], process: {command: [/bin/db]}}
---
apiVersion: clusterctl/v1
kind: Service
metadata: {name: probe}
spec: {machines: [m1], process: {command: [/bin/probe]}, reconcile: {mode: observe}}
)";

LoadResult LoadCluster(const std::string& cluster) {
  Revision rev;
  rev.commit = "0123456789abcdef0123456789abcdef01234567";
  return LoadFiles({{"cluster.yaml", cluster}, {"m.yaml", kMachines}, {"s.yaml", kServices}}, rev);
}

TEST(WindowsLoadTest, DecodesWindowsRepairDriftAndModes) {
  LoadResult r = LoadCluster(R"(apiVersion: clusterctl/v1
kind: Cluster
metadata: {name: lab}
spec:
  repairDrift: window
  reconcile: {mode: observe}
  windows:
    - name: nightly
      kind: allow
      schedule: "30 2 * * *"
      duration: 1h30m
      timeZone: Europe/Berlin
      services: [web, "db-*"]
      manualOverride: true
    - {name: freeze, kind: deny, schedule: "@weekly", duration: 2d, machines: ["m*"]}
)");
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  const Cluster& c = r.state->cluster;
  EXPECT_EQ(c.repair_drift, RepairDrift::kWindow);
  EXPECT_EQ(c.reconcile.mode, ReconcileMode::kObserve);
  ASSERT_EQ(c.windows.size(), 2u);
  const SyncWindow& n = c.windows[0];
  EXPECT_EQ(n.name, "nightly");
  EXPECT_EQ(n.kind, SyncWindow::kAllow);
  EXPECT_EQ(n.schedule.text(), "30 2 * * *");
  EXPECT_EQ(n.duration_s, 5400);
  EXPECT_EQ(n.time_zone, "Europe/Berlin");
  EXPECT_EQ(n.services, (std::vector<std::string>{"web", "db-*"}));
  EXPECT_TRUE(n.machines.empty());
  EXPECT_TRUE(n.manual_override);
  const SyncWindow& f = c.windows[1];
  EXPECT_EQ(f.kind, SyncWindow::kDeny);
  EXPECT_EQ(f.duration_s, 2 * 86400);
  EXPECT_EQ(f.time_zone, "UTC");
  EXPECT_FALSE(f.manual_override);
  // Absent: the Cluster's mode; given: its own.
  EXPECT_EQ(r.state->FindService("db-main")->reconcile_mode, ReconcileMode::kObserve);
  EXPECT_EQ(r.state->FindService("web")->reconcile_mode, ReconcileMode::kEnforce);
  EXPECT_EQ(r.state->FindService("probe")->reconcile_mode, ReconcileMode::kObserve);
}

TEST(WindowsLoadTest, WithoutTheFieldsEverythingIsEnforcedAtAnyTime) {
  LoadResult r = LoadCluster(
      "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\n"
      "spec: {}\n");
  ASSERT_TRUE(r.ok()) << r.errors.ToString();
  EXPECT_TRUE(r.state->cluster.windows.empty());
  EXPECT_EQ(r.state->cluster.repair_drift, RepairDrift::kAlways);
  EXPECT_EQ(r.state->FindService("db-main")->reconcile_mode, ReconcileMode::kEnforce);
  EXPECT_EQ(r.state->FindService("probe")->reconcile_mode, ReconcileMode::kObserve);
}

TEST(WindowsLoadTest, BadWindowsAreErrorsAtTheirField) {
  LoadResult r = LoadCluster(R"(apiVersion: clusterctl/v1
kind: Cluster
metadata: {name: lab}
spec:
  windows:
    - {name: a, kind: allow, schedule: "0 25 * * *", duration: 1h}
    - {name: a, kind: deny, schedule: "@daily", duration: 30s, timeZone: Europe/Berln}
    - {name: b, kind: deny, schedule: "@daily", duration: 1h, machines: [m3], services: [nope, "w*"]}
)");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(
      r.errors.ToString(),
      "cluster.yaml:6:30: error: cron \"0 25 * * *\": hour: 25 is out of range 0-23; see Sync "
      "windows in docs/desired-state.md\n"
      "cluster.yaml:7:8: error: duplicate window \"a\" (first defined at cluster.yaml:6:8); "
      "rename or remove one of them\n"
      "cluster.yaml:7:49: error: duration \"30s\" of window \"a\" is not a whole number of seconds "
      "from 1m to 366d; write it like 30m, 1h30m or 2d\n"
      "cluster.yaml:7:64: error: unknown time zone \"Europe/Berln\"; use an IANA name such as "
      "Europe/Berlin or UTC (see /usr/share/zoneinfo)\n"
      "cluster.yaml:8:74: error: unknown machine \"m3\" in spec.windows of window \"b\"; define a "
      "Machine named \"m3\", fix the name, or use a glob (*)\n"
      "cluster.yaml:8:90: error: unknown service \"nope\" in spec.windows of window \"b\"; define "
      "a "
      "Service named \"nope\", fix the name, or use a glob (*)\n");
}

TEST(WindowsLoadTest, ModesAndKindsOutsideTheirEnumsAreSchemaErrors) {
  LoadResult r = LoadCluster(R"(apiVersion: clusterctl/v1
kind: Cluster
metadata: {name: lab}
spec:
  repairDrift: sometimes
  reconcile: {mode: ignore}
  windows: [{name: a, kind: maybe, schedule: "@daily", duration: 1h}]
)");
  EXPECT_FALSE(r.ok());
  const std::string errors = r.errors.ToString();
  EXPECT_NE(errors.find("cluster.yaml:5:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("cluster.yaml:6:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("cluster.yaml:7:"), std::string::npos) << errors;
}

}  // namespace
}  // namespace clusterctl::desired_state
