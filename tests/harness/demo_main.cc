// clusterctl-demo: the README's main command. Starts the examples/langgraph
// topology on this machine (5 loopback sshd hosts, a real redis-server, the
// other services as test-service processes), pushes the desired state to a
// local bare repository, runs clusterd on it, shows the cluster converging,
// then waits for Ctrl-C and stops everything it started, by PID.
//
//   clusterctl-demo [--dir DIR] [--check]
//     --dir DIR  where to put hosts, repositories and data (default:
//                /tmp/clusterctl-demo; replaced if it exists)
//     --check    after converging, kill a service, wait for clusterd to bring
//                it back, then stop (non-interactive; exit 0 on success)
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/harness/demo_cluster.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace {

using clusterctl::testing::DemoCluster;
using nlohmann::json;
using std::chrono::milliseconds;

json Status(DemoCluster& demo) {
  std::string out;
  demo.Cli("status --json 2>/dev/null", &out);
  auto brace = out.find('{');
  if (brace == std::string::npos) return json();
  json j = json::parse(out.substr(brace), nullptr, false);
  return j.is_discarded() ? json() : j;
}

// Waits until clusterd reports every instance running and ready.
bool WaitHealthy(DemoCluster& demo, std::chrono::seconds limit, bool print_progress) {
  std::string last;
  return clusterctl::testing::WaitFor(
      [&] {
        json st = Status(demo);
        if (!st.is_object()) return false;
        int ready = 0, total = 0;
        for (const auto& [svc, s] : st["services"].items()) {
          for (const auto& [m, i] : s["instances"].items()) {
            if (i.value("desired", "") != "running") continue;
            ++total;
            ready += i.value("ready", false) ? 1 : 0;
          }
        }
        std::string line = "  " + std::to_string(ready) + "/" + std::to_string(total) +
                           " instances ready, overall " + st.value("overall_status", "?");
        if (print_progress && line != last) {
          std::cout << line << std::endl;
          last = line;
        }
        return total > 0 && ready == total && st.value("overall_status", "") == "healthy";
      },
      limit, milliseconds(500));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/clusterctl-demo";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else {
      std::cerr << "usage: clusterctl-demo [--dir DIR] [--check]\n";
      return 2;
    }
  }
  // Ctrl-C and SIGTERM end the demo through one path (sigwait below).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::cout << "== Starting 5 machines (sshd on 127.0.0.x) and a git repository in " << dir
            << std::endl;
  clusterctl::testing::DemoOptions opts;
  opts.dir = dir;
  DemoCluster demo(opts);
  for (const auto& m : DemoCluster::MachineNames()) {
    std::cout << "  " << m << " at " << demo.address_of(m) << ":" << demo.host(m).port()
              << std::endl;
  }
  const std::string cli = clusterctl::testing::CliBin() + " --config " + demo.config_path();
  std::string out;
  demo.Cli("validate", &out);
  std::cout << "\n== clusterctl validate\n" << out;
  demo.Cli("diff", &out);
  std::cout << "\n== clusterctl diff (what clusterd will do)\n" << out;

  std::cout << "\n== Starting clusterd (log: " << dir << "/clusterd.log)" << std::endl;
  clusterctl::testing::Process clusterd(
      {clusterctl::testing::ClusterdBin(), "--config", demo.config_path()},
      clusterctl::testing::OutputTo(dir + "/clusterd.log"));
  if (!WaitHealthy(demo, std::chrono::seconds(120), true)) {
    std::cerr << "the cluster did not converge within 120 s; see " << dir << "/clusterd.log\n";
    return 1;
  }
  demo.Cli("status", &out);
  std::cout << "\n== clusterctl status\n" << out;

  if (check) {
    json st = Status(demo);
    int64_t pid = st["services"]["tools-server"]["instances"]["worker-tools"]["pid"];
    std::cout << "\n== kill -9 tools-server (pid " << pid << "); clusterd repairs the drift"
              << std::endl;
    kill(static_cast<pid_t>(pid), SIGKILL);
    bool back = clusterctl::testing::WaitFor(
        [&] {
          json s = Status(demo);
          if (!s.is_object()) return false;
          const json& i = s["services"]["tools-server"]["instances"]["worker-tools"];
          return i.value("pid", int64_t{0}) != pid && i.value("ready", false);
        },
        milliseconds(60000), milliseconds(300));
    demo.Cli("audit --service tools-server --limit 4", &out);
    std::cout << out;
    clusterd.Kill(SIGTERM);
    auto code = clusterd.WaitForExit(milliseconds(30000));
    std::cout << (back ? "tools-server is back and ready" : "tools-server did NOT come back")
              << "; clusterd exited with " << (code ? std::to_string(*code) : "timeout")
              << "\n== demo check " << (back && code == 0 ? "passed" : "FAILED") << std::endl;
    return back && code == 0 ? 0 : 1;
  }

  std::cout << "\n== The cluster is converged. Try, in another terminal:\n"
            << "  alias clusterctl='" << cli << "'\n"
            << "  clusterctl status                 # live state, via the running clusterd\n"
            << "  kill -9 $(cat " << demo.host("worker-tools").state_dir()
            << "/tools-server/pid)   # then watch it come back:\n"
            << "  clusterctl audit --trigger drift  # the repair, audited\n"
            << "  cd " << demo.repo().path()
            << " && $EDITOR services/tools-server.yaml && git commit -am change && git push\n"
            << "  clusterctl history                # applied revisions\n"
            << "  clusterctl rollback --steps 1     # undo the last change through git\n"
            << "  clusterctl audit verify           # check the audit log's hash chain\n"
            << "  clusterctl why haproxy            # explain an instance\n"
            << "Press Ctrl-C here to stop clusterd and every process of the demo." << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  std::cout << "\n== Stopping clusterd and the demo machines" << std::endl;
  clusterd.Kill(SIGTERM);
  clusterd.WaitForExit(milliseconds(30000));
  return 0;
}
