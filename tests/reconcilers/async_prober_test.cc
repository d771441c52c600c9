// AsyncProber: a slow probe delays only itself, and never piles up.
#include "reconcilers/async_prober.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>

#include "tests/harness/process.h"

namespace clusterctl::reconcilers {
namespace {

using ::clusterctl::testing::WaitFor;
using desired_state::DesiredState;
using std::chrono::milliseconds;

// Answers at once, except for service "slow", which waits until released.
class GatedProber : public Prober {
 public:
  ProbeResult Run(const desired_state::Service& s, const desired_state::Machine& m,
                  ProbeRole role) override {
    if (s.name == "slow") {
      std::unique_lock<std::mutex> l(mu_);
      ++slow_started_;
      cv_.notify_all();
      cv_.wait_for(l, milliseconds(20000), [&] { return released_; });
    }
    ProbeResult r;
    r.service = s.name;
    r.machine = m.name;
    r.role = role;
    r.ok = true;
    return r;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitSlowStarted() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, milliseconds(10000), [&] { return slow_started_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int slow_started_ = 0;
};

struct Results {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> count;  // by service
  void Add(const ProbeResult& r) {
    std::lock_guard<std::mutex> l(mu);
    ++count[r.service];
    cv.notify_all();
  }
  bool WaitFor(const std::string& service, int n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, milliseconds(10000), [&] { return count[service] >= n; });
  }
  int Of(const std::string& service) {
    std::lock_guard<std::mutex> l(mu);
    return count[service];
  }
};

std::shared_ptr<DesiredState> TwoServices() {
  auto d = std::make_shared<DesiredState>();
  d->machines.resize(1);
  d->machines[0].name = "m1";
  d->services.resize(2);
  d->services[0].name = "slow";
  d->services[1].name = "fast";
  return d;
}

TEST(AsyncProberTest, ASlowProbeDelaysOnlyItselfAndIsNeverQueuedTwice) {
  GatedProber prober;
  Results results;
  auto d = TwoServices();
  AsyncProber probes(&prober, 4, [&](const ProbeResult& r) { results.Add(r); });
  const ProbeRequest slow{&d->services[0], &d->machines[0], ProbeRole::kLiveness};
  const ProbeRequest fast{&d->services[1], &d->machines[0], ProbeRole::kLiveness};

  ASSERT_TRUE(probes.Submit(d, slow));
  ASSERT_TRUE(prober.WaitSlowStarted());
  // While the slow probe runs, the fast one completes again and again.
  for (int i = 1; i <= 5; ++i) {
    // Submit succeeds once the previous fast probe has left the in-flight set.
    ASSERT_TRUE(WaitFor([&] { return probes.Submit(d, fast); }, milliseconds(10000)));
    ASSERT_TRUE(results.WaitFor("fast", i)) << "fast probe " << i << " held back";
    EXPECT_FALSE(probes.Submit(d, slow)) << "a running probe was queued again";
  }
  EXPECT_EQ(results.Of("slow"), 0);

  prober.Release();
  ASSERT_TRUE(results.WaitFor("slow", 1));
  // Done: the same probe can be submitted again.
  EXPECT_TRUE(WaitFor([&] { return probes.Submit(d, slow); }, milliseconds(10000)));
}

}  // namespace
}  // namespace clusterctl::reconcilers
