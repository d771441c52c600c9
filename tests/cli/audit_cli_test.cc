// clusterctl audit, run as the built binary against a data directory the
// test fills through AuditLog: table and JSON lines, every filter, empty
// results, invalid filters, verify before and after tampering, show,
// export, a copied data directory, retention notes, and --follow picking up
// a record that another process appends while it runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "base/time_format.h"
#include "store/store.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::cli {
namespace {

using audit::AuditLog;
using audit::AuditRecord;
using ::clusterctl::testing::CliBin;
using ::clusterctl::testing::OutputTo;
using ::clusterctl::testing::Process;
using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::RunShell;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::WaitFor;
using std::chrono::milliseconds;
using store::Store;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

struct CliResult {
  int exit = -1;
  std::string out, err;
};

class AuditCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.Sub("data");
    const int64_t now = WallClockMs();
    OpenPrimary(&record_clock_);
    // 1: the revision is applied, 3 hours ago.
    Add(now - 3 * 3600000, Event("revision_applied", "", "", "3f2c1e9", "applied 3f2c1e9"));
    // 2-3: clusterd repairs tools-server 2 hours ago.
    audit::AuditRecord start =
        Rec("start", "tools-server", "worker-tools", audit::Name(audit::Phase::kIntent), "");
    start.trigger = "drift";
    Add(now - 2 * 3600000, start);
    audit::AuditRecord started =
        Rec("start", "tools-server", "worker-tools", audit::Name(audit::Phase::kResult), "ok");
    started.trigger = "drift";
    started.intent_seq = 2;
    started.duration_ms = 812;
    started.detail = "ready after 1 probe";
    Add(now - 2 * 3600000 + 1000, started);
    // 4-5: alice restarts redis an hour ago; it fails.
    audit::AuditRecord restart =
        Rec("restart", "redis", "coordinator", audit::Name(audit::Phase::kIntent), "");
    restart.actor = "alice@laptop";
    restart.trigger = "manual";
    restart.revision = "a1b2c3d";
    Add(now - 3600000, restart);
    audit::AuditRecord failed =
        Rec("restart", "redis", "coordinator", audit::Name(audit::Phase::kResult), "failed");
    failed.actor = "alice@laptop";
    failed.trigger = "manual";
    failed.revision = "a1b2c3d";
    failed.intent_seq = 4;
    failed.duration_ms = 60000;
    failed.detail = "readiness failing for 40s";
    Add(now - 3600000 + 2000, failed);
    // 6: a probe fails 30 minutes ago.
    audit::AuditRecord probe =
        Event("probe_failed", "redis", "coordinator", "a1b2c3d", "PING timed out");
    probe.trigger = "drift";
    probe.result = "failed";
    Add(now - 1800000, probe);
    // 7: a stop that never ended, 10 minutes ago.
    audit::AuditRecord stop =
        Rec("stop", "old-svc", "worker-tools", audit::Name(audit::Phase::kIntent), "");
    stop.revision = "a1b2c3d";
    Add(now - 600000, stop);
    ClosePrimary();
  }

  static audit::AuditRecord Rec(const std::string& action, const std::string& service,
                                const std::string& machine, const std::string& phase,
                                const std::string& result) {
    audit::AuditRecord r;
    r.actor = "clusterd@cpu-node";
    r.trigger = "revision";
    r.revision = "3f2c1e9";
    r.action = action;
    r.service = service;
    r.machine = machine;
    r.phase = phase;
    r.result = result;
    r.detail = action + " " + service;
    return r;
  }
  static audit::AuditRecord Event(const std::string& action, const std::string& service,
                                  const std::string& machine, const std::string& revision,
                                  const std::string& detail) {
    audit::AuditRecord r = Rec(action, service, machine, audit::Name(audit::Phase::kEvent), "");
    r.revision = revision;
    r.detail = detail;
    return r;
  }

  // `clock` dates appended records; null: the real clock.
  void OpenPrimary(const Clock* clock = nullptr) {
    Result<std::unique_ptr<store::Store>> s = store::Store::OpenPrimary(data_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    Result<std::unique_ptr<audit::AuditLog>> l = audit::AuditLog::Open(store_.get(), clock);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    log_ = std::move(l).value();
  }
  void ClosePrimary() {
    log_.reset();
    store_.reset();
  }

  void Add(int64_t time, const audit::AuditRecord& r) {
    record_clock_.SetWallMs(time);
    Result<audit::AuditRecord> out = log_->Append(r);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    times_.push_back(time);
  }

  // Runs `clusterctl --data-dir DATA <args>` with no config file in reach.
  CliResult Cli(const std::string& args, const std::string& data_dir = "") {
    const std::string err_file = dir_.Sub("stderr.txt");
    const std::string cmd = "( cd " + Quote(dir_.path()) + " && HOME=" + Quote(dir_.path()) +
                            " CLUSTERCTL_CONFIG= " + Quote(CliBin()) + " --data-dir " +
                            Quote(data_dir.empty() ? data_ : data_dir) + " " + args + " 2>" +
                            Quote(err_file) + " )";
    CliResult r;
    r.exit = RunShell(cmd, &r.out);
    r.err = ReadFile(err_file);
    return r;
  }

  // The seqs of `clusterctl --json audit <args>`.
  std::vector<uint64_t> JsonSeqs(const std::string& args) {
    CliResult r = Cli("--json audit " + args);
    EXPECT_EQ(r.exit, 0) << args << "\n" << r.out << r.err;
    std::vector<uint64_t> seqs;
    for (const std::string& line : Lines(r.out)) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      if (!j.is_discarded()) seqs.push_back(j["seq"].get<uint64_t>());
    }
    return seqs;
  }

  void Tamper(uint64_t seq, const std::string& from, const std::string& to) {
    OpenPrimary();
    std::string key(8, '\0');
    for (int i = 7; i >= 0; --i) key[i] = static_cast<char>((seq >> (8 * (7 - i))) & 0xff);
    std::string value;
    rocksdb::ColumnFamilyHandle* cf = store_->cf("audit");
    ASSERT_TRUE(store_->db()->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
    size_t at = value.find(from);
    ASSERT_NE(at, std::string::npos) << value;
    value.replace(at, from.size(), to);
    ASSERT_TRUE(store_->db()->Put(rocksdb::WriteOptions(), cf, key, value).ok());
    ClosePrimary();
  }

  TempDir dir_;
  std::string data_;
  FakeClock record_clock_{0};
  std::vector<int64_t> times_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<audit::AuditLog> log_;
};

