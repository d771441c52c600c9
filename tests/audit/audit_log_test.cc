// The audit log (audit/audit_log.h) on a real RocksDB in a temp dir,
// with an injected clock: the hash chain, seq across reopen and crash, every
// filter against a brute-force reference, order, limit and cursors, recovery
// of unfinished intents, Verify() against tampering done directly in
// RocksDB, retention, and the JSON form.
#include "audit/audit_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "base/sha256.h"
#include "base/time_format.h"
#include "desired-state/spec_hash.h"
#include "store/store.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::audit {
namespace {

using ::clusterctl::testing::OutputTo;
using ::clusterctl::testing::Process;
using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::SpawnOptions;
using ::clusterctl::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kT0 = 1795343445123;  // 2026-11-22T10:30:45.123Z
const std::string kZeros(64, '0');

std::string Be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) s[i] = static_cast<char>(v & 0xff);
  return s;
}
std::string TimeBytes(int64_t t) { return Be64(static_cast<uint64_t>(t) ^ (1ULL << 63)); }

AuditRecord Step(const std::string& action, const std::string& service, const std::string& machine,
                 const std::string& phase = Name(Phase::kIntent), const std::string& result = "") {
  AuditRecord r;
  r.actor = "clusterd@cpu-node";
  r.trigger = "revision";
  r.revision = "3f2c1e9";
  r.action = action;
  r.service = service;
  r.machine = machine;
  r.phase = phase;
  r.result = result;
  r.detail = action + " " + service + "@" + machine;
  return r;
}

std::vector<uint64_t> Seqs(const std::vector<AuditRecord>& records) {
  std::vector<uint64_t> out;
  for (const auto& r : records) out.push_back(r.seq);
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    log_.reset();
    store_.reset();
    Result<std::unique_ptr<store::Store>> s = store::Store::OpenPrimary(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    Result<std::unique_ptr<AuditLog>> l = AuditLog::Open(store_.get(), &clock_);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    log_ = std::move(l).value();
  }

  AuditRecord Append(AuditRecord r, int64_t advance_ms = 1000) {
    clock_.Advance(advance_ms);
    Result<AuditRecord> out = log_->Append(std::move(r));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : AuditRecord{};
  }

  // n records start/stop on api/db alternately, one second apart.
  std::vector<AuditRecord> AppendMany(int n) {
    std::vector<AuditRecord> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(Append(Step(i % 2 ? "stop" : "start", i % 2 ? "db" : "api", "m1")));
    }
    return out;
  }

  VerifyReport MustVerify() {
    Result<VerifyReport> rep = log_->Verify();
    EXPECT_TRUE(rep.ok()) << rep.status().ToString();
    return rep.ok() ? *rep : VerifyReport{};
  }

  // Direct access to RocksDB, as someone tampering with the files would.
  std::string RawGet(const char* cf, const std::string& key) {
    std::string v;
    EXPECT_TRUE(store_->db()->Get(rocksdb::ReadOptions(), store_->cf(cf), key, &v).ok());
    return v;
  }
  void RawPut(const char* cf, const std::string& key, const std::string& value) {
    ASSERT_TRUE(store_->db()->Put(rocksdb::WriteOptions(), store_->cf(cf), key, value).ok());
  }
  void RawDelete(const char* cf, const std::string& key) {
    ASSERT_TRUE(store_->db()->Delete(rocksdb::WriteOptions(), store_->cf(cf), key).ok());
  }

  TempDir dir_;
  FakeClock clock_{kT0};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AuditLog> log_;
};

// ------------------------------------------------------------ the chain

TEST_F(AuditLogTest, AppendsAHashChainThatVerifies) {
  std::vector<AuditRecord> recs = AppendMany(10);
  ASSERT_EQ(recs.size(), 10u);
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i].seq, i + 1);
    EXPECT_EQ(recs[i].time, kT0 + 1000 * static_cast<int64_t>(i + 1));
    EXPECT_EQ(recs[i].prev_hash, i == 0 ? kZeros : recs[i - 1].hash);
    EXPECT_EQ(recs[i].hash, ComputeHash(recs[i]));
    EXPECT_EQ(recs[i].hash.size(), 64u);
    Result<std::optional<AuditRecord>> stored = log_->Get(recs[i].seq);
    ASSERT_TRUE(stored.ok());
    ASSERT_TRUE(stored->has_value());
    EXPECT_EQ(**stored, recs[i]);
  }
  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
  EXPECT_EQ(rep.records, 10u);
  EXPECT_EQ(rep.first_seq, 1u);
  EXPECT_EQ(rep.last_seq, 10u);
  EXPECT_EQ(rep.index_entries, 40u);  // time, service, machine, action each.
  EXPECT_EQ(rep.first_bad_seq, 0u);
  EXPECT_EQ(rep.reason, "");
}

TEST_F(AuditLogTest, HashIsSha256OfTheCanonicalFormWithoutHash) {
  AuditRecord r = Append(Step("start", "tools-server", "worker-tools"));
  nlohmann::json j = ToJson(r);
  j.erase("hash");
  EXPECT_EQ(CanonicalForm(r), j.dump());
  EXPECT_EQ(r.hash, Sha256Hex(j.dump()));
  // No spaces but the one in the detail.
  EXPECT_EQ(CanonicalForm(r).find(' '), CanonicalForm(r).find("start tools") + 5);
  EXPECT_THAT(CanonicalForm(r), StartsWith("{\"action\":\"start\",\"actor\":"));  // Keys sorted.
  EXPECT_THAT(CanonicalForm(r), HasSubstr("\"prev_hash\":\"" + kZeros + "\""));
}

