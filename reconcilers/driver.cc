#include "reconcilers/driver.h"

#include <chrono>

#include "reconcilers/driver_scripts.h"

namespace clusterctl::reconcilers {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// The last line of a command's stderr, shortened, for error messages.
std::string LastLine(const std::string& text) {
  std::string t = Trim(text);
  size_t nl = t.rfind('\n');
  if (nl != std::string::npos) t = t.substr(nl + 1);
  return t.size() > 200 ? t.substr(0, 200) + "..." : t;
}

// "started 4242" -> "started pid 4242"; "terminated" -> "terminated by SIGTERM".
std::string Describe(const std::string& out, int stop_timeout_seconds) {
  std::string result;
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    std::string line = out.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? out.size() : nl + 1;
    if (line.empty()) continue;
    std::string d;
    if (line.rfind("started ", 0) == 0) {
      d = "started pid " + line.substr(8);
    } else if (line == "started") {
      d = "started";
    } else if (line.rfind("already-running", 0) == 0) {
      d = "already running" + (line.size() > 16 ? " (pid " + line.substr(16) + ")" : "");
    } else if (line == "terminated") {
      d = "terminated by SIGTERM";
    } else if (line == "killed") {
      d = "killed by SIGKILL after " + std::to_string(stop_timeout_seconds) + " s";
    } else if (line == "not-running") {
      d = "was not running";
    } else {
      d = line;
    }
    result += (result.empty() ? "" : ", then ") + d;
  }
  return result;
}

}  // namespace

ShellDriver::ShellDriver(CommandRunner* runner, Options options)
    : runner_(runner), options_(std::move(options)) {}

Result<MachineObservation> ShellDriver::Observe(
    const desired_state::Machine& machine,
    const std::vector<const desired_state::Service*>& services) {
  auto r = runner_->Run(TargetFor(machine),
                        Command(ObserveScript(machine, services), ShellLibrary(), /*trusted=*/true,
                                Purpose::kObserve),
                        options_.observe_timeout);
  if (!r.ok()) return r.status().Annotate("observing machine \"" + machine.name + "\"");
  if (r->exit_code != 0) {
    return Status::Internal("observing machine \"" + machine.name + "\": exit " +
                            std::to_string(r->exit_code) + ": " + LastLine(r->err));
  }
  return ParseObservation(machine, services, r->out, ClockOr(options_.clock).WallMs());
}

Result<std::string> ShellDriver::RunAction(const desired_state::Machine& machine,
                                           const desired_state::Service& service, const char* verb,
                                           const std::string& script) {
  auto timeout = options_.command_timeout + std::chrono::seconds(service.stop_timeout_seconds);
  auto r =
      runner_->Run(TargetFor(machine),
                   Command(script, ShellLibrary(), /*trusted=*/true, Purpose::kAction), timeout);
  const std::string what = std::string(verb) + " " + service.name + "@" + machine.name;
  if (!r.ok()) return r.status().Annotate(what);
  if (r->exit_code != 0) {
    std::string why = LastLine(r->err);
    if (why.empty()) why = LastLine(r->out);
    return Status::Internal(what + ": exit " + std::to_string(r->exit_code) +
                            (why.empty() ? "" : ": " + why));
  }
  return Describe(r->out, service.stop_timeout_seconds);
}

Result<std::string> ShellDriver::Start(const desired_state::Machine& m,
                                       const desired_state::Service& s, const std::string& hash) {
  return RunAction(m, s, "start", StartScript(m, s, hash));
}

Result<std::string> ShellDriver::Stop(const desired_state::Machine& m,
                                      const desired_state::Service& s) {
  return RunAction(m, s, "stop", StopScript(m, s));
}

Result<std::string> ShellDriver::Restart(const desired_state::Machine& m,
                                         const desired_state::Service& s, const std::string& hash) {
  return RunAction(m, s, "restart", RestartScript(m, s, hash));
}

}  // namespace clusterctl::reconcilers
