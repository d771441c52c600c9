// clusterctl status [--verbose] and clusterctl probe: observe live, record,
// report.
#include <cstdio>
#include <iostream>

#include "api/status_view.h"
#include "base/clock.h"
#include "cli/commands.h"
#include "cli/remote.h"
#include "cli/session.h"
#include "reconcilers/observer.h"
#include "store/observed_json.h"

namespace clusterctl::cli {
namespace {

using nlohmann::json;

std::string Duration(int64_t seconds) {
  if (seconds <= 0) return "-";
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  } else if (seconds < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%lldm", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%lldh", static_cast<long long>(seconds / 86400),
                  static_cast<long long>(seconds % 86400 / 3600));
  }
  return buf;
}

int HealthExit(reconcilers::Health h) {
  switch (h) {
    case reconcilers::Health::kHealthy:
      return kExitOk;
    case reconcilers::Health::kDegraded:
      return kExitDegraded;
    case reconcilers::Health::kUnhealthy:
      return kExitUnhealthy;
  }
  return kExitError;
}

reconcilers::Health ParseHealth(const std::string& s) {
  if (s == "healthy") return reconcilers::Health::kHealthy;
  if (s == "degraded") return reconcilers::Health::kDegraded;
  return reconcilers::Health::kUnhealthy;
}

// Prints the status document (api/status_view.h), from a local
// observation or from clusterd's /api/v1/status alike.
void PrintStatus(const json& st, bool verbose, int64_t now_ms) {
  std::printf("cluster %s  revision %s%s%s\n", st.value("cluster", "").c_str(),
              st.value("revision", "").substr(0, 7).c_str(),
              st.value("profile", "").empty() ? "" : "  profile ", st.value("profile", "").c_str());
  if (st.value("suspended", false)) std::printf("reconciliation SUSPENDED (clusterctl resume)\n");
  // clusterd shards (redis.shards auto): each machine's owner, and "-" for
  // the facts of machines another replica observes.
  const bool sharded = st.value("shards", "") == "auto";
  std::printf("\n%-18s %-10s %-9s %-6s %-10s %s%s\n", "MACHINE", "REACHABLE", "UPTIME", "LOAD",
              "MEM AVAIL", sharded ? "OWNER                " : "", "DETAIL");
  for (const auto& [name, f] : st["machines"].items()) {
    const bool up = f.value("reachable", false);
    const bool seen = f.contains("reachable");
    char mem[32] = "-", load[16] = "-";
    if (up) {
      std::snprintf(mem, sizeof mem, "%.1f GiB",
                    static_cast<double>(f.value("mem_available_kb", int64_t{0})) / (1 << 20));
      std::snprintf(load, sizeof load, "%.2f", f.value("load1", 0.0));
    }
    std::string owner;
    if (sharded) {
      char col[64];
      const std::string who =
          f.contains("owner") && f["owner"].is_string() ? f["owner"].get<std::string>() : "-";
      std::snprintf(col, sizeof col, "%-20s ", who.c_str());
      owner = col;
    }
    std::printf("%-18s %-10s %-9s %-6s %-10s %s%s\n", name.c_str(),
                !seen ? "-"
                : up  ? "yes"
                      : "NO",
                up ? Duration(static_cast<int64_t>(f.value("uptime_seconds", 0.0))).c_str() : "-",
                load, mem, owner.c_str(), up || !seen ? "" : f.value("error", "").c_str());
  }
  std::printf("\n%-20s %-18s %-9s %-6s %-8s %-8s %-8s %s\n", "SERVICE", "MACHINE", "STATE", "READY",
              "PID", "UPTIME", "RESTARTS", verbose ? "WHY" : "");
  for (const auto& [service, svc] : st["services"].items()) {
    for (const auto& [machine, i] : svc["instances"].items()) {
      const std::string state = i.value("state", "unknown");
      if (!verbose && i.value("desired", "") != "running" && state != "running") continue;
      const int64_t pid = i.value("pid", int64_t{0});
      const int64_t started = i.value("started_at", int64_t{0});
      std::string why = i.value("reason", "");
      if (i.contains("last_probe") && i["last_probe"].is_object()) {
        why += "; probe: " + i["last_probe"].value("detail", "");
      }
      std::printf("%-20s %-18s %-9s %-6s %-8s %-8s %-8lld %s\n", service.c_str(), machine.c_str(),
                  state.c_str(), i.value("ready", false) ? "yes" : "no",
                  pid ? std::to_string(pid).c_str() : "-",
                  started ? Duration(now_ms / 1000 - started).c_str() : "-",
                  static_cast<long long>(i.value("restarts", int64_t{0})),
                  verbose ? why.c_str() : "");
    }
  }
  // Canary rollouts (controller/rollout.h): the ones not done yet, or
  // every one with --verbose.
  bool first = true;
  for (const auto& [service, svc] : st["services"].items()) {
    if (!svc.contains("rollout") || !svc["rollout"].is_object()) continue;
    if (!verbose && svc["rollout"].value("phase", "") == "succeeded") continue;
    std::printf("%s  %s\n", first ? "\nrollouts:" : "         ",
                svc["rollout"].value("summary", "").c_str());
    first = false;
  }
  std::printf("\noverall: %s\n", st.value("overall_status", "unhealthy").c_str());
  for (const auto& r : st.value("reasons", json::array())) {
    std::printf("  - %s\n", r.get<std::string>().c_str());
  }
  for (const auto& a : st.value("alerts", json::array())) {
    std::printf("  alert: %s\n", a.is_string() ? a.get<std::string>().c_str() : a.dump().c_str());
  }
}

