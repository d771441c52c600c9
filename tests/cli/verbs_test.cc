// NextVerbEdit (cli/verbs.h): which key clusterctl stop|start changes.
#include "cli/verbs.h"

#include <gtest/gtest.h>

namespace clusterctl::cli {
namespace {

using desired_state::DesiredState;
using desired_state::RunState;

DesiredState State() {
  DesiredState s;
  s.cluster.name = "c";
  s.cluster.where.file = "cluster.yaml";
  desired_state::Service web;
  web.name = "web";
  web.machines = {"a", "b", "c"};
  web.where.file = "services/web.yaml";
  s.services.push_back(web);
  return s;
}

VerbEdit Edit(const DesiredState& s, VerbRequest r) {
  auto e = NextVerbEdit(s, r);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(e.ok() && e->has_value());
  return e.ok() && e->has_value() ? **e : VerbEdit{};
}

TEST(VerbsTest, StopAndStartOfAServiceSetAndRemoveItsState) {
  DesiredState s = State();
  VerbEdit stop = Edit(s, {true, "web", ""});
  EXPECT_EQ(stop.file, "services/web.yaml");
  EXPECT_EQ(stop.key, "state");
  EXPECT_EQ(stop.value, "stopped");
  EXPECT_EQ(stop.summary, "Stop web");
  s.services[0].state = RunState::kStopped;
  EXPECT_FALSE(NextVerbEdit(s, {true, "web", ""})->has_value());  // Already stopped.
  VerbEdit start = Edit(s, {false, "web", ""});
  EXPECT_EQ(start.key, "state");
  EXPECT_FALSE(start.value.has_value());
  // A start also clears the per-machine stops, in a second round.
  s.services[0].state = RunState::kRunning;
  s.services[0].stopped_on = {"b"};
  VerbEdit clear = Edit(s, {false, "web", ""});
  EXPECT_EQ(clear.key, "stoppedOn");
  EXPECT_FALSE(clear.value.has_value());
}

TEST(VerbsTest, PerMachineFormsEditStoppedOn) {
  DesiredState s = State();
  VerbEdit stop = Edit(s, {true, "web", "b"});
  EXPECT_EQ(stop.key, "stoppedOn");
  EXPECT_EQ(stop.value, "[b]");
  EXPECT_EQ(stop.summary, "Stop web on b");
  s.services[0].stopped_on = {"b", "c"};
  EXPECT_FALSE(NextVerbEdit(s, {true, "web", "b"})->has_value());
  VerbEdit start = Edit(s, {false, "web", "b"});
  EXPECT_EQ(start.value, "[c]");
  s.services[0].stopped_on = {"c"};
  VerbEdit last = Edit(s, {false, "web", "c"});
  EXPECT_FALSE(last.value.has_value());  // The key goes with its last machine.
}

TEST(VerbsTest, StartingOneMachineOfAStoppedServiceKeepsTheOthersStopped) {
  DesiredState s = State();
  s.services[0].state = RunState::kStopped;
  VerbEdit first = Edit(s, {false, "web", "b"});
  EXPECT_EQ(first.key, "stoppedOn");
  EXPECT_EQ(first.value, "[a, c]");
  s.services[0].stopped_on = {"a", "c"};
  VerbEdit second = Edit(s, {false, "web", "b"});
  EXPECT_EQ(second.key, "state");
  EXPECT_FALSE(second.value.has_value());
}

TEST(VerbsTest, TheWholeClusterAndBadNames) {
  DesiredState s = State();
  VerbEdit stop = Edit(s, {true, "", ""});
  EXPECT_EQ(stop.kind, "Cluster");
  EXPECT_EQ(stop.file, "cluster.yaml");
  EXPECT_EQ(stop.value, "stopped");
  EXPECT_FALSE(NextVerbEdit(s, {false, "", ""})->has_value());
  EXPECT_EQ(NextVerbEdit(s, {true, "nope", ""}).status().code(), Code::kNotFound);
  auto elsewhere = NextVerbEdit(s, {true, "web", "z"});
  EXPECT_EQ(elsewhere.status().code(), Code::kNotFound);
  EXPECT_NE(elsewhere.status().message().find("it runs on [a, b, c]"), std::string::npos);
}

}  // namespace
}  // namespace clusterctl::cli
