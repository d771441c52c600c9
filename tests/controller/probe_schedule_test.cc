// Probe scheduling on a fake clock: what is due, when it is due again, and
// what leaves with its instance.
#include "controller/probe_schedule.h"

#include <gtest/gtest.h>

#include "base/clock.h"
#include "desired-state/loader.h"

namespace clusterctl::controller {
namespace {

desired_state::DesiredState Load() {
  std::vector<desired_state::SourceFile> files = {
      {"cluster.yaml",
       "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: lab}\nspec: {}\n"},
      {"machines.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m1}\nspec: {address: "
       "127.0.0.1}\n---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: m2}\nspec: "
       "{address: 127.0.0.2}\n"},
      {"services.yaml",
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: api}\nspec:\n"
       "  machines: [m1, m2]\n  process: {command: [/bin/true]}\n"
       "  readiness: {tcp: {port: 80}, periodSeconds: 2}\n"
       "  liveness: {tcp: {port: 80}, periodSeconds: 10}\n"
       "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: plain}\nspec:\n"
       "  machines: [m1]\n  process: {command: [/bin/true]}\n"},
  };
  desired_state::Revision rev;
  rev.commit = "0123456789abcdef0123456789abcdef01234567";
  desired_state::LoadResult r = desired_state::LoadFiles(files, rev);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.ToString());
  return r.ok() ? *r.state : desired_state::DesiredState{};
}

std::vector<std::string> Keys(const std::vector<reconcilers::ProbeRequest>& due) {
  std::vector<std::string> out;
  for (const auto& r : due) {
    out.push_back(r.service->name + "@" + r.machine->name + "/" +
                  reconcilers::ProbeRoleName(r.role));
  }
  return out;
}

TEST(ProbeScheduleTest, ARunningInstanceIsProbedAtOnceThenEveryPeriod) {
  const desired_state::DesiredState d = Load();
  FakeClock clock;
  ProbeSchedule s;
  const std::set<std::string> running = {"api@m1", "plain@m1"};
  EXPECT_EQ((std::vector<std::string>{"api@m1/readiness", "api@m1/liveness"}),
            Keys(s.TakeDue(d, running, clock.SteadyMs())));
  // Taken: not due again within the period.
  EXPECT_TRUE(s.TakeDue(d, running, clock.SteadyMs()).empty());
  clock.Advance(1999);
  EXPECT_TRUE(s.TakeDue(d, running, clock.SteadyMs()).empty());
  clock.Advance(1);
  EXPECT_EQ(std::vector<std::string>{"api@m1/readiness"},
            Keys(s.TakeDue(d, running, clock.SteadyMs())));
  clock.Advance(8000);  // 10 s after the first run.
  EXPECT_EQ((std::vector<std::string>{"api@m1/readiness", "api@m1/liveness"}),
            Keys(s.TakeDue(d, running, clock.SteadyMs())));
  EXPECT_EQ(clock.SteadyMs() + 2000, s.entries().at("api@m1/readiness"));
  EXPECT_EQ(clock.SteadyMs() + 10000, s.entries().at("api@m1/liveness"));
}

TEST(ProbeScheduleTest, AnInstanceThatDoesNotRunIsNotProbed) {
  const desired_state::DesiredState d = Load();
  ProbeSchedule s;
  EXPECT_TRUE(s.TakeDue(d, {}, 0).empty());
  // api@m2 starts running: probed at once; api@m1 is still down.
  EXPECT_EQ((std::vector<std::string>{"api@m2/readiness", "api@m2/liveness"}),
            Keys(s.TakeDue(d, {"api@m2"}, 100)));
}

TEST(ProbeScheduleTest, InstancesThatLeaveTheDesiredStateTakeTheirSchedules) {
  const desired_state::DesiredState d = Load();
  ProbeSchedule s;
  s.TakeDue(d, {"api@m1", "api@m2"}, 0);
  ASSERT_EQ(4u, s.entries().size());
  s.EraseGone({"api@m1"});
  EXPECT_EQ(2u, s.entries().size());
  EXPECT_EQ(1u, s.entries().count("api@m1/readiness"));
}

}  // namespace
}  // namespace clusterctl::controller
