// Talking to a running clusterd over its HTTP API (docs/api.md), for
// `--server URL` and for when a clusterd owns the data directory: status,
// apply (sync), restart, suspend and resume then go through the daemon.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/context.h"

namespace clusterctl::cli {

// The daemon's base URL: --server, else http://<config listen>.
std::string ServerUrl(const Globals& g);

// Whether commands should go through the API: --server was given, or the
// data directory is held by another process (a running clusterd).
bool UseServer(const Globals& g);

// One authenticated call (bearer token from the config's tokenFile). A
// non-2xx answer is an error carrying the server's message.
Result<nlohmann::json> CallServer(const Globals& g, const std::string& method,
                                  const std::string& path, const nlohmann::json& body = nullptr);

}  // namespace clusterctl::cli
