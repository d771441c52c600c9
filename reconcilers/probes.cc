#include "reconcilers/probes.h"

// httplib is heavy to compile: it is included in this file only. Its
// OPENSSL/ZLIB/BROTLI defines come from the pkg-config target
// (PkgConfig::HTTPLIB) and must match how Debian built the library.
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/parallel.h"
#include "reconcilers/shell.h"
#include "reconcilers/target.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::Machine;
using desired_state::Probe;
using desired_state::ProbeKind;
using std::chrono::milliseconds;

constexpr size_t kMaxBody = 1u << 20;   // http body kept for body_contains
constexpr size_t kMaxDetailLine = 200;  // exec: first stderr line

int64_t MsSince(SteadyTime t) {
  return std::chrono::duration_cast<milliseconds>(SteadyNow() - t).count();
}

int64_t MsUntil(SteadyTime t) {
  return std::chrono::duration_cast<milliseconds>(t - SteadyNow()).count();
}

// The probe's timeout in ms; at least 1 s (the schema's minimum).
int64_t TimeoutMs(const Probe& p) { return std::max(1, p.timeout_seconds) * int64_t{1000}; }

std::string TimeoutDetail(int64_t timeout_ms) {
  return "timeout after " + std::to_string(timeout_ms) + " ms";
}

std::string HostOf(const Probe& p, const Machine& m) { return p.host.empty() ? m.address : p.host; }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ErrnoText(int err) { return Lower(std::strerror(err)); }

// `s` cut to `max` bytes, with "..." when cut.
std::string Clip(const std::string& s, size_t max) {
  return s.size() <= max ? s : s.substr(0, max) + "...";
}

// The first line of `s` without surrounding white space, at most `max` bytes.
std::string FirstLine(const std::string& s, size_t max) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_first_of("\r\n", b);
  std::string line = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return Clip(line, max);
}

timeval ToTimeval(int64_t ms) {
  ms = std::max<int64_t>(ms, 1);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// Blocks SIGPIPE on the calling thread while a probe writes to sockets
// (hiredis and OpenSSL use write(), which raises SIGPIPE on a reset peer and
// would kill a process that did not ignore it), then discards a SIGPIPE the
// probe raised and restores the mask.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!blocked_) return;
    if (!was_pending_) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      timespec zero{0, 0};
      while (sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t old_;
  bool blocked_ = false;
  bool was_pending_ = false;
};

// The overall deadline of a probe that talks over a socket. Per-read
// timeouts (httplib's read timeout, hiredis' SO_RCVTIMEO) restart with every
// byte, so a peer that trickles its answer one byte a second would hold the
// probe for as long as it likes. At the deadline this shuts the watched
// socket down (shutdown(2), not close: the owner still closes it), which
// ends any blocked read or write at once.
class SocketDeadline {
 public:
  explicit SocketDeadline(SteadyTime deadline) : deadline_(deadline), thread_([this] { Run(); }) {}
  ~SocketDeadline() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  // The socket to shut down at the deadline. It must stay open until this
  // object is destroyed (or another fd is watched).
  void Watch(int fd) {
    std::lock_guard<std::mutex> g(mu_);
    fd_ = fd;
    if (fired_ && fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_until(l, deadline_, [&] { return done_; });
    if (done_) return;
    fired_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  const SteadyTime deadline_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  int fd_ = -1;
  std::thread thread_;  // Last: started once the rest is set up.
};

// Outcome of one probe before the bookkeeping fields are filled.
struct Outcome {
  bool ok = false;
  std::string detail;
  std::map<std::string, std::string> info;
  bool inconclusive = false;
};

Outcome Fail(std::string detail) { return Outcome{false, std::move(detail), {}}; }

// ---------------------------------------------------------------- tcp

struct Connected {
  int fd = -1;         // >= 0 on success; the caller closes it
  std::string detail;  // why not, on failure
};

// Connects a TCP socket to host:port, trying every address getaddrinfo
// returns, none past `deadline`. `timeout_ms` only names the bound in the
// timeout detail.
Connected TcpConnect(const std::string& host, int port, SteadyTime deadline, int64_t timeout_ms) {
  if (port < 1 || port > 65535) return {-1, "invalid port " + std::to_string(port)};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? ErrnoText(errno) : Lower(gai_strerror(rc));
    return {-1, "cannot resolve host " + host + ": " + why};
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(res, freeaddrinfo);
  std::string last = "no address for host " + host;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (MsUntil(deadline) <= 0) return {-1, TimeoutDetail(timeout_ms)};
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = "socket: " + ErrnoText(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        for (;;) {
          int64_t left = MsUntil(deadline);
          if (left <= 0) break;
          pollfd p{fd, POLLOUT, 0};
          int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) {
            err = errno;
            break;
          }
          if (n == 0) continue;  // loop re-checks the deadline
          socklen_t len = sizeof err;
          if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          break;
        }
      }
    }
    if (err == 0) return {fd, ""};
    ::close(fd);
    if (err == ETIMEDOUT) return {-1, TimeoutDetail(timeout_ms)};
    last = ErrnoText(err);  // "connection refused", "no route to host", ...
  }
  return {-1, last};
}

