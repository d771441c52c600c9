#include "tests/harness/ssh_host.h"

#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "base/paths.h"

namespace clusterctl::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Next N for 127.0.0.N, in 2..254, starting at a random base in 20..200.
int NextOctet() {
  static std::atomic<int> next = [] {
    std::random_device rd;
    return static_cast<int>(20 + rd() % 181);
  }();
  int n = next.fetch_add(1);
  return 2 + (n - 2) % 253;
}

// "ssh-ed25519 AAAA..." from a .pub file, comment dropped.
std::string PublicKeyWithoutComment(const std::string& pub_path) {
  std::istringstream in(ReadFile(pub_path));
  std::string type, blob;
  in >> type >> blob;
  if (type.empty() || blob.empty()) throw std::runtime_error("no public key in " + pub_path);
  return type + " " + blob;
}

// Kills `pid` (its process group too when it leads one) with SIGKILL.
void KillWithGroup(pid_t pid) {
  if (getpgid(pid) == pid) ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
}

// First integer in a pid file; -1 if none.
pid_t PidFromFile(const std::string& path) {
  std::istringstream in(ReadFile(path));
  long pid = -1;
  if (!(in >> pid) || pid <= 1) return -1;
  return static_cast<pid_t>(pid);
}

}  // namespace

void GenerateEd25519Key(const std::string& path, const std::string& comment) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  fs::remove(path, ec);
  fs::remove(path + ".pub", ec);
  Process keygen({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path},
                 OutputTo(path + ".keygen.log"));
  std::optional<int> rc = keygen.WaitForExit(milliseconds(20000));
  if (!rc || *rc != 0 || !fs::exists(path + ".pub")) {
    throw std::runtime_error("ssh-keygen failed for " + path + ": " +
                             ReadFile(path + ".keygen.log"));
  }
  fs::remove(path + ".keygen.log", ec);
}

SshHost::SshHost(SshHostOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) {
    owned_dir_ = std::make_unique<TempDir>();
    dir_ = owned_dir_->path();
  } else {
    dir_ = options_.dir;
  }
  fs::create_directories(dir_);
  fs::create_directories(home_dir());
  fs::create_directories(state_dir());
  WriteFile(home_dir() + "/.bashrc", "");
  WriteFile(home_dir() + "/.profile", "");

  const int octet = options_.octet != 0 ? options_.octet : NextOctet();
  address_ = "127.0.0." + std::to_string(octet);
  port_ = options_.port;
  fixed_port_ = options_.port != 0;

  GenerateEd25519Key(dir_ + "/ssh_host_ed25519_key", "clusterctl-test-host");
  host_key_pub_ = PublicKeyWithoutComment(dir_ + "/ssh_host_ed25519_key.pub");
  client_key_path_ = options_.client_key_path;
  if (client_key_path_.empty()) {
    client_key_path_ = dir_ + "/client_key";
    GenerateEd25519Key(client_key_path_, "clusterctl-test-client");
  }
  WriteFile(dir_ + "/authorized_keys", ReadFile(client_key_path_ + ".pub"));

  Start();
  WriteFile(known_hosts_path(), known_hosts_line() + "\n");
}

SshHost::~SshHost() {
  try {
    Stop();
    KillServices();
  } catch (...) {
    // Destructors must not throw; the processes were signalled by PID.
  }
}

std::string SshHost::user() const {
  const PasswdEntry me = PasswdEntry::Of(geteuid());  // Thread-safe, unlike getpwuid.
  return me.found ? me.name : "root";
}

std::string SshHost::known_hosts_line() const {
  return "[" + address_ + "]:" + std::to_string(port_) + " " + host_key_pub_;
}

pid_t SshHost::pid() const { return sshd_ ? sshd_->pid() : -1; }

bool SshHost::running() const { return sshd_ != nullptr; }