TEST_F(AuditCliTest, PrintsATableNewestFirst) {
  CliResult r = Cli("audit");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 8u) << r.out;
  EXPECT_THAT(lines[0], ContainsRegex("^SEQ +TIME +ACTOR +TRIGGER +ACTION +TARGET +RESULT +"
                                      "DURATION +REVISION +DETAIL$"));
  EXPECT_THAT(lines[1], StartsWith("7 "));
  EXPECT_THAT(lines[7], StartsWith("1 "));
  // Row 3: the successful start.
  EXPECT_THAT(lines[5], ContainsRegex("^3 +" + FormatRfc3339Ms(times_[2]) +
                                      " +clusterd@cpu-node +drift +start +"
                                      "tools-server@worker-tools +ok +812ms +3f2c1e9 +"
                                      "ready after 1 probe$"));
  EXPECT_THAT(lines[1], HasSubstr("(intent)"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(AuditCliTest, JsonLinesParseAndCarryEverySpecField) {
  for (const std::string& args : {std::string("--json audit"), std::string("audit --json")}) {
    CliResult r = Cli(args);
    ASSERT_EQ(r.exit, 0) << r.out << r.err;
    std::vector<std::string> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), 7u) << r.out;
    for (const std::string& line : lines) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << line;
      for (const char* key :
           {"seq", "time", "actor", "trigger", "revision", "action", "machine", "service", "phase",
            "result", "duration_ms", "detail", "prev_hash", "hash"}) {
        EXPECT_TRUE(j.contains(key)) << key << " missing in " << line;
      }
      EXPECT_THAT(
          j["time"].get<std::string>(),
          ContainsRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"));
      EXPECT_EQ(j["hash"].get<std::string>().size(), 64u);
      EXPECT_EQ(j.contains("intent_seq"), j["seq"] == 3 || j["seq"] == 5) << line;
      // The record as SPEC.md prints it: seq first.
      EXPECT_THAT(line, StartsWith("{\"seq\":"));
    }
    nlohmann::json third = nlohmann::json::parse(lines[4]);
    EXPECT_EQ(third["seq"], 3);
    EXPECT_EQ(third["actor"], "clusterd@cpu-node");
    EXPECT_EQ(third["trigger"], "drift");
    EXPECT_EQ(third["revision"], "3f2c1e9");
    EXPECT_EQ(third["action"], "start");
    EXPECT_EQ(third["machine"], "worker-tools");
    EXPECT_EQ(third["service"], "tools-server");
    EXPECT_EQ(third["phase"], "result");
    EXPECT_EQ(third["result"], "ok");
    EXPECT_EQ(third["duration_ms"], 812);
    EXPECT_EQ(third["detail"], "ready after 1 probe");
    EXPECT_EQ(third["intent_seq"], 2);
    EXPECT_EQ(third["time"], FormatRfc3339Ms(times_[2]));
  }
}