Outcome TcpProbe(const Probe& p, const Machine& m, SteadyTime start) {
  const int64_t timeout = TimeoutMs(p);
  Connected c = TcpConnect(HostOf(p, m), p.port, start + milliseconds(timeout), timeout);
  if (c.fd < 0) return Fail(c.detail);
  ::close(c.fd);
  return Outcome{true, "connected", {}};
}

// ---------------------------------------------------------------- http

// Why a request got no response, in the words of the tcp probe where the
// connection itself failed.
std::string HttpFailure(httplib::Error error, const Probe& p, const Machine& m, SteadyTime deadline,
                        int64_t timeout) {
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout: {
      if (MsUntil(deadline) <= 0) return TimeoutDetail(timeout);
      // httplib does not say why the connect failed; a second connect does.
      Connected c = TcpConnect(HostOf(p, m), p.port, deadline, timeout);
      if (c.fd < 0) return c.detail;
      ::close(c.fd);
      return "cannot connect";
    }
    case httplib::Error::Read:
      if (MsUntil(deadline) <= 50) return TimeoutDetail(timeout);
      return "connection closed without a complete response";
    case httplib::Error::Write:
      if (MsUntil(deadline) <= 50) return TimeoutDetail(timeout);
      return "connection closed while sending the request";
    case httplib::Error::Canceled:
      return TimeoutDetail(timeout);
    case httplib::Error::SSLConnection:
      if (MsUntil(deadline) <= 50) return TimeoutDetail(timeout) + " in the TLS handshake";
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "TLS server verification failed";
    default:
      return "request failed: " + Lower(httplib::to_string(error));
  }
}

