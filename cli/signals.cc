#include "cli/signals.h"

#include <unistd.h>

namespace clusterctl::cli {
namespace {

sigset_t Watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

SignalThread::SignalThread(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
  const sigset_t set = Watched();
  pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
  thread_ = std::thread([this] {
    const sigset_t watched = Watched();
    int signals = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&watched, &sig) != 0) continue;
      if (done_) return;
      if (++signals > 1) _exit(128 + sig);
      on_signal_(sig);
    }
  });
}

SignalThread::~SignalThread() {
  done_ = true;
  pthread_kill(thread_.native_handle(), SIGTERM);  // Wakes sigwait; done_ says stop.
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace clusterctl::cli
