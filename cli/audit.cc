// clusterctl audit [filters] | verify | export | show SEQ (see cli/audit.h).
#include "cli/audit.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "audit/audit_log.h"
#include "base/clock.h"
#include "base/time_format.h"
#include "desired-state/git_source.h"
#include "store/store.h"

namespace clusterctl::cli {
namespace ctl = controller;
using audit::AuditFilter;
using audit::AuditRecord;
using nlohmann::json;

namespace {

constexpr auto kFollowPoll = std::chrono::milliseconds(200);

struct AuditFlags {
  std::string since, until, service, machine, action, result, revision, actor, trigger;
  std::string limit = "50";
  bool reverse = false;
  bool follow = false;
  uint64_t seq = 0;  // audit show SEQ
};

// The log of g.data_dir, opened read-only.
struct OpenLog {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<audit::AuditLog> log;
};

Result<OpenLog> Open(const Globals& g) {
  Result<std::unique_ptr<store::Store>> store = store::Store::OpenReadOnly(g.data_dir);
  if (!store.ok()) return store.status().Annotate("opening the audit log");
  OpenLog out;
  out.store = std::move(store).value();
  Result<std::unique_ptr<audit::AuditLog>> log = audit::AuditLog::Open(out.store.get());
  if (!log.ok()) return log.status();
  out.log = std::move(log).value();
  return out;
}

// ------------------------------------------------------------ the filter

Status ParseTime(const std::string& flag, const std::string& text, int64_t now,
                 std::optional<int64_t>* out) {
  if (text.empty()) return Status::Ok();
  Result<int64_t> t = ParseTimeFlag(text, now);
  if (!t.ok()) {
    return Status::Invalid(flag + ": " + t.status().message() + "; e.g. " + flag + " 2h or " +
                           flag + " 2026-11-22T10:00:00Z");
  }
  *out = *t;
  return Status::Ok();
}

// The filter from the flags, every value checked. `limit_default` applies
// when --limit was not given (0 = no limit).
Result<audit::AuditFilter> BuildFilter(const AuditFlags& fl, bool limit_given,
                                       size_t limit_default) {
  audit::AuditFilter f;
  const int64_t now = WallClockMs();
  CLUSTERCTL_RETURN_IF_ERROR(ParseTime("--since", fl.since, now, &f.since_ms));
  CLUSTERCTL_RETURN_IF_ERROR(ParseTime("--until", fl.until, now, &f.until_ms));
  f.limit = limit_default;
  if (limit_given) {
    size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(fl.limit, &used);
    } catch (...) {
      used = 0;
    }
    if (used != fl.limit.size() || n <= 0) {
      return Status::Invalid("--limit: \"" + fl.limit +
                             "\" is not a positive whole number (e.g. --limit 100)");
    }
    f.limit = static_cast<size_t>(n);
  }
  f.service = fl.service;
  f.machine = fl.machine;
  f.action = fl.action;
  f.result = fl.result;
  f.revision_prefix = fl.revision;
  f.actor = fl.actor;
  f.trigger = fl.trigger;
  f.oldest_first = fl.reverse;
  CLUSTERCTL_RETURN_IF_ERROR(audit::ValidateFilter(f));
  return f;
}

// An --action that is neither known nor in the log is most likely a typo.
Status CheckAction(const audit::AuditLog& log, const std::string& action) {
  if (action.empty()) return Status::Ok();
  const auto& known = audit::AuditKnownActions();
  if (std::find(known.begin(), known.end(), action) != known.end()) return Status::Ok();
  Result<bool> exists = log.ActionExists(action);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  std::string list;
  for (const auto& a : known) list += (list.empty() ? "" : ", ") + a;
  return Status::Invalid("--action: \"" + action +
                         "\" is not an action in the audit log; use one of " + list +
                         " (e.g. --action restart)");
}

// ---------------------------------------------------------------- output

// Control characters (newlines in a detail) would break the table's lines.
std::string OneLine(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

std::string Target(const audit::AuditRecord& r) {
  if (r.service.empty() && r.machine.empty()) return "-";
  if (r.machine.empty()) return r.service;
  if (r.service.empty()) return "@" + r.machine;
  return r.service + "@" + r.machine;
}

std::string ResultText(const audit::AuditRecord& r) {
  if (r.phase == audit::Name(audit::Phase::kIntent)) return "(intent)";
  return r.result.empty() ? "-" : r.result;
}

std::vector<std::string> Cells(const audit::AuditRecord& r) {
  return {std::to_string(r.seq),
          FormatRfc3339Ms(r.time),
          OneLine(r.actor),
          r.trigger,
          r.action,
          OneLine(Target(r)),
          ResultText(r),
          r.phase == audit::Name(audit::Phase::kResult) ? FormatDurationMs(r.duration_ms) : "-",
          r.revision.empty() ? "-" : r.revision.substr(0, 12),
          OneLine(r.detail)};
}

// Aligned columns: SEQ TIME ACTOR TRIGGER ACTION TARGET RESULT DURATION
// REVISION DETAIL. Widths come from the first rows shown; later rows
// (--follow) reuse them and push the line out when they do not fit.
class Table {
 public:
  explicit Table(const std::vector<audit::AuditRecord>& first_rows) {
    for (size_t i = 0; i < kHeader.size(); ++i) widths_.push_back(kHeader[i].size());
    widths_[1] = 24;  // The time is always 24 characters.
    for (const audit::AuditRecord& r : first_rows) {
      std::vector<std::string> c = Cells(r);
      for (size_t i = 0; i + 1 < c.size(); ++i) {
        widths_[i] = std::min<size_t>(std::max(widths_[i], c[i].size()), 40);
      }
    }
  }
  void Header(std::ostream& out) const { Line(out, kHeader); }
  void Row(std::ostream& out, const audit::AuditRecord& r) const { Line(out, Cells(r)); }

 private:
  void Line(std::ostream& out, const std::vector<std::string>& cells) const {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      line += cells[i];
      if (i + 1 < cells.size()) {
        line += std::string(cells[i].size() < widths_[i] ? widths_[i] - cells[i].size() : 0, ' ');
        line += "  ";
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }

  const std::vector<std::string> kHeader = {"SEQ",    "TIME",   "ACTOR",    "TRIGGER",  "ACTION",
                                            "TARGET", "RESULT", "DURATION", "REVISION", "DETAIL"};
  std::vector<size_t> widths_;
};

// A note on stderr when retention removed records the query could have
// shown (retention is never silent).
void NoteTrim(const audit::AuditLog& log, const audit::AuditFilter& f, size_t shown) {
  Result<std::optional<audit::TrimInfo>> trim = log.Trimmed();
  if (!trim.ok() || !trim->has_value()) return;
  const audit::TrimInfo& t = **trim;
  const bool reaches_back = !f.since_ms || *f.since_ms <= t.trimmed_through_time;
  const bool complete = f.limit == 0 || shown < f.limit;
  if (!reaches_back || !complete) return;
  std::cerr << "note: retention removed the " << t.trimmed_count << " oldest record(s), up to "
            << FormatRfc3339Ms(t.trimmed_through_time) << "; the log starts at record "
            << t.first_kept_seq << "\n";
}

// ------------------------------------------------------------ --follow

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

// SIGINT and SIGTERM end the follow loop; the previous handlers come back
// when it is destroyed.
class StopSignals {
 public:
  StopSignals() {
    g_stop.store(false);
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // No SA_RESTART: a sleep ends at once.
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// Prints records written after `after_seq` that match `f` until SIGINT or
// SIGTERM (the caller installs StopSignals); polls the primary every 200 ms.
int Follow(const Globals& g, OpenLog& open, const audit::AuditFilter& f, uint64_t after_seq,
           const Table& table) {
  uint64_t last = after_seq;
  while (!g_stop.load()) {
    const auto wake = SteadyNow() + kFollowPoll;
    while (!g_stop.load() && SteadyNow() < wake) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (g_stop.load()) break;
    Status s = open.store->CatchUp();
    if (!s.ok()) return ReportError(g, s);
    Result<std::vector<audit::AuditRecord>> fresh = open.log->ReadAfter(last);
    if (!fresh.ok()) return ReportError(g, fresh.status());
    for (const audit::AuditRecord& r : *fresh) {
      last = r.seq;
      if (!audit::Matches(f, r)) continue;
      if (g.json) {
        std::cout << audit::ToJsonLine(r) << "\n";
      } else {
        table.Row(std::cout, r);
      }
    }
    std::cout.flush();
  }
  return kExitOk;
}

// ------------------------------------------------------------- commands

int RunQuery(const Globals& g, const AuditFlags& fl, bool limit_given) {
  Result<audit::AuditFilter> f = BuildFilter(fl, limit_given, 50);
  if (!f.ok()) return ReportError(g, f.status());
  // Signals end --follow cleanly from here on, also during the first query.
  std::optional<StopSignals> signals;
  if (fl.follow) signals.emplace();
  Result<OpenLog> open = Open(g);
  if (!open.ok()) return ReportError(g, open.status());
  if (Status s = CheckAction(*open->log, f->action); !s.ok()) return ReportError(g, s);

  // With --follow the newest records come first on screen like tail -f:
  // the last N, oldest first, then new ones as they are written.
  Result<audit::AuditHead> head = open->log->Head();
  if (!head.ok()) return ReportError(g, head.status());
  Result<std::vector<audit::AuditRecord>> rows = open->log->Query(*f);
  if (!rows.ok()) return ReportError(g, rows.status());
  if (fl.follow && !fl.reverse) std::reverse(rows->begin(), rows->end());

  Table table(*rows);
  if (g.json) {
    for (const audit::AuditRecord& r : *rows) std::cout << audit::ToJsonLine(r) << "\n";
  } else {
    if (!rows->empty() || fl.follow) table.Header(std::cout);
    for (const audit::AuditRecord& r : *rows) table.Row(std::cout, r);
    if (rows->empty() && !fl.follow) std::cerr << "no audit records match\n";
  }
  NoteTrim(*open->log, *f, rows->size());
  std::cout.flush();
  if (!fl.follow || g_stop.load()) return kExitOk;
  return Follow(g, *open, *f, head->seq, table);
}

int RunExport(const Globals& g, const AuditFlags& fl, bool limit_given) {
  AuditFlags oldest_first = fl;
  oldest_first.reverse = true;
  Result<audit::AuditFilter> f = BuildFilter(oldest_first, limit_given, /*no limit*/ 0);
  if (!f.ok()) return ReportError(g, f.status());
  Result<OpenLog> open = Open(g);
  if (!open.ok()) return ReportError(g, open.status());
  if (Status s = CheckAction(*open->log, f->action); !s.ok()) return ReportError(g, s);
  size_t n = 0;
  Status s = open->log->QueryEach(*f, [&](const audit::AuditRecord& r) {
    std::cout << audit::ToJsonLine(r) << "\n";
    ++n;
    return static_cast<bool>(std::cout);
  });
  std::cout.flush();
  if (!s.ok()) return ReportError(g, s);
  NoteTrim(*open->log, *f, n);
  return kExitOk;
}

int RunVerify(const Globals& g) {
  Result<OpenLog> open = Open(g);
  if (!open.ok()) return ReportError(g, open.status());
  Result<audit::VerifyReport> rep = open->log->Verify();
  if (!rep.ok()) return ReportError(g, rep.status());
  const audit::VerifyReport& r = *rep;
  if (g.json) {
    json out = {{"ok", r.ok},
                {"records", r.records},
                {"first_seq", r.first_seq},
                {"last_seq", r.last_seq},
                {"index_entries", r.index_entries},
                {"first_bad_seq", r.first_bad_seq},
                {"reason", r.reason}};
    if (r.trim) {
      out["trimmed"] = {{"first_kept_seq", r.trim->first_kept_seq},
                        {"trimmed_count", r.trim->trimmed_count},
                        {"trimmed_through", FormatRfc3339Ms(r.trim->trimmed_through_time)},
                        {"last_trim_at", FormatRfc3339Ms(r.trim->last_trim_at)}};
    }
    std::cout << out.dump(2) << "\n";
  } else if (r.ok) {
    std::cout << "audit log intact: " << r.records << " record(s)";
    if (r.records > 0) std::cout << ", seq " << r.first_seq << ".." << r.last_seq;
    std::cout << ", " << r.index_entries << " index entries\n";
  } else {
    std::cout << "audit log BROKEN at record " << r.first_bad_seq << ": " << r.reason << "\n"
              << "  " << r.records << " record(s) before it verified; inspect it with "
              << "clusterctl audit show " << r.first_bad_seq << "\n";
  }
  if (!g.json && r.trim) {
    std::cout << "  retention removed " << r.trim->trimmed_count << " older record(s) (through "
              << FormatRfc3339Ms(r.trim->trimmed_through_time)
              << "); the chain is checked from record " << r.trim->first_kept_seq
              << ", against the prev_hash kept when they were removed\n";
  }
  return r.ok ? kExitOk : kExitError;
}

// The commit behind a record's revision, when the repository is local.
std::optional<desired_state::Revision> LookUpCommit(const Globals& g, const std::string& rev) {
  if (rev.empty() || desired_state::IsRemoteUrl(g.repo)) return std::nullopt;
  std::error_code ec;
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(g.repo) / ".git", ec) && !fs::exists(fs::path(g.repo) / "HEAD", ec)) {
    return std::nullopt;
  }
  desired_state::GitSource::Options opts;
  opts.repo = g.repo;
  opts.branch = g.branch;
  auto source = desired_state::GitSource::Open(opts);
  if (!source.ok()) return std::nullopt;
  Result<desired_state::Revision> r = (*source)->Resolve(rev);
  if (!r.ok()) return std::nullopt;
  return *r;
}

void PrintRecord(const audit::AuditRecord& r) {
  auto line = [](const char* name, const std::string& value) {
    std::cout << "  " << name << std::string(12 - std::string(name).size(), ' ') << value << "\n";
  };
  std::cout << "record " << r.seq << " (" << r.phase;
  if (r.intent_seq != 0) std::cout << " of intent " << r.intent_seq;
  std::cout << ")\n";
  line("time", FormatRfc3339Ms(r.time));
  line("actor", r.actor);
  line("trigger", r.trigger);
  line("action", r.action);
  line("service", r.service.empty() ? "-" : r.service);
  line("machine", r.machine.empty() ? "-" : r.machine);
  line("result", ResultText(r));
  if (r.phase == audit::Name(audit::Phase::kResult))
    line("duration", FormatDurationMs(r.duration_ms));
  line("revision", r.revision.empty() ? "-" : r.revision);
  if (!r.leader.empty()) {
    line("leader", r.leader + (r.fencing_token != 0
                                   ? " (fencing token " + std::to_string(r.fencing_token) + ")"
                                   : ""));
  }
  line("detail", r.detail);
  line("prev_hash", r.prev_hash);
  line("hash", r.hash);
}

int RunShow(const Globals& g, uint64_t seq) {
  Result<OpenLog> open = Open(g);
  if (!open.ok()) return ReportError(g, open.status());
  Result<std::optional<audit::AuditRecord>> rec = open->log->Get(seq);
  if (!rec.ok()) return ReportError(g, rec.status());
  if (!rec->has_value()) {
    std::string why = "no audit record " + std::to_string(seq);
    Result<audit::AuditHead> head = open->log->Head();
    Result<std::optional<audit::TrimInfo>> trim = open->log->Trimmed();
    if (trim.ok() && trim->has_value() && seq < (*trim)->first_kept_seq) {
      why += " (retention removed records before " + std::to_string((*trim)->first_kept_seq) + ")";
    } else if (head.ok()) {
      why += " (the log holds records up to " + std::to_string(head->seq) + ")";
    }
    return ReportError(g, Status::NotFound(why));
  }
  const audit::AuditRecord& r = **rec;
  // Its pair: the intent of a result, or the result(s) of an intent.
  std::optional<audit::AuditRecord> intent;
  std::vector<audit::AuditRecord> results;
  if (r.intent_seq != 0) {
    Result<std::optional<audit::AuditRecord>> i = open->log->Get(r.intent_seq);
    if (!i.ok()) return ReportError(g, i.status());
    intent = std::move(*i);
  }
  if (r.phase == audit::Name(audit::Phase::kIntent)) {
    Result<std::vector<audit::AuditRecord>> res = open->log->ResultsOf(r.seq);
    if (!res.ok()) return ReportError(g, res.status());
    results = std::move(*res);
  }
  std::optional<desired_state::Revision> commit = LookUpCommit(g, r.revision);

  if (g.json) {
    using ojson = nlohmann::ordered_json;
    ojson out;
    out["record"] = ojson::parse(audit::ToJsonLine(r));
    out["intent"] = intent ? ojson::parse(audit::ToJsonLine(*intent)) : ojson(nullptr);
    out["results"] = ojson::array();
    for (const auto& x : results) out["results"].push_back(ojson::parse(audit::ToJsonLine(x)));
    out["commit"] = nullptr;
    if (commit) {
      out["commit"] = {{"sha", commit->commit},
                       {"author", commit->author},
                       {"time", FormatRfc3339Ms(commit->time * 1000)},
                       {"message", commit->message}};
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  PrintRecord(r);
  std::vector<audit::AuditRecord> pair;
  if (intent) pair.push_back(*intent);
  if (r.intent_seq != 0 && !intent) {
    std::cout << "\nintent " << r.intent_seq << " is no longer in the log (trimmed)\n";
  }
  if (r.phase == audit::Name(audit::Phase::kIntent) && results.empty()) {
    std::cout << "\nno result yet: the step has not ended, or the controller stopped during it\n";
  }
  if (!pair.empty() || !results.empty()) {
    pair.push_back(r);
    for (const auto& x : results) pair.push_back(x);
    std::cout << "\n";
    Table table(pair);
    table.Header(std::cout);
    for (const auto& x : pair) table.Row(std::cout, x);
  }
  if (commit) {
    std::string message = commit->message;
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    std::cout << "\ncommit " << commit->commit << "\n  author  " << commit->author << "\n  date    "
              << FormatRfc3339Ms(commit->time * 1000) << "\n\n";
    size_t start = 0;
    while (start <= message.size()) {
      size_t nl = message.find('\n', start);
      if (nl == std::string::npos) nl = message.size();
      std::cout << "    " << message.substr(start, nl - start) << "\n";
      start = nl + 1;
    }
  }
  return kExitOk;
}

void AddFilterFlags(CLI::App* app, AuditFlags* f) {
  app->add_option("--since", f->since,
                  "Records at or after this time: RFC 3339 (2026-11-22T10:00:00Z) or relative "
                  "(30s, 15m, 2h, 7d = that long ago)")
      ->type_name("TIME");
  app->add_option("--until", f->until, "Records before this time (same forms as --since)")
      ->type_name("TIME");
  app->add_option("--service", f->service, "Only this service")->type_name("NAME");
  app->add_option("--machine", f->machine, "Only this machine")->type_name("NAME");
  app->add_option("--action", f->action,
                  "Only this action: start, stop, restart, revision_applied, revision_rejected, "
                  "probe_failed, machine_unreachable, interrupted, ...")
      ->type_name("ACTION");
  app->add_option("--result", f->result,
                  "Only this result: ok, failed, interrupted, skipped, fenced")
      ->type_name("RESULT");
  app->add_option("--revision", f->revision, "Only records of this commit (a sha prefix)")
      ->type_name("SHA");
  app->add_option("--actor", f->actor,
                  "Only this actor: user@host, or a user or clusterd on any host")
      ->type_name("WHO");
  app->add_option("--trigger", f->trigger,
                  "Only this trigger: revision, drift, rollback, manual, recovery, auto-rollback")
      ->type_name("TRIGGER");
  app->add_option("--limit", f->limit, "At most N records (newest first). Default: 50")
      ->type_name("N");
  app->add_flag("--reverse", f->reverse, "Oldest first");
}

}  // namespace

CommandFn SetupAudit(CLI::App* sub, Globals* g) {
  auto fl = std::make_shared<AuditFlags>();
  AddFilterFlags(sub, fl.get());
  sub->add_flag("--follow", fl->follow,
                "After the matches, print new records as they are written until interrupted "
                "(Ctrl-C)");
  sub->require_subcommand(0, 1);

  CLI::App* verify = sub->add_subcommand(
      "verify",
      "Check the hash chain and the indexes end to end; names the first bad record.\n"
      "Exit 0 intact, 1 broken.");
  verify->fallthrough();
  CLI::App* exp = sub->add_subcommand(
      "export", "Print every matching record as JSON lines, oldest first (no limit)");
  exp->fallthrough();  // The filters belong to `audit`; they may follow `export`.
  CLI::App* show = sub->add_subcommand(
      "show", "One record, with its intent/result pair and the commit of its revision");
  show->add_option("SEQ", fl->seq, "The record's seq (first column of clusterctl audit)")
      ->required();
  show->fallthrough();

  sub->footer(
      "Examples:\n"
      "  clusterctl audit --service tools-server --machine worker-tools --since 12h\n"
      "  clusterctl audit --result failed --since 7d --limit 20\n"
      "  clusterctl audit --revision 3f2c1e9 --json\n"
      "  clusterctl audit --follow\n"
      "  clusterctl audit verify\n"
      "  clusterctl audit export --since 2026-11-01T00:00:00Z > audit.jsonl\n"
      "  clusterctl audit show 1042\n"
      "Reads the data directory read-only: works while clusterd runs, and on a copy.");

  return [g, fl, sub, verify, exp, show]() -> int {
    const bool limit_given = sub->count("--limit") > 0;
    if (verify->parsed()) return RunVerify(*g);
    if (show->parsed()) return RunShow(*g, fl->seq);
    if (exp->parsed()) {
      if (fl->follow) {
        return ReportError(*g, Status::Invalid("--follow does not apply to audit export"));
      }
      return RunExport(*g, *fl, limit_given);
    }
    return RunQuery(*g, *fl, limit_given);
  };
}

}  // namespace clusterctl::cli
