// The monitoring answers (api/monitoring_view.h): the health summary from a
// status document and the firing alerts, and the public alert form.
#include "api/monitoring_view.h"

#include <gtest/gtest.h>

namespace clusterctl::api {
namespace {

using nlohmann::json;

const json kStatus = json::parse(R"({
  "timestamp": "2026-12-07T10:00:00.000Z", "overall_status": "degraded", "revision": "abc",
  "suspended": false, "reasons": ["tools-server@worker-tools not ready"],
  "machines": {"m1": {"reachable": true}, "m2": {"reachable": false}},
  "services": {
    "redis": {"critical": true, "instances": {
      "m1": {"desired": "running", "state": "running", "ready": true, "in_sync": true},
      "m2": {"desired": "running", "state": "unknown", "ready": false, "in_sync": false}}},
    "api": {"critical": false, "instances": {
      "m1": {"desired": "running", "state": "failed", "ready": false, "in_sync": false}}},
    "old": {"critical": true, "instances": {
      "m1": {"desired": "stopped", "state": "stopped", "ready": false, "in_sync": true}}}
  }})");

TEST(HealthTest, CountsMachinesInstancesAndCriticalServicesDown) {
  alerts::Alert a;
  a.severity = "critical";
  alerts::Alert b;
  b.severity = "warning";
  b.ack = alerts::Ack{"alice@laptop", "", 1, 2};
  const json h = BuildHealth(kStatus, {a, b});
  EXPECT_EQ(h["status"], "degraded");
  EXPECT_EQ(h["last_check"], "2026-12-07T10:00:00.000Z");
  EXPECT_EQ(h["machines"], json::parse(R"({"total": 2, "reachable": 1, "unreachable": 1})"));
  EXPECT_EQ(h["instances"], json::parse(R"({"total": 4, "running": 1, "stopped": 1, "failed": 1,
                                            "unknown": 1, "ready": 1, "in_sync": 2})"));
  // redis is critical and down on m2; old is critical but meant to be stopped;
  // api is down but not critical.
  EXPECT_EQ(h["critical_services_down"],
            json::parse(R"([{"service": "redis", "machines": ["m2"]}])"));
  EXPECT_EQ(h["alerts"], json::parse(R"({"firing": 2, "info": 0, "warning": 1, "critical": 1,
                                         "acknowledged": 1})"));
  EXPECT_EQ(h["reasons"], kStatus["reasons"]);
}

TEST(HealthTest, ADocumentWithoutObservationIsUnhealthyWithZeroCounts) {
  const json h = BuildHealth(json::object(), {});
  EXPECT_EQ(h["status"], "unhealthy");
  EXPECT_EQ(h["instances"]["total"], 0);
  EXPECT_TRUE(h["critical_services_down"].empty());
}

}  // namespace
}  // namespace clusterctl::api
