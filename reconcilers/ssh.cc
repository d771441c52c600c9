#include "reconcilers/ssh.h"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxOutput = 8u << 20;
constexpr size_t kMaxScript = 100u << 10;
constexpr int kPollCapMs = 50;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

int64_t MsUntil(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
}

std::string ExpandHome(const std::string& path) {
  if (path != "~" && path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  std::string h = home && *home ? home : "";
  if (h.empty()) {
    if (passwd* pw = getpwuid(geteuid())) h = pw->pw_dir;
  }
  return h + path.substr(1);
}

std::string SshError(ssh_session s) {
  const char* e = ssh_get_error(s);
  return e && *e ? e : "unknown libssh error";
}

// True when libssh considers the session's connection gone.
bool Broken(ssh_session s) {
  return !ssh_is_connected(s) || (ssh_get_status(s) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
}

// Waits until the session's socket is readable (or writable, when libssh has
// output queued), at most kPollCapMs and never past `deadline`. libssh may
// hold parsed input that poll() cannot see, so callers loop on the cap.
void WaitSocket(ssh_session s, Clock::time_point deadline) {
  const int ms = static_cast<int>(std::clamp<int64_t>(MsUntil(deadline), 0, kPollCapMs));
  const int fd = ssh_get_fd(s);
  if (fd < 0) {
    std::this_thread::sleep_for(milliseconds(ms));
    return;
  }
  pollfd p{fd, POLLIN, 0};
  if (ssh_get_poll_flags(s) & SSH_WRITE_PENDING) p.events |= POLLOUT;
  ::poll(&p, 1, ms);
}

void SetTcpKeepalive(ssh_session s, int idle_seconds) {
  const int fd = ssh_get_fd(s);
  if (fd < 0) return;
  int one = 1, idle = std::max(1, idle_seconds), interval = std::max(1, idle_seconds / 3),
      count = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

// "ssh-ed25519 SHA256:..." of the key the server presented.
std::string ServerKeyFingerprint(ssh_session s) {
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(s, &key) != SSH_OK || key == nullptr) return "an unreadable key";
  std::string out = ssh_key_type_to_char(ssh_key_type(key));
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) == 0) {
    if (char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len)) {
      out += std::string(" ") + fp;
      ssh_string_free_char(fp);
    }
    ssh_clean_pubkey_hash(&hash);
  }
  ssh_key_free(key);
  return out;
}

int SignalNumber(const std::string& name) {
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", 1},   {"INT", 2},   {"QUIT", 3},  {"ILL", 4},   {"TRAP", 5},  {"ABRT", 6},
      {"BUS", 7},   {"FPE", 8},   {"KILL", 9},  {"USR1", 10}, {"SEGV", 11}, {"USR2", 12},
      {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15}, {"XCPU", 24}, {"XFSZ", 25}};
  for (const auto& [n, v] : kSignals) {
    if (name == n) return v;
  }
  return -1;
}

// What the server told us about the end of the command.
struct ChannelEnd {
  int exit_status = -1;
  std::string exit_signal;
};

void OnExitStatus(ssh_session, ssh_channel, int status, void* userdata) {
  static_cast<ChannelEnd*>(userdata)->exit_status = status;
}

void OnExitSignal(ssh_session, ssh_channel, const char* signal, int, const char*, const char*,
                  void* userdata) {
  static_cast<ChannelEnd*>(userdata)->exit_signal = signal ? signal : "?";
}

// Owns a channel and its callbacks; frees both on every return path. The
// callbacks must be removed before the free: libssh keeps a freed channel
// until the server confirms the close, and would call them later.
class ChannelGuard {
 public:
  ChannelGuard(ssh_channel ch, ChannelEnd* end) : ch_(ch) {
    cb_.userdata = end;
    cb_.channel_exit_status_function = OnExitStatus;
    cb_.channel_exit_signal_function = OnExitSignal;
    ssh_callbacks_init(&cb_);
    ssh_set_channel_callbacks(ch_, &cb_);
  }
  ~ChannelGuard() {
    ssh_remove_channel_callbacks(ch_, &cb_);
    if (ssh_channel_is_open(ch_)) ssh_channel_close(ch_);
    ssh_channel_free(ch_);
  }
  ChannelGuard(const ChannelGuard&) = delete;
  ChannelGuard& operator=(const ChannelGuard&) = delete;

 private:
  ssh_channel ch_;
  ssh_channel_callbacks_struct cb_{};
};

void AppendCapped(std::string& to, const char* data, size_t n, bool* truncated) {
  if (to.size() >= kMaxOutput) {
    *truncated = true;
    return;
  }
  const size_t take = std::min(n, kMaxOutput - to.size());
  to.append(data, take);
  if (take < n) *truncated = true;
}

