// clusterctl alerts: the running clusterd's alerts (GET /api/v1/alerts), and
// `alerts ack ID` to acknowledge one (POST /api/v1/alerts/{id}/ack).
#include <cctype>
#include <iomanip>
#include <iostream>

#include "cli/commands.h"
#include "cli/remote.h"

namespace clusterctl::cli {

using nlohmann::json;

namespace {

std::string Where(const json& a) {
  const std::string machine =
      a.value("machine", json()).is_string() ? a["machine"].get<std::string>() : "";
  const std::string service =
      a.value("service", json()).is_string() ? a["service"].get<std::string>() : "";
  if (!service.empty()) return machine.empty() ? service : service + "@" + machine;
  return machine.empty() ? "-" : machine;
}

// %-encodes what a path segment cannot hold (a dedup key's slashes).
std::string PathSegment(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void PrintTable(const json& list) {
  if (list.empty()) {
    std::cout << "no alerts\n";
    return;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(10) << "SEVERITY" << std::setw(10)
            << "STATE" << std::setw(22) << "KIND" << std::setw(24) << "WHERE" << std::setw(22)
            << "SINCE" << std::setw(7) << "COUNT"
            << "MESSAGE\n";
  for (const json& a : list) {
    std::string state = a.value("state", "");
    if (a.contains("acknowledged") && a["acknowledged"].is_object()) state = "acked";
    if (a.value("level", 0) > 0) state += "+" + std::to_string(a.value("level", 0));
    std::cout << std::setw(6) << a.value("id", "") << std::setw(10) << a.value("severity", "")
              << std::setw(10) << state << std::setw(22) << a.value("kind", "") << std::setw(24)
              << Where(a) << std::setw(22) << a.value("since", "") << std::setw(7)
              << a.value("count", 1) << a.value("message", "") << "\n";
    if (a.contains("acknowledged") && a["acknowledged"].is_object()) {
      const json& k = a["acknowledged"];
      std::cout << std::setw(6) << ""
                << "acknowledged by " << k.value("by", "") << " until " << k.value("until", "")
                << (k.value("note", "").empty() ? "" : ": " + k.value("note", "")) << "\n";
    }
  }
}

}  // namespace

CommandFn SetupAlerts(CLI::App* sub, Globals* g) {
  auto all = std::make_shared<bool>(false);
  auto since = std::make_shared<std::string>();
  sub->add_flag("--all", *all, "Resolved alerts too (the history), newest first.");
  sub->add_option("--since", *since,
                  "Only alerts seen since then: a duration (30m, 2h) or an RFC 3339 time.");
  CLI::App* ack = sub->add_subcommand("ack", "Acknowledge a firing alert: hold its notifications.");
  auto id = std::make_shared<std::string>();
  auto for_text = std::make_shared<std::string>("1h");
  auto note = std::make_shared<std::string>();
  ack->add_option("ID", *id, "The alert's id (first column of clusterctl alerts) or dedup key.")
      ->required();
  ack->add_option("--for", *for_text, "How long (30m, 2h, 1d; at most 30d). Default: 1h.");
  ack->add_option("--note", *note, "Why: shown with the alert and in the audit log.");
  ack->footer(
      "Notifications of the alert are held until the acknowledgement ends; then, if it still\n"
      "fires, an ack_expired notification is sent. Who acknowledged is audited.\n\n"
      "Example:\n  clusterctl alerts ack 17 --for 2h --note \"replacing the disk on m3\"");
  sub->footer(
      "Lists the running clusterd's alerts: firing ones by default, ordered by key.\n"
      "STATE shows acked and the escalation level (firing+1 after the first "
      "escalateAfterSeconds).\n\n"
      "Examples:\n"
      "  clusterctl alerts\n"
      "  clusterctl alerts --all --since 24h --json\n"
      "  clusterctl alerts ack 17 --for 30m --note \"looking into it\"");
  return [g, all, since, ack, id, for_text, note] {
    if (ack->parsed()) {
      json body = {{"for", *for_text}};
      if (!note->empty()) body["note"] = *note;
      auto r = CallServer(*g, "POST", "/api/v1/alerts/" + PathSegment(*id) + "/ack", body);
      if (!r.ok()) return ReportError(*g, r.status());
      if (g->json) {
        std::cout << r->dump() << "\n";
      } else {
        std::cout << "alert " << r->value("id", "") << " (" << r->value("key", "")
                  << ") acknowledged until " << (*r)["acknowledged"].value("until", "") << "\n";
      }
      return kExitOk;
    }
    std::string path = std::string("/api/v1/alerts?state=") + (*all ? "all" : "firing");
    if (!since->empty()) path += "&since=" + PathSegment(*since);
    auto r = CallServer(*g, "GET", path);
    if (!r.ok()) return ReportError(*g, r.status());
    if (g->json) {
      std::cout << r->dump() << "\n";
    } else {
      PrintTable(*r);
    }
    return kExitOk;
  };
}

}  // namespace clusterctl::cli