TEST_F(AuditLogTest, EmptyLogVerifiesAndHasAZeroHead) {
  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok);
  EXPECT_EQ(rep.records, 0u);
  Result<AuditHead> head = log_->Head();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, 0u);
  EXPECT_EQ(head->hash, kZeros);
  Result<std::vector<AuditRecord>> all = log_->Query(AuditFilter{});
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(AuditLogTest, SeqContinuesAfterReopen) {
  std::vector<AuditRecord> first = AppendMany(3);
  Reopen();
  AuditRecord next = Append(Step("restart", "api", "m1"));
  EXPECT_EQ(next.seq, 4u);
  EXPECT_EQ(next.prev_hash, first.back().hash);
  EXPECT_TRUE(MustVerify().ok);
}

// Run by SeqNeverRepeatsAfterAKilledWriter in a child process of its own:
// writes 5 synced records, then dies by SIGKILL without closing anything.
TEST(AuditLogChild, WriteFiveRecordsThenDie) {
  const char* dir = std::getenv("CLUSTERCTL_AUDIT_CHILD_DIR");
  if (dir == nullptr) GTEST_SKIP() << "only runs as the child of another test";
  auto store = store::Store::OpenPrimary(dir);
  ASSERT_TRUE(store.ok());
  FakeClock clock(kT0);
  auto log = AuditLog::Open(store->get(), &clock);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*log)->Append(Step("start", "api", "m1")).ok());
  raise(SIGKILL);
}

TEST_F(AuditLogTest, SeqNeverRepeatsAfterAKilledWriter) {
  log_.reset();
  store_.reset();
  SpawnOptions opts = OutputTo(dir_.Sub("child.log"));
  opts.env.push_back("CLUSTERCTL_AUDIT_CHILD_DIR=" + dir_.path());
  Process child({"/proc/self/exe", "--gtest_filter=AuditLogChild.WriteFiveRecordsThenDie"}, opts);
  std::optional<int> exit = child.WaitForExit(std::chrono::seconds(60));
  ASSERT_TRUE(exit.has_value());
  ASSERT_EQ(*exit, 128 + SIGKILL) << ReadFile(dir_.Sub("child.log"));
  Reopen();
  Result<AuditHead> head = log_->Head();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, 5u);
  EXPECT_EQ(Append(Step("stop", "api", "m1")).seq, 6u);
  EXPECT_TRUE(MustVerify().ok);
}

