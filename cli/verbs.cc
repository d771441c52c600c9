// clusterctl stop|start: see verbs.h.
#include "cli/verbs.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "base/clock.h"
#include "cli/commands.h"
#include "cli/remote.h"
#include "desired-state/yaml_edit.h"

namespace clusterctl::cli {

using desired_state::DesiredState;
using desired_state::RunState;
using nlohmann::json;

namespace {

std::string FlowList(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out + "]";
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

Result<std::optional<VerbEdit>> NextVerbEdit(const DesiredState& state,
                                             const VerbRequest& request) {
  const char* verb = request.stop ? "Stop" : "Start";
  if (request.service.empty()) {
    const bool stopped = state.cluster.state == RunState::kStopped;
    if (stopped == request.stop) return std::optional<VerbEdit>();
    VerbEdit e{
        state.cluster.where.file,          "Cluster", state.cluster.name, "state", std::nullopt,
        std::string(verb) + " the cluster"};
    if (request.stop) e.value = "stopped";
    return std::optional<VerbEdit>(e);
  }
  const desired_state::Service* s = state.FindService(request.service);
  if (s == nullptr) {
    return Status::NotFound("no service named \"" + request.service +
                            "\" in the desired state; clusterctl status lists them");
  }
  if (!request.machine.empty() && !Contains(s->machines, request.machine)) {
    return Status::NotFound(request.service + " does not run on " + request.machine +
                            " (it runs on " + FlowList(s->machines) + ")");
  }
  VerbEdit e{
      s->where.file, "Service", s->name, "", std::nullopt, std::string(verb) + " " + s->name};
  if (!request.machine.empty()) e.summary += " on " + request.machine;
  const bool stopped = s->state == RunState::kStopped;
  std::vector<std::string> stopped_on = s->stopped_on;
  if (request.stop) {
    if (stopped) return std::optional<VerbEdit>();
    if (request.machine.empty()) {
      e.key = "state", e.value = "stopped";
    } else {
      if (Contains(stopped_on, request.machine)) return std::optional<VerbEdit>();
      stopped_on.push_back(request.machine);
      e.key = "stoppedOn", e.value = FlowList(stopped_on);
    }
    return std::optional<VerbEdit>(e);
  }
  if (request.machine.empty()) {
    if (stopped) {
      e.key = "state";
    } else if (!stopped_on.empty()) {
      e.key = "stoppedOn";
    } else {
      return std::optional<VerbEdit>();
    }
    return std::optional<VerbEdit>(e);
  }
  if (Contains(stopped_on, request.machine)) {
    stopped_on.erase(std::find(stopped_on.begin(), stopped_on.end(), request.machine));
  } else if (!stopped) {
    return std::optional<VerbEdit>();
  }
  if (stopped) {
    // Stopped everywhere: keep the others stopped before the service runs again.
    for (const auto& m : s->machines) {
      if (m != request.machine && !Contains(stopped_on, m)) stopped_on.push_back(m);
    }
    if (stopped_on != s->stopped_on) {
      e.key = "stoppedOn", e.value = FlowList(stopped_on);
    } else {
      e.key = "state";
    }
    return std::optional<VerbEdit>(e);
  }
  e.key = "stoppedOn";
  if (!stopped_on.empty()) e.value = FlowList(stopped_on);
  return std::optional<VerbEdit>(e);
}

namespace {

struct VerbOptions {
  VerbRequest request;
  std::string reason;
  bool wait = false;
  bool no_push = false;
  int timeout_seconds = 300;
};

std::string CommandLine(const VerbOptions& o) {
  std::string line = std::string("clusterctl ") + (o.request.stop ? "stop" : "start");
  if (!o.request.service.empty()) line += " " + o.request.service;
  if (!o.request.machine.empty()) line += " --machine " + o.request.machine;
  return line;
}

// The files of the head with every edit of the request applied, each
// checked by loading the whole revision again.
struct Change {
  std::vector<desired_state::GitSource::FileEdit> files;
  std::string summary;
  std::optional<DesiredState> after;
};

Result<Change> ComputeChange(const Globals& g, desired_state::Snapshot snapshot,
                             const VerbRequest& request) {
  Change change;
  for (int round = 0; round < 3; ++round) {
    desired_state::LoadResult loaded = desired_state::Load(snapshot, g.load_options);
    if (!loaded.ok()) {
      std::string errors = loaded.errors.ToString();
      if (!errors.empty() && errors.back() == '\n') errors.pop_back();
      return Status::Invalid(
          (round == 0 ? "the branch head is invalid; fix it first:\n"
                      : "the edited desired state is invalid (nothing was written):\n") +
          errors);
    }
    auto edit = NextVerbEdit(*loaded.state, request);
    if (!edit.ok()) return edit.status();
    if (!*edit) {
      change.after = std::move(loaded.state);
      return change;
    }
    const VerbEdit& e = **edit;
    if (change.summary.empty()) change.summary = e.summary;
    auto file = std::find_if(snapshot.files.begin(), snapshot.files.end(),
                             [&](const desired_state::SourceFile& f) { return f.path == e.file; });
    if (file == snapshot.files.end()) return Status::Internal("lost track of " + e.file);
    auto edited = desired_state::SetSpecKey(e.file, file->content, e.kind, e.name, e.key, e.value);
    if (!edited.ok()) return edited.status();
    file->content = *edited;
    auto known = std::find_if(change.files.begin(), change.files.end(),
                              [&](const auto& f) { return f.path == e.file; });
    if (known == change.files.end()) {
      change.files.push_back({e.file, *edited});
    } else {
      known->content = *edited;
    }
  }
  return Status::Internal("the edit did not settle after 3 rounds");
}

// Whether the instances the request names reached their desired state in
// clusterd's status (`after` is the desired state of the new revision).
bool Converged(const json& status, const DesiredState& after, const VerbRequest& r,
               std::string* progress) {
  int done = 0, total = 0;
  for (const auto& inst : after.instances) {
    if (!r.service.empty() && inst.service != r.service) continue;
    if (!r.machine.empty() && inst.machine != r.machine) continue;
    ++total;
    const json* observed = nullptr;
    if (status.contains("services") && status["services"].contains(inst.service) &&
        status["services"][inst.service].contains("instances") &&
        status["services"][inst.service]["instances"].contains(inst.machine)) {
      observed = &status["services"][inst.service]["instances"][inst.machine];
    }
    const std::string state = observed ? observed->value("state", "") : "";
    const bool ok = inst.desired == RunState::kRunning
                        ? state == "running" && observed->value("ready", false)
                        : observed == nullptr || state == "stopped";
    done += ok ? 1 : 0;
  }
  *progress = std::to_string(done) + "/" + std::to_string(total) + " instances " +
              (r.stop ? "stopped" : "running and ready");
  return done == total;
}

int WaitForClusterd(Globals* g, const std::string& commit, const DesiredState& after,
                    const VerbOptions& o) {
  if (auto synced = CallServer(*g, "POST", "/api/v1/sync"); !synced.ok()) {
    return ReportError(*g, synced.status().Annotate("asking clusterd to sync (--wait)"));
  }
  const auto deadline = SteadyNow() + std::chrono::seconds(o.timeout_seconds);
  std::string last;
  while (SteadyNow() < deadline) {
    auto revisions = CallServer(*g, "GET", "/api/v1/revisions");
    if (revisions.ok() && revisions->is_array()) {
      for (const json& r : *revisions) {
        if (r.value("commit", "") == commit && r.value("result", "") == "rejected") {
          return ReportError(*g, Status::Invalid("clusterd refused " + commit.substr(0, 7) + ": " +
                                                 r.value("detail", r.dump())));
        }
      }
    }
    auto status = CallServer(*g, "GET", "/api/v1/status");
    if (status.ok() && status->value("revision", "") == commit) {
      std::string progress;
      const bool done = Converged(*status, after, o.request, &progress);
      if (!g->json && progress != last) std::cerr << "  " << progress << "\n";
      last = progress;
      if (done) return kExitOk;
    } else if (!g->json && last.empty()) {
      last = "waiting for clusterd to pick up " + commit.substr(0, 7);
      std::cerr << "  " << last << "\n";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return ReportError(
      *g,
      Status::Timeout("clusterd did not converge " + commit.substr(0, 7) + " within " +
                      std::to_string(o.timeout_seconds) + " s (--timeout); see clusterctl why " +
                      (o.request.service.empty() ? "SERVICE" : o.request.service)));
}

int RunVerb(Globals* g, const VerbOptions& o) {
  if (!o.request.machine.empty() && o.request.service.empty()) {
    return ReportError(*g, Status::Invalid("--machine needs a SERVICE"));
  }
  desired_state::CommitSigner signer;
  if (!o.no_push) {
    if (Status s = controller::CommitSignerOf(g->config, &signer); !s.ok()) {
      return ReportError(*g, s);
    }
  }
  auto source = g->OpenSource();
  if (!source.ok()) return ReportError(*g, source.status());
  // A push that loses a race with another push is made again on the new head.
  for (int attempt = 0;; ++attempt) {
    auto head = (*source)->Read("");
    if (!head.ok()) return ReportError(*g, head.status());
    auto change = ComputeChange(*g, *head, o.request);
    if (!change.ok()) return ReportError(*g, change.status());
    if (change->files.empty()) {
      const std::string what = o.request.service.empty() ? "the cluster" : o.request.service;
      if (g->json) {
        std::cout << json{{"commit", nullptr}, {"changed", false}}.dump() << "\n";
      } else {
        std::cout << what << (o.request.machine.empty() ? "" : " on " + o.request.machine)
                  << " is already " << (o.request.stop ? "stopped" : "started")
                  << " in git: nothing to commit\n";
      }
      if (!o.wait) return kExitOk;
      return WaitForClusterd(g, head->revision.commit, *change->after, o);
    }
    const std::string message =
        change->summary + "\n\n" +
        (o.reason.empty() ? "Requested with " + CommandLine(o) + "." : o.reason) +
        "\n\nClusterctl-Command: " + CommandLine(o) + "\nClusterctl-Actor: " + CurrentActor() +
        "\n";
    const CommitAuthor author = CurrentAuthor();
    std::string push_error;
    auto commit = (*source)->CommitEdits(head->revision.commit, change->files, message, author.name,
                                         author.email, !o.no_push, &push_error, signer);
    if (!commit.ok() && commit.status().code() == Code::kConflict && attempt < 3) continue;
    if (!commit.ok()) return ReportError(*g, commit.status());
    if (o.no_push) {
      auto patch = (*source)->Patch(commit->commit);
      if (!patch.ok()) return ReportError(*g, patch.status());
      if (g->json) {
        std::cout << json{{"commit", nullptr}, {"changed", true}, {"patch", *patch}}.dump() << "\n";
      } else {
        std::cout << "Subject: " << change->summary << "\n\n" << *patch;
      }
      return kExitOk;
    }
    if (!push_error.empty()) {
      const bool raced = push_error.find("non-fast-forward") != std::string::npos ||
                         push_error.find("fetch first") != std::string::npos;
      if (raced && attempt < 3) {
        if (Status s = (*source)->Fetch(); !s.ok()) return ReportError(*g, s);
        continue;
      }
      auto patch = (*source)->Patch(commit->commit);
      if (!g->json && patch.ok()) std::cerr << *patch;
      return ReportError(*g, Status::Permission("the remote refused the push (" + push_error +
                                                "); nothing changed. The change is printed "
                                                "above: open a merge request with it"));
    }
    if (g->json) {
      std::cout << json{{"commit", commit->commit},
                        {"changed", true},
                        {"summary", change->summary},
                        {"files",
                         [&] {
                           json f = json::array();
                           for (const auto& e : change->files) f.push_back(e.path);
                           return f;
                         }()}}
                       .dump()
                << "\n";
    } else {
      std::cout << "commit " << commit->Short() << " " << change->summary << " ("
                << change->files.front().path << ")"
                << (desired_state::IsRemoteUrl(g->repo) ? ", pushed to " + g->branch : "") << "\n";
    }
    if (!o.request.service.empty() && change->after &&
        change->after->cluster.state == RunState::kStopped && !o.request.stop && !g->json) {
      std::cout << "note: the whole cluster is stopped (spec.state of the Cluster); "
                   "clusterctl start starts it\n";
    }
    if (!o.wait) return kExitOk;
    return WaitForClusterd(g, commit->commit, *change->after, o);
  }
}

CommandFn SetupVerb(CLI::App* sub, Globals* g, bool stop) {
  auto o = std::make_shared<VerbOptions>();
  o->request.stop = stop;
  const std::string verb = stop ? "stop" : "start";
  sub->add_option("SERVICE", o->request.service,
                  "The service (default: the whole cluster, Cluster spec.state).");
  sub->add_option("--machine", o->request.machine, "Only this machine's instance.")->type_name("M");
  sub->add_option("--reason", o->reason, "Why: the body of the commit message.")->type_name("TEXT");
  sub->add_flag("--wait", o->wait, "Wait until the running clusterd converged the commit.");
  sub->add_option("--timeout", o->timeout_seconds, "How long --wait waits (default 300 s).")
      ->type_name("SECONDS")
      ->check(CLI::Range(1, 86400));
  sub->add_flag("--no-push", o->no_push, "Print the change as a patch; commit and push nothing.");
  sub->footer(
      "A GitOps " + verb +
      ": writes a small commit to the desired-state repository (one key of the\n"
      "file that declares the service, authored by you, with a Clusterctl-Command trailer),\n"
      "pushes it, and with --wait follows clusterd until the instances are " +
      (stop ? "stopped" : "running and ready") +
      ".\n"
      "Git stays the truth: the next sync or a clusterd restart keeps the service " +
      (stop ? "stopped" : "running") +
      ".\n"
      "Signed with repo.signingKey when set (required when repo.verify is on).\n\n"
      "  clusterctl " +
      verb + " model-server                    spec.state of the Service\n" + "  clusterctl " +
      verb + " model-server --machine jetson  spec.stoppedOn of the Service\n" + "  clusterctl " +
      verb + "                                 spec.state of the Cluster\n" + "  clusterctl " +
      verb + " model-server --no-push          print the patch only\n" +
      "Exit 0 done (or nothing to change), 1 error or --wait timed out.");
  return [g, o] { return RunVerb(g, *o); };
}

}  // namespace

CommandFn SetupStop(CLI::App* sub, Globals* g) { return SetupVerb(sub, g, /*stop=*/true); }
CommandFn SetupStart(CLI::App* sub, Globals* g) { return SetupVerb(sub, g, /*stop=*/false); }

}  // namespace clusterctl::cli