void SshHost::WriteConfig() {
  std::ostringstream c;
  c << "Port " << port_ << "\n"
    << "ListenAddress " << address_ << "\n"
    << "HostKey " << dir_ << "/ssh_host_ed25519_key\n"
    << "AuthorizedKeysFile " << dir_ << "/authorized_keys\n"
    << "PubkeyAuthentication yes\n"
    << "PasswordAuthentication no\n"
    << "KbdInteractiveAuthentication no\n"
    << "PermitRootLogin prohibit-password\n"
    << "StrictModes no\n"
    << "UsePAM no\n"
    << "UseDNS no\n"
    << "PrintMotd no\n"
    << "PrintLastLog no\n"
    << "PidFile " << dir_ << "/sshd.pid\n"
    << "SetEnv HOME=" << home_dir() << " CLUSTERCTL_TEST_HOST=" << dir_ << "\n"
    << "MaxSessions 64\n"
    << "MaxStartups 64\n"
    << "LogLevel VERBOSE\n";
  WriteFile(dir_ + "/sshd_config", c.str());
}

std::string SshHost::LogTail() const {
  std::string log = ReadFile(log_path());
  if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
  return log;
}

void SshHost::Start() {
  if (sshd_) return;
  ::mkdir("/run/sshd", 0755);
  std::error_code ec;
  fs::remove(dir_ + "/sshd.pid", ec);
  std::string last_problem;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (!fixed_port_ && (port_ == 0 || attempt > 0)) port_ = PickFreePort(address_);
    WriteConfig();
    const size_t log_start = ReadFile(log_path()).size();
    const std::string listening =
        "Server listening on " + address_ + " port " + std::to_string(port_);
    auto sshd =
        std::make_unique<Process>(std::vector<std::string>{"/usr/sbin/sshd", "-D", "-f",
                                                           dir_ + "/sshd_config", "-E", log_path()},
                                  OutputTo(dir_ + "/sshd.out"));
    if (start_ticks_ == 0) start_ticks_ = ProcessStartTicks(sshd->pid());
    bool up = WaitFor(
        [&] {
          if (!sshd->Running()) return true;
          std::string log = ReadFile(log_path());
          return log.find(listening, log_start) != std::string::npos &&
                 CanConnect(address_, port_, milliseconds(200));
        },
        options_.start_timeout, milliseconds(20));
    if (up && sshd->Running()) {
      sshd_ = std::move(sshd);
      return;
    }
    last_problem = up ? "sshd exited" : "sshd did not accept connections in time";
    std::string log = ReadFile(log_path()).substr(std::min(log_start, ReadFile(log_path()).size()));
    sshd.reset();  // kills and reaps
    const bool bind_failed = log.find("Bind to port") != std::string::npos ||
                             log.find("Cannot bind any address") != std::string::npos;
    if (!bind_failed) break;
  }
  throw std::runtime_error("sshd on " + address_ + ":" + std::to_string(port_) +
                           " failed to start (" + last_problem + "); log:\n" + LogTail() +
                           ReadFile(dir_ + "/sshd.out"));
}

namespace {

// Stops `root` and every process descended from it, walking the tree until
// no new process appears (a process caught mid-fork leaves a child that the
// next round stops). Frozen processes cannot fork, so the result is the
// whole tree. Returns the descendants (root excluded).
std::vector<pid_t> FreezeTree(pid_t root) {
  ::kill(root, SIGSTOP);
  std::set<pid_t> seen;
  for (int round = 0; round < 20; ++round) {
    bool added = false;
    for (pid_t p : Descendants(root)) {
      if (seen.insert(p).second) {
        ::kill(p, SIGSTOP);
        added = true;
      }
    }
    if (!added) break;
  }
  return {seen.begin(), seen.end()};
}

void WaitGone(const std::vector<pid_t>& pids) {
  WaitFor(
      [&] {
        for (pid_t p : pids) {
          if (ProcessAlive(p)) return false;
        }
        return true;
      },
      milliseconds(5000));
}

}  // namespace

void SshHost::Kill(int sig) {
  if (!sshd_) return;
  const pid_t root = sshd_->pid();
  if (sig == SIGKILL) {
    Stop();
    return;
  }
  if (sig == SIGCONT) {
    ::kill(root, SIGCONT);
    for (pid_t p : Descendants(root)) ::kill(p, SIGCONT);
    return;
  }
  std::vector<pid_t> tree = FreezeTree(root);
  if (sig == SIGSTOP) return;
  for (pid_t p : tree) ::kill(p, sig);
  ::kill(root, sig);
  for (pid_t p : tree) ::kill(p, SIGCONT);
  ::kill(root, SIGCONT);
}