TEST_F(AuditLogTest, AppendBatchIsOneGroupCommitInOrder) {
  Append(Step("start", "api", "m1"));
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 100; ++i) batch.push_back(Step("start", "svc" + std::to_string(i), "m2"));
  Result<std::vector<AuditRecord>> out = log_->AppendBatch(batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 100u);
  for (size_t i = 0; i < out->size(); ++i) {
    EXPECT_EQ((*out)[i].seq, i + 2);
    EXPECT_EQ((*out)[i].service, "svc" + std::to_string(i));
  }
  EXPECT_TRUE(MustVerify().ok);
  Result<std::vector<AuditRecord>> empty = log_->AppendBatch({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(AuditLogTest, ConcurrentAppendsGetDistinctSeqsAndAChain) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        AuditRecord r = Step("start", "svc" + std::to_string(t), "m1");
        EXPECT_TRUE(log_->Append(r).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  Result<AuditHead> head = log_->Head();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->seq, 100u);
  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
  EXPECT_EQ(rep.records, 100u);
}

// Issue 10 item 14: Verify() on a live primary read the records, the index
// and the head at different moments and reported appends made meanwhile as
// corruption. It now reads one snapshot.
TEST_F(AuditLogTest, VerifyDuringConcurrentAppendsNeverReportsCorruption) {
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 5000; ++i)
    batch.push_back(Step("start", "svc" + std::to_string(i % 7), "m1"));
  ASSERT_TRUE(log_->AppendBatch(batch).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::thread writer([&] {
    while (!stop) {
      if (log_->Append(Step("stop", "svc", "m2")).ok()) ++appended;
    }
  });
  int checked = 0;
  std::string failure;
  for (; checked < 20 && failure.empty(); ++checked) {
    Result<VerifyReport> rep = log_->Verify();
    if (!rep.ok())
      failure = rep.status().ToString();
    else if (!rep->ok)
      failure = std::to_string(rep->first_bad_seq) + ": " + rep->reason;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(failure, "") << "after " << checked << " verifications";
  EXPECT_GT(appended.load(), 0);  // Appends really went on meanwhile.
}

TEST_F(AuditLogTest, RejectsInvalidRecordsWithoutUsingASeq) {
  struct Case {
    std::function<void(AuditRecord*)> change;
    const char* message;
  };
  std::vector<Case> cases = {
      {[](AuditRecord* r) { r->actor.clear(); }, "without an actor"},
      {[](AuditRecord* r) { r->action = "Start!"; }, "must be a lower-case identifier"},
      {[](AuditRecord* r) { r->trigger = "whim"; }, "trigger \"whim\" is not one of"},
      {[](AuditRecord* r) { r->phase = "maybe"; }, "phase \"maybe\""},
      {[](AuditRecord* r) { r->result = "ok"; }, "an audit intent has no result"},
      {[](AuditRecord* r) { r->phase = Name(Phase::kResult); }, "needs a result"},
      {[](AuditRecord* r) {
         r->phase = Name(Phase::kResult);
         r->result = "great";
       },
       "result \"great\""},
      {[](AuditRecord* r) { r->intent_seq = 1; }, "only a result record names an intent"},
      {[](AuditRecord* r) { r->service = std::string("a\0b", 3); }, "NUL"},
      {[](AuditRecord* r) {
         r->phase = Name(Phase::kResult);
         r->result = "ok";
         r->intent_seq = 7;
       },
       "not an earlier record"},
  };
  for (const Case& c : cases) {
    AuditRecord r = Step("start", "api", "m1");
    c.change(&r);
    Result<AuditRecord> out = log_->Append(r);
    ASSERT_FALSE(out.ok()) << c.message;
    EXPECT_EQ(out.status().code(), Code::kInvalid);
    EXPECT_THAT(out.status().message(), HasSubstr(c.message));
  }
  EXPECT_EQ(Append(Step("start", "api", "m1")).seq, 1u);
}

TEST_F(AuditLogTest, KeepsAwkwardTextExactlyAndReplacesInvalidUtf8) {
  AuditRecord r = Step("start", "api", "m1");
  r.detail = "line 1\nline \"2\"\ttab \\ back, unicode: \xC3\xA9 \xF0\x9F\x98\x80, ctrl \x01";
  AuditRecord stored = Append(r);
  EXPECT_EQ(stored.detail, r.detail);
  AuditRecord bad = Step("start", "api", "m1");
  bad.detail = "bytes \xFF\xFE end";
  AuditRecord fixed = Append(bad);
  EXPECT_EQ(fixed.detail, "bytes \xEF\xBF\xBD\xEF\xBF\xBD end");
  for (uint64_t seq : {1, 2}) {
    Result<std::optional<AuditRecord>> back = log_->Get(seq);
    ASSERT_TRUE(back.ok() && back->has_value());
    EXPECT_EQ((*back)->detail, seq == 1 ? r.detail : fixed.detail);
    // The fast reader and nlohmann agree.
    Result<AuditRecord> via_json = FromJson(ToJson(**back));
    ASSERT_TRUE(via_json.ok());
    EXPECT_EQ(*via_json, **back);
  }
  EXPECT_TRUE(MustVerify().ok);
}

TEST_F(AuditLogTest, ReadOnlyStoreQueriesButRefusesWrites) {
  AppendMany(3);
  Result<std::unique_ptr<store::Store>> ro = store::Store::OpenReadOnly(dir_.path());
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  Result<std::unique_ptr<AuditLog>> rlog = AuditLog::Open(ro->get());
  ASSERT_TRUE(rlog.ok());
  Result<AuditRecord> w = (*rlog)->Append(Step("start", "api", "m1"));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kPermission);
  EXPECT_THAT(w.status().message(), HasSubstr("open read-only"));
  EXPECT_EQ((*rlog)->Trim(2).status().code(), Code::kPermission);

  Result<std::vector<AuditRecord>> all = (*rlog)->Query(AuditFilter{});
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Seqs(*all), ElementsAre(3, 2, 1));
  // New records appear after a catch-up.
  AppendMany(2);
  ASSERT_TRUE((*ro)->CatchUp().ok());
  Result<std::vector<AuditRecord>> fresh = (*rlog)->ReadAfter(3);
  ASSERT_TRUE(fresh.ok());
  EXPECT_THAT(Seqs(*fresh), ElementsAre(4, 5));
  Result<VerifyReport> rep = (*rlog)->Verify();
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->ok) << rep->reason;
  EXPECT_EQ(rep->records, 5u);
}

// ------------------------------------------------------------ queries

// 60 records with every field varying independently of the others.
class AuditQueryTest : public AuditLogTest {
 protected:
  void SetUp() override {
    AuditLogTest::SetUp();
    const std::vector<std::string> services = {"api", "db", "cache", ""};
    const std::vector<std::string> machines = {"m1", "m2", ""};
    const std::vector<std::string> actions = {"start", "stop", "restart", "probe_failed"};
    const std::vector<std::string> results = {"ok", "failed", "skipped", "interrupted"};
    const std::vector<std::string> actors = {"clusterd@cpu-node", "alice@laptop", "alice@desk",
                                             "bob@laptop"};
    const std::vector<std::string> revisions = {"3f2c1e9", "a1b2c3d", "3f2d000"};
    for (int i = 0; i < 60; ++i) {
      AuditRecord r;
      r.service = services[i % 4];
      r.machine = machines[i % 3];
      r.action = actions[(i / 2) % 4];
      r.phase = i % 2 ? Name(Phase::kResult) : Name(Phase::kIntent);
      if (r.phase == Name(Phase::kResult)) r.result = results[(i / 3) % 4];
      r.trigger = AuditTriggers()[i % 5];
      r.actor = actors[(i / 5) % 4];
      r.revision = revisions[(i / 7) % 3];
      r.detail = "record " + std::to_string(i);
      all_.push_back(Append(r, 60000));  // One a minute.
    }
  }