// How far a command got; decides whether a failure may be retried.
enum class Stage { kNotSent, kSent };

// Runs `command` on a new channel of `s`. The channel must open within
// `open_deadline`, the command must end within `deadline`.
Result<CommandResult> Exec(ssh_session s, const std::string& command,
                           Clock::time_point open_deadline, Clock::time_point deadline,
                           Stage* stage) {
  *stage = Stage::kNotSent;
  const auto start = Clock::now();
  ssh_channel ch = ssh_channel_new(s);
  if (ch == nullptr) return Status::Unavailable("cannot create a channel: " + SshError(s));
  ChannelEnd end;
  ChannelGuard guard(ch, &end);

  int rc;
  while ((rc = ssh_channel_open_session(ch)) == SSH_AGAIN) {
    if (Clock::now() >= open_deadline) {
      return Status::Timeout("opening a channel timed out after " + std::to_string(MsSince(start)) +
                             " ms; the command was not started");
    }
    WaitSocket(s, open_deadline);
  }
  if (rc != SSH_OK) {
    return Status::Unavailable("cannot open a channel (the command was not started): " +
                               SshError(s));
  }

  *stage = Stage::kSent;
  const std::string unknown =
      "; the command may have run or may still be running: its outcome is unknown, "
      "re-observe the machine before retrying";
  auto timed_out = [&] {
    // Best effort: ask sshd to stop the command before the session is dropped.
    ssh_channel_request_send_signal(ch, "TERM");
    ssh_blocking_flush(s, 200);
    return Status::Timeout("command timed out after " + std::to_string(MsSince(start)) + " ms" +
                           unknown);
  };
  auto lost = [&] {
    return Status::Unavailable("connection lost while the command was running (" + SshError(s) +
                               ")" + unknown);
  };

  while ((rc = ssh_channel_request_exec(ch, command.c_str())) == SSH_AGAIN) {
    if (Clock::now() >= deadline) return timed_out();
    WaitSocket(s, deadline);
  }
  if (rc != SSH_OK) {
    if (Broken(s)) return lost();
    return Status::Unavailable("the machine refused to run the command: " + SshError(s));
  }
  ssh_channel_send_eof(ch);  // empty stdin

  CommandResult result;
  bool truncated = false;
  char buf[16384];
  for (;;) {
    // Checked on every round: a command that never stops writing must time out too.
    if (Clock::now() >= deadline) return timed_out();
    bool progress = false;
    for (int is_stderr = 0; is_stderr < 2; ++is_stderr) {
      int n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, is_stderr);
      if (n > 0) {
        AppendCapped(is_stderr ? result.err : result.out, buf, static_cast<size_t>(n), &truncated);
        progress = true;
      } else if (n == SSH_ERROR) {
        return lost();
      }
    }
    if (progress) continue;
    if (ssh_channel_is_eof(ch)) break;
    if (Broken(s)) return lost();
    if (ssh_channel_is_closed(ch)) break;  // closed without EOF: nothing more comes
    WaitSocket(s, deadline);
  }

  // The exit status follows the EOF, before the channel close.
  while (end.exit_status < 0 && end.exit_signal.empty() && !ssh_channel_is_closed(ch)) {
    ssh_channel_get_exit_status(ch);  // non-blocking session: processes what arrived
    if (end.exit_status >= 0 || !end.exit_signal.empty()) break;
    if (Broken(s)) return lost();
    if (Clock::now() >= deadline) return timed_out();
    WaitSocket(s, deadline);
  }
  if (end.exit_status < 0 && end.exit_signal.empty() && Broken(s)) return lost();

  if (end.exit_status >= 0) {
    result.exit_code = end.exit_status;
  } else if (!end.exit_signal.empty()) {
    const int sig = SignalNumber(end.exit_signal);
    result.exit_code = sig > 0 ? 128 + sig : -1;
    if (sig <= 0) result.err += "[killed by signal " + end.exit_signal + "]";
  }
  if (truncated) {
    if (result.out.size() >= kMaxOutput) result.out += "\n[output truncated]";
    if (result.err.size() >= kMaxOutput) result.err += "\n[output truncated]";
  }
  result.duration_ms = MsSince(start);
  return result;
}

}  // namespace

CommandRunner::~CommandRunner() = default;

const char* PurposeName(Purpose p) {
  switch (p) {
    case Purpose::kObserve:
      return "observe";
    case Purpose::kAction:
      return "action";
    case Purpose::kProbe:
      return "probe";
    case Purpose::kWatch:
      return "watch";
  }
  return "action";
}

