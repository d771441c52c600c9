// LiveView: answers from the observation and step results, single-flight
// readiness probes, event-driven waits. The prober is a fake (the view is
// pure logic plus synchronisation); time is a fake clock where the schedule
// is the point, the real clock with bounded waits where threads are.
#include "reconcilers/live_view.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "desired-state/loader.h"
#include "tests/harness/process.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DesiredState;
using std::chrono::milliseconds;
using std::chrono::seconds;

int64_t SteadyMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// db (readiness probe) on a, app (none) on a and b.
DesiredState Load() {
  std::vector<desired_state::SourceFile> files = {
      {"c.yaml", "apiVersion: clusterctl/v1\nkind: Cluster\nmetadata: {name: t}\nspec: {}\n"},
      {"m.yaml",
       "apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n"
       "---\napiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: b}\nspec: {address: "
       "10.0.0.2}\n"},
      {"s.yaml",
       "apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: db}\n"
       "spec: {machines: [a], process: {command: [/bin/db]}, readiness: {tcp: {port: 1}}}\n"
       "---\napiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: app}\n"
       "spec: {machines: [a, b], process: {command: [/bin/app]}}\n"}};
  auto r = desired_state::LoadFiles(files, {});
  EXPECT_TRUE(r.ok()) << r.errors.ToString();
  return *r.state;
}

ObservedInstance Instance(const std::string& svc, const std::string& machine, ObservedState s,
                          const std::string& detail = "") {
  ObservedInstance i;
  i.service = svc;
  i.machine = machine;
  i.state = s;
  i.detail = detail;
  return i;
}

// Runs `answer` for each probe; counts probes and the most in flight at once.
class FakeProber : public Prober {
 public:
  explicit FakeProber(std::function<bool()> answer) : answer_(std::move(answer)) {}
  ProbeResult Run(const desired_state::Service& s, const desired_state::Machine& m,
                  ProbeRole role) override {
    const int now_in_flight = ++in_flight_;
    int seen = max_in_flight.load();
    while (now_in_flight > seen && !max_in_flight.compare_exchange_weak(seen, now_in_flight)) {
    }
    ++calls;
    ProbeResult r;
    r.service = s.name;
    r.machine = m.name;
    r.role = role;
    r.ok = answer_();
    r.detail = r.ok ? "connected" : "connection refused";
    --in_flight_;
    return r;
  }
  std::atomic<int> calls{0}, max_in_flight{0};

 private:
  std::function<bool()> answer_;
  std::atomic<int> in_flight_{0};
};

// A FakeClock that waits advance: a wait of d ms moves it by d ms.
class ViewClock {
 public:
  LiveView::Options Options() {
    LiveView::Options o;
    o.clock = &fake;
    o.wait_for = [this](std::condition_variable&, std::unique_lock<std::mutex>&, milliseconds d) {
      fake.Advance(d.count());
    };
    return o;
  }
  int64_t now() const { return fake.SteadyMs(); }
  clusterctl::FakeClock fake{/*wall_ms=*/1767225600000, /*steady_ms=*/1000};
};

// Real-clock options that report when a waiter is blocked (the view's lock
// is held until cv.wait_for releases it, so an update made after `blocked`
// is seen reaches a blocked waiter).
LiveView::Options SignallingOptions(std::atomic<int>* blocked) {
  LiveView::Options o;
  o.wait_for = [blocked](std::condition_variable& cv, std::unique_lock<std::mutex>& l,
                         milliseconds t) {
    ++*blocked;
    cv.wait_for(l, t);
  };
  return o;
}

TEST(LiveViewTest, AnswersFromTheObservationWithoutProbing) {
  DesiredState d = Load();
  FakeProber prober([] { return true; });
  LiveView live(&d, nullptr, &prober);
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning, "pid 10"),
                   Instance("app", "a", ObservedState::kFailed, "exited")};
  obs.unreachable["b"] = "connection refused";
  ProbeResult p;
  p.service = "db";
  p.machine = "a";
  p.ok = false;
  p.detail = "connection refused";
  obs.readiness = {p};
  obs.ready["db@a"] = false;
  live.Seed(obs);

  std::string detail;
  EXPECT_TRUE(live.Holds("db@a", /*ready=*/false, &detail));
  EXPECT_EQ(detail, "running (pid 10)");
  EXPECT_FALSE(live.Holds("db@a", /*ready=*/true, &detail));
  EXPECT_EQ(detail, "connection refused");
  EXPECT_FALSE(live.Holds("app@a", false, &detail));
  EXPECT_EQ(detail, "failed (exited)");
  EXPECT_FALSE(live.Holds("app@b", false, &detail));
  EXPECT_EQ(detail, "machine b unreachable: connection refused");
  EXPECT_EQ(prober.calls, 0);
}

