// clusterctl windows: the sync windows of the desired state, whether each
// is open now, and its next openings and closings (desired-state/sync_windows.h).
#include <iostream>

#include "base/clock.h"
#include "base/time_format.h"
#include "cli/commands.h"
#include "cli/session.h"

namespace clusterctl::cli {

using nlohmann::json;

namespace {

std::string Selectors(const desired_state::SyncWindow& w) {
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out.empty() ? std::string("*") : out;
  };
  return "services " + list(w.services) + " on machines " + list(w.machines);
}

}  // namespace

CommandFn SetupWindows(CLI::App* sub, Globals* g) {
  auto rev = std::make_shared<std::string>();
  auto count = std::make_shared<int>(3);
  sub->add_option("--rev", *rev, "Revision to read. Default: head of --branch")->type_name("REV");
  sub->add_option("--next", *count, "How many openings to list per window (1-20). Default: 3")
      ->check(CLI::Range(1, 20));
  sub->footer(
      "Lists the Cluster's sync windows (spec.windows): kind, schedule, time zone,\n"
      "duration, what they govern, whether each is open now, and the next times it\n"
      "opens and closes, in the window's own time zone (DST included).\n"
      "Changes from new revisions wait outside allow windows and inside deny windows;\n"
      "clusterctl apply --override-window --reason TEXT acts where only windows with\n"
      "manualOverride: true hold them.");
  return [g, rev, count] {
    Status s;
    auto desired = LoadDesired(*g, *rev, &s);
    if (!desired) return ReportError(*g, s);
    const int64_t now = WallClockMs() / 1000;
    json out = json::array();
    for (const auto& w : desired->cluster.windows) {
      json j = {{"name", w.name},
                {"kind", desired_state::WindowKindName(w.kind)},
                {"schedule", w.schedule.text()},
                {"time_zone", w.time_zone},
                {"duration_seconds", w.duration_s},
                {"services", w.services},
                {"machines", w.machines},
                {"manual_override", w.manual_override},
                {"open_now", false}};
      json next = json::array();
      for (const auto& iv : desired_state::NextTransitions(w, now, *count)) {
        next.push_back(
            {{"opens", FormatRfc3339Ms(iv.open_s * 1000)},
             {"closes", iv.close_s ? json(FormatRfc3339Ms(iv.close_s * 1000)) : json()},
             {"opens_local", desired_state::FormatWindowTime(iv.open_s, w.time_zone, now)},
             {"closes_local",
              iv.close_s ? json(desired_state::FormatWindowTime(iv.close_s, w.time_zone, now))
                         : json()}});
      }
      if (auto open = desired_state::OpenIntervalAt(w, now)) j["open_now"] = true;
      j["next"] = next;
      out.push_back(j);
    }
    if (g->json) {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    if (out.empty()) {
      std::cout << "no sync windows in revision " << desired->revision.Short()
                << ": changes are applied at any time\n";
      return kExitOk;
    }
    for (size_t i = 0; i < out.size(); ++i) {
      const json& j = out[i];
      const auto& w = desired->cluster.windows[i];
      std::cout << j["name"].get<std::string>() << " (" << j["kind"].get<std::string>() << ", "
                << w.schedule.text() << " " << w.time_zone << ", "
                << FormatDurationMs(w.duration_s * 1000) << ", " << Selectors(w)
                << (w.manual_override ? ", manual override allowed" : "") << ")"
                << (j["open_now"].get<bool>() ? ": OPEN now" : ": closed now") << "\n";
      for (const json& n : j["next"]) {
        std::cout << "  opens " << n["opens_local"].get<std::string>();
        if (n["closes_local"].is_string()) {
          std::cout << ", closes " << n["closes_local"].get<std::string>();
        } else {
          std::cout << ", does not close";
        }
        std::cout << "\n";
      }
    }
    return kExitOk;
  };
}

}  // namespace clusterctl::cli