Outcome HttpProbe(const Probe& p, const Machine& m, SteadyTime start) {
  const int64_t timeout = TimeoutMs(p);
  const SteadyTime deadline = start + milliseconds(timeout);
  const std::string host = HostOf(p, m);
  if (p.port < 1 || p.port > 65535) return Fail("invalid port " + std::to_string(p.port));

  std::unique_ptr<httplib::ClientImpl> cli;
  if (p.scheme == "http" || p.scheme.empty()) {
    cli = std::make_unique<httplib::ClientImpl>(host, p.port);
  } else if (p.scheme == "https") {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    auto ssl = std::make_unique<httplib::SSLClient>(host, p.port);
    ssl->enable_server_certificate_verification(false);
    cli = std::move(ssl);
#else
    return Fail("https probes are not supported: cpp-httplib was built without OpenSSL");
#endif
  } else {
    return Fail("unsupported scheme \"" + Clip(p.scheme, 20) + "\"");
  }
  if (!cli->is_valid()) return Fail("cannot set up an HTTP client for " + host);
  const auto to = milliseconds(timeout);
  // The overall deadline covers connect, headers and body: httplib's
  // timeouts apply per call, so the socket is shut down at the deadline. It
  // watches a duplicate of httplib's socket, which stays valid (and is never
  // reused for another connection) until it is closed after the request.
  int watched = -1;
  struct CloseWatched {
    int* fd;
    ~CloseWatched() {
      if (*fd >= 0) ::close(*fd);
    }
  } close_watched{&watched};
  SocketDeadline socket_deadline(deadline);
  cli->set_socket_options([&](socket_t sock) {
    const int dup = ::fcntl(sock, F_DUPFD_CLOEXEC, 0);
    socket_deadline.Watch(dup);
    if (watched >= 0) ::close(watched);
    watched = dup;
  });
  cli->set_connection_timeout(to);
  cli->set_read_timeout(to);
  cli->set_write_timeout(to);
  cli->set_keep_alive(false);
  cli->set_follow_location(false);

  httplib::Headers headers;
  for (const auto& [k, v] : p.headers) headers.emplace(k, v);
  std::string path = p.path.empty() ? "/" : p.path;
  if (path[0] != '/') path = "/" + path;

  int status = 0;
  std::string body;
  bool body_capped = false;
  bool timed_out = false;
  httplib::Result res = cli->Get(
      path, headers,
      [&](const httplib::Response& r) {
        status = r.status;
        return true;
      },
      [&](const char* data, size_t len) {
        if (MsUntil(deadline) <= 0) {
          timed_out = true;
          return false;
        }
        size_t room = kMaxBody - body.size();
        body.append(data, std::min(room, len));
        if (len >= room) {
          body_capped = true;
          return false;  // enough to judge; stop reading
        }
        return true;
      });
  const bool complete = res || (body_capped && !timed_out && status != 0);
  if (!complete) {
    if (timed_out) return Fail(TimeoutDetail(timeout));
    return Fail(HttpFailure(res.error(), p, m, deadline, timeout));
  }
  if (res) status = res->status;

  std::string detail = "HTTP " + std::to_string(status);
  if (status != p.expect_status) {
    return Fail(detail + ", expected " + std::to_string(p.expect_status));
  }
  if (!p.body_contains.empty() && body.find(p.body_contains) == std::string::npos) {
    return Fail(detail + ", body lacks \"" + Clip(p.body_contains, 100) + "\"");
  }
  return Outcome{true, detail, {}};
}

// ---------------------------------------------------------------- redis

// Reads a secret file named by the repository under the secrets rule
// (base/secret_file.h): its content without trailing line breaks.
// The error names the file, never its content.
bool ReadSecret(const SecretsPolicy& secrets, const std::string& path, std::string* secret,
                std::string* error) {
  auto content = ReadSecretFile(secrets, path);
  if (!content.ok()) {
    const bool refused = content.status().code() == Code::kInvalid;
    *error = (refused ? "passwordFile " : "cannot read passwordFile ") + content.status().message();
    return false;
  }
  *secret = std::move(*content);
  while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) {
    secret->pop_back();
  }
  return true;
}

struct RedisFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisPtr = std::unique_ptr<redisContext, RedisFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

// Why a command got no reply: a timeout, or the context's I/O error.
std::string RedisIoFailure(const redisContext* c, SteadyTime deadline, int64_t timeout) {
  if (MsUntil(deadline) <= 50) return TimeoutDetail(timeout);  // Also: SocketDeadline fired.
  if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT)) {
    return TimeoutDetail(timeout);
  }
  if (c->err == REDIS_ERR_EOF) return "connection closed by the server";
  return Lower(c->errstr);
}

// Runs one command with the time left before `deadline`. `*error` is set
// (and nullptr returned) when no reply arrived.
ReplyPtr RedisCall(redisContext* c, SteadyTime deadline, int64_t timeout, std::string* error,
                   const char* format, ...) {
  if (MsUntil(deadline) <= 0) {
    *error = TimeoutDetail(timeout);
    return nullptr;
  }
  redisSetTimeout(c, ToTimeval(MsUntil(deadline)));
  va_list ap;
  va_start(ap, format);
  errno = 0;
  void* reply = redisvCommand(c, format, ap);
  int saved = errno;
  va_end(ap);
  if (reply == nullptr) {
    errno = saved;
    *error = RedisIoFailure(c, deadline, timeout);
    return nullptr;
  }
  return ReplyPtr(static_cast<redisReply*>(reply));
}