  // The reference: a plain scan with the filter written out again.
  std::vector<uint64_t> Want(const AuditFilter& f) const {
    std::vector<uint64_t> out;
    for (const AuditRecord& r : all_) {
      auto lower = [](std::string s) {
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
      };
      const std::string rev = lower(f.revision_prefix);
      if (f.since_ms && r.time < *f.since_ms) continue;
      if (f.until_ms && r.time >= *f.until_ms) continue;
      if (!f.service.empty() && r.service != f.service) continue;
      if (!f.machine.empty() && r.machine != f.machine) continue;
      if (!f.action.empty() && r.action != f.action) continue;
      if (!f.result.empty() && r.result != f.result) continue;
      if (!f.trigger.empty() && r.trigger != f.trigger) continue;
      if (!f.actor.empty() && r.actor != f.actor && r.actor.rfind(f.actor + "@", 0) != 0) continue;
      if (!rev.empty() && r.revision.rfind(rev.substr(0, r.revision.size()), 0) != 0) continue;
      out.push_back(r.seq);
    }
    if (!f.oldest_first) std::reverse(out.begin(), out.end());
    if (f.limit != 0 && out.size() > f.limit) out.resize(f.limit);
    return out;
  }

  void ExpectQuery(AuditFilter f, const std::string& what) {
    for (bool oldest_first : {false, true}) {
      for (size_t limit : {size_t{0}, size_t{3}}) {
        f.oldest_first = oldest_first;
        f.limit = limit;
        Result<std::vector<AuditRecord>> got = log_->Query(f);
        ASSERT_TRUE(got.ok()) << what << ": " << got.status().ToString();
        std::vector<uint64_t> want = Want(f);
        EXPECT_EQ(Seqs(*got), want)
            << what << (oldest_first ? " oldest first" : " newest first") << " limit " << limit;
        if (limit == 0) {
          EXPECT_FALSE(want.empty()) << what << " selects nothing: a weak test";
        }
      }
    }
  }

  int64_t TimeOf(int i) const { return all_[i].time; }

  std::vector<AuditRecord> all_;
};

TEST_F(AuditQueryTest, EveryFilterAlone) {
  AuditFilter f;
  ExpectQuery(f, "no filter");
  f = {};
  f.service = "api";
  ExpectQuery(f, "service");
  f = {};
  f.machine = "m2";
  ExpectQuery(f, "machine");
  f = {};
  f.action = "restart";
  ExpectQuery(f, "action");
  f = {};
  f.result = "failed";
  ExpectQuery(f, "result");
  f = {};
  f.revision_prefix = "3f2";  // Two revisions share it.
  ExpectQuery(f, "revision prefix");
  f = {};
  f.revision_prefix = "3F2C";
  ExpectQuery(f, "revision prefix in capitals");
  f = {};
  f.revision_prefix = "3f2c1e9aaaabbbbccccddddeeeeffff000011112";  // A full sha.
  ExpectQuery(f, "full sha for short revisions");
  f = {};
  f.actor = "alice";
  ExpectQuery(f, "actor by user on any host");
  f = {};
  f.actor = "alice@desk";
  ExpectQuery(f, "actor exactly");
  f = {};
  f.trigger = "drift";
  ExpectQuery(f, "trigger");
  f = {};
  f.since_ms = TimeOf(40);
  ExpectQuery(f, "since");
  f = {};
  f.until_ms = TimeOf(10);
  ExpectQuery(f, "until");
  f = {};
  f.since_ms = TimeOf(10);
  f.until_ms = TimeOf(20);
  ExpectQuery(f, "since and until");
}

TEST_F(AuditQueryTest, FiltersCombined) {
  AuditFilter f;
  f.service = "api";
  f.since_ms = TimeOf(8);
  f.until_ms = TimeOf(50);
  ExpectQuery(f, "service + time range");
  f = {};
  f.machine = "m1";
  f.result = "failed";
  ExpectQuery(f, "machine + result");
  f = {};
  f.action = "start";
  f.trigger = "revision";
  ExpectQuery(f, "action + trigger");
  f = {};
  f.service = "db";
  f.machine = "m2";
  f.revision_prefix = "a1b";
  ExpectQuery(f, "service + machine + revision");
  f = {};
  f.actor = "alice";
  f.since_ms = TimeOf(20);
  f.action = "stop";
  ExpectQuery(f, "actor + since + action");

  // Nothing matches: an empty answer, not an error.
  f = {};
  f.service = "api";
  f.machine = "nowhere";
  Result<std::vector<AuditRecord>> none = log_->Query(f);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(AuditQueryTest, NewestFirstByDefaultOldestFirstOnRequestAndLimit) {
  AuditFilter f;
  Result<std::vector<AuditRecord>> page = log_->Query(f);  // Default limit 50.
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 50u);
  EXPECT_EQ(page->front().seq, 60u);
  EXPECT_EQ(page->back().seq, 11u);
  f.oldest_first = true;
  f.limit = 2;
  page = log_->Query(f);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Seqs(*page), ElementsAre(1, 2));
}

TEST_F(AuditQueryTest, CursorsPageThroughWithoutGapsOrRepeats) {
  for (bool oldest_first : {false, true}) {
    AuditFilter f;
    f.service = "db";
    f.limit = 4;
    f.oldest_first = oldest_first;
    std::vector<uint64_t> paged;
    for (int pages = 0; pages < 100; ++pages) {
      Result<std::vector<AuditRecord>> page = log_->Query(f);
      ASSERT_TRUE(page.ok());
      if (page->empty()) break;
      for (const auto& r : *page) paged.push_back(r.seq);
      (oldest_first ? f.after_seq : f.before_seq) = page->back().seq;
    }
    AuditFilter all;
    all.service = "db";
    all.limit = 0;
    all.oldest_first = oldest_first;
    EXPECT_EQ(paged, Want(all));
  }
  // A cursor whose record is gone still works, as a plain seq bound.
  AuditFilter f;
  f.before_seq = 1000;
  f.limit = 2;
  Result<std::vector<AuditRecord>> page = log_->Query(f);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Seqs(*page), ElementsAre(60, 59));
}