int RunStatus(Globals* g, bool verbose) {
  json st;
  if (UseServer(*g)) {
    auto remote = CallServer(*g, "GET", "/api/v1/status");
    if (!remote.ok()) return ReportError(*g, remote.status());
    st = *remote;
  } else {
    Session session(g);
    if (Status s = session.Open(""); !s.ok()) return ReportError(*g, s);
    auto obs = controller::ObserveAndRecord(session.deps(), session.desired(), session.previous());
    st = api::BuildStatus(session.desired(), session.previous(), obs, WallClockMs()).json;
    const controller::RolloutBook rollouts = session.Rollouts();
    for (const auto& [service, r] : rollouts.rollouts()) {
      if (st["services"].contains(service)) {
        st["services"][service]["rollout"] = r.ToJson(WallClockMs());
      }
    }
  }
  if (g->json) {
    std::cout << st.dump(2) << "\n";
  } else {
    PrintStatus(st, verbose, WallClockMs());
  }
  return HealthExit(ParseHealth(st.value("overall_status", "unhealthy")));
}

int RunProbe(Globals* g) {
  Session session(g);
  if (Status s = session.Open("", /*read_only_ok=*/true); !s.ok()) return ReportError(*g, s);
  const auto& desired = session.desired();
  std::vector<reconcilers::ProbeRequest> requests;
  for (const auto& i : desired.instances) {
    if (i.desired != desired_state::RunState::kRunning) continue;
    const auto* s = desired.FindService(i.service);
    const auto* m = desired.FindMachine(i.machine);
    if (s->readiness) requests.push_back({s, m, reconcilers::ProbeRole::kReadiness});
    if (s->liveness) requests.push_back({s, m, reconcilers::ProbeRole::kLiveness});
  }
  auto results = reconcilers::RunProbes(session.prober(), requests, 32);
  bool critical_ok = true;
  json lines = json::array();
  for (const auto& r : results) {
    if (!session.read_only()) (void)session.state().RecordProbe(r);
    const auto* s = desired.FindService(r.service);
    if (!r.ok && s->critical) critical_ok = false;
    if (g->json) {
      std::cout << json(r).dump() << "\n";
    } else {
      std::printf("%-4s %-36s %-9s %-5s %5lld ms  %s\n", r.ok ? "PASS" : "FAIL", r.Key().c_str(),
                  reconcilers::ProbeRoleName(r.role), r.kind.c_str(),
                  static_cast<long long>(r.latency_ms), r.detail.c_str());
    }
  }
  if (!g->json) {
    std::printf("%zu probes, %s\n", results.size(),
                critical_ok ? "every critical probe passed" : "a critical probe FAILED");
  }
  return critical_ok ? kExitOk : kExitError;
}

}  // namespace

CommandFn SetupStatus(CLI::App* sub, Globals* g) {
  auto verbose = std::make_shared<bool>(false);
  sub->add_flag("--verbose", *verbose, "Show stopped instances, why each is as it is, probes");
  sub->footer(
      "Observes every machine now (one SSH round trip each), probes readiness, records\n"
      "the observation in --data-dir and prints it. Exit 0 healthy, 3 degraded,\n"
      "4 unhealthy (a critical service has no ready instance), 1 error.");
  return [g, verbose] { return RunStatus(g, *verbose || g->verbosity > 0); };
}

CommandFn SetupProbe(CLI::App* sub, Globals* g) {
  sub->footer(
      "Runs every readiness and liveness probe once, one line per probe with pass/fail\n"
      "and latency. Exit 0 when every critical service's probes pass, 1 otherwise.");
  return [g] { return RunProbe(g); };
}

}  // namespace clusterctl::cli