TEST(LiveViewTest, TheReadyVerdictWinsOverTheRawProbeResult) {
  // clusterd: db@a failed one probe, fewer than its failureThreshold, so it
  // is still ready.
  DesiredState d = Load();
  FakeProber prober([] { return true; });
  LiveView live(&d, nullptr, &prober);
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning, "pid 10")};
  ProbeResult p;
  p.service = "db";
  p.machine = "a";
  p.ok = false;
  p.detail = "connection refused";
  obs.readiness = {p};
  obs.ready["db@a"] = true;
  live.Seed(obs);
  std::string detail;
  EXPECT_TRUE(live.Holds("db@a", /*ready=*/true, &detail));
  EXPECT_EQ(detail, "connection refused");
  EXPECT_EQ(prober.calls, 0);
}

TEST(LiveViewTest, AnInstanceNeverSeenIsUnknownAndAWaitForItEndsAtOnce) {
  DesiredState d = Load();
  FakeProber prober([] { return true; });
  ViewClock clock;
  LiveView live(&d, nullptr, &prober, clock.Options());
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning)};
  obs.unreachable["b"] = "timeout after 10000 ms";
  live.Seed(obs);
  std::string detail;
  EXPECT_EQ(live.WaitFor("app@b", false, clock.now() + 60000, &detail), WaitResult::kUnknown);
  EXPECT_EQ(detail, "machine b unreachable: timeout after 10000 ms");
  // On a reachable machine, but absent from the observation.
  EXPECT_EQ(live.WaitFor("app@a", true, clock.now() + 60000, &detail), WaitResult::kUnknown);
  EXPECT_EQ(detail, "not observed");
  EXPECT_EQ(clock.now(), 1000);  // Nobody waited.
  // The watch reports it: known from now on.
  live.Update("app@b", ObservedState::kRunning, "pid 7");
  EXPECT_EQ(live.WaitFor("app@b", true, clock.now() + 60000, &detail), WaitResult::kHolds);
  EXPECT_EQ(detail, "running (pid 7)");
}

TEST(LiveViewTest, StepResultsFeedTheViewAndARestartIsNotReadyUntilProbed) {
  DesiredState d = Load();
  bool ready = true;
  FakeProber prober([&] { return ready; });
  ViewClock clock;
  LiveView live(&d, nullptr, &prober, clock.Options());
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning),
                   Instance("app", "a", ObservedState::kStopped)};
  obs.ready["db@a"] = true;
  live.Seed(obs);
  std::string detail;
  EXPECT_TRUE(live.Holds("db@a", true, &detail));

  live.RecordStarted("db@a", "started pid 42");  // A restart: a new life.
  EXPECT_TRUE(live.Holds("db@a", false, &detail));
  EXPECT_FALSE(live.Holds("db@a", true, &detail));
  EXPECT_EQ(detail, "running, readiness not probed yet");
  int probes = 0;
  EXPECT_EQ(live.WaitFor("db@a", true, clock.now() + 1000, &detail, true, &probes),
            WaitResult::kHolds);
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(detail, "connected");

  live.RecordStarted("app@a", "started pid 43");
  EXPECT_TRUE(live.Holds("app@a", true, &detail));  // No readiness probe: ready once running.
  EXPECT_EQ(detail, "running (started pid 43)");
  live.RecordStopped("app@a", "terminated by SIGTERM");
  EXPECT_FALSE(live.Holds("app@a", false, &detail));
  EXPECT_EQ(detail, "stopped (terminated by SIGTERM)");
  live.RecordFailed("db@a", "exit 127: not found");
  EXPECT_FALSE(live.Holds("db@a", false, &detail));
  EXPECT_EQ(detail, "failed (exit 127: not found)");
  EXPECT_EQ(prober.calls, 1);
}

TEST(LiveViewTest, ReadinessAfter200MsIsNoticedWithinAQuarterOfTheWait) {
  DesiredState d = Load();
  ViewClock clock;
  int64_t ready_at = 0;
  FakeProber prober([&] { return clock.now() >= ready_at; });
  LiveView live(&d, nullptr, &prober, clock.Options());
  live.Seed({});
  live.RecordStarted("db@a", "started pid 42");
  const int64_t started = clock.now();
  ready_at = started + 200;
  int probes = 0;
  EXPECT_EQ(live.WaitFor("db@a", true, started + 60000, nullptr, true, &probes),
            WaitResult::kHolds);
  // Probes at 0, 25, 50, 75, 100, 125, 156, 195 and 243 ms.
  EXPECT_EQ(clock.now() - started, 243);
  EXPECT_EQ(probes, 9);
}

