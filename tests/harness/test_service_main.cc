// clusterctl-test-service: a small, dependency-free service for tests.
//
// It plays the part of a real service on a test machine: it can become ready
// late or never, exit on its own, ignore SIGTERM, or accept connections and
// never answer (for probe timeouts).
//
//   clusterctl-test-service [--host 127.0.0.1] [--port N] [flags...]
//
//   --host ADDR          address to listen on (default 127.0.0.1)
//   --port N             HTTP/1.0 port; 0 picks a free one (logged). Without
//                        --port the service serves nothing and just runs.
//   --ready-delay-ms N   /health answers 503 for the first N ms, then 200 "ok"
//   --fail-readiness     /health always answers 503
//   --exit-after-s N     exits with code 3 after N seconds
//   --ignore-sigterm     SIGTERM is ignored (only SIGKILL ends it)
//   --hang               accepts connections but never answers them
//   --fail-file PATH     /health answers 503 while PATH exists. If PATH holds
//                        a number N > 0, only the next N /health requests
//                        fail (each failure writes the count left back; the
//                        last one removes PATH). The number of 503s given
//                        because of PATH so far is kept in PATH.failed.
//   --trickle MS         answers every connection, without reading it, with
//                        an HTTP response whose headers never end, one byte
//                        every MS ms ("HTTP/1.0 200 OK\r\nX-Trickle: xxx...")
//   --trickle-resp MS    the same with a redis reply that never ends
//                        ("+PONGGGG..."), for redis probes
//   --print-env NAME     writes "NAME=value" (or "NAME unset") to stdout at
//                        start; may be repeated
//   --write-file PATH    writes its pid to PATH at start
//   --log-bytes N        writes N bytes of log lines to stdout (from a
//                        thread, while it serves), then one line "wrote N
//                        bytes of log"
//   --log-rate N         at most N bytes per second for --log-bytes
//                        (default 0: as fast as it can)
//   --echo-file PATH     every 50 ms: when PATH exists, writes its bytes to
//                        stdout as they are (no newline added) and removes
//                        it; a test prints a line through the service by
//                        renaming a file to PATH (relative: to the working
//                        directory)
//
// Endpoints: GET /health (200 "ok" once ready, 503 before), GET / (200),
// anything else 404. At start it logs one line to stdout:
//   clusterctl-test-service pid=123 argv=[--port 8080 ...]
// and, when listening, "listening on HOST:PORT". SIGTERM and SIGINT end it
// with exit code 0 (unless --ignore-sigterm).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;

void OnStopSignal(int) { g_stop = 1; }

struct Flags {
  std::string host = "127.0.0.1";
  int port = -1;
  long ready_delay_ms = 0;
  bool fail_readiness = false;
  long exit_after_s = -1;
  bool ignore_sigterm = false;
  bool hang = false;
  std::string fail_file;
  long trickle_ms = -1;
  std::string trickle_text;
  std::vector<std::string> print_env;
  std::string write_file;
  long log_bytes = 0;
  long log_rate = 0;
  std::string echo_file;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr, "clusterctl-test-service: %s\n", problem.c_str());
  std::exit(2);
}

