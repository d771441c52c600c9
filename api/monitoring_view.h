// The monitoring answers of the API as JSON (docs/api.md, docs/monitoring.md):
//
//   AlertJson    one alert of GET /api/v1/alerts and of an ack's answer
//   BuildHealth  GET /api/v1/health from the status document and the
//                firing alerts: overall state, machines and instances by
//                state, critical services down, the last check time
//   StatsJson    GET /api/v1/stats
//
// Pure.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "alerts/alert_book.h"
#include "api/daemon_view.h"

namespace clusterctl::api {

nlohmann::json AlertJson(const alerts::Alert& a);
nlohmann::json BuildHealth(const nlohmann::json& status, const std::vector<alerts::Alert>& firing);
nlohmann::json StatsJson(const StatsView& s);

}  // namespace clusterctl::api