std::string Command::Standalone() const {
  if (!trusted) return library.empty() ? script : library + "\n" + script;
  return library + "\n_cc_main() {\n" + script + "\n}\n_cc_main </dev/null\n";
}

// One session and its reconnect state.
struct SshPool::Conn {
  std::string machine;
  std::string where;  // "ssh jetson (ops@192.168.1.177:22)" for messages

  std::timed_mutex mu;            // held for every use of `session`, including I/O
  ssh_session session = nullptr;  // guarded by mu
  Clock::time_point last_used;    // guarded by mu

  std::mutex backoff_mu;  // guards the backoff state; never held during I/O
  int failures = 0;
  Clock::time_point retry_after;
  Status last_error;

  ~Conn() { Drop(); }

  // Frees the session (REQUIRES: mu held, or the last reference).
  void Drop() {
    if (session == nullptr) return;
    ssh_disconnect(session);
    ssh_free(session);
    session = nullptr;
  }

  // The last connect error with "retry in N ms" while within the backoff
  // window; OK otherwise.
  Status BackoffStatus() {
    std::lock_guard<std::mutex> l(backoff_mu);
    const int64_t left = MsUntil(retry_after);
    if (failures == 0 || left <= 0) return Status::Ok();
    const Code code =
        last_error.code() == Code::kPermission ? Code::kPermission : Code::kUnavailable;
    return Status(code, where + ": " + last_error.message() + "; retry in " + std::to_string(left) +
                            " ms (reconnect backoff)");
  }
};

SshPool::SshPool(SshOptions options)
    : options_(std::move(options)),
      connect_slots_(std::max(1, options_.max_concurrent_connects)),
      rng_(std::random_device{}()) {
  static std::once_flag init;
  std::call_once(init, [] { ssh_init(); });
}

SshPool::~SshPool() {
  std::lock_guard<std::mutex> l(mu_);
  conns_.clear();  // each Conn frees its session
}

std::shared_ptr<SshPool::Conn> SshPool::GetConn(const SshTarget& target) {
  const int port = target.port > 0 ? target.port : 22;
  const std::string key =
      target.machine + '\x1f' + target.address + ':' + std::to_string(port) + '\x1f' + target.user;
  std::lock_guard<std::mutex> l(mu_);
  std::shared_ptr<Conn>& c = conns_[key];
  if (!c) {
    c = std::make_shared<Conn>();
    c->machine = target.machine;
    c->where = "ssh " + target.machine + " (" + (target.user.empty() ? "" : target.user + "@") +
               target.address + ":" + std::to_string(port) + ")";
  }
  return c;
}

void SshPool::Close(const std::string& machine) {
  std::vector<std::shared_ptr<Conn>> closing;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second->machine == machine) {
        closing.push_back(std::move(it->second));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Freed here, or by the Run still using it when that Run ends.
  closing.clear();
}

int SshPool::ConnectsForTest(const std::string& machine) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = connects_.find(machine);
  return it == connects_.end() ? 0 : it->second;
}

int SshPool::BackoffMs(int failures) {
  const int64_t initial = std::max(1, options_.backoff_initial_ms);
  const int64_t cap = std::max<int64_t>(initial, options_.backoff_max_ms);
  int64_t nominal = initial;
  for (int i = 1; i < failures && nominal < cap; ++i) nominal *= 2;
  nominal = std::min(nominal, cap);
  std::lock_guard<std::mutex> l(mu_);
  std::uniform_int_distribution<int64_t> jitter(nominal / 2, nominal);
  return static_cast<int>(jitter(rng_));
}

