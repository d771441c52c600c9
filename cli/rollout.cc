// clusterctl rollout [list] | pause|resume|abort SERVICE: the canary
// rollouts of the running clusterd (GET /api/v1/rollouts, POST
// /api/v1/rollouts/{service}/{verb}; controller/rollout.h).
#include <iomanip>
#include <iostream>

#include "cli/commands.h"
#include "cli/remote.h"

namespace clusterctl::cli {

using nlohmann::json;

CommandFn SetupRollout(CLI::App* sub, Globals* g) {
  auto verb = std::make_shared<std::string>();
  auto service = std::make_shared<std::string>();
  sub->add_option("COMMAND", *verb, "list (default), pause, resume or abort.")
      ->check(CLI::IsMember({"list", "pause", "resume", "abort"}));
  sub->add_option("SERVICE", *service, "The service whose rollout to pause, resume or abort.");
  sub->footer(
      "A Service with rollout.canary takes a spec change in waves: the canary first,\n"
      "then rollout.waves, each wave ready and healthy for canary.analysisSeconds before\n"
      "the next. When more than rollout.maxFailedInstances instances fail, clusterd puts\n"
      "the changed ones back, quarantines the revision and pushes a rollback commit\n"
      "(trigger auto-rollback). pause holds the next waves, resume goes on, abort rolls\n"
      "back now. Each is audited with you as the actor. See docs/operations.md.\n\n"
      "Examples:\n"
      "  clusterctl rollout                      # every canary service's latest rollout\n"
      "  clusterctl rollout pause model-server\n"
      "  clusterctl rollout abort model-server --json");
  return [g, verb, service] {
    if (verb->empty() || *verb == "list") {
      auto r = CallServer(*g, "GET", "/api/v1/rollouts");
      if (!r.ok()) return ReportError(*g, r.status());
      if (g->json) {
        std::cout << r->dump() << "\n";
      } else if (r->empty()) {
        std::cout << "no canary rollouts\n";
      } else {
        for (const json& x : *r) {
          std::cout << std::left << std::setw(12) << x.value("phase", "") << " "
                    << x.value("summary", "") << "\n";
        }
      }
      return kExitOk;
    }
    if (service->empty()) {
      return ReportError(*g, Status::Invalid("give the SERVICE: clusterctl rollout " + *verb +
                                             " SERVICE (clusterctl rollout lists them)"));
    }
    auto r = CallServer(*g, "POST", "/api/v1/rollouts/" + *service + "/" + *verb, json::object());
    if (!r.ok()) return ReportError(*g, r.status());
    if (g->json) {
      std::cout << r->dump() << "\n";
    } else {
      std::cout << r->value("summary", "") << "\n";
    }
    return kExitOk;
  };
}

}  // namespace clusterctl::cli
