// clusterctl lease: drift leases on the running clusterd (POST/GET
// /api/v1/leases, POST /api/v1/leases/{id}/end; controller/leases.h).
#include <iomanip>
#include <iostream>

#include "cli/commands.h"
#include "cli/remote.h"

namespace clusterctl::cli {

using nlohmann::json;

namespace {

std::string Where(const json& l) {
  return l.value("service", "") +
         (l["machine"].is_string() ? "@" + l["machine"].get<std::string>() : " (every machine)");
}

}  // namespace

CommandFn SetupLease(CLI::App* sub, Globals* g) {
  auto service = std::make_shared<std::string>();
  auto machine = std::make_shared<std::string>();
  auto for_text = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  sub->add_option("SERVICE", *service, "The service whose drift clusterd should tolerate.");
  sub->add_option("--machine", *machine, "Only this machine's instance (default: every one).");
  sub->add_option("--for", *for_text, "How long: 30m, 2h (at most 24h).");
  sub->add_option("--reason", *reason, "Why: shown in status, diff and why, and audited.");
  CLI::App* list = sub->add_subcommand("list", "The active drift leases.");
  CLI::App* end = sub->add_subcommand("end", "End a lease now: clusterd reverts the drift.");
  auto id = std::make_shared<std::string>();
  end->add_option("ID", *id, "The lease id (clusterctl lease list).")->required();
  sub->footer(
      "Tells the running clusterd to leave the instances of SERVICE alone while you fix\n"
      "something by hand: their drift (a stopped service, a changed process) is shown,\n"
      "not corrected, until the lease ends; then the next pass reverts it. The grant,\n"
      "the end and the revert are audited.\n\n"
      "Examples:\n"
      "  clusterctl lease redis-server --machine cpu-coordinator --for 30m \\\n"
      "      --reason \"moving the RDB file to the new disk\"\n"
      "  clusterctl lease list\n"
      "  clusterctl lease end 3");
  return [g, service, machine, for_text, reason, list, end, id] {
    if (list->parsed()) {
      auto r = CallServer(*g, "GET", "/api/v1/leases");
      if (!r.ok()) return ReportError(*g, r.status());
      if (g->json) {
        std::cout << r->dump() << "\n";
      } else if (r->empty()) {
        std::cout << "no drift leases\n";
      } else {
        std::cout << std::left << std::setw(5) << "ID" << std::setw(36) << "INSTANCES"
                  << std::setw(26) << "UNTIL" << std::setw(22) << "BY"
                  << "REASON\n";
        for (const json& l : *r) {
          std::cout << std::setw(5) << l.value("id", "") << std::setw(36) << Where(l)
                    << std::setw(26) << l.value("until", "") << std::setw(22)
                    << l.value("actor", "") << l.value("reason", "") << "\n";
        }
      }
      return kExitOk;
    }
    if (end->parsed()) {
      auto r = CallServer(*g, "POST", "/api/v1/leases/" + *id + "/end", json::object());
      if (!r.ok()) return ReportError(*g, r.status());
      if (g->json) {
        std::cout << r->dump() << "\n";
      } else {
        std::cout << "lease " << r->value("id", "") << " on " << Where(*r)
                  << " ended; clusterd reverts its drift now\n";
      }
      return kExitOk;
    }
    if (service->empty() || for_text->empty() || reason->empty()) {
      return ReportError(*g, Status::Invalid("give SERVICE, --for and --reason (see "
                                             "clusterctl lease --help), or list / end ID"));
    }
    json body = {{"service", *service}, {"for", *for_text}, {"reason", *reason}};
    if (!machine->empty()) body["machine"] = *machine;
    auto r = CallServer(*g, "POST", "/api/v1/leases", body);
    if (!r.ok()) return ReportError(*g, r.status());
    if (g->json) {
      std::cout << r->dump() << "\n";
    } else {
      std::cout << "lease " << r->value("id", "") << ": drift of " << Where(*r)
                << " is tolerated until " << r->value("until", "") << "\n";
    }
    return kExitOk;
  };
}

}  // namespace clusterctl::cli
