#include "reconcilers/failure_streak.h"

namespace clusterctl::reconcilers {

bool FailureStreak::Add(bool ok) {
  const bool before = ready_;
  if (ok) {
    ready_ = true;
    failures_ = 0;
  } else {
    ++failures_;
    if (failures_ >= threshold_) ready_ = false;
  }
  return ready_ != before;
}

bool ReadinessStreaks::Add(const std::string& key, bool ok, int threshold, bool* changed) {
  auto [it, inserted] = streaks_.try_emplace(key, threshold);
  it->second.SetThreshold(threshold);
  const bool c = it->second.Add(ok);
  if (changed != nullptr) *changed = c;
  return it->second.ready();
}

bool ReadinessStreaks::Ready(const std::string& key) const {
  auto it = streaks_.find(key);
  return it != streaks_.end() && it->second.ready();
}

int ReadinessStreaks::Failures(const std::string& key) const {
  auto it = streaks_.find(key);
  return it == streaks_.end() ? 0 : it->second.failures();
}

void ReadinessStreaks::MarkReady(const std::string& key, int threshold) {
  FailureStreak s(threshold);
  s.Add(true);
  streaks_.insert_or_assign(key, s);
}

}  // namespace clusterctl::reconcilers
