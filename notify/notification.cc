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
  const json alert = alerts::PublicJson(e.alert);
  return {{"id", e.Id()},
          {"event", alerts::EventName(e.type)},
          {"time", FormatRfc3339Ms(e.at_ms)},
          {"controller", controller},
          {"alert", alert}};
}

namespace {
// A string member of `j`, "" when it is absent, null or not a string.
std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
}  // namespace

std::string Summary(const json& n) {
  const json& a = n["alert"];
  std::string event = n.value("event", "");
  std::transform(event.begin(), event.end(), event.begin(), [](char c) {
    return c == '_' ? ' ' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  });
  std::string where;
  const std::string machine = Str(a, "machine"), service = Str(a, "service");
  if (!service.empty()) where = service + (machine.empty() ? "" : "@" + machine);
  if (service.empty() && !machine.empty()) where = machine;
  std::string line = "[" + Str(a, "severity") + "] " + event + " " + Str(a, "kind");
  if (!where.empty()) line += " " + where;
  if (n.value("event", "") == "escalated")
    line += " (level " + std::to_string(a.value("level", 0)) + ")";
  return line + ": " + Str(a, "message");
}

json SlackBody(const json& n) {
  const std::string text = Summary(n);
  const json& a = n["alert"];
  std::string fields = "*alert* " + Str(a, "id") + " · *key* `" + Str(a, "key") + "` · *since* " +
                       Str(a, "since") + " · *count* " + std::to_string(a.value("count", 1));
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
