// Sync windows (sync_windows.h): cron parsing, openings across the 2026 DST
// transitions of Europe/Berlin and America/New_York (expected instants
// computed by hand from the offsets: CET +1, CEST +2, EST -5, EDT -4),
// allow and deny windows together, selectors, transitions and messages.
#include "desired-state/sync_windows.h"

#include <gtest/gtest.h>

#include "base/time_format.h"

namespace clusterctl::desired_state {
namespace {

// Seconds since the epoch of an RFC 3339 UTC time.
int64_t At(const char* rfc3339) {
  auto ms = ParseRfc3339(rfc3339);
  EXPECT_TRUE(ms.ok()) << rfc3339;
  return ms.ok() ? *ms / 1000 : 0;
}

std::string Utc(int64_t s) { return s == 0 ? "never" : FormatRfc3339Ms(s * 1000); }

CronSchedule Cron(const char* text) {
  auto c = CronSchedule::Parse(text);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : CronSchedule();
}

SyncWindow Window(const char* name, SyncWindow::Kind kind, const char* cron, int64_t duration_s,
                  const char* zone) {
  SyncWindow w;
  w.name = name;
  w.kind = kind;
  w.schedule = Cron(cron);
  w.duration_s = duration_s;
  w.time_zone = zone;
  return w;
}

// The openings of `w` from `from` on, as UTC text.
std::vector<std::string> Openings(const SyncWindow& w, const char* from, int n) {
  std::vector<std::string> out;
  for (const WindowInterval& i : NextTransitions(w, At(from), n)) out.push_back(Utc(i.open_s));
  return out;
}

// ---- cron ----

std::string ParseError(const char* text) {
  auto c = CronSchedule::Parse(text);
  return c.ok() ? "parsed" : c.status().message();
}

TEST(CronScheduleTest, MatchesStepsRangesListsAndNames) {
  CronSchedule quarter = Cron("*/15 * * * *");
  EXPECT_TRUE(quarter.Matches(2026, 12, 7, 10, 45));
  EXPECT_FALSE(quarter.Matches(2026, 12, 7, 10, 46));

  // 2026-12-07 is a Monday, 2026-12-06 a Sunday.
  CronSchedule office = Cron("0 9-17/2 * * mon-FRI");
  EXPECT_TRUE(office.Matches(2026, 12, 7, 11, 0));
  EXPECT_FALSE(office.Matches(2026, 12, 7, 10, 0));
  EXPECT_TRUE(office.Matches(2026, 12, 7, 17, 0));
  EXPECT_FALSE(office.Matches(2026, 12, 6, 11, 0));

  CronSchedule list = Cron("5,10-12,50/5 * * jan,Dec *");
  for (int m : {5, 10, 11, 12, 50, 55}) EXPECT_TRUE(list.Matches(2026, 12, 7, 3, m)) << m;
  for (int m : {0, 9, 13, 45}) EXPECT_FALSE(list.Matches(2026, 12, 7, 3, m)) << m;
  EXPECT_FALSE(list.Matches(2026, 11, 7, 3, 5));

  // 0 and 7 are both Sunday.
  EXPECT_TRUE(Cron("0 0 * * 7").Matches(2026, 12, 6, 0, 0));
  EXPECT_TRUE(Cron("0 0 * * 0").Matches(2026, 12, 6, 0, 0));
  EXPECT_TRUE(Cron("0 0 * * sun").Matches(2026, 12, 6, 0, 0));
  EXPECT_FALSE(Cron("0 0 * * 7").Matches(2026, 12, 7, 0, 0));
}

TEST(CronScheduleTest, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
  // The 1st and 15th, or any Sunday.
  CronSchedule either = Cron("0 0 1,15 * sun");
  EXPECT_TRUE(either.Matches(2026, 12, 1, 0, 0));   // Tuesday the 1st
  EXPECT_TRUE(either.Matches(2026, 12, 6, 0, 0));   // Sunday the 6th
  EXPECT_FALSE(either.Matches(2026, 12, 7, 0, 0));  // Monday the 7th
  // A field starting with `*` is unrestricted for this rule: both must match.
  CronSchedule both = Cron("0 0 1-7 * */7");  // */7 = Sunday only
  EXPECT_TRUE(both.Matches(2026, 12, 6, 0, 0));
  EXPECT_FALSE(both.Matches(2026, 12, 13, 0, 0));
  EXPECT_FALSE(both.Matches(2026, 12, 1, 0, 0));
}

TEST(CronScheduleTest, MacrosAndNextLocal) {
  const int64_t monday_10_05 = At("2026-12-07T10:05:00Z");  // read as local time
  EXPECT_EQ(Utc(*Cron("@hourly").NextLocal(monday_10_05)), "2026-12-07T11:00:00.000Z");
  EXPECT_EQ(Utc(*Cron("@daily").NextLocal(monday_10_05)), "2026-12-08T00:00:00.000Z");
  EXPECT_EQ(Utc(*Cron("@weekly").NextLocal(monday_10_05)), "2026-12-13T00:00:00.000Z");
  EXPECT_EQ(Utc(*Cron("@monthly").NextLocal(monday_10_05)), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(Utc(*Cron("@yearly").NextLocal(monday_10_05)), "2027-01-01T00:00:00.000Z");
  // At a matching minute: that minute; within it: the next one.
  EXPECT_EQ(*Cron("5 10 * * *").NextLocal(monday_10_05), monday_10_05);
  EXPECT_EQ(Utc(*Cron("* * * * *").NextLocal(monday_10_05 + 1)), "2026-12-07T10:06:00.000Z");
  // February 29th, years ahead.
  EXPECT_EQ(Utc(*Cron("0 0 29 2 *").NextLocal(monday_10_05)), "2028-02-29T00:00:00.000Z");
  EXPECT_EQ(Cron("@daily").text(), "@daily");
}

TEST(CronScheduleTest, ErrorsNameTheField) {
  EXPECT_EQ(ParseError("0 25 * * *"), "cron \"0 25 * * *\": hour: 25 is out of range 0-23");
  EXPECT_EQ(ParseError("60 * * * *"), "cron \"60 * * * *\": minute: 60 is out of range 0-59");
  EXPECT_EQ(ParseError("0 0 0 * *"), "cron \"0 0 0 * *\": day-of-month: 0 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 * foo *"),
            "cron \"0 0 * foo *\": month: \"foo\" is not a number or a name");
  EXPECT_EQ(ParseError("0 0 * * 8"), "cron \"0 0 * * 8\": day-of-week: 8 is out of range 0-7");
  EXPECT_EQ(ParseError("*/0 * * * *"),
            "cron \"*/0 * * * *\": minute: step in \"*/0\" must be at least 1");
  EXPECT_EQ(ParseError("5-2 * * * *"),
            "cron \"5-2 * * * *\": minute: range 5-2 goes backwards; write it as 5-59,0-2");
  EXPECT_EQ(ParseError("1,,2 * * * *"),
            "cron \"1,,2 * * * *\": minute: empty list item in \"1,,2\"");
  EXPECT_EQ(
      ParseError("0 2 * *"),
      "cron \"0 2 * *\": expected 5 fields (minute hour day-of-month month day-of-week), got 4");
  EXPECT_EQ(ParseError(""),
            "cron \"\": expected 5 fields (minute hour day-of-month month day-of-week), got 0");
  EXPECT_EQ(ParseError("0 0 31 2,4 *"),
            "cron \"0 0 31 2,4 *\": day-of-month: no month of the schedule has such a day");
  EXPECT_EQ(ParseError("@reboot"),
            "cron \"@reboot\": unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly, "
            "or five fields (minute hour day-of-month month day-of-week)");
  // Restricted day-of-week rescues an impossible day-of-month (either matches).
  EXPECT_EQ(ParseError("0 0 31 2 mon"), "parsed");
}

// ---- DST ----

TEST(SyncWindowDstTest, BerlinSpringForwardOpensAfterTheGapOnce) {
  SyncWindow w = Window("nightly", SyncWindow::kAllow, "30 2 * * *", 3600, "Europe/Berlin");
  EXPECT_EQ(Openings(w, "2026-03-27T12:00:00Z", 3),
            (std::vector<std::string>{"2026-03-28T01:30:00.000Z",     // 02:30 CET
                                      "2026-03-29T01:00:00.000Z",     // 03:00 CEST, after the gap
                                      "2026-03-30T00:30:00.000Z"}));  // 02:30 CEST
  // Two schedule times in the gap (02:00, 02:30) open once, at 03:00; then
  // the next day's 02:00 and 02:30 openings touch and merge.
  SyncWindow half = Window("half", SyncWindow::kAllow, "*/30 2 * * *", 1800, "Europe/Berlin");
  std::vector<WindowInterval> t = NextTransitions(half, At("2026-03-29T00:00:00Z"), 2);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], (WindowInterval{At("2026-03-29T01:00:00Z"), At("2026-03-29T01:30:00Z")}));
  EXPECT_EQ(t[1], (WindowInterval{At("2026-03-30T00:00:00Z"), At("2026-03-30T01:00:00Z")}));
}