Result<CommandResult> SshPool::Run(const SshTarget& target, const Command& cmd,
                                   std::chrono::milliseconds timeout) {
  const std::string script = cmd.Standalone();
  if (script.find('\0') != std::string::npos) {
    return Status::Invalid("ssh " + target.machine + ": the script contains a NUL byte");
  }
  if (script.size() > kMaxScript) {
    return Status::Invalid("ssh " + target.machine + ": the script is " +
                           std::to_string(script.size()) + " bytes; the limit is " +
                           std::to_string(kMaxScript));
  }
  if (timeout.count() <= 0) timeout = milliseconds(options_.command_timeout_ms);
  const milliseconds connect_timeout(std::max(1, options_.connect_timeout_ms));

  std::shared_ptr<Conn> conn = GetConn(target);
  if (Status s = conn->BackoffStatus(); !s.ok()) return s;

  std::unique_lock<std::timed_mutex> lock(conn->mu, std::defer_lock);
  if (!lock.try_lock_for(timeout + connect_timeout)) {
    return Status::Timeout(conn->where + ": waited " +
                           std::to_string((timeout + connect_timeout).count()) +
                           " ms for another command on this machine to finish; the command "
                           "was not started");
  }

  const std::string command = "sh -c " + ShellQuote(script);
  for (int attempt = 0;; ++attempt) {
    bool fresh = false;
    if (conn->session != nullptr) {
      bool usable = !Broken(conn->session);
      if (usable &&
          Clock::now() - conn->last_used > std::chrono::seconds(options_.keepalive_seconds)) {
        usable = ssh_send_ignore(conn->session, "") == SSH_OK;
      }
      if (!usable) {
        spdlog::debug("{}: idle session is gone; reconnecting", conn->where);
        conn->Drop();
      }
    }
    if (conn->session == nullptr) {
      CLUSTERCTL_RETURN_IF_ERROR(Connect(*conn, target));
      fresh = true;
    }

    const auto now = Clock::now();
    Stage stage;
    Result<CommandResult> r = Exec(conn->session, command, now + std::min(connect_timeout, timeout),
                                   now + timeout, &stage);
    if (r.ok()) {
      conn->last_used = Clock::now();
      return r;
    }
    conn->Drop();
    if (stage == Stage::kNotSent && !fresh && attempt == 0) {
      // A reused session that died while idle: the command never left, so
      // it is safe to send it once more on a new session.
      spdlog::debug("{}: stale session ({}); reconnecting", conn->where, r.status().message());
      continue;
    }
    return r.status().Annotate(conn->where);
  }
}

Status SshPool::Connect(Conn& conn, const SshTarget& target) {
  if (Status s = conn.BackoffStatus(); !s.ok()) return s;
  const auto start = Clock::now();
  const auto deadline = start + milliseconds(std::max(1, options_.connect_timeout_ms));
  if (!connect_slots_.try_acquire_until(deadline)) {
    return Status::Unavailable(conn.where + ": " +
                               std::to_string(options_.max_concurrent_connects) +
                               " connections were being established already; gave up after " +
                               std::to_string(MsSince(start)) + " ms");
  }
  Status s = Establish(conn, target);
  connect_slots_.release();

  if (s.ok()) {
    {
      std::lock_guard<std::mutex> l(conn.backoff_mu);
      conn.failures = 0;
      conn.last_error = Status::Ok();
    }
    conn.last_used = Clock::now();
    std::lock_guard<std::mutex> l(mu_);
    ++connects_[conn.machine];
    spdlog::debug("{}: session established in {} ms", conn.where, MsSince(start));
    return s;
  }
  conn.Drop();
  int failures;
  {
    std::lock_guard<std::mutex> l(conn.backoff_mu);
    failures = ++conn.failures;
  }
  const int delay = BackoffMs(failures);
  {
    std::lock_guard<std::mutex> l(conn.backoff_mu);
    conn.retry_after = Clock::now() + milliseconds(delay);
    conn.last_error = s;
  }
  spdlog::debug("{}: {} (failure {}, retry in {} ms)", conn.where, s.message(), failures, delay);
  return Status(s.code(),
                conn.where + ": " + s.message() + "; retry in " + std::to_string(delay) + " ms");
}