TEST_F(AuditCliTest, EveryFilterAloneAndCombined) {
  EXPECT_THAT(JsonSeqs("--service tools-server"), ElementsAre(3, 2));
  EXPECT_THAT(JsonSeqs("--machine coordinator"), ElementsAre(6, 5, 4));
  EXPECT_THAT(JsonSeqs("--action restart"), ElementsAre(5, 4));
  EXPECT_THAT(JsonSeqs("--result failed"), ElementsAre(6, 5));
  EXPECT_THAT(JsonSeqs("--revision a1b"), ElementsAre(7, 6, 5, 4));
  EXPECT_THAT(JsonSeqs("--revision 3F2C1E9"), ElementsAre(3, 2, 1));
  EXPECT_THAT(JsonSeqs("--actor alice"), ElementsAre(5, 4));
  EXPECT_THAT(JsonSeqs("--actor alice@laptop"), ElementsAre(5, 4));
  EXPECT_THAT(JsonSeqs("--trigger drift"), ElementsAre(6, 3, 2));
  EXPECT_THAT(JsonSeqs("--since 90m"), ElementsAre(7, 6, 5, 4));
  EXPECT_THAT(JsonSeqs("--since 2h30m --until 45m"), ElementsAre(5, 4, 3, 2));
  EXPECT_THAT(JsonSeqs("--until " + FormatRfc3339Ms(times_[1])), ElementsAre(1));
  EXPECT_THAT(JsonSeqs("--since " + FormatRfc3339Ms(times_[5])), ElementsAre(7, 6));
  EXPECT_THAT(JsonSeqs("--limit 2"), ElementsAre(7, 6));
  EXPECT_THAT(JsonSeqs("--reverse --limit 3"), ElementsAre(1, 2, 3));
  EXPECT_THAT(JsonSeqs("--machine coordinator --result failed --actor alice"), ElementsAre(5));
  EXPECT_THAT(JsonSeqs("--service redis --since 45m --trigger drift"), ElementsAre(6));
  EXPECT_THAT(JsonSeqs("--machine worker-tools --revision a1b2c3d --reverse"), ElementsAre(7));
}

TEST_F(AuditCliTest, NothingMatchingIsNotAnError) {
  CliResult r = Cli("audit --service no-such-service");
  EXPECT_EQ(r.exit, 0);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_EQ(r.err, "no audit records match\n");
  r = Cli("--json audit --service no-such-service --since 1m");
  EXPECT_EQ(r.exit, 0);
  EXPECT_THAT(r.out, IsEmpty());
  // A known action that never happened is fine too.
  r = Cli("audit --action machine_unreachable");
  EXPECT_EQ(r.exit, 0) << r.err;
}

TEST_F(AuditCliTest, InvalidFiltersExitOneNamingTheFlagWithAnExample) {
  struct Case {
    std::string args, flag, example;
  };
  for (const Case& c : std::vector<Case>{
           {"--since yesterday", "--since", "e.g. --since 2h"},
           {"--until 2026-13-01T00:00:00Z", "--until", "month 13 out of range"},
           {"--since 15x", "--since", "unknown unit"},
           {"--limit 0", "--limit", "e.g. --limit 100"},
           {"--limit=-3", "--limit", "e.g. --limit 100"},
           {"--limit many", "--limit", "e.g. --limit 100"},
           {"--result great", "--result", "e.g. --result failed"},
           {"--action strat", "--action", "e.g. --action restart"},
           {"--trigger whim", "--trigger", "e.g. --trigger drift"},
           {"--revision xyz", "--revision", "e.g. --revision 3f2c1e9"},
           {"--since 1h --until 2h", "--since", "must be before --until"},
       }) {
    CliResult r = Cli("audit " + c.args);
    EXPECT_EQ(r.exit, 1) << c.args;
    EXPECT_THAT(r.err, StartsWith("clusterctl: error: " + c.flag)) << c.args;
    EXPECT_THAT(r.err, HasSubstr(c.example)) << c.args;
    EXPECT_THAT(r.out, IsEmpty()) << c.args;
  }
  // With --json the error is a JSON document on stdout.
  CliResult r = Cli("--json audit --trigger whim");
  EXPECT_EQ(r.exit, 1);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["error"]["code"], "invalid");
}

