// Notifications end to end below the daemon: alert events -> the outbox in
// a real store on disk -> a real HTTP receiver on loopback (or a command),
// with retries, order, restarts, cooldown, acknowledgement and signatures.
#include "notify/notifier.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "base/sha256.h"
#include "notify/sinks.h"
#include "tests/harness/temp_dir.h"
#include "tests/harness/webhook_receiver.h"

namespace clusterctl::notify {
namespace {

using nlohmann::json;

constexpr char kSecret[] = "hmac-key-for-tests";

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    auto store = store::Store::OpenPrimary(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    NotifyConfig c;
    SinkConfig hook;
    hook.name = "hook";
    hook.url = receiver_.Url("/hook?token=s3cr3t");
    hook.secret = kSecret;
    hook.cooldown_seconds = 60;
    hook.timeout_seconds = 2;
    c.sinks.push_back(hook);
    c.retry_initial_ms = 1000;
    c.retry_max_ms = 4000;
    c.outbox_max = max_;
    auto n = Notifier::Create(c, store_.get(), &clock_, "clusterd@test");
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    notifier_ = std::move(*n);
  }
  void Reopen() {
    notifier_.reset();
    store_.reset();
    Open();
  }
  // Delivers until nothing is due or `rounds` pass; the fake clock moves by
  // the retry delay between rounds.
  void Drain(int rounds = 20) {
    for (int i = 0; i < rounds; ++i) {
      notifier_->DeliverDue();
      if (notifier_->Stats()[0].queued == 0) return;
      clock_.Advance(4000);
    }
  }
  std::vector<std::string> ReceivedIds() {
    std::vector<std::string> ids;
    for (const auto& d : receiver_.Deliveries()) ids.push_back(json::parse(d.body)["id"]);
    return ids;
  }

