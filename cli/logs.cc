// clusterctl logs SERVICE [--machine M] [-f] [--since D|T] [--lines N]: the
// service's log, read over SSH from every machine the service is placed on.
//
// One thread per machine runs the driver's log command
// (reconcilers::LogScript: `tail` of <stateDir>/<service>/log, or
// `journalctl --unit`) on a channel of the machine's SSH session
// (SshPool::Stream, the same connect path and host key check as status and
// apply). Lines go to stdout whole, one at a time under one lock, prefixed
// with the machine's name when there are several; control characters are
// escaped (EscapeForTerminal). SIGINT or SIGTERM cancels every stream (the
// remote command gets SIGTERM) and the command exits 0; a machine that
// fails is reported on stderr while the others go on, and the exit code is
// then 1.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/time_format.h"
#include "base/utf8.h"
#include "cli/commands.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "reconcilers/driver_scripts.h"
#include "reconcilers/target.h"

namespace clusterctl::cli {
namespace {

using nlohmann::json;

// A line longer than this is written in pieces of this size (each a line of
// its own), so a service that never prints a newline cannot grow memory.
constexpr size_t kMaxLineBytes = 64 << 10;

struct LogFlags {
  std::string service, machine, since;
  int64_t lines = 100;
  bool lines_given = false;
  bool follow = false;
};

// "a, b, c"
std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Splits a stream's pieces into lines (without their '\n').
class LineSplitter {
 public:
  template <typename Emit>
  void Feed(std::string_view data, const Emit& emit) {
    size_t start = 0;
    for (size_t nl; (nl = data.find('\n', start)) != std::string_view::npos; start = nl + 1) {
      partial_.append(data.substr(start, nl - start));
      EmitPieces(emit);
      emit(std::string_view(partial_));
      partial_.clear();
    }
    partial_.append(data.substr(start));
    EmitPieces(emit);
  }
  // The last line when the stream did not end with '\n'.
  template <typename Emit>
  void Finish(const Emit& emit) {
    if (!partial_.empty()) emit(std::string_view(partial_));
    partial_.clear();
  }

 private:
  template <typename Emit>
  void EmitPieces(const Emit& emit) {
    while (partial_.size() > kMaxLineBytes) {
      emit(std::string_view(partial_).substr(0, kMaxLineBytes));
      partial_.erase(0, kMaxLineBytes);
    }
  }
  std::string partial_;
};

// Writes the lines of every machine, one whole line at a time.
class Output {
 public:
  Output(bool as_json, const std::vector<std::string>& machines) : json_(as_json) {
    if (machines.size() > 1) {
      for (const auto& m : machines) width_ = std::max(width_, m.size() + 1);
    }
  }

  // A line of the log (stdout), or of the log command's own messages
  // (stderr: tail's and journalctl's complaints).
  void Line(const std::string& machine, std::string_view line, bool is_stderr) {
    std::string text;
    if (is_stderr) {
      text = "clusterctl: " + machine + ": " + EscapeForTerminal(line) + "\n";
    } else if (json_) {
      text = json{{"machine", machine}, {"line", std::string(line)}}.dump(
                 -1, ' ', false, json::error_handler_t::replace) +
             "\n";
    } else {
      if (width_ > 0) text = machine + ":" + std::string(width_ - machine.size(), ' ');
      text += EscapeForTerminal(line) + "\n";
    }
    std::lock_guard<std::mutex> l(mu_);
    FILE* f = is_stderr ? stderr : stdout;
    std::fwrite(text.data(), 1, text.size(), f);
    std::fflush(f);
  }

  // A machine whose log cannot be read.
  void Failed(const std::string& machine, const Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    if (json_) {
      const std::string text =
          json{{"machine", machine},
               {"error", {{"code", CodeName(s.code())}, {"message", s.message()}}}}
              .dump(-1, ' ', false, json::error_handler_t::replace) +
          "\n";
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    } else {
      std::fprintf(stderr, "clusterctl: error: %s: %s\n", machine.c_str(),
                   EscapeForTerminal(s.message()).c_str());
    }
  }

