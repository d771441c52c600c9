#include "notify/sinks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

// httplib is heavy to compile: included in this file only.
#include <httplib.h>

#include "base/clock.h"

extern char** environ;

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
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : sink.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  if (err != 0) {
    close(in[1]);
    return Status(Code::kUnavailable,
                  "sink " + sink.name + ": cannot run " + sink.command[0] + ": " + strerror(err));
  }
  const SteadyTime deadline = SteadyNow() + std::chrono::seconds(sink.timeout_seconds);
  // Write the notification; a program that does not read it all is fine.
  signal(SIGPIPE, SIG_IGN);
  size_t off = 0;
  while (off < input.size() && SteadyNow() < deadline) {
    ssize_t n = write(in[1], input.data() + off, input.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      break;
    }
  }
  close(in[1]);
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR)
      return Status::Internal("waitpid: " + std::string(strerror(errno)));
    if (SteadyNow() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return Status(Code::kTimeout, "sink " + sink.name + ": " + sink.command[0] +
                                        " did not finish within " +
                                        std::to_string(sink.timeout_seconds) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status(Code::kUnavailable,
                "sink " + sink.name + ": " + sink.command[0] +
                    (WIFEXITED(status) ? " exited " + std::to_string(WEXITSTATUS(status))
                                       : " killed by signal " + std::to_string(WTERMSIG(status))));
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
