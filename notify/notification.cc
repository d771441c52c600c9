#include "notify/notification.h"

#include <algorithm>

#include "base/sha256.h"
#include "base/time_format.h"

namespace clusterctl::notify {

using nlohmann::json;

const char* SinkTypeName(SinkType t) {
  switch (t) {
    case SinkType::kWebhook:
      return "webhook";
    case SinkType::kSlack:
      return "slack";
    case SinkType::kCommand:
      return "command";
  }
  return "webhook";
}

json BuildNotification(const alerts::AlertEvent& e, const std::string& controller) {
  const alerts::Alert& a = e.alert;
  json alert = {{"id", a.id},
                {"key", a.key},
                {"kind", a.kind},
                {"machine", a.machine},
                {"service", a.service},
                {"severity", a.severity},
                {"message", a.message},
                {"state", a.State()},
                {"first_seen", FormatRfc3339Ms(a.first_seen_ms)},
                {"last_seen", FormatRfc3339Ms(a.last_seen_ms)},
                {"count", a.count},
                {"level", a.level}};
  if (!a.firing) alert["resolved"] = FormatRfc3339Ms(a.resolved_ms);
  return {{"id", e.Id()},
          {"event", alerts::EventName(e.type)},
          {"time", FormatRfc3339Ms(e.at_ms)},
          {"controller", controller},
          {"alert", alert}};
}

std::string Summary(const json& n) {
  const json& a = n["alert"];
  std::string event = n.value("event", "");
  std::transform(event.begin(), event.end(), event.begin(), [](char c) {
    return c == '_' ? ' ' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  });
  std::string where;
  const std::string machine = a.value("machine", ""), service = a.value("service", "");
  if (!service.empty()) where = service + (machine.empty() ? "" : "@" + machine);
  if (service.empty() && !machine.empty()) where = machine;
  std::string line = "[" + a.value("severity", "") + "] " + event + " " + a.value("kind", "");
  if (!where.empty()) line += " " + where;
  if (n.value("event", "") == "escalated")
    line += " (level " + std::to_string(a.value("level", 0)) + ")";
  return line + ": " + a.value("message", "");
}

json SlackBody(const json& n) {
  const std::string text = Summary(n);
  const json& a = n["alert"];
  std::string fields = "*alert* " + std::to_string(a.value("id", 0)) + " · *key* `" +
                       a.value("key", "") + "` · *since* " + a.value("first_seen", "") +
                       " · *count* " + std::to_string(a.value("count", 1));
  return {{"text", text},
          {"blocks",
           json::array({{{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", text}}}},
                        {{"type", "context"},
                         {"elements", json::array({{{"type", "mrkdwn"}, {"text", fields}}})}}})}};
}

bool Wants(const SinkConfig& sink, const alerts::AlertEvent& e) {
  if (!sink.severities.empty() && !sink.severities.count(e.alert.severity)) return false;
  if (!sink.kinds.empty() && !sink.kinds.count(e.alert.kind)) return false;
  if (e.type != alerts::EventType::kAckExpired && e.alert.Acked(e.at_ms)) return false;
  return true;
}

int64_t RetryDelayMs(const NotifyConfig& c, int attempts) {
  int64_t delay = std::max(c.retry_initial_ms, 1);
  for (int i = 1; i < attempts && delay < c.retry_max_ms; ++i) delay *= 2;
  return std::min<int64_t>(delay, std::max(c.retry_max_ms, 1));
}

std::string Signature(const std::string& secret, const std::string& body) {
  const Sha256Digest mac = HmacSha256(secret, body);
  return "sha256=" + HexEncode(mac.data(), mac.size());
}

}  // namespace clusterctl::notify