TEST_F(AuditLogTest, ListsInTimeOrderAndPagesCleanlyWhenTheClockStepsBack) {
  for (int64_t t : {1000, 2000, 3000, 1500, 4000}) {
    clock_.SetWallMs(kT0 + t);
    ASSERT_TRUE(log_->Append(Step("start", "api", "m1")).ok());
  }
  AuditFilter f;
  f.limit = 0;
  Result<std::vector<AuditRecord>> all = log_->Query(f);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Seqs(*all), ElementsAre(5, 3, 2, 4, 1));
  f.limit = 2;
  std::vector<uint64_t> paged;
  for (int i = 0; i < 5; ++i) {
    Result<std::vector<AuditRecord>> page = log_->Query(f);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    for (const auto& r : *page) paged.push_back(r.seq);
    f.before_seq = page->back().seq;
  }
  EXPECT_THAT(paged, ElementsAre(5, 3, 2, 4, 1));
  EXPECT_TRUE(MustVerify().ok);
}

TEST_F(AuditQueryTest, QueryEachStreamsAndStops) {
  AuditFilter f;
  f.limit = 0;
  f.oldest_first = true;
  std::vector<uint64_t> seen;
  ASSERT_TRUE(log_->QueryEach(f,
                              [&](const AuditRecord& r) {
                                seen.push_back(r.seq);
                                return seen.size() < 5;
                              })
                  .ok());
  EXPECT_THAT(seen, ElementsAre(1, 2, 3, 4, 5));
}

TEST_F(AuditQueryTest, InvalidFiltersAreRejectedNamingTheFlag) {
  AuditFilter f;
  f.trigger = "whim";
  EXPECT_THAT(log_->Query(f).status().message(),
              HasSubstr("--trigger: \"whim\" is not a trigger; use one of revision, drift, "
                        "rollback, manual, recovery, auto-rollback (e.g. --trigger drift)"));
  f = {};
  f.result = "great";
  EXPECT_THAT(log_->Query(f).status().message(), HasSubstr("--result: \"great\""));
  f = {};
  f.revision_prefix = "xyz";
  EXPECT_THAT(log_->Query(f).status().message(), HasSubstr("--revision: \"xyz\""));
  f = {};
  f.since_ms = TimeOf(10);
  f.until_ms = TimeOf(5);
  Result<std::vector<AuditRecord>> r = log_->Query(f);
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_THAT(r.status().message(), HasSubstr("--since"));
}

TEST_F(AuditQueryTest, ActionExistsAndReadAfter) {
  EXPECT_TRUE(*log_->ActionExists("probe_failed"));
  EXPECT_FALSE(*log_->ActionExists("machine_unreachable"));
  Result<std::vector<AuditRecord>> after = log_->ReadAfter(57);
  ASSERT_TRUE(after.ok());
  EXPECT_THAT(Seqs(*after), ElementsAre(58, 59, 60));
  after = log_->ReadAfter(0, 2);
  ASSERT_TRUE(after.ok());
  EXPECT_THAT(Seqs(*after), ElementsAre(1, 2));
}

// ------------------------------------------------------------ recovery

TEST_F(AuditLogTest, UnfinishedIntentsAreRecordedAsInterrupted) {
  AuditRecord a = Append(Step("start", "redis", "m1"));
  AuditRecord b = Append(Step("start", "api", "m2"));
  AuditRecord c = Append(Step("stop", "old", "m3"));
  AuditRecord b_done = Step("start", "api", "m2", Name(Phase::kResult), "ok");
  b_done.intent_seq = b.seq;
  b_done.duration_ms = 812;
  Append(b_done);
  Append(Step("revision_applied", "", "", Name(Phase::kEvent)));

  Reopen();  // The controller "crashed" and starts again.
  Result<std::vector<AuditRecord>> open = log_->UnfinishedIntents();
  ASSERT_TRUE(open.ok());
  EXPECT_THAT(Seqs(*open), ElementsAre(a.seq, c.seq));

  clock_.Advance(5000);
  Result<std::vector<AuditRecord>> done = log_->RecordInterrupted("clusterd@cpu-node");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_EQ(done->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const AuditRecord& intent = i == 0 ? a : c;
    const AuditRecord& r = (*done)[i];
    EXPECT_EQ(r.seq, 6 + i);
    EXPECT_EQ(r.phase, Name(Phase::kResult));
    EXPECT_EQ(r.result, "interrupted");
    EXPECT_EQ(r.trigger, "recovery");
    EXPECT_EQ(r.intent_seq, intent.seq);
    EXPECT_EQ(r.action, intent.action);
    EXPECT_EQ(r.service, intent.service);
    EXPECT_EQ(r.machine, intent.machine);
    EXPECT_EQ(r.revision, intent.revision);
    EXPECT_EQ(r.actor, "clusterd@cpu-node");
    EXPECT_EQ(r.duration_ms, clock_.WallMs() - intent.time);
    EXPECT_EQ(r.detail,
              "the controller stopped before the step ended; outcome unknown, re-observing");
  }
  open = log_->UnfinishedIntents();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  // Nothing left to do: a second call writes nothing.
  Result<std::vector<AuditRecord>> again = log_->RecordInterrupted("clusterd@cpu-node");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  // The pairs can be found from the intent.
  Result<std::vector<AuditRecord>> results = log_->ResultsOf(a.seq);
  ASSERT_TRUE(results.ok());
  EXPECT_THAT(Seqs(*results), ElementsAre(6));
  results = log_->ResultsOf(b.seq);
  ASSERT_TRUE(results.ok());
  EXPECT_THAT(Seqs(*results), ElementsAre(4));
  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
}