long ParseNumber(const std::string& flag, const char* value) {
  char* end = nullptr;
  long n = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || n < 0) Usage(flag + " needs a non-negative number");
  return n;
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--host") {
      f.host = value();
    } else if (a == "--port") {
      f.port = static_cast<int>(ParseNumber(a, value()));
    } else if (a == "--ready-delay-ms") {
      f.ready_delay_ms = ParseNumber(a, value());
    } else if (a == "--fail-readiness") {
      f.fail_readiness = true;
    } else if (a == "--exit-after-s") {
      f.exit_after_s = ParseNumber(a, value());
    } else if (a == "--ignore-sigterm") {
      f.ignore_sigterm = true;
    } else if (a == "--hang") {
      f.hang = true;
    } else if (a == "--echo-file") {
      f.echo_file = value();
    } else if (a == "--fail-file") {
      f.fail_file = value();
    } else if (a == "--trickle") {
      f.trickle_ms = ParseNumber(a, value());
      f.trickle_text = "HTTP/1.0 200 OK\r\nX-Trickle: ";
    } else if (a == "--trickle-resp") {
      f.trickle_ms = ParseNumber(a, value());
      f.trickle_text = "+PONG";
    } else if (a == "--print-env") {
      f.print_env.push_back(value());
    } else if (a == "--write-file") {
      f.write_file = value();
    } else if (a == "--log-bytes") {
      f.log_bytes = ParseNumber(a, value());
    } else if (a == "--log-rate") {
      f.log_rate = ParseNumber(a, value());
    } else {
      Usage("unknown flag " + a);
    }
  }
  return f;
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string Response(int status, const std::string& body) {
  const char* reason = status == 200   ? "OK"
                       : status == 404 ? "Not Found"
                       : status == 503 ? "Service Unavailable"
                                       : "Bad Request";
  return "HTTP/1.0 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// --fail-file: whether this /health request fails because of `path`.
bool FailFromFile(const std::string& path) {
  static std::mutex mu;
  static long failed = 0;
  std::lock_guard<std::mutex> g(mu);
  FILE* in = std::fopen(path.c_str(), "r");
  if (in == nullptr) return false;
  long left = -1;
  if (std::fscanf(in, "%ld", &left) != 1) left = -1;
  std::fclose(in);
  if (left == 0) {
    std::remove(path.c_str());
    return false;
  }
  if (left > 0) {
    if (left == 1) {
      std::remove(path.c_str());
    } else {
      FILE* out = std::fopen((path + ".tmp").c_str(), "w");
      if (out != nullptr) {
        std::fprintf(out, "%ld\n", left - 1);
        std::fclose(out);
        std::rename((path + ".tmp").c_str(), path.c_str());
      }
    }
  }
  ++failed;
  FILE* out = std::fopen((path + ".failed.tmp").c_str(), "w");
  if (out != nullptr) {
    std::fprintf(out, "%ld\n", failed);
    std::fclose(out);
    std::rename((path + ".failed.tmp").c_str(), (path + ".failed").c_str());
  }
  return true;
}

// --trickle: `text`, then 'x' (HTTP) or 'G' (redis) forever, one byte every
// `ms`, until the peer leaves or two minutes passed.
void Trickle(int fd, std::string text, long ms) {
  const char filler = text[0] == '+' ? 'G' : 'x';
  const auto end = Clock::now() + std::chrono::minutes(2);
  for (size_t i = 0; Clock::now() < end && !g_stop; ++i) {
    const char c = i < text.size() ? text[i] : filler;
    if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  ::close(fd);
}

// Reads the request head (bounded in size and time) and answers it.
void Serve(int fd, bool ready, const std::string& fail_file) {
  std::string head;
  char buf[1024];
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos &&
         head.size() < 16384 && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  std::string line = head.substr(0, head.find_first_of("\r\n"));
  std::string method = line.substr(0, line.find(' '));
  std::string path;
  if (size_t sp = line.find(' '); sp != std::string::npos) {
    path = line.substr(sp + 1, line.find(' ', sp + 1) - sp - 1);
  }
  if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
  std::string reply;
  if (method != "GET" && method != "HEAD") {
    reply = Response(400, "bad request\n");
  } else if (path == "/health") {
    if (ready && !fail_file.empty() && FailFromFile(fail_file)) ready = false;
    reply = ready ? Response(200, "ok") : Response(503, "not ready");
  } else if (path == "/") {
    reply = Response(200, "clusterctl-test-service\n");
  } else {
    reply = Response(404, "not found\n");
  }
  WriteAll(fd, reply);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}

// Writes `total` bytes of 64-byte log lines to stdout, in 64 KiB writes, at
// most `rate` bytes per second (0: unlimited).
void SpewLog(long total, long rate) {
  std::string line = "clusterctl-test-service log line ";
  line.resize(63, 'x');
  line += '\n';
  std::string chunk;
  while (chunk.size() < 65536) chunk += line;
  const auto start = Clock::now();
  long written = 0;
  while (written < total) {
    const size_t n = static_cast<size_t>(std::min<long>(total - written, chunk.size()));
    ssize_t w = ::write(1, chunk.data(), n);
    if (w <= 0) break;
    written += w;
    if (rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(written * 1000000LL / rate));
    }
  }
  std::printf("wrote %ld bytes of log\n", written);
  std::fflush(stdout);
}

int Listen(const Flags& f) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("socket");
    std::exit(1);
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(f.port));
  if (inet_pton(AF_INET, f.host.c_str(), &sa.sin_addr) != 1) Usage("bad --host " + f.host);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 128) != 0) {
    std::fprintf(stderr, "clusterctl-test-service: cannot listen on %s:%d: %s\n", f.host.c_str(),
                 f.port, std::strerror(errno));
    std::exit(1);
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::printf("listening on %s:%d\n", f.host.c_str(), ntohs(sa.sin_port));
  std::fflush(stdout);
  return fd;
}

