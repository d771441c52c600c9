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

// The bearer token: the first line of the config's tokenFile, trailing
// whitespace removed. No tokenFile, an unreadable one or an empty one is
// kPermission naming the file (never an empty token sent).
Result<std::string> ReadApiToken(const Globals& g);

// One authenticated call (bearer token from ReadApiToken()). A non-2xx
// answer is an error carrying the server's message, with the code of what
// went wrong: 400/411/413/415/431 kInvalid, 401/403 kPermission, 404
// kNotFound, 409 kConflict, 408/429/503 kUnavailable, 504 kTimeout, other
// 5xx kInternal; cannot connect is kUnavailable.
Result<nlohmann::json> CallServer(const Globals& g, const std::string& method,
                                  const std::string& path, const nlohmann::json& body = nullptr);

}  // namespace clusterctl::cli