TEST(LiveViewTest, ManyWaitersShareOneProbeInFlight) {
  DesiredState d = Load();
  int64_t ready_at = 0;
  // Each probe takes 3 ms (a real one takes a round trip), so waiters that
  // did not share would overlap.
  FakeProber prober([&] {
    std::this_thread::sleep_for(milliseconds(3));
    return SteadyMs() >= ready_at;
  });
  LiveView live(&d, nullptr, &prober);
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning)};
  live.Seed(obs);
  const int64_t t0 = SteadyMs();
  ready_at = t0 + 300;
  constexpr int kWaiters = 12;
  std::vector<WaitResult> results(kWaiters, WaitResult::kTimedOut);
  std::vector<int64_t> returned(kWaiters, 0);
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      results[i] = live.WaitFor("db@a", true, t0 + 5000, nullptr);
      returned[i] = SteadyMs();
    });
  }
  for (auto& w : waiters) w.join();
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_EQ(results[i], WaitResult::kHolds) << i;
    EXPECT_LE(returned[i] - ready_at, 120) << i;  // A quarter of 300 ms, plus scheduling.
  }
  EXPECT_EQ(prober.max_in_flight, 1);
  // One schedule for all (0, 25, 50, ..., ~10 probes to 300 ms), not one per
  // waiter (~120).
  EXPECT_GE(prober.calls, 5);
  EXPECT_LE(prober.calls, 14);
}

TEST(LiveViewTest, AnUpdateWakesWaitersAtOnce) {
  DesiredState d = Load();
  FakeProber prober([] { return true; });
  std::atomic<int> blocked{0};
  LiveView::Options o = SignallingOptions(&blocked);
  o.max_probe_interval = seconds(10);
  LiveView live(&d, nullptr, &prober, o);
  ClusterObservation obs;
  obs.instances = {Instance("app", "b", ObservedState::kStopped)};
  live.Seed(obs);
  WaitResult r = WaitResult::kTimedOut;
  std::thread waiter([&] { r = live.WaitFor("app@b", true, live.NowMs() + 10000, nullptr); });
  ASSERT_TRUE(testing::WaitFor([&] { return blocked > 0; }, seconds(10), milliseconds(1)));
  const int64_t t0 = SteadyMs();
  live.Update("app@b", ObservedState::kRunning, "pid 5");
  waiter.join();
  EXPECT_EQ(r, WaitResult::kHolds);
  EXPECT_LE(SteadyMs() - t0, 100);
}

TEST(LiveViewTest, CancelWakesInterruptibleWaitersAtOnceAndOnlyThem) {
  DesiredState d = Load();
  FakeProber prober([] { return false; });
  std::atomic<int> blocked{0};
  LiveView live(&d, nullptr, &prober, SignallingOptions(&blocked));
  ClusterObservation obs;
  obs.instances = {Instance("app", "b", ObservedState::kStopped),
                   Instance("app", "a", ObservedState::kStopped)};
  live.Seed(obs);
  WaitResult interruptible = WaitResult::kHolds, steady = WaitResult::kTimedOut;
  std::string detail;
  std::thread w1(
      [&] { interruptible = live.WaitFor("app@b", false, live.NowMs() + 10000, &detail, true); });
  std::thread w2(
      [&] { steady = live.WaitFor("app@a", false, live.NowMs() + 10000, nullptr, false); });
  ASSERT_TRUE(testing::WaitFor([&] { return blocked >= 2; }, seconds(10), milliseconds(1)));
  const int64_t t0 = SteadyMs();
  live.Cancel();
  w1.join();
  EXPECT_EQ(interruptible, WaitResult::kCancelled);
  EXPECT_EQ(detail, "stopped");
  EXPECT_LE(SteadyMs() - t0, 100);
  // The other one still waits for its instance, and gets it.
  live.Update("app@a", ObservedState::kRunning, "");
  w2.join();
  EXPECT_EQ(steady, WaitResult::kHolds);
  // Later interruptible waits end at once too.
  EXPECT_EQ(live.WaitFor("app@b", false, live.NowMs() + 10000, nullptr), WaitResult::kCancelled);
}

TEST(LiveViewTest, AProbeResultFromAnEarlierLifeIsDropped) {
  DesiredState d = Load();
  LiveView* view = nullptr;
  // The instance exits while its probe is in flight; the probe then passes
  // (a stale answer) and must not make it ready.
  FakeProber prober([&] {
    view->Update("db@a", ObservedState::kFailed, "exited");
    return true;
  });
  ViewClock clock;
  LiveView live(&d, nullptr, &prober, clock.Options());
  view = &live;
  ClusterObservation obs;
  obs.instances = {Instance("db", "a", ObservedState::kRunning)};
  live.Seed(obs);
  std::string detail;
  EXPECT_EQ(live.WaitFor("db@a", true, clock.now() + 1000, &detail), WaitResult::kTimedOut);
  EXPECT_EQ(detail, "failed (exited)");
  EXPECT_EQ(prober.calls, 1);
}

}  // namespace
}  // namespace clusterctl::reconcilers