void SshHost::Stop() {
  if (!sshd_) return;
  // SIGKILL for the listener too: one that handled SIGTERM could still fork
  // a session for a connection it had accepted, and that session would
  // outlive the host.
  const pid_t root = sshd_->pid();
  std::vector<pid_t> tree = FreezeTree(root);
  for (pid_t p : tree) ::kill(p, SIGKILL);
  sshd_->KillGroup(SIGKILL);
  sshd_->Kill(SIGKILL);
  sshd_->WaitForExit(milliseconds(10000));
  sshd_.reset();
  WaitGone(tree);
}

void SshHost::Restart() {
  Stop();
  Start();
}

void SshHost::RegenerateHostKey() {
  GenerateEd25519Key(dir_ + "/ssh_host_ed25519_key", "clusterctl-test-host");
  host_key_pub_ = PublicKeyWithoutComment(dir_ + "/ssh_host_ed25519_key.pub");
}

void SshHost::KillServices() {
  std::vector<pid_t> victims = ProcessesWithEnvVar("CLUSTERCTL_TEST_HOST=" + dir_);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(state_dir(), ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    const bool pid_file =
        name == "pid" || (name.size() > 4 && name.compare(name.size() - 4, 4, ".pid") == 0);
    if (!pid_file) continue;
    pid_t pid = PidFromFile(it->path().string());
    if (pid <= 1 || pid == getpid() || !ProcessAlive(pid)) continue;
    if (ProcessStartTicks(pid) < start_ticks_) continue;  // older than this host: not ours
    victims.push_back(pid);
  }
  for (pid_t p : victims) KillWithGroup(p);
  WaitFor(
      [&] {
        for (pid_t p : victims) {
          if (ProcessAlive(p)) return false;
        }
        return true;
      },
      milliseconds(5000));
}

int SshHost::RunWithOpenSsh(const std::string& command, std::string* output,
                            std::chrono::milliseconds timeout) {
  const std::string known = dir_ + "/openssh_known_hosts";
  WriteFile(known, known_hosts_line() + "\n");
  const std::string out_path = dir_ + "/openssh.out";
  Process ssh({"ssh",
               "-F",
               "/dev/null",
               "-q",
               "-i",
               client_key_path_,
               "-o",
               "BatchMode=yes",
               "-o",
               "StrictHostKeyChecking=yes",
               "-o",
               "UserKnownHostsFile=" + known,
               "-o",
               "GlobalKnownHostsFile=/dev/null",
               "-o",
               "ConnectTimeout=5",
               "-p",
               std::to_string(port_),
               user() + "@" + address_,
               command},
              OutputTo(out_path));
  std::optional<int> rc = ssh.WaitForExit(timeout);
  if (!rc) {
    ssh.KillGroup(SIGKILL);
    rc = ssh.WaitForExit(milliseconds(5000));
  }
  if (output) *output = ReadFile(out_path);
  return rc.value_or(-1);
}

TestCluster::TestCluster(int n) {
  GenerateEd25519Key(client_key_path(), "clusterctl-test-client");
  for (int i = 0; i < n; ++i) {
    SshHostOptions options;
    options.dir = tmp_.Sub("host" + std::to_string(i));
    options.client_key_path = client_key_path();
    hosts_.push_back(std::make_unique<SshHost>(options));
  }
  WriteKnownHosts();
}

TestCluster::~TestCluster() {
  // Stop every sshd first, then the services, so no session starts a new one.
  for (auto& h : hosts_) h->Stop();
  hosts_.clear();
}

void TestCluster::WriteKnownHosts() {
  std::string lines;
  for (auto& h : hosts_) lines += h->known_hosts_line() + "\n";
  WriteFile(known_hosts_path(), lines);
}

}  // namespace clusterctl::testing
