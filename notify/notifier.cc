#include "notify/notifier.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "notify/sinks.h"

namespace clusterctl::notify {

using nlohmann::json;

Result<std::unique_ptr<Notifier>> Notifier::Create(NotifyConfig config, store::Store* store,
                                                   const Clock* clock, std::string controller,
                                                   DeliverFn deliver) {
  std::unique_ptr<Notifier> n(new Notifier());
  auto outbox = Outbox::Open(store, config.outbox_max);
  if (!outbox.ok()) return outbox.status();
  n->outbox_ = std::move(*outbox);
  n->config_ = std::move(config);
  n->store_ = store;
  n->clock_ = &ClockOr(clock);
  n->controller_ = std::move(controller);
  n->deliver_ = deliver ? std::move(deliver) : DeliverFn(&Deliver);
  for (const SinkConfig& s : n->config_.sinks) {
    SinkStats st;
    st.name = s.name;
    st.type = SinkTypeName(s.type);
    n->stats_[s.name] = st;
  }
  return n;
}

Notifier::~Notifier() { Stop(); }

void Notifier::Enqueue(const std::vector<alerts::AlertEvent>& events) {
  if (events.empty() || config_.sinks.empty()) return;
  std::unique_lock<std::mutex> g(mu_);
  for (const alerts::AlertEvent& e : events) {
    const json body = BuildNotification(e, controller_);
    for (const SinkConfig& sink : config_.sinks) {
      if (!Wants(sink, e)) continue;
      SinkStats& st = stats_[sink.name];
      std::set<int64_t>& suppressed = suppressed_[sink.name];
      if (e.type == alerts::EventType::kFiring) {
        auto& fired = last_fired_ms_[sink.name];
        auto it = fired.find(e.alert.key);
        if (it != fired.end() && e.at_ms - it->second < sink.cooldown_seconds * 1000LL) {
          suppressed.insert(e.alert.id);
          ++st.suppressed;
          continue;
        }
        fired[e.alert.key] = e.at_ms;
      } else if (suppressed.count(e.alert.id)) {
        ++st.suppressed;
        if (e.type == alerts::EventType::kResolved) suppressed.erase(e.alert.id);
        continue;
      }
      size_t dropped = 0;
      Status pushed = outbox_->Push(sink.name, body, &dropped);
      if (!pushed.ok()) {
        spdlog::error("notification {} to sink {} lost: {}", e.Id(), sink.name, pushed.ToString());
        ++st.dropped;
        continue;
      }
      if (dropped > 0) {
        st.dropped += dropped;
        spdlog::warn("sink {}: outbox full ({} notifications); dropped the {} oldest", sink.name,
                     config_.outbox_max, dropped);
      }
    }
  }
  woken_ = true;
  g.unlock();
  cv_.notify_all();
}

size_t Notifier::DeliverDue() {
  size_t attempts = 0;
  for (const SinkConfig& sink : config_.sinks) {
    // In order: the head of a sink is sent before anything behind it.
    for (int n = 0; n < 100; ++n) {
      {
        std::lock_guard<std::mutex> g(mu_);
        if (stopping_ && n > 0) return attempts;
        auto it = next_attempt_ms_.find(sink.name);
        if (it != next_attempt_ms_.end() && clock_->SteadyMs() < it->second) break;
      }
      auto head = outbox_->Head(sink.name);
      if (!head.ok()) {
        spdlog::error("sink {}: reading the outbox: {}", sink.name, head.status().ToString());
        break;
      }
      if (!head->has_value()) break;
      OutboxEntry e = std::move(**head);
      ++attempts;
      Status sent = deliver_(sink, e.notification);
      std::lock_guard<std::mutex> g(mu_);
      SinkStats& st = stats_[sink.name];
      if (sent.ok()) {
        Status removed = outbox_->Remove(e);
        if (!removed.ok()) spdlog::error("sink {}: {}", sink.name, removed.ToString());
        ++st.sent;
        st.last_success_ms = clock_->WallMs();
        st.last_error.clear();
        next_attempt_ms_.erase(sink.name);
        continue;
      }
      ++e.attempts;
      e.last_error = sent.message();
      const int64_t delay = RetryDelayMs(config_, e.attempts);
      e.next_attempt_ms = clock_->WallMs() + delay;
      (void)outbox_->Update(e);
      next_attempt_ms_[sink.name] = clock_->SteadyMs() + delay;
      ++st.failed_attempts;
      st.last_error = sent.message();
      spdlog::warn("notification {} to sink {} failed (attempt {}): {}; retrying in {} ms",
                   e.notification.value("id", ""), sink.name, e.attempts, sent.message(), delay);
      break;
    }
  }
  return attempts;
}

int64_t Notifier::NextDueInMs() const {
  int64_t best = -1;
  const int64_t now = clock_->SteadyMs();
  for (const SinkConfig& sink : config_.sinks) {
    if (outbox_->Size(sink.name) == 0) continue;
    auto it = next_attempt_ms_.find(sink.name);
    const int64_t in = it == next_attempt_ms_.end() ? 0 : std::max<int64_t>(it->second - now, 0);
    best = best < 0 ? in : std::min(best, in);
  }
  return best;
}

void Notifier::Start() {
  if (config_.sinks.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void Notifier::Stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Notifier::Run() {
  for (;;) {
    DeliverDue();
    std::unique_lock<std::mutex> g(mu_);
    if (stopping_) return;
    int64_t wait = NextDueInMs();
    // Nothing queued: sleep until woken; else until the next retry. At most
    // a second either way, so a clock that jumps cannot strand a retry.
    wait = wait < 0 ? 1000 : std::min<int64_t>(std::max<int64_t>(wait, 10), 1000);
    cv_.wait_for(g, std::chrono::milliseconds(wait), [this] { return stopping_ || woken_; });
    woken_ = false;
    if (stopping_) return;
  }
}

std::vector<SinkStats> Notifier::Stats() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<SinkStats> out;
  for (const SinkConfig& sink : config_.sinks) {
    SinkStats st = stats_.at(sink.name);
    st.queued = outbox_->Size(sink.name);
    out.push_back(st);
  }
  return out;
}

}  // namespace clusterctl::notify