TEST(SyncWindowDstTest, BerlinFallBackOpensAtTheFirstOccurrenceOnly) {
  SyncWindow w = Window("nightly", SyncWindow::kAllow, "30 2 * * *", 1800, "Europe/Berlin");
  EXPECT_EQ(Openings(w, "2026-10-23T12:00:00Z", 3),
            (std::vector<std::string>{"2026-10-24T00:30:00.000Z",     // 02:30 CEST
                                      "2026-10-25T00:30:00.000Z",     // first 02:30 (CEST)
                                      "2026-10-26T01:30:00.000Z"}));  // 02:30 CET
  // The second 02:30 (CET, 01:30 UTC) opens nothing.
  EXPECT_FALSE(Evaluate({w}, At("2026-10-25T01:45:00Z"), "web", "m1").allowed);
  EXPECT_TRUE(Evaluate({w}, At("2026-10-25T00:45:00Z"), "web", "m1").allowed);
}

TEST(SyncWindowDstTest, NewYorkSpringForwardAndFallBack) {
  SyncWindow w = Window("nightly", SyncWindow::kAllow, "30 2 * * *", 3600, "America/New_York");
  EXPECT_EQ(Openings(w, "2026-03-06T12:00:00Z", 3),
            (std::vector<std::string>{"2026-03-07T07:30:00.000Z",     // 02:30 EST
                                      "2026-03-08T07:00:00.000Z",     // 03:00 EDT, after the gap
                                      "2026-03-09T06:30:00.000Z"}));  // 02:30 EDT
  // 02:30 exists once on 2026-11-01 (01:00-01:59 repeats).
  EXPECT_EQ(Openings(w, "2026-10-31T00:00:00Z", 3),
            (std::vector<std::string>{"2026-10-31T06:30:00.000Z", "2026-11-01T07:30:00.000Z",
                                      "2026-11-02T07:30:00.000Z"}));
  // 01:30 repeats: the first one (EDT) opens; the duration is elapsed time,
  // so the hour ends at the second 01:30 (EST), 06:30 UTC.
  SyncWindow early = Window("early", SyncWindow::kAllow, "30 1 * * *", 3600, "America/New_York");
  std::vector<WindowInterval> t = NextTransitions(early, At("2026-10-31T00:00:00Z"), 3);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0], (WindowInterval{At("2026-10-31T05:30:00Z"), At("2026-10-31T06:30:00Z")}));
  EXPECT_EQ(t[1], (WindowInterval{At("2026-11-01T05:30:00Z"), At("2026-11-01T06:30:00Z")}));
  EXPECT_EQ(t[2], (WindowInterval{At("2026-11-02T06:30:00Z"), At("2026-11-02T07:30:00Z")}));
}

