#include "notify/sinks.h"

// httplib is heavy to compile: included in this file only.
#include <httplib.h>

#include "base/subprocess.h"

namespace clusterctl::notify {

using nlohmann::json;

bool SplitUrl(const std::string& url, std::string* origin, std::string* path) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return false;
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return false;
  const size_t host_begin = scheme_end + 3;
  size_t path_begin = url.find_first_of("/?", host_begin);
  if (path_begin == std::string::npos) path_begin = url.size();
  if (path_begin == host_begin) return false;
  *origin = url.substr(0, path_begin);
  *path = path_begin < url.size() ? url.substr(path_begin) : "/";
  if ((*path)[0] == '?') *path = "/" + *path;
  return true;
}

namespace {

Status Post(const SinkConfig& sink, const std::string& body, const httplib::Headers& headers) {
  std::string origin, path;
  if (!SplitUrl(sink.url, &origin, &path)) {
    return Status::Invalid("sink " + sink.name + ": the URL in its urlFile is not http(s)");
  }
  httplib::Client client(origin);
  client.set_connection_timeout(sink.timeout_seconds, 0);
  client.set_read_timeout(sink.timeout_seconds, 0);
  client.set_write_timeout(sink.timeout_seconds, 0);
  auto res = client.Post(path, headers, body, "application/json");
  if (!res) {
    return Status(Code::kUnavailable, "sink " + sink.name + ": " + httplib::to_string(res.error()));
  }
  if (res->status < 200 || res->status > 299) {
    return Status(Code::kUnavailable,
                  "sink " + sink.name + ": answered " + std::to_string(res->status));
  }
  return Status::Ok();
}

// Runs argv with `input` on stdin; OK when it exits 0 within the timeout.
Status RunCommand(const SinkConfig& sink, const std::string& input) {
  if (sink.command.empty()) return Status::Invalid("sink " + sink.name + ": no command");
  ProcessOptions options;
  options.input = input;
  options.timeout_ms = sink.timeout_seconds * 1000;
  options.capture_output = false;
  Result<ProcessResult> r = RunProcess(sink.command, options);
  if (!r.ok()) return Status(r.status().code(), "sink " + sink.name + ": " + r.status().message());
  if (r->exit_code == 0) return Status::Ok();
  return Status(Code::kUnavailable,
                "sink " + sink.name + ": " + sink.command[0] + " " + DescribeExit(*r));
}

}  // namespace

Status Deliver(const SinkConfig& sink, const json& notification) {
  switch (sink.type) {
    case SinkType::kWebhook: {
      const std::string body = notification.dump();
      httplib::Headers headers = {{"X-Clusterctl-Delivery", notification.value("id", "")},
                                  {"X-Clusterctl-Event", notification.value("event", "")}};
      if (!sink.secret.empty()) {
        headers.emplace("X-Clusterctl-Signature-256", Signature(sink.secret, body));
      }
      return Post(sink, body, headers);
    }
    case SinkType::kSlack:
      return Post(sink, SlackBody(notification).dump(), {});
    case SinkType::kCommand:
      return RunCommand(sink, notification.dump() + "\n");
  }
  return Status::Internal("unknown sink type");
}

}  // namespace clusterctl::notify
