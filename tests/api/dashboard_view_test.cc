// The dashboard's pure answers (api/dashboard_view.h): the dependency graph
// with its blocking edges, and unified diffs.
#include "api/dashboard_view.h"

#include <gtest/gtest.h>

namespace clusterctl::api {
namespace {

using nlohmann::json;

desired_state::Service Svc(const std::string& name, std::vector<desired_state::Dependency> deps,
                           bool critical = false) {
  desired_state::Service s;
  s.name = name;
  s.depends_on = std::move(deps);
  s.critical = critical;
  return s;
}

json Inst(const std::string& state, bool ready, const std::string& desired = "running") {
  return {{"desired", desired}, {"state", state}, {"ready", ready}, {"reason", "r"}};
}

TEST(GraphTest, MarksTheEdgeThatHoldsADependentBack) {
  desired_state::DesiredState d;
  d.revision.commit = "abc";
  using C = desired_state::DependencyCondition;
  d.services = {Svc("redis", {}, true), Svc("model", {{"redis", C::kReady, {}}}),
                Svc("api", {{"model", C::kReady, {}}, {"redis", C::kStarted, {}}}),
                Svc("old", {}, false)};
  const json status = {
      {"services",
       {{"redis", {{"instances", {{"m1", Inst("running", true)}}}}},
        {"model", {{"instances", {{"m1", Inst("running", false)}, {"m2", Inst("running", true)}}}}},
        {"api", {{"instances", {{"m1", Inst("stopped", false)}}}}},
        {"old", {{"instances", {{"m1", Inst("stopped", false, "stopped")}}}}}}}};
  const json g = BuildGraph(d, status);
  std::map<std::string, json> edges, nodes;
  for (const json& e : g["edges"])
    edges[e["from"].get<std::string>() + "->" + e["to"].get<std::string>()] = e;
  for (const json& n : g["nodes"]) nodes[n["service"]] = n;
  ASSERT_EQ(3u, edges.size());
  // api waits for model, whose m1 is not ready: that edge blocks.
  EXPECT_TRUE(edges["api->model"]["blocking"]);
  EXPECT_EQ(json::array({"api@m1"}), edges["api->model"]["blocked"]);
  EXPECT_EQ(json::array({"model@m1"}), edges["api->model"]["by"]);
  // redis is ready: neither of its edges blocks.
  EXPECT_FALSE(edges["api->redis"]["blocking"]);
  EXPECT_EQ("started", edges["api->redis"]["condition"]);
  EXPECT_FALSE(edges["model->redis"]["blocking"]);
  EXPECT_EQ("healthy", nodes["redis"]["health"]);
  EXPECT_EQ(true, nodes["redis"]["critical"]);
  EXPECT_EQ("degraded", nodes["model"]["health"]);
  EXPECT_EQ("unhealthy", nodes["api"]["health"]);
  EXPECT_EQ("stopped", nodes["old"]["health"]);
}

TEST(UnifiedDiffTest, HunksWithContextAndAddedOrRemovedFiles) {
  EXPECT_EQ("", UnifiedDiff("a\nb\n", "a\nb\n"));
  EXPECT_EQ("@@ -0,0 +1,2 @@\n+x\n+y\n", UnifiedDiff("", "x\ny\n"));
  EXPECT_EQ("@@ -1,1 +0,0 @@\n-x\n", UnifiedDiff("x\n", ""));
  std::string before, after;
  for (int i = 1; i <= 20; ++i) {
    before += "l" + std::to_string(i) + "\n";
    after += (i == 10 ? std::string("changed") : "l" + std::to_string(i)) + "\n";
  }
  after += "l21\n";
  EXPECT_EQ(
      "@@ -7,7 +7,7 @@\n l7\n l8\n l9\n-l10\n+changed\n l11\n l12\n l13\n"
      "@@ -18,3 +18,4 @@\n l18\n l19\n l20\n+l21\n",
      UnifiedDiff(before, after));
  EXPECT_NE(std::string::npos, UnifiedDiff("a\nb\n", "c\n", 1).find("too large"));
}

}  // namespace
}  // namespace clusterctl::api
