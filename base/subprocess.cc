#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/clock.h"

extern char** environ;

namespace clusterctl {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

}  // namespace

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options) {
  if (argv.empty() || argv[0].empty()) return Status::Invalid("no program to run");
  signal(SIGPIPE, SIG_IGN);
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + strerror(errno));
  Fd in_r{in[0]}, in_w{in[1]}, out_r, out_w, err_r, err_w;
  if (options.capture_output) {
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      return Status::Internal(std::string("pipe: ") + strerror(errno));
    }
    out_r.fd = out[0], out_w.fd = out[1], err_r.fd = err[0], err_w.fd = err[1];
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
  if (options.capture_output) {
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_err = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  in_r.Close();
  out_w.Close();
  err_w.Close();
  if (spawn_err != 0) {
    return Status(Code::kUnavailable, "cannot run " + argv[0] + ": " + strerror(spawn_err));
  }
  fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
  ProcessResult r;
  const SteadyTime deadline = SteadyNow() + std::chrono::milliseconds(options.timeout_ms);
  size_t written = 0;
  if (options.input.empty()) in_w.Close();
  char buf[4096];
  // Feed stdin and drain both outputs together, so neither side blocks.
  while (in_w.fd >= 0 || out_r.fd >= 0 || err_r.fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow());
    if (left.count() <= 0) break;
    pollfd fds[3];
    int n = 0;
    Fd* owners[3];
    auto add = [&](Fd& f, short events) {
      if (f.fd < 0) return;
      fds[n] = {f.fd, events, 0};
      owners[n++] = &f;
    };
    add(in_w, POLLOUT);
    add(out_r, POLLIN);
    add(err_r, POLLIN);
    int ready = poll(fds, n, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < n && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      Fd& f = *owners[i];
      if (&f == &in_w) {
        ssize_t w = write(f.fd, options.input.data() + written, options.input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == options.input.size()) {
          f.Close();  // Done, or the program stopped reading: that is fine.
        }
        continue;
      }
      ssize_t got = read(f.fd, buf, sizeof buf);
      if (got > 0) {
        std::string& sink = &f == &out_r ? r.out : r.err;
        sink.append(buf, std::min(static_cast<size_t>(got), options.max_output - sink.size()));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        f.Close();
      }
    }
  }
  in_w.Close();
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR)
      return Status::Internal("waitpid: " + std::string(strerror(errno)));
    if (SteadyNow() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return Status(Code::kTimeout, argv[0] + " did not finish within " +
                                        std::to_string(options.timeout_ms) + " ms");
    }
    pollfd none{};
    poll(&none, 0, 10);  // Exited outputs closed; the exit status follows shortly.
  }
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

std::string DescribeExit(const ProcessResult& r) {
  if (r.signal != 0) return "killed by signal " + std::to_string(r.signal);
  return "exited " + std::to_string(r.exit_code);
}

}  // namespace clusterctl