  testing::TempDir dir_;
  testing::WebhookReceiver receiver_;
  FakeClock clock_;
  size_t max_ = 1000;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Notifier> notifier_;
  alerts::AlertBook book_{{60000}};
};

TEST_F(NotifierTest, FiringEscalatedResolvedArriveOnceEachSignedAndInOrder) {
  const int64_t t0 = clock_.WallMs();
  book_.Raise(alerts::kind::kCrashLoop, "m1", "api", "warning", "failed 3 times", t0);
  book_.Raise(alerts::kind::kCrashLoop, "m1", "api", "warning", "failed 4 times", t0 + 1000);
  book_.Tick(t0 + 60000);
  book_.Resolve(alerts::Key(alerts::kind::kCrashLoop, "m1", "api"), t0 + 90000);
  notifier_->Enqueue(book_.TakeEvents());
  Drain();
  ASSERT_EQ(3u, receiver_.Deliveries().size());
  EXPECT_EQ((std::vector<std::string>{"1-firing", "1-escalated-1", "1-resolved"}), ReceivedIds());
  for (const auto& d : receiver_.Deliveries()) {
    const Sha256Digest mac = HmacSha256(kSecret, d.body);
    EXPECT_EQ("sha256=" + HexEncode(mac.data(), mac.size()),
              d.headers.at("X-Clusterctl-Signature-256"));
    EXPECT_EQ(json::parse(d.body)["id"], d.headers.at("X-Clusterctl-Delivery"));
    EXPECT_EQ("/hook", d.path);
  }
  const json firing = json::parse(receiver_.Deliveries()[0].body);
  EXPECT_EQ("firing", firing["event"]);
  EXPECT_EQ("crash_loop/m1/api", firing["alert"]["key"]);
  EXPECT_EQ("clusterd@test", firing["controller"]);
  EXPECT_EQ(3u, notifier_->Stats()[0].sent);
}

TEST_F(NotifierTest, AReceiverThatIsDownGetsTheBacklogInOrderAcrossARestart) {
  receiver_.FailNext(3);
  for (int i = 0; i < 5; ++i) {
    book_.Raise(alerts::kind::kMachineUnreachable, "m" + std::to_string(i), "", "warning", "down",
                clock_.WallMs());
  }
  notifier_->Enqueue(book_.TakeEvents());
  notifier_->DeliverDue();                 // Refused: waits 1 s.
  EXPECT_EQ(0u, notifier_->DeliverDue());  // Not due yet.
  clock_.Advance(1000);
  notifier_->DeliverDue();  // Refused again: waits 2 s.
  EXPECT_EQ(5u, notifier_->Stats()[0].queued);
  EXPECT_NE("", notifier_->Stats()[0].last_error);
  EXPECT_EQ(std::string::npos, notifier_->Stats()[0].last_error.find("s3cr3t"));
  // clusterd restarts with everything still queued.
  Reopen();
  EXPECT_EQ(5u, notifier_->Stats()[0].queued);
  Drain();
  EXPECT_EQ(3, receiver_.refused());
  EXPECT_EQ((std::vector<std::string>{"1-firing", "2-firing", "3-firing", "4-firing", "5-firing"}),
            ReceivedIds());
  EXPECT_EQ(0u, notifier_->Stats()[0].queued);
}

TEST_F(NotifierTest, CooldownSuppressesARefiringEpisodeAndItsResolution) {
  const std::string key = alerts::Key(alerts::kind::kProbeSlow, "m1", "api");
  book_.Raise(alerts::kind::kProbeSlow, "m1", "api", "warning", "slow", clock_.WallMs());
  book_.Resolve(key, clock_.WallMs() + 1000);
  book_.Raise(alerts::kind::kProbeSlow, "m1", "api", "warning", "slow", clock_.WallMs() + 2000);
  book_.Resolve(key, clock_.WallMs() + 3000);
  // Past the 60 s cooldown: sent again.
  book_.Raise(alerts::kind::kProbeSlow, "m1", "api", "warning", "slow", clock_.WallMs() + 70000);
  notifier_->Enqueue(book_.TakeEvents());
  Drain();
  EXPECT_EQ((std::vector<std::string>{"1-firing", "1-resolved", "3-firing"}), ReceivedIds());
  EXPECT_EQ(2u, notifier_->Stats()[0].suppressed);
}

TEST_F(NotifierTest, AnAcknowledgedAlertIsHeldUntilTheAckExpires) {
  const int64_t t0 = clock_.WallMs();
  book_.Raise(alerts::kind::kCriticalServiceDown, "", "redis", "critical", "down", t0);
  ASSERT_TRUE(book_.Acknowledge("1", "alice@laptop", t0 + 30000, "on it", t0 + 10).ok());
  book_.Tick(t0 + 29999);  // Escalated (60 s threshold not reached: nothing).
  book_.Tick(t0 + 30000);  // The ack expires.
  book_.Tick(t0 + 60000);  // Escalated, no longer held.
  notifier_->Enqueue(book_.TakeEvents());
  Drain();
  EXPECT_EQ((std::vector<std::string>{"1-firing", "1-ack-expired-" + std::to_string(t0 + 30000),
                                      "1-escalated-1"}),
            ReceivedIds());
  // Held while acked: an escalation inside the ack is not sent.
  book_.Raise(alerts::kind::kSourceFetch, "warning", "x", t0 + 61000);
  ASSERT_TRUE(book_.Acknowledge("2", "bob@h", t0 + 1000000, "", t0 + 61001).ok());
  book_.Tick(t0 + 130000);
  notifier_->Enqueue(book_.TakeEvents());
  Drain();
  EXPECT_EQ(4u, receiver_.Deliveries().size());
}

TEST_F(NotifierTest, TheOutboxIsBoundedDroppingTheOldest) {
  max_ = 3;
  Reopen();
  receiver_.FailNext(1000);
  for (int i = 0; i < 5; ++i) {
    book_.Raise(alerts::kind::kMachineDisk, "m" + std::to_string(i), "", "warning", "full", 1);
  }
  notifier_->Enqueue(book_.TakeEvents());
  EXPECT_EQ(3u, notifier_->Stats()[0].queued);
  EXPECT_EQ(2u, notifier_->Stats()[0].dropped);
  receiver_.FailNext(0);
  Drain();
  EXPECT_EQ((std::vector<std::string>{"3-firing", "4-firing", "5-firing"}), ReceivedIds());
}

TEST_F(NotifierTest, TheDeliveryThreadSendsWhatTwoThreadsEnqueueWithoutLosingAny) {
  notifier_->Start();
  auto enqueue = [&](const std::string& machine) {
    alerts::AlertBook book;
    for (int i = 0; i < 20; ++i) {
      book.Raise(alerts::kind::kMachineUnreachable, machine + std::to_string(i), "", "warning",
                 "down", clock_.WallMs());
      notifier_->Enqueue(book.TakeEvents());
    }
  };
  std::thread a(enqueue, "a"), b(enqueue, "b");
  a.join();
  b.join();
  EXPECT_TRUE(receiver_.WaitFor(40, 20000));
  notifier_->Stop();
  EXPECT_EQ(40u, receiver_.Deliveries().size());
  EXPECT_EQ(40u, notifier_->Stats()[0].sent);
  EXPECT_EQ(0u, notifier_->Stats()[0].queued);
}

TEST(SinksTest, ACommandSinkGetsTheNotificationOnStdinAndItsExitCodeCounts) {
  testing::TempDir dir;
  SinkConfig sink;
  sink.name = "mail";
  sink.type = SinkType::kCommand;
  sink.command = {"/bin/sh", "-c", "cat > " + dir.Sub("got.json")};
  const json n = {{"id", "1-firing"}, {"event", "firing"}, {"alert", {{"key", "k"}}}};
  ASSERT_TRUE(Deliver(sink, n).ok());
  std::ifstream in(dir.Sub("got.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(n, json::parse(ss.str()));
  sink.command = {"/bin/sh", "-c", "exit 3"};
  Status failed = Deliver(sink, n);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(std::string::npos, failed.message().find("exited 3")) << failed.message();
  sink.command = {"/bin/sh", "-c", "sleep 30"};
  sink.timeout_seconds = 1;
  EXPECT_EQ(Code::kTimeout, Deliver(sink, n).code());
  sink.command = {"/nonexistent/notify-program"};
  EXPECT_FALSE(Deliver(sink, n).ok());
}

TEST(SinksTest, SlackGetsTextAndBlocksAndErrorsNeverQuoteTheUrl) {
  testing::WebhookReceiver receiver;
  SinkConfig sink;
  sink.name = "chat";
  sink.type = SinkType::kSlack;
  sink.url = receiver.Url("/services/T000/B000/XXXXSECRET");
  alerts::AlertEvent e;
  e.alert.id = 4;
  e.alert.kind = "crash_loop";
  e.alert.machine = "m1";
  e.alert.service = "api";
  e.alert.severity = "warning";
  e.alert.message = "api@m1 keeps failing";
  const json n = BuildNotification(e, "clusterd@x");
  ASSERT_TRUE(Deliver(sink, n).ok());
  const json body = json::parse(receiver.Deliveries().at(0).body);
  EXPECT_EQ("[warning] FIRING crash_loop api@m1: api@m1 keeps failing", body["text"]);
  EXPECT_EQ("section", body["blocks"][0]["type"]);
  receiver.FailNext(1);
  Status refused = Deliver(sink, n);
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(std::string::npos, refused.message().find("XXXXSECRET")) << refused.message();
  sink.url = "http://127.0.0.1:1/hooks/XXXXSECRET";  // Nothing listens on port 1.
  Status unreachable = Deliver(sink, n);
  EXPECT_FALSE(unreachable.ok());
  EXPECT_EQ(std::string::npos, unreachable.message().find("XXXXSECRET")) << unreachable.message();
}

TEST(SinksTest, SplitUrlTakesHttpAndHttpsOnly) {
  std::string origin, path;
  ASSERT_TRUE(SplitUrl("https://hooks.example:8443/a/b?c=d", &origin, &path));
  EXPECT_EQ("https://hooks.example:8443", origin);
  EXPECT_EQ("/a/b?c=d", path);
  ASSERT_TRUE(SplitUrl("http://h", &origin, &path));
  EXPECT_EQ("/", path);
  for (const char* bad : {"ftp://h/x", "h/x", "http:///x", ""})
    EXPECT_FALSE(SplitUrl(bad, &origin, &path)) << bad;
}

}  // namespace
}  // namespace clusterctl::notify