TEST_F(AuditCliTest, MissingDataDirectoryIsAnError) {
  CliResult r = Cli("audit", dir_.Sub("nowhere"));
  EXPECT_EQ(r.exit, 1);
  EXPECT_THAT(r.err, HasSubstr("no state store in"));
}

TEST_F(AuditCliTest, VerifyPassesThenFailsAfterTampering) {
  CliResult r = Cli("audit verify");
  EXPECT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_THAT(r.out, StartsWith("audit log intact: 7 record(s), seq 1..7"));
  r = Cli("--json audit verify");
  EXPECT_EQ(r.exit, 0);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["records"], 7);

  Tamper(3, "\"result\":\"ok\"", "\"result\":\"failed\"");
  r = Cli("audit verify");
  EXPECT_EQ(r.exit, 1) << r.out << r.err;
  EXPECT_THAT(r.out, StartsWith("audit log BROKEN at record 3: hash mismatch"));
  EXPECT_THAT(r.out, HasSubstr("clusterctl audit show 3"));
  r = Cli("--json audit verify");
  EXPECT_EQ(r.exit, 1);
  j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["first_bad_seq"], 3);
  EXPECT_THAT(j["reason"].get<std::string>(), StartsWith("hash mismatch"));
}

TEST_F(AuditCliTest, ShowPrintsTheRecordWithItsIntentResultPair) {
  CliResult r = Cli("audit show 3");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_THAT(r.out, StartsWith("record 3 (result of intent 2)\n"));
  EXPECT_THAT(r.out, HasSubstr("  detail      ready after 1 probe\n"));
  EXPECT_THAT(r.out, HasSubstr("  duration    812ms\n"));
  EXPECT_THAT(r.out, ContainsRegex("\n2 +[^\n]+\\(intent\\)"));  // The pair, as a table.
  EXPECT_THAT(r.out, ContainsRegex("\n3 +[^\n]+ ok +812ms"));

  r = Cli("audit show 4");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("record 4 (intent)\n"));
  EXPECT_THAT(r.out, ContainsRegex("\n5 +[^\n]+ failed +1m00s"));

  r = Cli("audit show 7");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("no result yet"));

  r = Cli("--json audit show 5");
  ASSERT_EQ(r.exit, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["record"]["seq"], 5);
  EXPECT_EQ(j["intent"]["seq"], 4);

  r = Cli("audit show 99");
  EXPECT_EQ(r.exit, 1);
  EXPECT_THAT(r.err, HasSubstr("no audit record 99 (the log holds records up to 7)"));
}

TEST_F(AuditCliTest, ShowNamesTheLeaderAndTokenOfAReplicasActionAndFencedIsAResult) {
  OpenPrimary(&record_clock_);
  audit::AuditRecord fenced =
      Rec("start", "api", "worker-tools", audit::Name(audit::Phase::kResult), "fenced");
  fenced.leader = "ctl-a";
  Add(WallClockMs(), fenced);
  audit::AuditRecord led =
      Rec("start", "api", "worker-tools", audit::Name(audit::Phase::kIntent), "");
  led.leader = "ctl-b";
  led.fencing_token = 7;
  Add(WallClockMs() + 1000, led);
  ClosePrimary();
  CliResult r = Cli("audit show 9");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("  leader      ctl-b (fencing token 7)\n"));
  r = Cli("audit show 8");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("  leader      ctl-a\n"));
  r = Cli("audit show 3");
  EXPECT_THAT(r.out, Not(HasSubstr("leader")));  // A single controller's record.
  r = Cli("audit --result fenced --json");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"result\":\"fenced\""));
  EXPECT_THAT(r.out, HasSubstr("\"leader\":\"ctl-a\""));
}

TEST_F(AuditCliTest, ExportPrintsEveryMatchOldestFirst) {
  CliResult r = Cli("audit export");
  ASSERT_EQ(r.exit, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 7u);
  for (size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, false);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["seq"], i + 1);
  }
  r = Cli("audit export --since 90m --machine coordinator");
  ASSERT_EQ(r.exit, 0) << r.err;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], StartsWith("{\"seq\":4,"));
  r = Cli("audit export --since nonsense");
  EXPECT_EQ(r.exit, 1);
  EXPECT_THAT(r.err, HasSubstr("--since"));
}

TEST_F(AuditCliTest, ACopiedDataDirectoryWorks) {
  const std::string copy = dir_.Sub("copy");
  ASSERT_EQ(RunShell("cp -a " + Quote(data_) + " " + Quote(copy)), 0);
  CliResult r = Cli("--json audit --service redis", copy);
  EXPECT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 3u);
  r = Cli("audit verify", copy);
  EXPECT_EQ(r.exit, 0) << r.out << r.err;
}