TEST(SyncWindowDstTest, DenyWindowOverTheGapHoldsUntilItsElapsedEnd) {
  // A 2h deny window at 02:30 Berlin on the spring-forward day opens at
  // 03:00 CEST (01:00 UTC) and ends two hours later, 05:00 CEST.
  SyncWindow deny = Window("freeze", SyncWindow::kDeny, "30 2 29 3 *", 7200, "Europe/Berlin");
  WindowVerdict v = Evaluate({deny}, At("2026-03-29T01:00:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(Utc(v.opens_at_s), "2026-03-29T03:00:00.000Z");
  EXPECT_EQ(v.reason, "in deny window freeze (ends 05:00 Europe/Berlin)");
  EXPECT_TRUE(Evaluate({deny}, At("2026-03-29T00:59:59Z"), "web", "m1").allowed);
  EXPECT_TRUE(Evaluate({deny}, At("2026-03-29T03:00:00Z"), "web", "m1").allowed);
}

// ---- Evaluate ----

TEST(EvaluateTest, NoWindowsAllowsEverything) {
  WindowVerdict v = Evaluate({}, At("2026-12-07T10:00:00Z"), "web", "m1");
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.opens_at_s, 0);
  EXPECT_EQ(v.reason, "");
}

TEST(EvaluateTest, OutsideTheAllowWindowWaitsForItsOpening) {
  const std::vector<SyncWindow> w = {
      Window("nightly", SyncWindow::kAllow, "0 22 * * *", 7200, "Europe/Berlin")};
  WindowVerdict v = Evaluate(w, At("2026-12-07T10:00:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.blocking, "nightly");
  EXPECT_EQ(Utc(v.opens_at_s), "2026-12-07T21:00:00.000Z");
  EXPECT_EQ(v.reason, "waiting for window nightly (opens 22:00 Europe/Berlin)");
  EXPECT_FALSE(v.overridable);
  EXPECT_TRUE(Evaluate(w, At("2026-12-07T21:00:00Z"), "web", "m1").allowed);
  EXPECT_TRUE(Evaluate(w, At("2026-12-07T22:59:59Z"), "web", "m1").allowed);
  // Closed at midnight Berlin time: the next opening is the same local day.
  v = Evaluate(w, At("2026-12-07T23:00:00Z"), "web", "m1");
  EXPECT_EQ(Utc(v.opens_at_s), "2026-12-08T21:00:00.000Z");
  EXPECT_EQ(v.reason, "waiting for window nightly (opens 22:00 Europe/Berlin)");
  // From New York's evening the opening is on another local day.
  EXPECT_EQ(FormatWindowTime(v.opens_at_s, "America/New_York", At("2026-12-07T23:00:00Z")),
            "2026-12-08 16:00 America/New_York");
}

TEST(EvaluateTest, DenyInsideAllowHoldsUntilTheDenyEnds) {
  const std::vector<SyncWindow> w = {
      Window("nightly", SyncWindow::kAllow, "0 22 * * *", 4 * 3600, "Europe/Berlin"),
      Window("backup", SyncWindow::kDeny, "0 23 * * *", 3600, "Europe/Berlin")};
  EXPECT_TRUE(Evaluate(w, At("2026-12-07T21:30:00Z"), "web", "m1").allowed);
  WindowVerdict v = Evaluate(w, At("2026-12-07T22:30:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.blocking, "backup");
  EXPECT_EQ(Utc(v.opens_at_s), "2026-12-07T23:00:00.000Z");
  EXPECT_EQ(v.reason, "in deny window backup (ends 2026-12-08 00:00 Europe/Berlin)");
  EXPECT_TRUE(Evaluate(w, At("2026-12-07T23:00:00Z"), "web", "m1").allowed);
}

TEST(EvaluateTest, DenyPastTheAllowWindowWaitsForTheNextAllowOpening) {
  std::vector<SyncWindow> w = {
      Window("nightly", SyncWindow::kAllow, "0 22 * * *", 7200, "Europe/Berlin"),
      Window("late", SyncWindow::kDeny, "30 23 * * *", 7200, "Europe/Berlin")};
  WindowVerdict v = Evaluate(w, At("2026-12-07T22:45:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.blocking, "late");
  EXPECT_EQ(Utc(v.opens_at_s), "2026-12-08T21:00:00.000Z");
  EXPECT_EQ(v.reason,
            "in deny window late, then waiting for window nightly (opens 2026-12-08 22:00 "
            "Europe/Berlin)");
  EXPECT_FALSE(v.overridable);
  // After the allow window closed, overriding needs both windows to allow it.
  const int64_t later = At("2026-12-07T23:15:00Z");
  v = Evaluate(w, later, "web", "m1");
  EXPECT_EQ(v.reason,
            "in deny window late, then waiting for window nightly (opens 22:00 "
            "Europe/Berlin)");
  w[1].manual_override = true;
  EXPECT_TRUE(Evaluate(w, At("2026-12-07T22:45:00Z"), "web", "m1").overridable);
  EXPECT_FALSE(Evaluate(w, later, "web", "m1").overridable);
  w[0].manual_override = true;
  EXPECT_TRUE(Evaluate(w, later, "web", "m1").overridable);
}

TEST(EvaluateTest, SelectorsPickTheGovernedInstances) {
  SyncWindow deny = Window("db-freeze", SyncWindow::kDeny, "0 0 * * *", 86400, "UTC");
  deny.services = {"db-*"};
  deny.machines = {"jetson", "rack?"};
  const int64_t now = At("2026-12-07T10:00:00Z");
  EXPECT_FALSE(Evaluate({deny}, now, "db-main", "jetson").allowed);
  EXPECT_FALSE(Evaluate({deny}, now, "db-replica", "rack1").allowed);
  EXPECT_TRUE(Evaluate({deny}, now, "web", "jetson").allowed);
  EXPECT_TRUE(Evaluate({deny}, now, "db-main", "rack10").allowed);
  EXPECT_TRUE(Evaluate({deny}, now, "db-main", "pi").allowed);
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a*b*c", "axxbyyc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "axxbyy"));
  EXPECT_TRUE(GlobMatch("exact", "exact"));
}

TEST(EvaluateTest, AnAlwaysOpenDenyWindowDoesNotEnd) {
  SyncWindow deny = Window("forever", SyncWindow::kDeny, "* * * * *", 3600, "UTC");
  deny.manual_override = true;
  WindowVerdict v = Evaluate({deny}, At("2026-12-07T10:00:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.opens_at_s, 0);
  EXPECT_EQ(v.reason, "in deny window forever (does not end)");
  EXPECT_TRUE(v.overridable);
}

TEST(EvaluateTest, AnUnknownTimeZoneFailsClosed) {
  SyncWindow w = Window("nightly", SyncWindow::kAllow, "0 22 * * *", 3600, "Europe/Berln");
  WindowVerdict v = Evaluate({w}, At("2026-12-07T10:00:00Z"), "web", "m1");
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, "window nightly: unknown time zone \"Europe/Berln\"");
  EXPECT_TRUE(NextTransitions(w, At("2026-12-07T10:00:00Z"), 3).empty());
  EXPECT_EQ(CheckTimeZone("Europe/Berln").message(), "unknown time zone \"Europe/Berln\"");
  EXPECT_TRUE(CheckTimeZone("America/New_York").ok());
  EXPECT_TRUE(CheckTimeZone("UTC").ok());
}

TEST(NextTransitionsTest, StartsWithTheOpenIntervalThenFollows) {
  SyncWindow w = Window("nightly", SyncWindow::kAllow, "0 22 * * mon-fri", 7200, "Europe/Berlin");
  // Friday 2026-12-11 22:30 Berlin: open; next Monday and Tuesday follow.
  std::vector<WindowInterval> t = NextTransitions(w, At("2026-12-11T21:30:00Z"), 3);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0], (WindowInterval{At("2026-12-11T21:00:00Z"), At("2026-12-11T23:00:00Z")}));
  EXPECT_EQ(t[1], (WindowInterval{At("2026-12-14T21:00:00Z"), At("2026-12-14T23:00:00Z")}));
  EXPECT_EQ(t[2], (WindowInterval{At("2026-12-15T21:00:00Z"), At("2026-12-15T23:00:00Z")}));
  EXPECT_EQ(OpenIntervalAt(w, At("2026-12-11T21:30:00Z")), t[0]);
  EXPECT_FALSE(OpenIntervalAt(w, At("2026-12-11T23:00:00Z")).has_value());
  EXPECT_TRUE(NextTransitions(w, At("2026-12-11T21:30:00Z"), 0).empty());
}

TEST(FormatWindowTimeTest, ShowsTheDateOnlyOnAnotherLocalDay) {
  const int64_t now = At("2026-12-07T10:00:00Z");
  EXPECT_EQ(FormatWindowTime(At("2026-12-07T21:00:00Z"), "Europe/Berlin", now),
            "22:00 Europe/Berlin");
  EXPECT_EQ(FormatWindowTime(At("2026-12-07T23:00:00Z"), "Europe/Berlin", now),
            "2026-12-08 00:00 Europe/Berlin");
  EXPECT_EQ(FormatWindowTime(At("2026-12-07T21:00:30Z"), "UTC", now), "21:00:30 UTC");
  EXPECT_EQ(FormatWindowTime(At("2026-12-07T21:00:00Z"), "Nowhere/City", now), "21:00 UTC");
}

}  // namespace
}  // namespace clusterctl::desired_state