// ------------------------------------------------------------ tampering

TEST_F(AuditLogTest, VerifyDetectsAModifiedValue) {
  AppendMany(10);
  std::string v = RawGet("audit", Be64(5));
  const std::string was = "\"detail\":\"start api@m1\"";
  size_t at = v.find(was);
  ASSERT_NE(at, std::string::npos) << v;
  v.replace(at, was.size(), "\"detail\":\"start xyz@m1\"");
  RawPut("audit", Be64(5), v);
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 5u);
  EXPECT_THAT(rep.reason, StartsWith("hash mismatch"));
  EXPECT_EQ(rep.records, 4u);
}

TEST_F(AuditLogTest, VerifyDetectsAModifiedValueWithItsHashRecomputed) {
  AppendMany(10);
  Result<std::optional<AuditRecord>> r = log_->Get(5);
  ASSERT_TRUE(r.ok() && r->has_value());
  AuditRecord forged = **r;
  forged.result = "";
  forged.detail = "nothing happened";
  forged.hash = ComputeHash(forged);
  RawPut("audit", Be64(5), ToJson(forged).dump());
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 6u);
  EXPECT_EQ(rep.reason, "prev_hash does not match record 5");
}

TEST_F(AuditLogTest, VerifyDetectsADeletedRecord) {
  AppendMany(10);
  RawDelete("audit", Be64(5));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 5u);
  EXPECT_EQ(rep.reason, "gap in sequence: 5 missing");
}

TEST_F(AuditLogTest, VerifyDetectsADeletedNewestRecord) {
  AppendMany(10);
  RawDelete("audit", Be64(10));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 10u);
  EXPECT_THAT(rep.reason, StartsWith("gap in sequence: 10 missing"));
}

TEST_F(AuditLogTest, VerifyDetectsADeletedFirstRecord) {
  AppendMany(10);
  RawDelete("audit", Be64(1));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 1u);
  EXPECT_EQ(rep.reason, "gap in sequence: 1 missing");
}

TEST_F(AuditLogTest, VerifyDetectsAReorderedPair) {
  AppendMany(10);
  std::string five = RawGet("audit", Be64(5));
  std::string six = RawGet("audit", Be64(6));
  RawPut("audit", Be64(5), six);
  RawPut("audit", Be64(6), five);
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 5u);
  EXPECT_EQ(rep.reason, "prev_hash does not match record 4");
}

TEST_F(AuditLogTest, VerifyDetectsAnInsertedRecord) {
  AppendMany(10);
  // A record slipped in past the head, its chain made to fit.
  Result<std::optional<AuditRecord>> last = log_->Get(10);
  ASSERT_TRUE(last.ok() && last->has_value());
  AuditRecord extra = **last;
  extra.seq = 11;
  extra.prev_hash = extra.hash;
  extra.detail = "never happened";
  extra.hash = ComputeHash(extra);
  RawPut("audit", Be64(11), ToJson(extra).dump());
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 11u);
  EXPECT_THAT(rep.reason, HasSubstr("newer than the log's head"));
}

TEST_F(AuditLogTest, VerifyDetectsAForgedIndexEntryWithoutRecord) {
  AppendMany(10);
  std::string key = std::string("s\0ghost\0", 8) + TimeBytes(kT0 + 99000) + Be64(99);
  RawPut("audit_index", key, "");
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 99u);
  EXPECT_EQ(rep.reason, "index entry without record (service index)");
}

TEST_F(AuditLogTest, VerifyDetectsAnIndexEntryThatDoesNotMatchItsRecord) {
  std::vector<AuditRecord> recs = AppendMany(10);
  // Record 3 is api@m1; an entry claims it belongs to "billing".
  std::string key = std::string("s\0billing\0", 10) + TimeBytes(recs[2].time) + Be64(3);
  std::string value =
      RawGet("audit_index", std::string("s\0api\0", 6) + TimeBytes(recs[2].time) + Be64(3));
  ASSERT_FALSE(value.empty());
  RawPut("audit_index", key, value);
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 3u);
  EXPECT_EQ(rep.reason, "index entry does not match record (service index)");
  // And a query for "billing" does not return record 3 on its word.
  AuditFilter f;
  f.service = "billing";
  Result<std::vector<AuditRecord>> got = log_->Query(f);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
}

TEST_F(AuditLogTest, VerifyDetectsAMissingIndexEntry) {
  std::vector<AuditRecord> recs = AppendMany(10);
  RawDelete("audit_index", std::string("m\0m1\0", 5) + TimeBytes(recs[3].time) + Be64(4));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 4u);
  EXPECT_EQ(rep.reason, "index entry missing (machine index)");
}

TEST_F(AuditLogTest, VerifyNamesTheFirstOfSeveralProblems) {
  std::vector<AuditRecord> recs = AppendMany(10);
  RawPut("audit_index", std::string("s\0ghost\0", 8) + TimeBytes(kT0) + Be64(8), "");
  RawDelete("audit_index", std::string("m\0m1\0", 5) + TimeBytes(recs[5].time) + Be64(6));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 6u);
  EXPECT_EQ(rep.reason, "index entry missing (machine index)");
}

