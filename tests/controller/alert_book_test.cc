// The daemon's alert bookkeeping: open, update, clear, order, persistence.
#include "controller/alert_book.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace clusterctl::controller {
namespace {

TEST(AlertBookTest, ARaisedAlertKeepsItsFirstTimeAcrossUpdates) {
  FakeClock clock;
  AlertBook book;
  const int64_t first = clock.WallMs();
  EXPECT_EQ(AlertBook::Change::kOpened, book.Raise("source", "warning", "fetch failed", first));
  clock.Advance(30000);
  // The same message again is not news.
  EXPECT_EQ(AlertBook::Change::kNone,
            book.Raise("source", "warning", "fetch failed", clock.WallMs()));
  // A new message (and severity) updates it; `since` stays.
  EXPECT_EQ(AlertBook::Change::kUpdated,
            book.Raise("source", "critical", "fetch failed: timeout", clock.WallMs()));
  const DaemonAlert* a = book.Find("source");
  ASSERT_NE(nullptr, a);
  EXPECT_EQ("critical", a->severity);
  EXPECT_EQ("fetch failed: timeout", a->message);
  EXPECT_EQ(first, a->since_ms);
}

TEST(AlertBookTest, ClearingEndsItAndARaiseAfterwardsStartsAnew) {
  FakeClock clock;
  AlertBook book;
  book.Raise("store", "critical", "cannot record", clock.WallMs());
  EXPECT_TRUE(book.Clear("store"));
  EXPECT_FALSE(book.Clear("store"));
  EXPECT_FALSE(book.IsOpen("store"));
  clock.Advance(5000);
  EXPECT_EQ(AlertBook::Change::kOpened,
            book.Raise("store", "critical", "cannot record", clock.WallMs()));
  EXPECT_EQ(clock.WallMs(), book.Find("store")->since_ms);
}

TEST(AlertBookTest, AllIsOrderedByIdAndClearIfTakesWhatItSelects) {
  AlertBook book;
  book.Raise("machine/m2", "warning", "m2 unreachable", 3);
  book.Raise("crashloop/api@m1", "warning", "api@m1 keeps failing", 1);
  book.Raise("machine/m1", "warning", "m1 unreachable", 2);
  std::vector<std::string> ids;
  for (const api::AlertView& a : book.All()) ids.push_back(a.id);
  EXPECT_EQ((std::vector<std::string>{"crashloop/api@m1", "machine/m1", "machine/m2"}), ids);
  EXPECT_EQ((std::vector<std::string>{"api@m1 keeps failing", "m1 unreachable", "m2 unreachable"}),
            book.Messages());
  EXPECT_EQ(2u, book.ClearIf([](const std::string& id) { return id.rfind("machine/", 0) == 0; }));
  ASSERT_EQ(1u, book.All().size());
  EXPECT_EQ("crashloop/api@m1", book.All()[0].id);
  EXPECT_EQ(1, book.All()[0].since_ms);
}

TEST(AlertBookTest, RestoreBringsBackWhatWasSaved) {
  AlertBook a;
  a.Raise("suspended", "info", "suspended by ops", 42);
  AlertBook b;
  b.Restore(a.entries());
  ASSERT_TRUE(b.IsOpen("suspended"));
  EXPECT_EQ(42, b.Find("suspended")->since_ms);
  EXPECT_EQ(AlertBook::Change::kNone, b.Raise("suspended", "info", "suspended by ops", 99));
}

}  // namespace
}  // namespace clusterctl::controller
