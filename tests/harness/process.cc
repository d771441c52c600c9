#include "tests/harness/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/harness/temp_dir.h"

extern char** environ;

namespace clusterctl::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ExitValue(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Fields of /proc/<pid>/stat after the command name: state is [0], ppid [1],
// starttime [19]. Empty when the process does not exist.
std::vector<std::string> StatFields(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  std::string field;
  while (rest >> field) fields.push_back(field);
  return fields;
}

}  // namespace

Process::Process(std::vector<std::string> argv, SpawnOptions options)
    : argv_(std::move(argv)), own_group_(options.new_process_group) {
  if (argv_.empty()) throw std::runtime_error("Process: empty argv");

  // Environment: the test's, with options.env added or replaced.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    env[kv.substr(0, kv.find('='))] = kv;
  }
  for (const std::string& kv : options.env) env[kv.substr(0, kv.find('='))] = kv;
  std::vector<std::string> env_strings;
  for (auto& [name, kv] : env) env_strings.push_back(kv);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (std::string& s : argv_) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string err_path =
      options.stderr_path.empty() ? options.stdout_path : options.stderr_path;
  if (!options.stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (!err_path.empty()) {
    if (err_path == options.stdout_path) {
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (own_group_) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  sigset_t empty, all;
  sigemptyset(&empty);
  sigemptyset(&all);
  for (int sig = 1; sig < 32; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&all, sig);
  }
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);

  int rc = posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot spawn " + argv_[0] + ": " + std::strerror(rc));
  }
}

Process::~Process() {
  if (pid_ <= 0 || reaped_) return;
  KillGroup(SIGKILL);
  Kill(SIGKILL);
  TryReap(/*block=*/true);
}

bool Process::TryReap(bool block) {
  if (reaped_) return true;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exit_value_ = ExitValue(status);
      return true;
    }
    if (r == 0) return false;
    if (r < 0 && errno == EINTR) continue;
    // ECHILD: someone else reaped it; treat as gone.
    reaped_ = true;
    return true;
  }
}

bool Process::Running() { return !TryReap(/*block=*/false); }

std::optional<int> Process::WaitForExit(std::chrono::milliseconds timeout) {
  if (WaitFor([&] { return TryReap(/*block=*/false); }, timeout, std::chrono::milliseconds(5))) {
    return exit_value_;
  }
  return std::nullopt;
}

void Process::Kill(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

void Process::KillGroup(int sig) {
  if (pid_ <= 0 || reaped_) return;
  if (own_group_) {
    ::kill(-pid_, sig);
  } else {
    ::kill(pid_, sig);
  }
}

int Process::Stop(std::chrono::milliseconds grace) {
  Kill(SIGCONT);
  Kill(SIGTERM);
  if (auto v = WaitForExit(grace)) return *v;
  KillGroup(SIGKILL);
  Kill(SIGKILL);
  TryReap(/*block=*/true);
  return exit_value_;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
    if (Clock::now() >= deadline) return condition();
  }
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  std::vector<std::string> f = StatFields(pid);
  if (f.empty()) return false;
  return f[0] != "Z" && f[0] != "X" && f[0] != "x";
}

unsigned long long ProcessStartTicks(pid_t pid) {
  std::vector<std::string> f = StatFields(pid);
  if (f.size() < 20) return 0;
  return std::stoull(f[19]);
}

std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || pid <= 0) continue;
      std::vector<std::string> f = StatFields(static_cast<pid_t>(pid));
      if (f.size() < 2 || f[0] == "Z" || f[0] == "X") continue;
      children.emplace(static_cast<pid_t>(std::stol(f[1])), static_cast<pid_t>(pid));
    }
    closedir(d);
  }
  std::vector<pid_t> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto [lo, hi] = children.equal_range(p);
    for (auto it = lo; it != hi; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return out;
}

namespace {
// Binds a TCP socket to address:port (0: any); returns the bound port, or 0.
int TryBind(const sockaddr_in& base, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in sa = base;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  int bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    socklen_t len = sizeof sa;
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    bound = ntohs(sa.sin_port);
  }
  ::close(fd);
  return bound;
}

// The low end of net.ipv4.ip_local_port_range (32768 by default).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  in >> low;
  return low;
}
}  // namespace

int PickFreePort(const std::string& address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    throw std::runtime_error("bad IPv4 address " + address);
  }
  thread_local std::mt19937 rng(static_cast<unsigned>(std::random_device{}() ^ ::getpid()));
  const int high = EphemeralLow() - 1;
  const int low = std::min(10000, high - 1000);
  if (low > 1024) {
    std::uniform_int_distribution<int> pick(low, high);
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (int port = TryBind(sa, pick(rng)); port > 0) return port;
    }
  }
  if (int port = TryBind(sa, 0); port > 0) return port;  // An unusual port range.
  throw std::runtime_error("cannot bind a port on " + address + ": " + std::strerror(errno));
}

bool CanConnect(const std::string& address, int port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  bool ok = false;
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (rc == 0) {
    ok = true;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      ok = err == 0;
    }
  }
  ::close(fd);
  return ok;
}

std::vector<pid_t> ProcessesWithEnvVar(const std::string& marker) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 1 || pid == getpid()) continue;
    const std::string env = ReadFile(std::string("/proc/") + e->d_name + "/environ");
    size_t pos = 0;
    while (pos < env.size()) {
      size_t nul = env.find('\0', pos);
      if (nul == std::string::npos) nul = env.size();
      if (env.compare(pos, nul - pos, marker) == 0) {
        out.push_back(static_cast<pid_t>(pid));
        break;
      }
      pos = nul + 1;
    }
  }
  closedir(d);
  return out;
}

}  // namespace clusterctl::testing