// ------------------------------------------------------------ retention

TEST_F(AuditLogTest, TrimRecordsTheRangeAndVerifyStartsFromTheFirstKeptRecord) {
  std::vector<AuditRecord> recs = AppendMany(30);
  clock_.Advance(1000);
  Result<uint64_t> removed = log_->Trim(11, "ops@admin");
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 10u);

  Result<std::optional<TrimInfo>> trim = log_->Trimmed();
  ASSERT_TRUE(trim.ok() && trim->has_value());
  EXPECT_EQ((*trim)->first_kept_seq, 11u);
  EXPECT_EQ((*trim)->first_kept_prev_hash, recs[9].hash);
  EXPECT_EQ((*trim)->trimmed_count, 10u);
  EXPECT_EQ((*trim)->trimmed_through_time, recs[9].time);
  EXPECT_EQ((*trim)->last_trim_at, clock_.WallMs());

  EXPECT_FALSE(log_->Get(10)->has_value());
  EXPECT_TRUE(log_->Get(11)->has_value());
  // The trim is itself in the log.
  Result<std::optional<AuditRecord>> event = log_->Get(31);
  ASSERT_TRUE(event.ok() && event->has_value());
  EXPECT_EQ((*event)->action, "audit_trimmed");
  EXPECT_EQ((*event)->phase, Name(Phase::kEvent));
  EXPECT_EQ((*event)->actor, "ops@admin");
  EXPECT_THAT((*event)->detail, HasSubstr("removed records 1..10 (10 records"));
  // No index entry of a removed record is left: queries see 11.. only.
  AuditFilter f;
  f.limit = 0;
  f.oldest_first = true;
  Result<std::vector<AuditRecord>> all = log_->Query(f);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 21u);
  EXPECT_EQ(all->front().seq, 11u);

  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
  EXPECT_EQ(rep.first_seq, 11u);
  EXPECT_EQ(rep.last_seq, 31u);
  EXPECT_EQ(rep.records, 21u);
  ASSERT_TRUE(rep.trim.has_value());
  EXPECT_EQ(rep.trim->first_kept_seq, 11u);

  // Seq still continues after a reopen, and a second trim adds up.
  Reopen();
  EXPECT_EQ(Append(Step("start", "api", "m1")).seq, 32u);
  removed = log_->Trim(21);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 10u);
  trim = log_->Trimmed();
  EXPECT_EQ((*trim)->trimmed_count, 20u);
  EXPECT_EQ((*trim)->first_kept_seq, 21u);
  rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
  EXPECT_EQ(rep.first_seq, 21u);
}

TEST_F(AuditLogTest, TamperingAfterATrimIsStillFound) {
  AppendMany(20);
  ASSERT_TRUE(log_->Trim(11).ok());
  // The first kept record, replaced by one with a fitting hash but another
  // prev_hash: the trim record's prev_hash catches it.
  Result<std::optional<AuditRecord>> r = log_->Get(11);
  ASSERT_TRUE(r.ok() && r->has_value());
  AuditRecord forged = **r;
  forged.prev_hash = kZeros;
  forged.hash = ComputeHash(forged);
  RawPut("audit", Be64(11), ToJson(forged).dump());
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 11u);
  EXPECT_THAT(rep.reason, StartsWith("prev_hash does not match the trim record"));
}

TEST_F(AuditLogTest, TrimKeepsTheNewestRecordAndRefusesABrokenChain) {
  AppendMany(5);
  Result<uint64_t> removed = log_->Trim(1000);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 4u);  // Record 5 stays (then the trim event, 6).
  EXPECT_TRUE(log_->Get(5)->has_value());
  EXPECT_TRUE(MustVerify().ok);
  EXPECT_EQ(*log_->Trim(3), 0u);  // Nothing below the first kept record.

  AppendMany(5);  // 7..11
  RawPut("audit", Be64(8), RawGet("audit", Be64(9)));
  removed = log_->Trim(10);
  ASSERT_FALSE(removed.ok());
  EXPECT_THAT(removed.status().message(), HasSubstr("refusing to trim"));
  EXPECT_TRUE(log_->Get(5)->has_value());  // Nothing was removed.
}

TEST_F(AuditLogTest, UnfinishedIntentsSurviveATrim) {
  AuditRecord intent = Append(Step("start", "api", "m1"));
  AppendMany(5);
  ASSERT_TRUE(log_->Trim(4).ok());
  Result<std::vector<AuditRecord>> done = log_->RecordInterrupted("clusterd@cpu-node");
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 6u);  // Every record of AppendMany is an intent too.
  EXPECT_EQ((*done)[0].intent_seq, intent.seq);
  EXPECT_TRUE(MustVerify().ok);
}

// ------------------------------------------------------------ JSON