std::string ReplyText(const redisReply* r) {
  if (r->str != nullptr) return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  if (r->type == REDIS_REPLY_NIL) return "(nil)";
  return "(reply type " + std::to_string(r->type) + ")";
}

Outcome RedisProbe(const Probe& p, const Machine& m, SteadyTime start,
                   const SecretsPolicy& secrets) {
  const int64_t timeout = TimeoutMs(p);
  const SteadyTime deadline = start + milliseconds(timeout);
  const std::string host = HostOf(p, m);
  if (p.port < 1 || p.port > 65535) return Fail("invalid port " + std::to_string(p.port));

  std::string password;
  if (!p.password_file.empty()) {
    std::string error;
    if (!ReadSecret(secrets, p.password_file, &password, &error)) return Fail(error);
  }

  errno = 0;
  RedisPtr c(redisConnectWithTimeout(host.c_str(), p.port, ToTimeval(timeout)));
  if (!c) return Fail("cannot allocate a redis context");
  if (c->err) {
    int saved = errno;
    std::string why = Lower(c->errstr);
    if (MsUntil(deadline) <= 50 || saved == ETIMEDOUT || saved == EINPROGRESS ||
        why.find("timed out") != std::string::npos) {
      return Fail(TimeoutDetail(timeout));
    }
    return Fail(Redact(why, password));
  }

  // Every reply within the probe's deadline, however slowly it trickles in.
  SocketDeadline socket_deadline(deadline);
  socket_deadline.Watch(c->fd);
  std::string error;
  if (!password.empty()) {
    ReplyPtr r =
        RedisCall(c.get(), deadline, timeout, &error, "AUTH %b", password.data(), password.size());
    if (!r) return Fail(Redact(error, password));
    if (r->type == REDIS_REPLY_ERROR) {
      return Fail("AUTH failed: " + Redact(FirstLine(ReplyText(r.get()), 200), password));
    }
  }

  ReplyPtr pong = RedisCall(c.get(), deadline, timeout, &error, "PING");
  if (!pong) return Fail(Redact(error, password));
  const std::string text = ReplyText(pong.get());
  if (pong->type == REDIS_REPLY_ERROR) {
    return Fail("PING: " + Redact(FirstLine(text, 200), password));
  }
  if (text != "PONG") return Fail("PING answered \"" + Redact(Clip(text, 50), password) + "\"");

  Outcome out{true, "PONG", {}};
  ReplyPtr info = RedisCall(c.get(), deadline, timeout, &error, "INFO");
  if (!info) {
    out.detail += " (INFO: " + Redact(error, password) + ")";
  } else if (info->type == REDIS_REPLY_ERROR) {
    out.detail += " (INFO: " + Redact(FirstLine(ReplyText(info.get()), 200), password) + ")";
  } else {
    static const char* const kFields[] = {"connected_clients", "used_memory_human",
                                          "uptime_in_seconds", "redis_version", "role"};
    std::istringstream lines(ReplyText(info.get()));
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      for (const char* f : kFields) {
        if (key == f) out.info[key] = Clip(line.substr(colon + 1), 100);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- exec

Outcome ExecProbe(CommandRunner* ssh, const Probe& p, const Machine& m) {
  if (ssh == nullptr) return Fail("exec probe needs an SSH runner, none is configured");
  if (p.command.empty()) return Fail("exec probe has no command");
  const int64_t timeout = TimeoutMs(p);
  Result<CommandResult> r =
      ssh->Run(TargetFor(m), Command(ShellJoin(p.command), "", false, Purpose::kProbe),
               milliseconds(timeout));
  if (!r.ok()) {
    if (r.status().code() == Code::kTimeout) return Fail(TimeoutDetail(timeout));
    Outcome out = Fail(r.status().ToString());
    // Not run (every probe shell of the machine busy): says nothing of the
    // service.
    out.inconclusive = r.status().code() == Code::kResourceExhausted;
    return out;
  }
  std::string detail = "exit " + std::to_string(r->exit_code);
  if (r->exit_code == 0) return Outcome{true, detail, {}};
  std::string line = FirstLine(r->err, kMaxDetailLine);
  if (line.empty()) line = FirstLine(r->out, kMaxDetailLine);
  if (!line.empty()) detail += ": " + line;
  return Fail(detail);
}

}  // namespace

Prober::~Prober() = default;

RealProber::RealProber(CommandRunner* ssh, const Clock* clock, SecretsPolicy secrets)
    : ssh_(ssh), clock_(ClockOr(clock)), secrets_(std::move(secrets)) {}

ProbeResult RealProber::Check(const Probe& probe, const Machine& machine) {
  ProbeResult result;
  result.kind = desired_state::ProbeKindName(probe.kind);
  const SteadyTime start = SteadyNow();
  try {
    result.time_ms = clock_.WallMs();
    SigpipeGuard guard;
    Outcome out;
    switch (probe.kind) {
      case ProbeKind::kHttp:
        out = HttpProbe(probe, machine, start);
        break;
      case ProbeKind::kTcp:
        out = TcpProbe(probe, machine, start);
        break;
      case ProbeKind::kRedis:
        out = RedisProbe(probe, machine, start, secrets_);
        break;
      case ProbeKind::kExec:
        out = ExecProbe(ssh_, probe, machine);
        break;
      default:
        out = Fail("unknown probe kind");
    }
    result.ok = out.ok;
    result.inconclusive = out.inconclusive;
    result.detail = std::move(out.detail);
    result.info = std::move(out.info);
  } catch (const std::exception& e) {
    result.ok = false;
    result.detail = std::string("internal error: ") + e.what();
  } catch (...) {
    result.ok = false;
    result.detail = "internal error";
  }
  result.latency_ms = MsSince(start);
  return result;
}

ProbeResult RealProber::Run(const desired_state::Service& service, const Machine& machine,
                            ProbeRole role) {
  const std::optional<Probe>& probe =
      role == ProbeRole::kReadiness ? service.readiness : service.liveness;
  ProbeResult result;
  if (probe) {
    result = Check(*probe, machine);
  } else {
    result.kind = "none";
    result.ok = true;
    result.detail = std::string("no ") + ProbeRoleName(role) + " probe";
    try {
      result.time_ms = clock_.WallMs();
    } catch (...) {
    }
  }
  result.service = service.name;
  result.machine = machine.name;
  result.role = role;
  return result;
}

std::vector<ProbeResult> RunProbes(
    Prober& prober, const std::vector<ProbeRequest>& requests, int max_parallel,
    const std::function<void(size_t, const ProbeResult&)>& on_result) {
  std::vector<ProbeResult> results(requests.size());
  std::mutex report_mu;

  auto run_one = [&](size_t i) {
    const ProbeRequest& req = requests[i];
    ProbeResult r;
    if (req.service == nullptr || req.machine == nullptr) {
      r.service = req.service ? req.service->name : "";
      r.machine = req.machine ? req.machine->name : "";
      r.role = req.role;
      r.kind = "none";
      r.time_ms = WallClockMs();
      r.detail = "probe request without a service or machine";
    } else {
      try {
        r = prober.Run(*req.service, *req.machine, req.role);
      } catch (const std::exception& e) {
        r.service = req.service->name;
        r.machine = req.machine->name;
        r.role = req.role;
        r.time_ms = WallClockMs();
        r.detail = std::string("internal error: ") + e.what();
      } catch (...) {
        r.service = req.service->name;
        r.machine = req.machine->name;
        r.role = req.role;
        r.time_ms = WallClockMs();
        r.detail = "internal error";
      }
    }
    std::lock_guard<std::mutex> lock(report_mu);
    results[i] = std::move(r);
    if (on_result) {
      try {
        on_result(i, results[i]);
      } catch (...) {
      }
    }
  };
  ParallelFor(requests.size(), max_parallel, run_one);
  return results;
}

}  // namespace clusterctl::reconcilers