// --echo-file: prints and removes PATH when it exists.
void EchoFile(const std::string& path) {
  FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr) return;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) std::fwrite(buf, 1, n, stdout);
  std::fclose(in);
  std::fflush(stdout);
  std::remove(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const auto start = Clock::now();
  Flags f = ParseFlags(argc, argv);

  std::string args;
  for (int i = 1; i < argc; ++i) args += (i > 1 ? " " : "") + std::string(argv[i]);
  std::printf("clusterctl-test-service pid=%d argv=[%s]\n", static_cast<int>(getpid()),
              args.c_str());
  for (const std::string& name : f.print_env) {
    const char* v = std::getenv(name.c_str());
    if (v) {
      std::printf("%s=%s\n", name.c_str(), v);
    } else {
      std::printf("%s unset\n", name.c_str());
    }
  }
  std::fflush(stdout);

  if (!f.write_file.empty()) {
    FILE* out = std::fopen(f.write_file.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "cannot write %s: %s\n", f.write_file.c_str(), std::strerror(errno));
      return 1;
    }
    std::fprintf(out, "%d\n", static_cast<int>(getpid()));
    std::fclose(out);
  }

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  if (f.ignore_sigterm) {
    ::signal(SIGTERM, SIG_IGN);
  } else {
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  ::signal(SIGPIPE, SIG_IGN);

  if (f.log_bytes > 0) std::thread(SpewLog, f.log_bytes, f.log_rate).detach();

  const int listen_fd = f.port >= 0 ? Listen(f) : -1;
  std::vector<int> hung;  // connections held open, never answered (--hang)

  for (;;) {
    if (!f.echo_file.empty()) EchoFile(f.echo_file);
    if (g_stop) {
      std::printf("clusterctl-test-service: stopping on signal\n");
      std::fflush(stdout);
      _exit(0);
    }
    const auto elapsed = Clock::now() - start;
    if (f.exit_after_s >= 0 && elapsed >= std::chrono::seconds(f.exit_after_s)) {
      std::printf("clusterctl-test-service: exiting after %lds\n", f.exit_after_s);
      std::fflush(stdout);
      _exit(3);
    }
    if (listen_fd < 0) {
      ::poll(nullptr, 0, 50);
      continue;
    }
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    if (f.hang) {
      hung.push_back(conn);
      continue;
    }
    if (f.trickle_ms >= 0) {
      std::thread(Trickle, conn, f.trickle_text, f.trickle_ms).detach();
      continue;
    }
    const bool ready =
        !f.fail_readiness && Clock::now() - start >= std::chrono::milliseconds(f.ready_delay_ms);
    std::thread(Serve, conn, ready, f.fail_file).detach();
  }
}