TEST(AuditJsonTest, HasExactlyTheSpecFields) {
  AuditRecord r;
  r.seq = 1042;
  r.time = kT0;
  r.actor = "clusterd@cpu-node";
  r.trigger = "drift";
  r.revision = "3f2c1e9";
  r.action = "start";
  r.machine = "worker-tools";
  r.service = "tools-server";
  r.phase = "result";
  r.result = "ok";
  r.duration_ms = 812;
  r.detail = "ready after 1 probe";
  r.prev_hash = std::string(64, 'a');
  r.hash = std::string(64, 'b');
  nlohmann::json j = ToJson(r);
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  EXPECT_EQ(keys, (std::set<std::string>{"seq", "time", "actor", "trigger", "revision", "action",
                                         "machine", "service", "phase", "result", "duration_ms",
                                         "detail", "prev_hash", "hash"}));
  EXPECT_EQ(j["seq"], 1042);
  EXPECT_EQ(j["time"], "2026-11-22T10:30:45.123Z");
  EXPECT_EQ(j["duration_ms"], 812);
  EXPECT_EQ(j["result"], "ok");
  EXPECT_FALSE(j.contains("intent_seq"));
  r.intent_seq = 1041;
  EXPECT_EQ(ToJson(r)["intent_seq"], 1041);

  // The CLI's line: SPEC order.
  EXPECT_THAT(ToJsonLine(r),
              StartsWith("{\"seq\":1042,\"time\":\"2026-11-22T10:30:45.123Z\",\"actor\":"
                         "\"clusterd@cpu-node\",\"trigger\":\"drift\",\"revision\":\"3f2c1e9\","
                         "\"action\":\"start\",\"machine\":\"worker-tools\",\"service\":"
                         "\"tools-server\",\"phase\":\"result\",\"result\":\"ok\","
                         "\"duration_ms\":812,\"detail\":\"ready after 1 probe\""));
  EXPECT_EQ(nlohmann::json::parse(ToJsonLine(r)), ToJson(r));

  Result<AuditRecord> back = FromJson(ToJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
}

TEST_F(AuditLogTest, LeaderAndFencingTokenAreStoredHashedAndReadBack) {
  AuditRecord plain = Append(Step("start", "api", "m1"));
  AuditRecord r = Step("start", "api", "m2");
  r.leader = "node-a";
  r.fencing_token = 7;
  AuditRecord led = Append(r);
  // Only set fields are written: a record without them hashes as before.
  EXPECT_FALSE(ToJson(plain).contains("leader"));
  EXPECT_FALSE(ToJson(plain).contains("fencing_token"));
  EXPECT_EQ(ToJson(led)["leader"], "node-a");
  EXPECT_EQ(ToJson(led)["fencing_token"], 7);
  EXPECT_THAT(CanonicalForm(led), HasSubstr("\"fencing_token\":7"));
  Result<std::optional<AuditRecord>> stored = log_->Get(led.seq);  // The stored form's decoder.
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(**stored, led);
  Result<AuditRecord> back = FromJson(nlohmann::json::parse(ToJsonLine(led)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, led);
  VerifyReport rep = MustVerify();
  EXPECT_TRUE(rep.ok) << rep.reason;
}

TEST_F(AuditLogTest, VerifyReportsAnActionWithATokenBelowAnEarlierOne) {
  auto led = [](const std::string& phase, uint64_t token, const std::string& result = "") {
    AuditRecord r = Step("start", "api", "m1", phase, result);
    r.leader = "node-a";
    r.fencing_token = token;
    return r;
  };
  Append(led(Name(Phase::kIntent), 3));
  Append(led(Name(Phase::kResult), 3, "ok"));
  Append(led(Name(Phase::kIntent), 5));
  VerifyReport fine = MustVerify();
  EXPECT_TRUE(fine.ok) << fine.reason;
  // An event may carry an older token (it is no action); an action may not.
  AuditRecord event = Step("probe_failed", "api", "m1", Name(Phase::kEvent), "failed");
  event.fencing_token = 4;
  Append(event);
  EXPECT_TRUE(MustVerify().ok);
  AuditRecord stale = Append(led(Name(Phase::kIntent), 4));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, stale.seq);
  EXPECT_THAT(rep.reason, HasSubstr("fencing token 4 is below token 5 of record 3"));
  EXPECT_THAT(rep.reason, HasSubstr("deposed leader"));
}

TEST_F(AuditLogTest, VerifyComparesTokensPerMachine) {
  // clusterd shards: one lease per machine, so a replica acts on m1 with
  // token 7 and then on m2 with token 3; only one machine's tokens must grow.
  auto on = [](const std::string& machine, uint64_t token) {
    AuditRecord r = Step("start", "api", machine, Name(Phase::kIntent), "");
    r.leader = "node-a";
    r.fencing_token = token;
    return r;
  };
  Append(on("m1", 7));
  Append(on("m2", 3));
  Append(on("m1", 7));
  VerifyReport fine = MustVerify();
  EXPECT_TRUE(fine.ok) << fine.reason;
  AuditRecord stale = Append(on("m2", 2));
  VerifyReport rep = MustVerify();
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, stale.seq);
  EXPECT_THAT(rep.reason, HasSubstr("(machine m2)"));
}

TEST(AuditJsonTest, IntentsCarryAnEmptyResult) {
  AuditRecord r;
  r.phase = "intent";
  nlohmann::json j = ToJson(r);
  EXPECT_EQ(j["result"], "");
  EXPECT_EQ(j["duration_ms"], 0);
}

TEST(AuditJsonTest, FromJsonNamesTheBadField) {
  AuditRecord r;
  r.seq = 1;
  nlohmann::json j = ToJson(r);
  j.erase("actor");
  EXPECT_THAT(FromJson(j).status().message(), HasSubstr("missing \"actor\""));
  j = ToJson(r);
  j["seq"] = "one";
  EXPECT_THAT(FromJson(j).status().message(), HasSubstr("\"seq\" must be a non-negative integer"));
  j = ToJson(r);
  j["time"] = "yesterday";
  EXPECT_THAT(FromJson(j).status().message(), HasSubstr("\"time\""));
  EXPECT_FALSE(FromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace clusterctl::audit
