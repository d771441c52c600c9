// Notifications: what clusterd sends about an alert event, to whom, and the
// pure rules around it (docs/monitoring.md documents the JSON schema).
//
//   NotifyConfig       the config's `notify:` block, secrets already read
//   BuildNotification  the JSON body every sink gets (a webhook verbatim, a
//                      command on its stdin; Slack gets SlackBody of it)
//   Wants              whether a sink takes an event (its severities and
//                      kinds; held while the alert is acknowledged)
//   RetryDelayMs       the backoff between delivery attempts
//   Signature          the HMAC-SHA256 header value of a body
//
// Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "alerts/alert_book.h"

namespace clusterctl::notify {

enum class SinkType { kWebhook, kSlack, kCommand };
const char* SinkTypeName(SinkType t);

struct SinkConfig {
  std::string name;
  SinkType type = SinkType::kWebhook;
  // webhook, slack: the URL, read from urlFile (it may carry a token). Never
  // logged or served.
  std::string url;
  std::string url_file;
  // webhook: the HMAC key (secretFile); empty: no signature header.
  std::string secret;
  std::string secret_file;
  // command: argv, run without a shell; the notification on its stdin.
  std::vector<std::string> command;
  // Empty: every severity / kind.
  std::set<std::string> severities, kinds;
  // A new firing of the same dedup key within this is not sent again.
  int cooldown_seconds = 300;
  int timeout_seconds = 10;
};

struct NotifyConfig {
  std::vector<SinkConfig> sinks;
  size_t outbox_max = 10000;  // Per sink; the oldest is dropped past it.
  int retry_initial_ms = 1000;
  int retry_max_ms = 300000;
};

// The body: {id, event, time, alert: {...}, controller}. `controller`
// names this clusterd (its actor).
nlohmann::json BuildNotification(const alerts::AlertEvent& e, const std::string& controller);
// A Slack-compatible incoming-webhook body ({text, blocks}) for a notification.
nlohmann::json SlackBody(const nlohmann::json& notification);
// One line for people: "[critical] FIRING crash_loop api@m1: ...".
std::string Summary(const nlohmann::json& notification);

// The sink's filters; events of an acknowledged alert are held (except
// ack_expired, which ends the silence).
bool Wants(const SinkConfig& sink, const alerts::AlertEvent& e);

// Attempt n (1-based) failed: wait initial * 2^(n-1), at most max.
int64_t RetryDelayMs(const NotifyConfig& c, int attempts);

// "sha256=<hex of HMAC-SHA256(secret, body)>", the X-Clusterctl-Signature-256 header.
std::string Signature(const std::string& secret, const std::string& body);

}  // namespace clusterctl::notify
