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
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/paths.h"
#include "reconcilers/shell.h"
#include "reconcilers/shell_framing.h"

namespace clusterctl::reconcilers {
namespace {

using std::chrono::milliseconds;

constexpr size_t kMaxOutput = 8u << 20;
constexpr size_t kMaxScript = 100u << 10;
constexpr int kPollCapMs = 50;

int64_t MsSince(SteadyTime t) {
  return std::chrono::duration_cast<milliseconds>(SteadyNow() - t).count();
}

int64_t MsUntil(SteadyTime t) {
  return std::chrono::duration_cast<milliseconds>(t - SteadyNow()).count();
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
void WaitSocket(ssh_session s, SteadyTime deadline) {
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

// What the server told us about the end of a shell.
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

// The exit code a shell's end tells: its exit status, or 128 + the signal
// that ended it; nullopt when the server said neither (-1: an unknown signal).
std::optional<int> ExitCodeOf(const ChannelEnd& end) {
  if (end.exit_status >= 0) return end.exit_status;
  if (end.exit_signal.empty()) return std::nullopt;
  const int sig = SignalNumber(end.exit_signal);
  return sig > 0 ? 128 + sig : -1;
}

// Whether a script (with its library) can be sent: no NUL, at most kMaxScript.
Status CheckScript(const std::string& machine, const std::string& script,
                   const std::string& library) {
  if (script.find('\0') != std::string::npos || library.find('\0') != std::string::npos) {
    return Status::Invalid("ssh " + machine + ": the script contains a NUL byte");
  }
  if (script.size() + library.size() > kMaxScript) {
    return Status::Invalid("ssh " + machine + ": the script is " +
                           std::to_string(script.size() + library.size()) +
                           " bytes; the limit is " + std::to_string(kMaxScript));
  }
  return Status::Ok();
}

std::string RandomHex(size_t n) {
  static thread_local std::mt19937_64 rng(
      std::random_device{}() ^ static_cast<uint64_t>(SteadyNow().time_since_epoch().count()));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += kHex[rng() & 15];
  return out;
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
    case Purpose::kStream:
      return "stream";
  }
  return "action";
}

std::string Command::Standalone() const {
  if (!trusted) return library.empty() ? script : library + "\n" + script;
  return library + "\n_cc_main() {\n" + script + "\n}\n_cc_main </dev/null\n";
}

// One persistent shell: a channel running kShellCommand, with at most one
// command in flight. Everything here is guarded by the Conn's mutex.
struct SshPool::Shell {
  Purpose purpose = Purpose::kAction;
  ssh_channel ch = nullptr;
  ChannelEnd end;
  ssh_channel_callbacks_struct cb{};
  std::string token = RandomHex(24);
  uint64_t seq = 0;
  bool synced = false;      // a command (with the sync marker) was sent
  size_t library_hash = 0;  // the library defined in this shell, 0 = none
  bool started = false;     // the channel is open and runs the shell
  bool busy = false;        // a command holds this shell
  bool dead = false;        // the channel is gone; never reused
  std::string dead_reason;  // why, for the command in flight

  // The command in flight.
  std::string pending;  // request bytes not written yet
  std::unique_ptr<StreamParser> out, err;
  bool ended = false;  // the shell ended before the markers came
  bool lost = false;   // the session broke
  // A streamed command (Purpose::kStream): its output as it arrived, not
  // yet taken by SshPool::Stream; [0] stdout, [1] stderr.
  std::string streamed[2];

  bool Finished() const { return (out && out->done() && err->done()) || ended || lost || dead; }
};

// One machine: its SSH session, its shells, and the reconnect state.
struct SshPool::Conn {
  std::string machine;
  std::string where;  // "ssh jetson (ops@192.168.1.177:22)" for messages

  // Guards everything below and every libssh call on `session` and its
  // channels. Held only for non-blocking calls, never while waiting.
  std::mutex mu;
  std::condition_variable cv;  // a shell freed, a command progressed, a connect ended
  ssh_session session = nullptr;
  SteadyTime last_used;
  bool connecting = false;  // a thread is establishing `session`
  bool pumping = false;     // a thread is reading the socket for everyone
  std::vector<std::shared_ptr<Shell>> shells;
  int timeouts_in_row = 0;  // commands that timed out since the last success
  int shells_opened = 0;

  std::mutex backoff_mu;  // guards the backoff state; never held during I/O
  int failures = 0;
  SteadyTime retry_after;
  Status last_error;

  ~Conn() {
    std::lock_guard<std::mutex> l(mu);
    DropSession("the pool was closed");
  }

  // Frees a shell's channel (REQUIRES: mu). The callbacks go first: libssh
  // keeps a freed channel until the server confirms the close and would
  // call them later.
  static void FreeChannel(Shell& sh) {
    if (sh.ch == nullptr) return;
    ssh_remove_channel_callbacks(sh.ch, &sh.cb);
    if (ssh_channel_is_open(sh.ch)) ssh_channel_close(sh.ch);
    ssh_channel_free(sh.ch);
    sh.ch = nullptr;
  }

  // Marks a shell dead and frees its channel (REQUIRES: mu).
  void KillShell(Shell& sh, const std::string& why) {
    if (!sh.dead) {
      sh.dead = true;
      sh.dead_reason = why;
    }
    FreeChannel(sh);
    shells.erase(std::remove_if(shells.begin(), shells.end(),
                                [&](const std::shared_ptr<Shell>& p) { return p.get() == &sh; }),
                 shells.end());
    cv.notify_all();
  }

  // Frees the session and every shell on it (REQUIRES: mu).
  void DropSession(const std::string& why) {
    for (auto& sh : shells) {
      if (sh->busy) sh->lost = true;
      sh->dead = true;
      sh->dead_reason = why;
      FreeChannel(*sh);
    }
    shells.clear();
    if (session != nullptr) {
      ssh_disconnect(session);
      ssh_free(session);
      session = nullptr;
    }
    cv.notify_all();
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

  // One round of non-blocking I/O for every busy shell: write what is
  // pending, read what arrived (libssh dispatches every channel's packets
  // while reading any one), notice ended shells and a broken session.
  // REQUIRES: mu. Returns whether anything changed.
  bool PumpLocked();
};

bool SshPool::Conn::PumpLocked() {
  if (session == nullptr) return false;
  bool progress = false;
  char buf[16384];
  // Copy: KillShell edits `shells`.
  std::vector<std::shared_ptr<Shell>> snapshot = shells;
  for (auto& sh : snapshot) {
    if (sh->dead || sh->ch == nullptr || !sh->started) continue;
    if (sh->busy && !sh->pending.empty()) {
      const int n =
          ssh_channel_write(sh->ch, sh->pending.data(), static_cast<uint32_t>(sh->pending.size()));
      if (n > 0) {
        sh->pending.erase(0, static_cast<size_t>(n));
        progress = true;
      } else if (n == SSH_ERROR) {
        sh->ended = true;
        KillShell(*sh, "cannot write to the remote shell: " + SshError(session));
        progress = true;
        continue;
      }
    }
    for (int is_stderr = 0; is_stderr < 2; ++is_stderr) {
      for (;;) {
        const int n = ssh_channel_read_nonblocking(sh->ch, buf, sizeof buf, is_stderr);
        if (n <= 0) {
          if (n == SSH_ERROR && !sh->dead) {
            if (sh->busy) sh->ended = true;
            KillShell(*sh, "reading from the remote shell failed: " + SshError(session));
            progress = true;
          }
          break;
        }
        progress = true;
        if (sh->purpose == Purpose::kStream) {
          sh->streamed[is_stderr].append(buf, static_cast<size_t>(n));
        } else if (sh->busy && sh->out) {
          (is_stderr ? sh->err : sh->out)->Feed(std::string_view(buf, n));
        }
      }
      if (sh->dead) break;
    }
    if (sh->dead) continue;
    if (sh->busy && sh->out && sh->out->done() && sh->err->done()) continue;
    if (ssh_channel_is_eof(sh->ch) || ssh_channel_is_closed(sh->ch)) {
      // The shell ended: between commands (reopened on next use) or during
      // one (an untrusted script killed it, or someone else did).
      ssh_channel_get_exit_status(sh->ch);  // non-blocking: takes what arrived
      // The exit status or signal follows the EOF, before the close.
      const bool told = sh->end.exit_status >= 0 || !sh->end.exit_signal.empty();
      if (sh->busy && !told && !ssh_channel_is_closed(sh->ch)) continue;
      if (sh->busy) sh->ended = true;
      KillShell(*sh, "the remote shell ended");
      progress = true;
    }
  }
  if (Broken(session)) {
    DropSession("connection lost (" + SshError(session) + ")");
    progress = true;
  }
  if (progress) cv.notify_all();
  return progress;
}

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

int SshPool::ShellsOpenedForTest(const std::string& machine) const {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& [_, c] : conns_) {
    if (c->machine != machine) continue;
    std::lock_guard<std::mutex> cl(c->mu);
    n += c->shells_opened;
  }
  return n;
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

int SshPool::MaxShells(Purpose p) const {
  switch (p) {
    case Purpose::kAction:
      return std::max(1, options_.max_action_shells);
    case Purpose::kProbe:
      return std::max(1, options_.max_probe_shells);
    case Purpose::kObserve:
    case Purpose::kWatch:
    case Purpose::kStream:
      return 1;
  }
  return 1;
}

// Lets one waiting thread at a time read the socket for everyone: it polls
// the session's socket (without the lock), then pumps every shell. Others
// wait on the condition variable. REQUIRES: `l` holds conn.mu; returns with
// it held.
void SshPool::PumpOrWait(Conn& conn, std::unique_lock<std::mutex>& l, SteadyTime deadline) {
  const auto cap = std::min(deadline, SteadyNow() + milliseconds(kPollCapMs));
  if (conn.pumping) {
    conn.cv.wait_until(l, cap);
    return;
  }
  conn.pumping = true;
  if (!conn.PumpLocked() && conn.session != nullptr) {
    const int fd = ssh_get_fd(conn.session);
    short events = POLLIN;
    if (ssh_get_poll_flags(conn.session) & SSH_WRITE_PENDING) events |= POLLOUT;
    l.unlock();
    if (fd >= 0) {
      pollfd p{fd, events, 0};
      ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(MsUntil(cap), 0, kPollCapMs)));
    } else {
      std::this_thread::sleep_until(cap);
    }
    l.lock();
    conn.PumpLocked();
  }
  conn.pumping = false;
  conn.cv.notify_all();
}

// Makes sure `conn` has a live session. REQUIRES: `l` holds conn.mu.
// `*fresh` tells whether this call connected.
Status SshPool::EnsureSession(Conn& conn, std::unique_lock<std::mutex>& l, const SshTarget& target,
                              SteadyTime deadline, bool* fresh) {
  *fresh = false;
  for (;;) {
    if (conn.session != nullptr) {
      bool usable = !Broken(conn.session);
      if (usable && conn.shells.empty() &&
          SteadyNow() - conn.last_used > std::chrono::seconds(options_.keepalive_seconds)) {
        usable = ssh_send_ignore(conn.session, "") == SSH_OK;
      }
      if (usable) return Status::Ok();
      spdlog::debug("{}: idle session is gone; reconnecting", conn.where);
      conn.DropSession("connection lost (idle session)");
    }
    if (conn.connecting) {
      if (SteadyNow() >= deadline) {
        return Status::Timeout(conn.where + ": waited for the connection being established; " +
                               "the command was not started");
      }
      conn.cv.wait_until(l, deadline);
      continue;
    }
    conn.connecting = true;
    l.unlock();
    ssh_session s = nullptr;
    Status st = Connect(conn, target, &s);
    l.lock();
    conn.connecting = false;
    if (st.ok()) {
      conn.session = s;
      conn.last_used = SteadyNow();
      conn.timeouts_in_row = 0;
      *fresh = true;
    }
    conn.cv.notify_all();
    return st;
  }
}

// Opens a shell channel: a session channel running kShellCommand. REQUIRES:
// `l` holds conn.mu (released while waiting for the server).
Result<std::shared_ptr<SshPool::Shell>> SshPool::OpenShell(Conn& conn,
                                                           std::unique_lock<std::mutex>& l,
                                                           Purpose purpose, SteadyTime deadline) {
  auto sh = std::make_shared<Shell>();
  sh->purpose = purpose;
  sh->busy = true;
  sh->ch = ssh_channel_new(conn.session);
  if (sh->ch == nullptr) {
    return Status::Unavailable("cannot create a channel: " + SshError(conn.session));
  }
  sh->cb.userdata = &sh->end;
  sh->cb.channel_exit_status_function = OnExitStatus;
  sh->cb.channel_exit_signal_function = OnExitSignal;
  ssh_callbacks_init(&sh->cb);
  ssh_set_channel_callbacks(sh->ch, &sh->cb);
  conn.shells.push_back(sh);  // so a session drop frees its channel
  const auto start = SteadyNow();
  auto fail = [&](Status st) -> Result<std::shared_ptr<Shell>> {
    if (conn.session != nullptr && !sh->dead) conn.KillShell(*sh, st.message());
    return st;
  };
  // Each libssh call is retried while it answers SSH_AGAIN; the lock is
  // released between tries so other shells of the machine keep flowing.
  auto pump_until_ok = [&](auto call, const char* what) -> Status {
    for (;;) {
      if (sh->dead || conn.session == nullptr) {
        return Status::Unavailable(std::string("cannot ") + what + ": " + sh->dead_reason);
      }
      const int rc = call();
      if (rc == SSH_OK) return Status::Ok();
      if (rc != SSH_AGAIN) {
        return Status::Unavailable(std::string("cannot ") + what + ": " + SshError(conn.session));
      }
      if (SteadyNow() >= deadline) {
        return Status::Timeout(std::string(what) + " timed out after " +
                               std::to_string(MsSince(start)) + " ms");
      }
      PumpOrWait(conn, l, deadline);
    }
  };
  Status st = pump_until_ok([&] { return ssh_channel_open_session(sh->ch); }, "open a channel");
  if (st.ok()) {
    st = pump_until_ok([&] { return ssh_channel_request_exec(sh->ch, kShellCommand); },
                       "start a shell");
  }
  if (!st.ok()) return fail(st.Annotate("the command was not started"));
  sh->started = true;
  ++conn.shells_opened;
  return sh;
}

// A shell of `purpose` for one command: an idle one, a new one while under
// the purpose's limit, or the first one freed. REQUIRES: `l` holds conn.mu.
Result<std::shared_ptr<SshPool::Shell>> SshPool::AcquireShell(Conn& conn,
                                                              std::unique_lock<std::mutex>& l,
                                                              const SshTarget& target,
                                                              Purpose purpose, SteadyTime deadline,
                                                              SteadyTime busy_deadline) {
  for (int attempt = 0;; ++attempt) {
    bool fresh = false;
    CLUSTERCTL_RETURN_IF_ERROR(EnsureSession(conn, l, target, deadline, &fresh));
    // Notice shells that ended while idle before choosing one.
    conn.PumpLocked();
    if (conn.session == nullptr) continue;
    int count = 0;
    for (auto& sh : conn.shells) {
      if (sh->purpose != purpose || sh->dead || purpose == Purpose::kStream) continue;
      ++count;
      if (!sh->busy) {
        sh->busy = true;
        return sh;
      }
    }
    if (count < MaxShells(purpose)) {
      auto opened = OpenShell(conn, l, purpose, deadline);
      if (opened.ok() || fresh || attempt > 0 || conn.session == nullptr) return opened;
      // A reused session that cannot open a channel is stale: the command
      // never left, so reconnect and try once more.
      spdlog::debug("{}: stale session ({}); reconnecting", conn.where, opened.status().message());
      conn.DropSession("stale session");
      continue;
    }
    if (SteadyNow() >= busy_deadline) {
      return Status::Exhausted("busy: all " + std::to_string(MaxShells(purpose)) + " " +
                               PurposeName(purpose) +
                               " shells on this machine stayed busy; the command was not started");
    }
    conn.cv.wait_until(l, busy_deadline);
  }
}

Result<CommandResult> SshPool::Run(const SshTarget& target, const Command& cmd,
                                   std::chrono::milliseconds timeout) {
  const std::string& script = cmd.script;
  if (cmd.purpose == Purpose::kStream) {
    return Status::Invalid("ssh " + target.machine + ": a streamed command goes through Stream");
  }
  CLUSTERCTL_RETURN_IF_ERROR(CheckScript(target.machine, script, cmd.library));
  if (timeout.count() <= 0) timeout = milliseconds(options_.command_timeout_ms);
  const milliseconds connect_timeout(std::max(1, options_.connect_timeout_ms));

  std::shared_ptr<Conn> conn = GetConn(target);
  if (Status s = conn->BackoffStatus(); !s.ok()) return s;

  std::unique_lock<std::mutex> l(conn->mu);
  // Connecting and opening a shell are bounded by the connect timeout plus
  // the command's own; waiting for a busy shell by the command's timeout.
  const auto now = SteadyNow();
  auto acquired =
      AcquireShell(*conn, l, target, cmd.purpose, now + connect_timeout + timeout, now + timeout);
  if (!acquired.ok()) return acquired.status().Annotate(conn->where);
  std::shared_ptr<Shell> sh = std::move(*acquired);

  // Frame and send.
  const uint64_t seq = ++sh->seq;
  const size_t lib_hash = cmd.library.empty() ? 0 : std::hash<std::string>{}(cmd.library) | 1;
  const bool send_library = lib_hash != 0 && sh->library_hash != lib_hash;
  sh->pending = FrameRequest(cmd, sh->token, seq, !sh->synced, send_library);
  sh->out = std::make_unique<StreamParser>(sh->token, seq, true, sh->synced, kMaxOutput);
  sh->err = std::make_unique<StreamParser>(sh->token, seq, false, sh->synced, kMaxOutput);
  sh->synced = true;
  if (send_library) sh->library_hash = lib_hash;
  sh->ended = sh->lost = false;
  const auto start = SteadyNow();
  const auto deadline = start + timeout;

  const std::string unknown =
      "; the command may have run or may still be running: its outcome is unknown, "
      "re-observe the machine before retrying";
  while (!sh->Finished()) {
    if (SteadyNow() >= deadline) {
      // Best effort: stop the shell before its channel goes; the next
      // command opens a new shell. Repeated timeouts rebuild the session
      // (sshd keeps a session slot while a timed-out child lives).
      if (sh->ch != nullptr) {
        ssh_channel_request_send_signal(sh->ch, "TERM");
        ssh_blocking_flush(conn->session, 200);
      }
      conn->KillShell(*sh, "timed out");
      if (++conn->timeouts_in_row >= 3) conn->DropSession("3 commands in a row timed out");
      return Status::Timeout(conn->where + ": command timed out after " +
                             std::to_string(MsSince(start)) + " ms" + unknown);
    }
    PumpOrWait(*conn, l, deadline);
  }

  CommandResult result;
  result.duration_ms = MsSince(start);
  result.out = sh->out->data();
  result.err = sh->err->data();
  if (sh->out->truncated()) result.out += "\n[output truncated]";
  if (sh->err->truncated()) result.err += "\n[output truncated]";
  if (sh->lost) {
    return Status::Unavailable(conn->where + ": connection lost while the command was running (" +
                               sh->dead_reason + ")" + unknown);
  }
  if (!sh->ended && !sh->dead) {
    result.exit_code = sh->out->status();
    sh->busy = false;
    sh->out.reset();
    sh->err.reset();
    conn->timeouts_in_row = 0;
    conn->last_used = SteadyNow();
    conn->cv.notify_all();
    return result;
  }
  // The shell ended during the command: like `sh -c`, its exit status or
  // signal is the command's.
  const std::optional<int> code = ExitCodeOf(sh->end);
  if (!code) {
    return Status::Unavailable(conn->where + ": the remote shell ended while the command was " +
                               "running (" + sh->dead_reason + ")" + unknown);
  }
  result.exit_code = *code;
  conn->last_used = SteadyNow();
  return result;
}

namespace {

// Drops what a login shell printed before the stream's script began: the
// bytes up to and including the start marker line. Returns whether the
// marker has been seen; until then nothing is delivered (a marker split
// between two reads waits in `pending`).
bool SkipToMarker(const std::string& marker, std::string* pending, bool* seen) {
  if (*seen) return true;
  const size_t at = pending->find(marker);
  if (at == std::string::npos) {
    // Keep only what could still be the start of the marker.
    if (pending->size() > marker.size()) pending->erase(0, pending->size() - marker.size());
    return false;
  }
  pending->erase(0, at + marker.size());
  *seen = true;
  return true;
}

}  // namespace

Result<int> SshPool::Stream(const SshTarget& target, const std::string& script,
                            const StreamSink& sink, const std::function<bool()>& cancelled) {
  CLUSTERCTL_RETURN_IF_ERROR(CheckScript(target.machine, script, ""));
  const milliseconds connect_timeout(std::max(1, options_.connect_timeout_ms));
  std::shared_ptr<Conn> conn = GetConn(target);
  if (Status s = conn->BackoffStatus(); !s.ok()) return s;

  std::unique_lock<std::mutex> l(conn->mu);
  std::shared_ptr<Shell> sh;
  for (int attempt = 0; !sh; ++attempt) {
    const auto deadline = SteadyNow() + connect_timeout;
    bool fresh = false;
    CLUSTERCTL_RETURN_IF_ERROR(EnsureSession(*conn, l, target, deadline, &fresh));
    auto opened = OpenShell(*conn, l, Purpose::kStream, deadline);
    if (opened.ok()) {
      sh = std::move(*opened);
    } else if (fresh || attempt > 0 || conn->session == nullptr) {
      return opened.status().Annotate(conn->where);
    } else {
      // A reused session that cannot open a channel is stale (as in
      // AcquireShell): nothing was sent, reconnect once.
      conn->DropSession("stale session");
    }
  }
  // The marker is printed in two parts, so the script's own text never
  // matches it; it ends what the login shell printed (rc files).
  const std::string token = RandomHex(24);
  const std::string marker = token + "\n";
  sh->pending = "printf '%s%s\\n' '" + token.substr(0, 8) + "' '" + token.substr(8) +
                "'; printf '%s%s\\n' '" + token.substr(0, 8) + "' '" + token.substr(8) + "' >&2\n" +
                script + "\n";
  std::string pending[2];
  bool seen[2] = {false, false};
  bool eof_sent = false;
  for (;;) {
    if (!eof_sent && sh->pending.empty() && sh->ch != nullptr && !sh->dead) {
      // The whole script is written: end its stdin, so the shell exits
      // after its last command.
      ssh_channel_send_eof(sh->ch);
      eof_sent = true;
    }
    bool delivered = false;
    for (int i = 0; i < 2; ++i) {
      if (sh->streamed[i].empty()) continue;
      pending[i] += sh->streamed[i];
      sh->streamed[i].clear();
      if (!SkipToMarker(marker, &pending[i], &seen[i]) || pending[i].empty()) continue;
      std::string data;
      data.swap(pending[i]);
      l.unlock();
      sink(data, i == 1);
      l.lock();
      delivered = true;
    }
    if (delivered) continue;
    if (sh->dead || sh->ended || sh->lost) break;
    if (cancelled()) {
      if (sh->ch != nullptr) {
        ssh_channel_request_send_signal(sh->ch, "TERM");
        ssh_blocking_flush(conn->session, 200);
      }
      conn->KillShell(*sh, "cancelled");
      conn->last_used = SteadyNow();
      return 128 + 15;
    }
    PumpOrWait(*conn, l, SteadyNow() + milliseconds(kPollCapMs));
  }
  conn->last_used = SteadyNow();
  if (sh->lost) {
    return Status::Unavailable(conn->where + ": connection lost (" + sh->dead_reason + ")");
  }
  if (const std::optional<int> code = ExitCodeOf(sh->end)) return *code;
  return Status::Unavailable(conn->where + ": the remote command ended without an exit status (" +
                             sh->dead_reason + ")");
}

Status SshPool::Connect(Conn& conn, const SshTarget& target, ssh_session* out) {
  if (Status s = conn.BackoffStatus(); !s.ok()) return s;
  const auto start = SteadyNow();
  const auto deadline = start + milliseconds(std::max(1, options_.connect_timeout_ms));
  if (!connect_slots_.try_acquire_until(deadline)) {
    return Status::Unavailable(conn.where + ": " +
                               std::to_string(options_.max_concurrent_connects) +
                               " connections were being established already; gave up after " +
                               std::to_string(MsSince(start)) + " ms");
  }
  ssh_session s = nullptr;
  Status st = Establish(conn, target, &s);
  connect_slots_.release();

  if (st.ok()) {
    {
      std::lock_guard<std::mutex> l(conn.backoff_mu);
      conn.failures = 0;
      conn.last_error = Status::Ok();
    }
    *out = s;
    std::lock_guard<std::mutex> l(mu_);
    ++connects_[conn.machine];
    spdlog::debug("{}: session established in {} ms", conn.where, MsSince(start));
    return st;
  }
  if (s != nullptr) {
    ssh_disconnect(s);
    ssh_free(s);
  }
  int failures;
  {
    std::lock_guard<std::mutex> l(conn.backoff_mu);
    failures = ++conn.failures;
  }
  const int delay = BackoffMs(failures);
  {
    std::lock_guard<std::mutex> l(conn.backoff_mu);
    conn.retry_after = SteadyNow() + milliseconds(delay);
    conn.last_error = st;
  }
  spdlog::debug("{}: {} (failure {}, retry in {} ms)", conn.where, st.message(), failures, delay);
  return Status(st.code(),
                conn.where + ": " + st.message() + "; retry in " + std::to_string(delay) + " ms");
}

// Connects, checks the host key and authenticates. `*out` is the session,
// also on error (then the caller frees it). Messages carry no "where" prefix.
Status SshPool::Establish(Conn& conn, const SshTarget& target, ssh_session* out) {
  const auto start = SteadyNow();
  const auto deadline = start + milliseconds(std::max(1, options_.connect_timeout_ms));
  ssh_session s = ssh_new();
  if (s == nullptr) return Status::Internal("ssh_new failed");
  *out = s;

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
    if (SteadyNow() >= deadline) {
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
  // A key the target names comes from the desired-state repository: under
  // the secrets rule it is read from secretsDir only (secret_file.h).
  const bool repo_key = !target.identity_file.empty() && options_.secrets.has_value();
  const std::string identity = ExpandHome(
      !target.identity_file.empty() ? target.identity_file : options_.default_identity_file);
  auto pump_auth = [&](auto attempt) -> int {
    int r;
    while ((r = attempt()) == SSH_AUTH_AGAIN) {
      if (SteadyNow() >= deadline) return SSH_AUTH_AGAIN;
      WaitSocket(s, deadline);
    }
    return r;
  };
  int auth;
  if (!identity.empty()) {
    ssh_key key = nullptr;
    int imported = SSH_ERROR;
    if (repo_key) {
      auto pem = ReadSecretFile(*options_.secrets, target.identity_file);
      if (!pem.ok()) {
        const bool refused = pem.status().code() == Code::kInvalid;
        return Status::Permission((refused ? "identity file " : "cannot load identity file ") +
                                  pem.status().message());
      }
      imported = ssh_pki_import_privkey_base64(pem->c_str(), nullptr, nullptr, nullptr, &key);
      explicit_bzero(pem->data(), pem->size());
    } else {
      imported = ssh_pki_import_privkey_file(identity.c_str(), nullptr, nullptr, nullptr, &key);
    }
    if (imported != SSH_OK || key == nullptr) {
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
