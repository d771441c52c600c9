// Availability and recovery figures (controller/availability.h), against
// expectations computed by hand in the comments.
#include "controller/availability.h"

#include <gtest/gtest.h>

namespace clusterctl::controller {
namespace {

constexpr int64_t kT0 = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr int64_t kSec = 1000, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour;

int64_t At(int64_t minute) { return kT0 + minute * kMin; }

// One observation a minute, minutes [from, to], down on the minutes in [down_from, down_to].
void Minutes(AvailabilityBook* book, const std::string& instance, int64_t from, int64_t to,
             int64_t down_from = -1, int64_t down_to = -2) {
  const std::string service = instance.substr(0, instance.find('@'));
  for (int64_t m = from; m <= to; ++m) {
    book->Observe(instance, service, m < down_from || m > down_to, At(m));
  }
}

TEST(AvailabilityBookTest, AlwaysUpIsOne) {
  AvailabilityBook book;
  Minutes(&book, "api@m1", 0, 60);
  const AvailabilityFigures f = book.Service("api", kHour, At(60));
  EXPECT_DOUBLE_EQ(1.0, f.availability);
  EXPECT_EQ(kHour, f.observed_ms);
  EXPECT_EQ(0, f.down_ms);
  EXPECT_EQ(0, f.failures);
  EXPECT_EQ(0, f.restarts);
  EXPECT_EQ(-1, f.mttd_ms);
  EXPECT_EQ(-1, f.mttr_ms);
  EXPECT_EQ(-1, f.last_ttr_ms);
  EXPECT_FALSE(f.down_now);
  // One entry, a span, however many observations.
  EXPECT_EQ(1u, book.EntriesForTest("api@m1"));
}

// A service's figures are read from the keys "service@..." only: a service
// whose name extends another's ("api2", "api-x") is not counted with it.
TEST(AvailabilityBookTest, AServiceCountsOnlyItsOwnInstances) {
  AvailabilityBook book;
  Minutes(&book, "api@m1", 0, 60);
  Minutes(&book, "api@m2", 0, 60);
  Minutes(&book, "api-x@m1", 0, 60);
  Minutes(&book, "api2@m1", 0, 60);
  Minutes(&book, "ap@m1", 0, 60);
  EXPECT_EQ(2 * kHour, book.Service("api", kHour, At(60)).observed_ms);
  EXPECT_EQ(kHour, book.Service("api2", kHour, At(60)).observed_ms);
  EXPECT_EQ(kHour, book.Service("ap", kHour, At(60)).observed_ms);
  EXPECT_DOUBLE_EQ(-1, book.Service("a", kHour, At(60)).availability);
}

TEST(AvailabilityBookTest, NothingObservedIsMinusOne) {
  AvailabilityBook book;
  EXPECT_DOUBLE_EQ(-1, book.Service("api", kHour, At(0)).availability);
  book.Observe("api@m1", "api", true, At(0));  // one observation covers no time
  const AvailabilityFigures f = book.Instance("api@m1", kHour, At(0));
  EXPECT_DOUBLE_EQ(-1, f.availability);
  EXPECT_EQ(0, f.observed_ms);
}

TEST(AvailabilityBookTest, DownSixOfSixtyMinutes) {
  AvailabilityBook book;
  // Seen down at minutes 10..15, up again at 16: down [10, 16) = 6 of 60 minutes.
  Minutes(&book, "api@m1", 0, 60, 10, 15);
  AvailabilityFigures f = book.Service("api", kHour, At(60));
  EXPECT_DOUBLE_EQ(0.9, f.availability);
  EXPECT_EQ(kHour, f.observed_ms);
  EXPECT_EQ(6 * kMin, f.down_ms);
  EXPECT_EQ(1, f.failures);
  EXPECT_EQ(1, f.restarts);
  EXPECT_EQ(kMin, f.mttd_ms);  // last seen up at minute 9, detected at 10
  EXPECT_EQ(6 * kMin, f.mttr_ms);
  EXPECT_EQ(6 * kMin, f.last_ttr_ms);

  // 24 h: only the 60 observed minutes count.
  f = book.Service("api", 24 * kHour, At(60));
  EXPECT_DOUBLE_EQ(0.9, f.availability);
  EXPECT_EQ(kHour, f.observed_ms);

  // From minute 13: 47 minutes observed, 3 of them down; the failure began
  // before the window, the recovery is in it.
  f = book.Service("api", 47 * kMin, At(60));
  EXPECT_EQ(47 * kMin, f.observed_ms);
  EXPECT_EQ(3 * kMin, f.down_ms);
  EXPECT_DOUBLE_EQ(1 - 3.0 / 47, f.availability);
  EXPECT_EQ(0, f.failures);
  EXPECT_EQ(-1, f.mttd_ms);
  EXPECT_EQ(1, f.restarts);
  EXPECT_EQ(6 * kMin, f.mttr_ms);

  // From minute 20: up throughout.
  f = book.Service("api", 40 * kMin, At(60));
  EXPECT_DOUBLE_EQ(1.0, f.availability);
  EXPECT_EQ(0, f.restarts);
  EXPECT_EQ(-1, f.mttr_ms);
}

TEST(AvailabilityBookTest, TimeToDetectAndRecover) {
  AvailabilityBook book;
  book.Observe("api@m1", "api", true, kT0);
  book.Observe("api@m1", "api", false, kT0 + 2 * kSec);  // detected 2 s after last seen up
  EXPECT_TRUE(book.Service("api", kHour, kT0 + 2 * kSec).down_now);
  book.Observe("api@m1", "api", true, kT0 + 32 * kSec);  // recovered 30 s after detection
  const AvailabilityFigures f = book.Service("api", kHour, kT0 + kMin);
  EXPECT_EQ(2000, f.mttd_ms);
  EXPECT_EQ(30000, f.mttr_ms);
  EXPECT_EQ(30000, f.last_ttr_ms);
  EXPECT_EQ(1, f.restarts);
  EXPECT_EQ(1, f.failures);
  EXPECT_EQ(32 * kSec, f.observed_ms);
  EXPECT_EQ(30 * kSec, f.down_ms);
  EXPECT_FALSE(f.down_now);
}

TEST(AvailabilityBookTest, AServiceSumsItsInstances) {
  AvailabilityBook book;
  Minutes(&book, "api@m1", 0, 60);
  Minutes(&book, "api@m2", 0, 60, 30, 59);  // down [30, 60): 30 minutes
  Minutes(&book, "db@m1", 0, 60, 0, 9);     // never seen up before: no time to detect
  AvailabilityFigures f = book.Service("api", kHour, At(60));
  EXPECT_EQ(2 * kHour, f.observed_ms);
  EXPECT_EQ(30 * kMin, f.down_ms);
  EXPECT_DOUBLE_EQ(0.75, f.availability);
  EXPECT_EQ(1, f.failures);
  EXPECT_EQ(1, f.restarts);
  EXPECT_EQ(kMin, f.mttd_ms);
  EXPECT_EQ(30 * kMin, f.mttr_ms);
  EXPECT_DOUBLE_EQ(0.5, book.Instance("api@m2", kHour, At(60)).availability);
  EXPECT_DOUBLE_EQ(1.0, book.Instance("api@m1", kHour, At(60)).availability);

  f = book.Service("db", kHour, At(60));
  EXPECT_EQ(1, f.failures);
  EXPECT_EQ(-1, f.mttd_ms);
  EXPECT_EQ(10 * kMin, f.mttr_ms);
  EXPECT_EQ((std::vector<std::string>{"api", "db"}), book.Services());
}

TEST(AvailabilityBookTest, AGapLongerThanMaxGapIsNotCovered) {
  AvailabilityBook book;  // max gap 10 minutes
  book.Observe("api@m1", "api", true, At(0));
  book.Observe("api@m1", "api", false, At(1));
  // clusterd was down for 11 minutes; the instance was down before and up after.
  book.Observe("api@m1", "api", true, At(12));
  book.Observe("api@m1", "api", true, At(13));
  AvailabilityFigures f = book.Service("api", kHour, At(13));
  EXPECT_EQ(2 * kMin, f.observed_ms);  // [0, 1] and [12, 13]
  EXPECT_EQ(0, f.down_ms);
  EXPECT_DOUBLE_EQ(1.0, f.availability);
  EXPECT_EQ(11 * kMin, f.mttr_ms);  // the episode keeps its times across the gap
  EXPECT_EQ(kMin, f.mttd_ms);

  // Exactly max gap apart still counts.
  AvailabilityBook edge;
  edge.Observe("api@m1", "api", true, At(0));
  edge.Observe("api@m1", "api", true, At(10));
  EXPECT_EQ(10 * kMin, edge.Service("api", kHour, At(10)).observed_ms);
}

TEST(AvailabilityBookTest, UnknownEndsCoverageWithoutAVerdict) {
  AvailabilityBook book;
  book.Observe("api@m1", "api", true, At(0));
  book.Observe("api@m1", "api", false, At(1));
  book.Unknown("api@m1", At(2));  // machine unreachable
  book.Observe("api@m1", "api", false, At(3));
  book.Observe("api@m1", "api", true, At(4));
  const AvailabilityFigures f = book.Service("api", kHour, At(4));
  EXPECT_EQ(2 * kMin, f.observed_ms);  // [0, 1] up and [3, 4] down; [1, 3] not covered
  EXPECT_EQ(kMin, f.down_ms);
  EXPECT_EQ(1, f.failures);  // one episode, open across the Unknown
  EXPECT_EQ(3 * kMin, f.mttr_ms);
  book.Unknown("nobody@m9", At(4));  // never observed: nothing to end
  EXPECT_EQ(0u, book.EntriesForTest("nobody@m9"));
}

TEST(AvailabilityBookTest, AnOlderObservationIsIgnored) {
  AvailabilityBook book;
  book.Observe("api@m1", "api", true, At(5));
  const AvailabilityBook before = book;
  book.Observe("api@m1", "api", false, At(4));
  EXPECT_EQ(before, book);
}

TEST(AvailabilityBookTest, EraseGoneForgetsInstancesThatLeft) {
  AvailabilityBook book;
  Minutes(&book, "api@m1", 0, 10);
  Minutes(&book, "api@m2", 0, 10, 0, 10);
  Minutes(&book, "db@m1", 0, 10);
  book.EraseGone({"api@m1"});
  EXPECT_EQ(std::vector<std::string>{"api"}, book.Services());
  EXPECT_DOUBLE_EQ(1.0, book.Service("api", kHour, At(10)).availability);
  EXPECT_FALSE(book.Service("api", kHour, At(10)).down_now);
  EXPECT_EQ(0u, book.EntriesForTest("db@m1"));
}

TEST(AvailabilityBookTest, PruneDropsWhatIsPastTheKeepWindow) {
  AvailabilityBook book;
  const int64_t start = kT0, end = kT0 + 9 * kDay;
  // Every 5 minutes for 9 days; down for 10 minutes at day 0.5 and at day 8.5.
  for (int64_t t = start; t <= end; t += 5 * kMin) {
    const int64_t day_part = (t - start) % kDay;
    const bool incident =
        (t - start) / kDay % 8 == 0 && day_part >= 12 * kHour && day_part < 12 * kHour + 10 * kMin;
    book.Observe("api@m1", "api", !incident, t);
  }
  const AvailabilityFigures week = book.Service("api", 7 * kDay, end);
  EXPECT_EQ(7 * kDay, week.observed_ms);
  EXPECT_EQ(10 * kMin, week.down_ms);
  EXPECT_EQ(1, week.restarts);
  EXPECT_EQ(2, book.Service("api", 9 * kDay, end).restarts);
  EXPECT_EQ(3u, book.EntriesForTest("api@m1"));  // one span, two episodes

  book.Prune(end);
  EXPECT_EQ(2u, book.EntriesForTest("api@m1"));  // the episode of day 0.5 is gone
  const AvailabilityFigures pruned = book.Service("api", 7 * kDay, end);
  EXPECT_EQ(week.observed_ms, pruned.observed_ms);
  EXPECT_EQ(week.down_ms, pruned.down_ms);
  EXPECT_EQ(week.restarts, pruned.restarts);
  EXPECT_EQ(week.mttr_ms, pruned.mttr_ms);
  EXPECT_EQ(1, book.Service("api", 9 * kDay, end).restarts);

  // An instance last seen long ago goes entirely.
  book.Observe("old@m1", "old", true, start);
  book.Observe("old@m1", "old", true, start + kMin);
  book.Prune(end);
  EXPECT_EQ(0u, book.EntriesForTest("old@m1"));
  EXPECT_EQ(std::vector<std::string>{"api"}, book.Services());
}

// 10,000 observations a second apart, alternating up and down: 5,000
// episodes (the last open), folded into at most kMaxEpisodes runs.
AvailabilityBook Flapping() {
  AvailabilityBook book;
  for (int64_t i = 0; i < 10000; ++i) {
    book.Observe("api@m1", "api", i % 2 == 0, kT0 + i * kSec);
  }
  return book;
}

TEST(AvailabilityBookTest, FlappingStaysBoundedAndWholeWindowsStayExact) {
  const AvailabilityBook book = Flapping();
  const int64_t now = kT0 + 9999 * kSec;
  EXPECT_LE(book.EntriesForTest("api@m1"), 1 + AvailabilityBook::kMaxEpisodes);
  const size_t bytes = book.ToJson().dump().size();
  EXPECT_LE(bytes, AvailabilityBook::kMaxInstanceJsonBytes + 2 * std::string("api@m1").size());

  // A window holding all runs: exact. Down [i, i+1) for odd i < 9999.
  AvailabilityFigures f = book.Service("api", kDay, now);
  EXPECT_EQ(9999 * kSec, f.observed_ms);
  EXPECT_EQ(4999 * kSec, f.down_ms);
  EXPECT_EQ(5000, f.failures);
  EXPECT_EQ(4999, f.restarts);
  EXPECT_EQ(1000, f.mttd_ms);
  EXPECT_EQ(1000, f.mttr_ms);
  EXPECT_EQ(1000, f.last_ttr_ms);
  EXPECT_TRUE(f.down_now);

  // The last hour cuts a run: pro rata, within 1% of the exact 1,800.
  f = book.Service("api", kHour, now);
  EXPECT_EQ(kHour, f.observed_ms);
  EXPECT_NEAR(1800, f.failures, 18);
  EXPECT_NEAR(1800, f.restarts, 18);
  EXPECT_NEAR(0.5, f.availability, 0.01);
  EXPECT_EQ(1000, f.mttr_ms);
}

TEST(AvailabilityBookTest, BrokenCoverageStaysBounded) {
  AvailabilityBook book;
  // 1,000 times: up, up a minute later, then unreachable: 1,000 one-minute spans.
  for (int64_t i = 0; i < 1000; ++i) {
    book.Observe("api@m1", "api", true, At(3 * i));
    book.Observe("api@m1", "api", true, At(3 * i + 1));
    book.Unknown("api@m1", At(3 * i + 2));
  }
  EXPECT_LE(book.EntriesForTest("api@m1"), AvailabilityBook::kMaxSpans);
  const AvailabilityFigures f = book.Service("api", 7 * kDay, At(3000));
  EXPECT_EQ(1000 * kMin, f.observed_ms);
  EXPECT_DOUBLE_EQ(1.0, f.availability);
}

TEST(AvailabilityBookTest, JsonRoundTrip) {
  AvailabilityBook book = Flapping();
  Minutes(&book, "db@m2", 0, 60, 10, 15);
  book.Observe("db@m3", "db", false, At(0));
  book.Observe("db@m3", "db", false, At(1));
  book.Unknown("db@m3", At(2));
  bool ok = false;
  const AvailabilityBook back = AvailabilityBook::FromJson(book.ToJson(), &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(book, back);
  EXPECT_EQ(book.ToJson(), back.ToJson());
  // And it goes on from where it was.
  AvailabilityBook a = book, b = back;
  a.Observe("db@m3", "db", true, At(3));
  b.Observe("db@m3", "db", true, At(3));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, book);
}

TEST(AvailabilityBookTest, MalformedJsonGivesAnEmptyBook) {
  AvailabilityBook book;
  Minutes(&book, "api@m1", 0, 3, 1, 1);
  const nlohmann::json good = book.ToJson();
  auto broken = [&](const char* what, auto&& edit) {
    nlohmann::json j = good;
    edit(j["instances"]["api@m1"]);
    bool ok = true;
    EXPECT_EQ(AvailabilityBook(), AvailabilityBook::FromJson(j, &ok)) << what;
    EXPECT_FALSE(ok) << what;
  };
  broken("a string time", [](nlohmann::json& i) { i["last_ms"] = "yesterday"; });
  broken("no service", [](nlohmann::json& i) { i.erase("service"); });
  broken("a span that ends before it begins", [](nlohmann::json& i) {
    i["spans"][0] = {At(5), At(4)};
  });
  broken("an episode of four numbers", [](nlohmann::json& i) { i["episodes"][0].push_back(1); });
  broken("an open episode before another", [](nlohmann::json& i) {
    i["episodes"].push_back({At(0), At(1), -1});
  });
  broken("more episodes than the bound", [](nlohmann::json& i) {
    for (int k = 0; k < 200; ++k) i["episodes"].push_back({-1, At(10 + 2 * k), At(11 + 2 * k)});
  });
  bool ok = true;
  AvailabilityBook::FromJson(nlohmann::json::array(), &ok);
  EXPECT_FALSE(ok);
  AvailabilityBook::FromJson(nlohmann::json::object(), &ok);
  EXPECT_FALSE(ok);
  AvailabilityBook::FromJson(good, &ok);
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace clusterctl::controller
