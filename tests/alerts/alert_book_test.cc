// The alert lifecycle (alerts/alert_book.h): dedup, firing -> resolved,
// escalation by time open, acknowledgement and its expiry, history, and the
// stored form.
#include "alerts/alert_book.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace clusterctl::alerts {
namespace {

std::vector<std::string> EventIds(AlertBook* book) {
  std::vector<std::string> out;
  for (const AlertEvent& e : book->TakeEvents()) {
    out.push_back(std::string(EventName(e.type)) + " " + e.alert.key);
  }
  return out;
}

TEST(AlertBookTest, RepeatsUpdateOneAlertAndNeverDuplicateIt) {
  FakeClock clock;
  AlertBook book;
  const int64_t first = clock.WallMs();
  EXPECT_EQ(AlertBook::Change::kOpened,
            book.Raise(kind::kCrashLoop, "m1", "api", "warning", "failed 3 times", first));
  clock.Advance(10000);
  EXPECT_EQ(AlertBook::Change::kNone,
            book.Raise(kind::kCrashLoop, "m1", "api", "warning", "failed 3 times", clock.WallMs()));
  clock.Advance(10000);
  EXPECT_EQ(AlertBook::Change::kUpdated,
            book.Raise(kind::kCrashLoop, "m1", "api", "warning", "failed 4 times", clock.WallMs()));
  ASSERT_EQ(1u, book.Firing().size());
  const Alert a = book.Firing()[0];
  EXPECT_EQ("crash_loop/m1/api", a.key);
  EXPECT_EQ(first, a.first_seen_ms);
  EXPECT_EQ(clock.WallMs(), a.last_seen_ms);
  EXPECT_EQ(2, a.count);
  EXPECT_EQ("failed 4 times", a.message);
  // One firing event, not three.
  EXPECT_EQ(std::vector<std::string>{"firing crash_loop/m1/api"}, EventIds(&book));
}

TEST(AlertBookTest, ResolvingKeepsHistoryAndTheNextRaiseIsANewEpisode) {
  AlertBook book;
  book.Raise(kind::kSourceFetch, "warning", "cannot fetch", 1000);
  const int64_t id = book.Firing()[0].id;
  EXPECT_TRUE(book.Resolve(Key(kind::kSourceFetch), 5000));
  EXPECT_FALSE(book.Resolve(Key(kind::kSourceFetch), 6000));
  EXPECT_TRUE(book.Firing().empty());
  book.Raise(kind::kSourceFetch, "warning", "cannot fetch", 9000);
  const std::vector<Alert> all = book.All();
  ASSERT_EQ(2u, all.size());
  EXPECT_TRUE(all[0].firing);  // Newest first.
  EXPECT_NE(id, all[0].id);
  EXPECT_FALSE(all[1].firing);
  EXPECT_EQ(5000, all[1].resolved_ms);
  EXPECT_EQ(1u, book.All(/*since_ms=*/6000).size());
  EXPECT_EQ((std::vector<std::string>{"firing source_fetch//", "resolved source_fetch//",
                                      "firing source_fetch//"}),
            EventIds(&book));
}

TEST(AlertBookTest, EscalatesOneLevelPerThresholdOnce) {
  AlertBook book({5 * 60000, 15 * 60000});
  book.Raise(kind::kMachineUnreachable, "m1", "", "warning", "m1 unreachable", 0);
  (void)book.TakeEvents();
  book.Tick(4 * 60000);
  EXPECT_TRUE(book.TakeEvents().empty());
  book.Tick(5 * 60000);
  book.Tick(6 * 60000);
  std::vector<AlertEvent> events = book.TakeEvents();
  ASSERT_EQ(1u, events.size());
  EXPECT_EQ(EventType::kEscalated, events[0].type);
  EXPECT_EQ(1, events[0].alert.level);
  EXPECT_EQ("1-escalated-1", events[0].Id());
  // A clusterd that was down past both thresholds escalates through each.
  book.Tick(60 * 60000);
  events = book.TakeEvents();
  ASSERT_EQ(1u, events.size());
  EXPECT_EQ(2, events[0].alert.level);
  book.Tick(120 * 60000);
  EXPECT_TRUE(book.TakeEvents().empty());
}

TEST(AlertBookTest, AckNamesWhoAndUntilAndItsExpiryIsAnEvent) {
  AlertBook book;
  book.Raise(kind::kCriticalServiceDown, "", "redis", "critical", "redis down", 0);
  (void)book.TakeEvents();
  auto acked = book.Acknowledge("1", "alice@laptop", 3600000, "replacing the disk", 1000);
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  EXPECT_EQ("alice@laptop", acked->ack->by);
  EXPECT_TRUE(book.Firing()[0].Acked(3599999));
  // By dedup key too.
  EXPECT_TRUE(book.Acknowledge("critical_service_down//redis", "bob@h", 7200000, "", 2000).ok());
  book.Tick(7199999);
  (void)book.TakeEvents();  // Its escalations meanwhile.
  book.Tick(7200000);
  std::vector<AlertEvent> events = book.TakeEvents();
  ASSERT_EQ(1u, events.size());
  EXPECT_EQ(EventType::kAckExpired, events[0].type);
  EXPECT_EQ("bob@h", events[0].alert.ack->by);
  EXPECT_FALSE(book.Firing()[0].ack.has_value());
}

TEST(AlertBookTest, AckRefusesWhatIsNotFiring) {
  AlertBook book;
  book.Raise(kind::kSourceFetch, "warning", "x", 0);
  book.Resolve(Key(kind::kSourceFetch), 10);
  EXPECT_EQ(Code::kConflict, book.Acknowledge("1", "a@b", 100000, "", 20).status().code());
  EXPECT_EQ(Code::kNotFound, book.Acknowledge("99", "a@b", 100000, "", 20).status().code());
  EXPECT_EQ(Code::kNotFound, book.Acknowledge("nope", "a@b", 100000, "", 20).status().code());
  book.Raise(kind::kSourceFetch, "warning", "x", 30);
  EXPECT_EQ(Code::kInvalid, book.Acknowledge("2", "a@b", 30, "", 30).status().code());
}

TEST(AlertBookTest, HistoryIsBounded) {
  AlertBook book({}, /*keep_resolved=*/3);
  for (int i = 0; i < 10; ++i) {
    book.Raise(kind::kProbeSlow, "m1", "api", "warning", "slow", i * 10);
    book.Resolve(Key(kind::kProbeSlow, "m1", "api"), i * 10 + 5);
  }
  const std::vector<Alert> all = book.All();
  ASSERT_EQ(3u, all.size());
  EXPECT_EQ(10, all[0].id);
  EXPECT_EQ(8, all[2].id);
}

TEST(AlertBookTest, RoundTripsThroughItsStoredFormAndKeepsNumbering) {
  AlertBook book;
  book.Raise(kind::kCrashLoop, "m1", "api", "warning", "keeps failing", 100);
  book.Raise(kind::kSourceFetch, "warning", "fetch", 200);
  book.Resolve(Key(kind::kSourceFetch), 300);
  ASSERT_TRUE(book.Acknowledge("1", "alice@laptop", 5000, "looking", 400).ok());
  AlertBook copy;
  bool ok = false;
  copy.Restore(nlohmann::json::parse(book.ToJson().dump()), &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(book.All(), copy.All());
  copy.Raise(kind::kStoreWrite, "critical", "disk full", 500);
  EXPECT_EQ(3, copy.FindFiring(Key(kind::kStoreWrite))->id);
  // Malformed: empty, not a crash.
  for (const char* bad : {"null", "[]", R"({"firing": [{"id": "x"}]})", R"({"firing": 5})"}) {
    SCOPED_TRACE(bad);
    AlertBook b;
    b.Raise(kind::kSuspended, "info", "s", 1);
    b.Restore(nlohmann::json::parse(bad), &ok);
    EXPECT_FALSE(ok);
    EXPECT_TRUE(b.All().empty());
  }
}

TEST(AlertBookTest, ResolveIfSelectsByWhatTheAlertNames) {
  AlertBook book;
  book.Raise(kind::kCrashLoop, "m1", "api", "warning", "x", 1);
  book.Raise(kind::kCrashLoop, "m2", "api", "warning", "x", 1);
  book.Raise(kind::kMachineUnreachable, "m2", "", "warning", "x", 1);
  EXPECT_EQ(2u, book.ResolveIf([](const Alert& a) { return a.machine == "m2"; }, 5));
  ASSERT_EQ(1u, book.Firing().size());
  EXPECT_EQ("crash_loop/m1/api", book.Firing()[0].key);
}

}  // namespace
}  // namespace clusterctl::alerts
