// Clock: the one place clusterctl reads time.
//
// Policy that depends on time (backoff, the healthy reset, probe schedules,
// retention, record timestamps, the plan's "now") takes a `const Clock*` and
// reads WallMs() or SteadyMs() through it, so tests drive it with a FakeClock
// instead of waiting. I/O timeouts (a socket poll, a git fetch bound) cannot
// be faked: they use SteadyNow(), the real monotonic clock.
//
// No file outside base/clock.* calls std::chrono::*_clock::now(), time() or
// clock_gettime(); tests/base/clock_lint_test.cc checks it.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace clusterctl {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC), for timestamps people read.
  virtual int64_t WallMs() const = 0;
  // Milliseconds on a clock that never goes back, for intervals and
  // schedules; its epoch is arbitrary.
  virtual int64_t SteadyMs() const = 0;
};

// The system clocks. RealClock() is the process-wide instance; a null
// `const Clock*` argument anywhere in clusterctl means this one.
class SystemClock final : public Clock {
 public:
  int64_t WallMs() const override;
  int64_t SteadyMs() const override;
};
const Clock& RealClock();
// `clock` when it is set, else RealClock().
inline const Clock& ClockOr(const Clock* clock) { return clock ? *clock : RealClock(); }

// Wall time from the system clock: RealClock().WallMs().
int64_t WallClockMs();

// A clock that moves only when told to. Both readings advance together.
// Default start: wall 2026-01-01T00:00:00Z, steady 1,000,000 ms.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t wall_ms = 1767225600000, int64_t steady_ms = 1000000)
      : wall_(wall_ms), steady_(steady_ms) {}
  int64_t WallMs() const override { return wall_.load(); }
  int64_t SteadyMs() const override { return steady_.load(); }
  void Advance(int64_t ms) {
    wall_ += ms;
    steady_ += ms;
  }
  // Moves only the wall clock (an NTP step); the steady clock stays.
  void SetWallMs(int64_t ms) { wall_ = ms; }

 private:
  std::atomic<int64_t> wall_;
  std::atomic<int64_t> steady_;
};

// The real monotonic clock, for I/O deadlines.
using SteadyTime = std::chrono::steady_clock::time_point;
SteadyTime SteadyNow();

}  // namespace clusterctl
