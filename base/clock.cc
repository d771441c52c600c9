#include "base/clock.h"

namespace clusterctl {

int64_t SystemClock::WallMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::SteadyMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const Clock& RealClock() {
  static const SystemClock clock;
  return clock;
}

int64_t WallClockMs() { return RealClock().WallMs(); }

SteadyTime SteadyNow() { return std::chrono::steady_clock::now(); }

}  // namespace clusterctl
