// SignalThread: SIGINT and SIGTERM delivered to a callback on a thread of
// its own (sigwait), never in a signal handler, so the callback may lock
// mutexes (Reconciler::Cancel does). Construct it before any other thread
// exists (the store's and the SSH pool's threads inherit the blocked mask);
// the first signal calls `on_signal`, a second one ends the process at once
// with 128 + signal (steps in flight are then recorded `interrupted` by the
// next run). Destroying it stops the thread and restores the signal mask.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace clusterctl::cli {

class SignalThread {
 public:
  explicit SignalThread(std::function<void(int)> on_signal);
  ~SignalThread();
  SignalThread(const SignalThread&) = delete;
  SignalThread& operator=(const SignalThread&) = delete;

 private:
  std::function<void(int)> on_signal_;
  sigset_t old_mask_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace clusterctl::cli
