// What clusterd keeps across restarts (controller/daemon_memory.h), through a
// real store on disk.
#include "controller/daemon_memory.h"

#include <gtest/gtest.h>

#include "alerts/alert_book.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::controller {
namespace {

DaemonMemory Sample() {
  DaemonMemory m;
  m.suspended = true;
  m.suspended_by = "alice@laptop";
  m.backoff["api@m1"] = reconcilers::Backoff{3, 1700000000123};
  m.healthy_since_ms["db@m2"] = 1700000000456;
  alerts::AlertBook book;
  book.Raise("crash_loop", "m1", "api", "warning", "api@m1 keeps failing", 1700000000001);
  m.alerts = book.ToJson();
  return m;
}

void ExpectSame(const DaemonMemory& a, const DaemonMemory& b) {
  EXPECT_EQ(a.suspended, b.suspended);
  EXPECT_EQ(a.suspended_by, b.suspended_by);
  ASSERT_EQ(a.backoff.size(), b.backoff.size());
  for (const auto& [k, v] : a.backoff) {
    EXPECT_EQ(v.failures, b.backoff.at(k).failures);
    EXPECT_EQ(v.not_before_ms, b.backoff.at(k).not_before_ms);
  }
  EXPECT_EQ(a.healthy_since_ms, b.healthy_since_ms);
  EXPECT_EQ(a.alerts, b.alerts);
}

TEST(DaemonMemory, SurvivesAReopenOfTheStore) {
  testing::TempDir dir;
  {
    auto store = store::Store::OpenPrimary(dir.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto fresh = LoadMemory(**store);
    ASSERT_TRUE(fresh.ok());
    EXPECT_FALSE(fresh->suspended);
    EXPECT_TRUE(fresh->alerts.is_null());
    ASSERT_TRUE(SaveMemory(store->get(), Sample(), /*sync=*/true).ok());
  }
  auto store = store::Store::OpenPrimary(dir.path());
  ASSERT_TRUE(store.ok());
  auto back = LoadMemory(**store);
  ASSERT_TRUE(back.ok());
  ExpectSame(*back, Sample());
}

TEST(DaemonMemory, AMalformedDocumentGivesAFreshMemory) {
  bool ok = true;
  DaemonMemory m =
      MemoryFromJson(nlohmann::json::parse(R"({"backoff": {"a@m": {"failures": "x"}}})"), &ok);
  EXPECT_FALSE(ok);
  EXPECT_TRUE(m.backoff.empty());
  MemoryFromJson(nlohmann::json::array(), &ok);
  EXPECT_FALSE(ok);
  MemoryFromJson(MemoryToJson(Sample()), &ok);
  EXPECT_TRUE(ok);
}

TEST(DaemonMemory, SnapshotsAreBoundedAndComeBackNewestFirst) {
  testing::TempDir dir;
  {
    auto store = store::Store::OpenPrimary(dir.path());
    ASSERT_TRUE(store.ok());
    std::deque<std::string> keys;
    for (int i = 0; i < 7; ++i) {
      // Two passes in the same millisecond are both kept.
      ASSERT_TRUE(AppendSnapshot(store->get(), 1000 + i / 2, {{"n", i}}, 5, &keys).ok());
    }
    EXPECT_EQ(keys.size(), 5u);
  }
  auto store = store::Store::OpenPrimary(dir.path());
  ASSERT_TRUE(store.ok());
  std::deque<std::string> keys;
  auto snaps = LoadSnapshots(**store, 3, &keys);
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 3u);
  EXPECT_EQ((*snaps)[0]["n"], 6);
  EXPECT_EQ((*snaps)[2]["n"], 4);
  EXPECT_EQ(keys.size(), 5u);  // All stored keys, so the next append trims them.
  ASSERT_TRUE(AppendSnapshot(store->get(), 5000, {{"n", 7}}, 3, &keys).ok());
  EXPECT_EQ(keys.size(), 3u);
  std::deque<std::string> again;
  auto all = LoadSnapshots(**store, 100, &again);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0]["n"], 7);
}

}  // namespace
}  // namespace clusterctl::controller