TEST_F(AuditCliTest, WorksWhileAWriterHoldsTheDataDirectory) {
  OpenPrimary();
  CliResult r = Cli("--json audit");
  EXPECT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 7u);
  ClosePrimary();
}

TEST_F(AuditCliTest, RetentionIsNeverSilent) {
  OpenPrimary();
  ASSERT_TRUE(log_->Trim(4, "ops@admin").ok());
  ClosePrimary();
  CliResult r = Cli("audit");
  EXPECT_EQ(r.exit, 0);
  EXPECT_THAT(r.err, HasSubstr("retention removed the 3 oldest record(s)"));
  EXPECT_THAT(r.err, HasSubstr("the log starts at record 4"));
  EXPECT_THAT(r.out, HasSubstr("audit_trimmed"));
  r = Cli("audit verify");
  EXPECT_EQ(r.exit, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("retention removed 3 older record(s)"));
  EXPECT_THAT(r.out, HasSubstr("checked from record 4"));
  r = Cli("audit show 2");
  EXPECT_EQ(r.exit, 1);
  EXPECT_THAT(r.err, HasSubstr("retention removed records before 4"));
}

TEST_F(AuditCliTest, FollowPrintsRecordsAnotherProcessAppends) {
  OpenPrimary();  // The writer stays open, like clusterd.
  const std::string out = dir_.Sub("follow.out");
  Process follower(
      {CliBin(), "--data-dir", data_, "--json", "audit", "--service", "redis", "--follow"}, [&] {
        auto o = OutputTo(out);
        o.env = {"HOME=" + dir_.path(), "CLUSTERCTL_CONFIG="};
        o.working_dir = dir_.path();
        return o;
      }());
  // The initial matches first, oldest first like tail -f.
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFile(out)).size() >= 3; }, milliseconds(20000)))
      << ReadFile(out);
  std::vector<std::string> initial = Lines(ReadFile(out));
  EXPECT_THAT(initial[0], StartsWith("{\"seq\":4,"));
  EXPECT_THAT(initial[2], StartsWith("{\"seq\":6,"));

  audit::AuditRecord other =
      Rec("start", "tools-server", "worker-tools", audit::Name(audit::Phase::kIntent), "");
  ASSERT_TRUE(log_->Append(other).ok());  // Filtered out.
  audit::AuditRecord mine =
      Rec("restart", "redis", "coordinator", audit::Name(audit::Phase::kIntent), "");
  mine.detail = "appended while following";
  ASSERT_TRUE(log_->Append(mine).ok());
  ASSERT_TRUE(
      WaitFor([&] { return ReadFile(out).find("appended while following") != std::string::npos; },
              milliseconds(10000)))
      << ReadFile(out);
  std::vector<std::string> lines = Lines(ReadFile(out));
  ASSERT_EQ(lines.size(), 4u) << ReadFile(out);
  nlohmann::json j = nlohmann::json::parse(lines[3], nullptr, false);
  ASSERT_TRUE(j.is_object()) << lines[3];
  EXPECT_EQ(j["seq"], 9);
  EXPECT_EQ(j["service"], "redis");

  // SIGTERM (and SIGINT) end it cleanly.
  follower.Kill(SIGTERM);
  std::optional<int> exit = follower.WaitForExit(milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 0);
  ClosePrimary();
}

TEST_F(AuditCliTest, FollowInTableModeStopsOnSigint) {
  const std::string out = dir_.Sub("follow.out");
  Process follower({CliBin(), "--data-dir", data_, "audit", "--limit", "1", "--follow"}, [&] {
    auto o = OutputTo(out);
    o.env = {"HOME=" + dir_.path(), "CLUSTERCTL_CONFIG="};
    o.working_dir = dir_.path();
    return o;
  }());
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFile(out)).size() >= 2; }, milliseconds(20000)));
  EXPECT_THAT(Lines(ReadFile(out))[0], StartsWith("SEQ "));
  EXPECT_THAT(Lines(ReadFile(out))[1], StartsWith("7 "));
  OpenPrimary();
  ASSERT_TRUE(log_->Append(Rec("stop", "api", "m1", audit::Name(audit::Phase::kIntent), "")).ok());
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFile(out)).size() >= 3; }, milliseconds(10000)));
  EXPECT_THAT(Lines(ReadFile(out))[2], StartsWith("8 "));
  follower.Kill(SIGINT);
  std::optional<int> exit = follower.WaitForExit(milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 0);
  ClosePrimary();
}

}  // namespace
}  // namespace clusterctl::cli
