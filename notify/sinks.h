// Delivery of one notification to one sink: the I/O behind notify/.
//
//   webhook  POST the notification JSON to the URL, with
//            X-Clusterctl-Delivery: <notification id>,
//            X-Clusterctl-Event: <event>, and (secretFile set)
//            X-Clusterctl-Signature-256: sha256=<HMAC-SHA256 of the body>
//   slack    POST SlackBody() of it to the incoming-webhook URL
//   command  run the argv (no shell) with the JSON on stdin; exit 0 is
//            delivered; killed after timeoutSeconds
//
// A 2xx answer is delivered; anything else is an error to retry. Error
// messages never contain the URL (it may carry a token).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"
#include "notify/notification.h"

namespace clusterctl::notify {

Status Deliver(const SinkConfig& sink, const nlohmann::json& notification);

// "https://host:8443/a/b?c" -> {"https://host:8443", "/a/b?c"}; false when
// it is not an http(s) URL.
bool SplitUrl(const std::string& url, std::string* origin, std::string* path);

}  // namespace clusterctl::notify
