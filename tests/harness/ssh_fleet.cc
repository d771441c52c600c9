#include "tests/harness/ssh_fleet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>

#include "tests/harness/ssh_host.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

using std::chrono::milliseconds;

std::string SshFleet::MachineName(int i) {
  char b[16];
  snprintf(b, sizeof b, "m%04d", i);
  return b;
}

std::string SshFleet::Address(int n) {
  return "127.77." + std::to_string(n / 250) + "." + std::to_string(1 + n % 250);
}

SshFleet::SshFleet(SshFleetOptions options) : options_(std::move(options)), dir_(options_.dir) {
  if (dir_.empty()) throw std::runtime_error("SshFleet: no dir");
  std::filesystem::create_directories(dir_ + "/keys");
  std::filesystem::create_directories(dir_ + "/home");
  WriteFile(dir_ + "/home/.bashrc", "");
  WriteFile(dir_ + "/home/.profile", "");
  ::mkdir("/run/sshd", 0755);
  GenerateEd25519Key(client_key(), options_.key_comment + "-client");
  WriteFile(dir_ + "/authorized_keys", ReadFile(client_key() + ".pub"));
  std::vector<std::string> all;
  for (int i = 0; i < options_.machines; ++i) {
    all.push_back(address(i));
    std::filesystem::create_directories(state_dir(i));
  }
  port_ = PortBindableOnAll(all, options_.first_port);
  if (port_ == 0) throw std::runtime_error("SshFleet: no port free on every machine address");
  std::string known;
  const int per = std::max(1, options_.per_sshd);
  for (int first = 0; first < options_.machines; first += per) {
    const int g = first / per;
    const std::string gdir = dir_ + "/sshd" + std::to_string(g);
    std::filesystem::create_directories(gdir);
    GenerateEd25519Key(gdir + "/host_key", options_.key_comment + "-host");
    std::istringstream pub(ReadFile(gdir + "/host_key.pub"));
    std::string type, blob;
    pub >> type >> blob;
    std::ostringstream c;
    c << "Port " << port_ << "\n";
    std::vector<std::string> addresses;
    for (int i = first; i < std::min(options_.machines, first + per); ++i) {
      addresses.push_back(address(i));
      c << "ListenAddress " << addresses.back() << "\n";
      known +=
          "[" + addresses.back() + "]:" + std::to_string(port_) + " " + type + " " + blob + "\n";
    }
    // One persistent connection per machine, with up to ~10 channels
    // (clusterd's observation, watch, action and probe shells); up to 32
    // connections being set up at once (clusterd's max_concurrent_connects)
    // plus a benchmark's own observation: no early drop.
    c << "HostKey " << gdir << "/host_key\n"
      << "AuthorizedKeysFile " << dir_ << "/authorized_keys\n"
      << "PubkeyAuthentication yes\nPasswordAuthentication no\n"
      << "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
      << "StrictModes no\nUsePAM no\nUseDNS no\nPrintMotd no\nPrintLastLog no\n"
      << "PidFile " << gdir << "/sshd.pid\n"
      << "SetEnv HOME=" << dir_ << "/home " << Marker() << "\n"
      << "MaxSessions 64\nMaxStartups 256\nLogLevel INFO\n";
    WriteFile(gdir + "/sshd_config", c.str());
    sshds_.push_back(std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/sshd", "-D", "-f", gdir + "/sshd_config", "-E",
                                 gdir + "/sshd.log"},
        OutputTo(gdir + "/sshd.out")));
    if (start_ticks_ == 0) start_ticks_ = ProcessStartTicks(sshds_.back()->pid());
    Process* p = sshds_.back().get();
    const bool up = WaitFor(
        [&] {
          if (!p->Running()) return true;
          for (const auto& a : addresses) {
            if (!CanConnect(a, port_, milliseconds(200))) return false;
          }
          return true;
        },
        milliseconds(20000), milliseconds(20));
    if (!up || !p->Running()) {
      const std::string log = ReadFile(gdir + "/sshd.log");
      Kill();
      throw std::runtime_error("sshd " + std::to_string(g) + " did not start: " + log);
    }
  }
  WriteFile(known_hosts(), known);
}

SshFleet::~SshFleet() { Kill(); }

void SshFleet::Kill() {
  std::vector<pid_t> victims;
  for (auto& s : sshds_) {
    if (!s->Running()) continue;
    ::kill(s->pid(), SIGSTOP);
    std::set<pid_t> seen;
    for (int round = 0; round < 10; ++round) {
      bool added = false;
      for (pid_t p : Descendants(s->pid())) {
        if (seen.insert(p).second) ::kill(p, SIGSTOP), added = true;
      }
      if (!added) break;
    }
    victims.insert(victims.end(), seen.begin(), seen.end());
  }
  for (pid_t p : victims) ::kill(p, SIGKILL);
  for (auto& s : sshds_) s->Kill(SIGKILL);
  for (pid_t p : ProcessesWithEnvVar(Marker())) victims.push_back(p);
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir_ + "/machines", ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() != "pid") continue;
    const pid_t pid = static_cast<pid_t>(atol(ReadFile(it->path().string()).c_str()));
    if (pid <= 1 || pid == getpid() || !ProcessAlive(pid)) continue;
    if (ProcessStartTicks(pid) < start_ticks_) continue;  // Not ours.
    victims.push_back(pid);
  }
  for (pid_t p : victims) {
    if (getpgid(p) == p) ::kill(-p, SIGKILL);
    ::kill(p, SIGKILL);
  }
  WaitFor(
      [&] {
        for (pid_t p : victims) {
          if (ProcessAlive(p)) return false;
        }
        return true;
      },
      milliseconds(30000), milliseconds(50));
  for (auto& s : sshds_) s->WaitForExit(milliseconds(5000));
}

int PortBindableOnAll(const std::vector<std::string>& addresses, int from) {
  for (int port = from; port < 32000; ++port) {
    bool all = true;
    for (const auto& a : addresses) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET, a.c_str(), &sa.sin_addr);
      all = all && bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
      close(fd);
      if (!all) break;
    }
    if (all) return port;
  }
  return 0;
}

}  // namespace clusterctl::testing