// Connects, checks the host key and authenticates. On error the caller drops
// conn.session. Messages carry no "where" prefix.
Status SshPool::Establish(Conn& conn, const SshTarget& target) {
  const auto start = Clock::now();
  const auto deadline = start + milliseconds(std::max(1, options_.connect_timeout_ms));
  ssh_session s = ssh_new();
  if (s == nullptr) return Status::Internal("ssh_new failed");
  conn.session = s;

  const std::string known_hosts = ExpandHome(options_.known_hosts);
  unsigned int port = target.port > 0 ? static_cast<unsigned int>(target.port) : 22;
  long timeout_s = options_.connect_timeout_ms / 1000;
  long timeout_us = (options_.connect_timeout_ms % 1000) * 1000L;
  int verbosity = SSH_LOG_NOLOG;
  bool process_config = false;
  int nodelay = 1;
  if (ssh_options_set(s, SSH_OPTIONS_HOST, target.address.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PORT, &port) != SSH_OK ||
      (!target.user.empty() &&
       ssh_options_set(s, SSH_OPTIONS_USER, target.user.c_str()) != SSH_OK) ||
      ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout_s) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &timeout_us) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK ||
      (!known_hosts.empty() &&
       ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, known_hosts.c_str()) != SSH_OK) ||
      ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay) != SSH_OK) {
    return Status::Invalid("bad SSH options: " + SshError(s));
  }
  ssh_set_blocking(s, 0);

  int rc;
  while ((rc = ssh_connect(s)) == SSH_AGAIN) {
    if (Clock::now() >= deadline) {
      return Status::Unavailable("connect timed out after " + std::to_string(MsSince(start)) +
                                 " ms");
    }
    WaitSocket(s, deadline);
  }
  if (rc != SSH_OK) return Status::Unavailable("connect failed: " + SshError(s));
  SetTcpKeepalive(s, options_.keepalive_seconds);

  // Host key: ssh_connect() does not verify it.
  const std::string kh_name = known_hosts.empty() ? "~/.ssh/known_hosts" : known_hosts;
  const ssh_known_hosts_e state = ssh_session_is_known_server(s);
  switch (state) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
      return Status::Permission("host_key_mismatch: the machine presented " +
                                ServerKeyFingerprint(s) + ", not the key recorded for it in " +
                                kh_name +
                                "; if the machine was reinstalled, verify its new key "
                                "and replace its line in " +
                                kh_name);
    case SSH_KNOWN_HOSTS_OTHER:
      return Status::Permission("host_key_mismatch: the machine presented " +
                                ServerKeyFingerprint(s) +
                                ", of another type than the key "
                                "recorded for it in " +
                                kh_name +
                                "; verify the machine's key "
                                "and update its line in " +
                                kh_name);
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      if (options_.policy == HostKeyPolicy::kAcceptNew) {
        std::lock_guard<std::mutex> l(known_hosts_mu_);
        if (ssh_session_is_known_server(s) != SSH_KNOWN_HOSTS_OK) {  // not added meanwhile
          if (!known_hosts.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(std::filesystem::path(known_hosts).parent_path(),
                                                ec);
          }
          if (ssh_session_update_known_hosts(s) != SSH_OK) {
            return Status::Internal("cannot record the host key in " + kh_name + ": " +
                                    SshError(s));
          }
          spdlog::info("{}: new host key {} recorded in {} (accept-new)", conn.where,
                       ServerKeyFingerprint(s), kh_name);
        }
        break;
      }
      return Status::Permission("host_key_unknown: the machine presented " +
                                ServerKeyFingerprint(s) + ", and " + kh_name +
                                " has no key for it; verify the machine's key and add it to " +
                                kh_name + " (or set hostKeyPolicy: accept-new)");
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return Status::Permission("host_key_check_failed: cannot check the host key against " +
                                kh_name + ": " + SshError(s));
  }

  // Authentication. Key contents are never logged; only the file name.
  const std::string user_name = target.user.empty() ? "the current user" : target.user;
  const std::string identity = ExpandHome(
      !target.identity_file.empty() ? target.identity_file : options_.default_identity_file);
  auto pump_auth = [&](auto attempt) -> int {
    int r;
    while ((r = attempt()) == SSH_AUTH_AGAIN) {
      if (Clock::now() >= deadline) return SSH_AUTH_AGAIN;
      WaitSocket(s, deadline);
    }
    return r;
  };
  int auth;
  if (!identity.empty()) {
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(identity.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK ||
        key == nullptr) {
      return Status::Permission("cannot load identity file " + identity +
                                " (missing, unreadable, not a private key, or "
                                "passphrase-protected)");
    }
    auth = pump_auth([&] { return ssh_userauth_publickey(s, nullptr, key); });
    ssh_key_free(key);
  } else {
    auth = SSH_AUTH_DENIED;
    const char* agent = std::getenv("SSH_AUTH_SOCK");
    if (agent != nullptr && *agent != '\0') {
      auth = pump_auth([&] { return ssh_userauth_agent(s, nullptr); });
    }
    if (auth != SSH_AUTH_SUCCESS && auth != SSH_AUTH_AGAIN) {
      auth = pump_auth([&] { return ssh_userauth_publickey_auto(s, nullptr, nullptr); });
    }
  }
  switch (auth) {
    case SSH_AUTH_SUCCESS:
      return Status::Ok();
    case SSH_AUTH_AGAIN:
      return Status::Unavailable("authentication timed out after " +
                                 std::to_string(MsSince(start)) + " ms");
    case SSH_AUTH_ERROR:
      return Status::Unavailable("authentication failed: " + SshError(s));
    default:
      return Status::Permission(
          "authentication refused for " + user_name +
          (identity.empty() ? std::string(" (no identity file set; the ssh-agent and ~/.ssh keys "
                                          "were not accepted)")
                            : " with identity file " + identity) +
          "; check that its public key is in the user's authorized_keys on the machine");
  }
}

}  // namespace clusterctl::reconcilers