 private:
  const bool json_;
  size_t width_ = 0;  // of "machine:" plus one space; 0 = no prefix
  std::mutex mu_;
};

// The request of the flags: --lines, -f and --since (a duration relative
// to the machine's clock, or an absolute time).
Result<reconcilers::LogRequest> MakeRequest(const LogFlags& f) {
  reconcilers::LogRequest r;
  if (f.lines < 0) return Status::Invalid("--lines must be 0 or more");
  r.lines = f.lines;
  r.follow = f.follow;
  if (f.since.empty()) return r;
  // Without --lines, --since means every line since then.
  if (!f.lines_given) r.lines = -1;
  if (auto d = ParseDurationMs(f.since); d.ok()) {
    r.since_ago_s = (*d + 999) / 1000;
    return r;
  }
  auto t = ParseTimeFlag(f.since, WallClockMs());
  if (!t.ok()) return t.status().Annotate("--since");
  r.since_epoch_s = *t / 1000;
  return r;
}

// The machines to read: where the service is placed (its machines or
// machineSelector), or the one --machine names.
Result<std::vector<const desired_state::Machine*>> Machines(
    const desired_state::DesiredState& desired, const LogFlags& f) {
  const std::string rev = " in revision " + desired.revision.Short();
  const desired_state::Service* s = desired.FindService(f.service);
  if (s == nullptr) {
    std::vector<std::string> names;
    for (const auto& svc : desired.services) names.push_back(svc.name);
    return Status::NotFound("no service \"" + f.service + "\"" + rev +
                            "; services: " + (names.empty() ? "none" : Join(names)));
  }
  // The instances: the service's machines, or those its machineSelector
  // matches.
  std::vector<std::string> placed;
  for (const auto& i : desired.instances) {
    if (i.service == f.service) placed.push_back(i.machine);
  }
  if (placed.empty()) {
    return Status::NotFound("service " + f.service + " is placed on no machine" + rev);
  }
  if (!f.machine.empty() && desired.FindMachine(f.machine) == nullptr) {
    std::vector<std::string> names;
    for (const auto& m : desired.machines) names.push_back(m.name);
    return Status::NotFound("no machine \"" + f.machine + "\"" + rev +
                            "; machines: " + Join(names));
  }
  std::vector<const desired_state::Machine*> out;
  for (const auto& name : placed) {
    if (f.machine.empty() || name == f.machine) out.push_back(desired.FindMachine(name));
  }
  if (out.empty()) {
    return Status::NotFound("service " + f.service + " is not placed on machine " + f.machine +
                            rev + "; it is placed on " + Join(placed));
  }
  return out;
}

int RunLogs(Globals* g, const LogFlags& f) {
  // First, before any other thread exists (signals.h).
  std::atomic<bool> cancelled{false};
  SignalThread signals([&cancelled](int) { cancelled = true; });

  auto request = MakeRequest(f);
  if (!request.ok()) return ReportError(*g, request.status());
  Status st;
  auto desired = LoadDesired(*g, "", &st);
  if (!desired) return ReportError(*g, st);
  auto machines = Machines(*desired, f);
  if (!machines.ok()) return ReportError(*g, machines.status());
  const desired_state::Service& service = *desired->FindService(f.service);
  std::vector<std::string> scripts, names;
  for (const auto* m : *machines) {
    auto script = reconcilers::LogScript(*m, service, *request);
    if (!script.ok()) return ReportError(*g, script.status());
    scripts.push_back(std::move(*script));
    names.push_back(m->name);
  }

  reconcilers::SshPool pool(SshOptionsOf(*g));
  Output out(g->json, names);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < machines->size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string& name = names[i];
      LineSplitter lines[2];
      auto sink = [&](std::string_view data, bool is_stderr) {
        lines[is_stderr].Feed(data,
                              [&](std::string_view line) { out.Line(name, line, is_stderr); });
      };
      auto code = pool.Stream(reconcilers::TargetFor(*(*machines)[i]), scripts[i], sink,
                              [&cancelled] { return cancelled.load(); });
      for (int k = 0; k < 2; ++k) {
        lines[k].Finish([&](std::string_view line) { out.Line(name, line, k == 1); });
      }
      if (!code.ok()) {
        failed = true;
        out.Failed(name, code.status());
      } else if (*code != 0 && !cancelled) {
        failed = true;
        out.Failed(name, Status::Unavailable(
                             "the log command (" +
                             std::string(service.driver == desired_state::DriverKind::kSystemd
                                             ? "journalctl"
                                             : "tail") +
                             ") ended with exit code " + std::to_string(*code)));
      }
    });
  }
  for (auto& t : threads) t.join();
  return failed ? kExitError : kExitOk;
}

}  // namespace

CommandFn SetupLogs(CLI::App* sub, Globals* g) {
  auto f = std::make_shared<LogFlags>();
  sub->add_option("SERVICE", f->service, "Service whose log to print")->required();
  sub->add_option("--machine", f->machine, "Only this machine's log")->type_name("M");
  sub->add_flag("-f,--follow", f->follow,
                "Keep printing new lines as the service writes them, until Ctrl-C");
  CLI::Option* lines =
      sub->add_option("--lines", f->lines,
                      "Print the last N lines first (with -f: then follow). Default: 100; "
                      "with --since: every line since then")
          ->type_name("N")
          ->check(CLI::NonNegativeNumber);
  sub->add_option("--since", f->since,
                  "Only lines written since then: a duration before now (10m, 2h, 1h30m) or "
                  "an RFC 3339 time. systemd services only: a process-driver log has no "
                  "timestamps")
      ->type_name("DURATION|TIME");
  sub->footer(
      "Reads the log over SSH from every machine the service is placed on, with the\n"
      "host key checks of every other command: the process driver's\n"
      "<stateDir>/<service>/log (stdout and stderr), or journalctl --unit for systemd.\n"
      "With several machines each line starts with the machine's name. Control\n"
      "characters the service printed are shown escaped (\\x1b). Exit 0; 1 when a\n"
      "machine's log could not be read (the others are still printed).\n"
      "Examples:\n"
      "  clusterctl logs ollama                       # last 100 lines\n"
      "  clusterctl logs tools-server -f              # follow, Ctrl-C to stop\n"
      "  clusterctl logs haproxy --machine cpu-coordinator --lines 20\n"
      "  clusterctl logs redis-server --since 10m     # systemd services\n"
      "  clusterctl logs ollama -f --json | jq -r .line");
  return [g, f, lines] {
    f->lines_given = lines->count() > 0;
    return RunLogs(g, *f);
  };
}

}  // namespace clusterctl::cli
