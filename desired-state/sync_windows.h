// Sync windows: when changes may be made to a service instance.
//
// A Cluster lists windows (docs/desired-state.md, "Sync windows"). Each has a
// cron schedule of opening times, a duration, an IANA time zone and
// selectors of the instances it governs. An `allow` window says "changes
// only while I am open"; a `deny` window says "no changes while I am open".
// The controller asks Evaluate() before acting on an instance.
//
// Semantics (tested in tests/desired_state/sync_windows_test.cc):
//   - The schedule is matched against the wall-clock time of the window's
//     time zone (UTC when none is given): `30 2 * * *` in Europe/Berlin opens
//     at 02:30 Berlin time, CET in winter and CEST in summer.
//   - A local opening time that does not exist (the clocks spring forward
//     over it: 02:30 Europe/Berlin on 2026-03-29) opens at the first instant
//     after the gap (03:00 CEST = 01:00 UTC), once, however many schedule
//     times fell into the gap.
//   - A local opening time that occurs twice (the clocks fall back:
//     02:30 Europe/Berlin on 2026-10-25) opens at its first occurrence only
//     (02:30 CEST = 00:30 UTC).
//   - The duration is elapsed time: a 1h window that opens at 01:30 local on
//     a fall-back day closes at 01:30 UTC-wise one hour later, whatever the
//     wall clock says. A window is open on [opening, opening + duration);
//     openings whose intervals overlap or touch merge into one interval.
//   - An instance is governed by the windows whose `machines` and `services`
//     selectors both match it (empty = every; `*` matches any run of
//     characters, `?` one character).
//   - Evaluate(): no governing window: allowed. Inside a governing deny
//     window: blocked until it closes. If governing allow windows exist and
//     none is open: blocked until the next one opens. Both rules are applied
//     until they agree, so a deny window that ends outside every allow
//     window waits on for the next allow opening.
//
// Limits: openings are searched at most 9 years ahead (a schedule that
// cannot match at all is refused by CronSchedule::Parse); a chain of
// overlapping openings longer than kMaxChainedOpenings (a `* * * * *` deny
// window of an hour, say) is treated as never closing. Time zones come from
// the system's tzdata (/usr/share/zoneinfo), read once per process.
//
// Everything here is a pure function of its arguments: time is passed in,
// no clock is read. Thread-safety: all functions may be called from any
// thread; CronSchedule and SyncWindow are plain values.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clusterctl::desired_state {

// A 5-field cron schedule: minute hour day-of-month month day-of-week.
// Fields take `*`, numbers, ranges `1-5`, steps `*/15`, `1-10/2` and `5/10`
// (= 5-max/10), comma lists of these, month names `jan`-`dec` and weekday
// names `sun`-`sat` (any case); weekday 0 and 7 are Sunday. When both
// day-of-month and day-of-week are restricted (neither starts with `*`), a
// day matches when either does, as in Vixie cron. Macros: @hourly, @daily
// (= @midnight), @weekly, @monthly, @yearly (= @annually).
class CronSchedule {
 public:
  // Default: "* * * * *", every minute.
  CronSchedule();

  // Errors (Code::kInvalid) name the field and what is wrong:
  //   cron "0 25 * * *": hour: 25 is out of range 0-23
  // A schedule that can never match (`0 0 31 2 *`) is an error too.
  static Result<CronSchedule> Parse(std::string_view text);

  // The text it was parsed from ("@daily" stays "@daily").
  const std::string& text() const { return text_; }

  // Whether the calendar minute matches (month 1-12, day 1-31; the weekday
  // is derived from the date).
  bool Matches(int year, int month, int day, int hour, int minute) const;

  // The first matching minute at or after `local_s`, both in local wall-clock
  // seconds (seconds since 1970-01-01 00:00 of the wall clock, as if it were
  // UTC). A `local_s` within a minute counts from the next minute. nullopt:
  // no match within 9 years.
  std::optional<int64_t> NextLocal(int64_t local_s) const;

  bool operator==(const CronSchedule&) const = default;

 private:
  bool DayMatches(int year, int month, int day) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;       // 1-31
  std::bitset<13> months_;     // 1-12
  std::bitset<7> weekdays_;    // 0 = Sunday
  bool days_star_ = true;      // day-of-month starts with `*`
  bool weekdays_star_ = true;  // day-of-week starts with `*`
};

struct SyncWindow {
  std::string name;
  enum Kind { kAllow, kDeny } kind = kAllow;
  CronSchedule schedule;
  int64_t duration_s = 3600;
  std::string time_zone = "UTC";  // An IANA name (CheckTimeZone).
  // Selectors: empty = every machine / service; `*` and `?` are globs.
  std::vector<std::string> machines, services;
  // `clusterctl apply --override-window` may act while this window blocks.
  bool manual_override = false;

  bool operator==(const SyncWindow&) const = default;
};

const char* WindowKindName(SyncWindow::Kind k);  // "allow" / "deny"

// The longest chain of overlapping openings followed to find a window's end.
inline constexpr int kMaxChainedOpenings = 10000;

// Ok when `name` is a time zone of the system's tzdata ("UTC",
// "Europe/Berlin"). Code::kInvalid: `unknown time zone "Europe/Berln"`.
Status CheckTimeZone(const std::string& name);

// `*` matches any run of characters, `?` one character; nothing else is
// special.
bool GlobMatch(std::string_view pattern, std::string_view text);

// Whether `window` governs the instance (service, machine).
bool WindowApplies(const SyncWindow& window, const std::string& service,
                   const std::string& machine);

// One interval a window is open: [open_s, close_s), seconds since the epoch.
struct WindowInterval {
  int64_t open_s = 0;
  int64_t close_s = 0;  // 0: does not close (kMaxChainedOpenings)
  bool operator==(const WindowInterval&) const = default;
};

// The interval of `window` that contains `t_s`, if it is open then. Its
// open_s is the earliest opening still running at t_s.
std::optional<WindowInterval> OpenIntervalAt(const SyncWindow& window, int64_t t_s);

// The next `n` intervals of `window`: first the one open at `now_s`, if
// any, then those that open later, in order. Fewer when the window stops
// opening (9-year search) or an interval does not close. An unknown time
// zone gives none.
std::vector<WindowInterval> NextTransitions(const SyncWindow& window, int64_t now_s, int n);

struct WindowVerdict {
  bool allowed = true;
  std::string blocking;    // The window blocking now; empty when allowed.
  int64_t opens_at_s = 0;  // When changes may proceed next; 0 if allowed or never.
  // "waiting for window nightly (opens 22:00 Europe/Berlin)",
  // "in deny window freeze (ends 2026-12-27 06:00 Europe/Berlin)"; empty
  // when allowed.
  std::string reason;
  // Whether `--override-window` may act now: every deny window open now
  // has manualOverride, and, when allow windows govern the instance and
  // none is open, one of them has it. True when allowed.
  bool overridable = true;
};

// The verdict for the instance (service, machine) at `now_s` under
// `windows` (those that do not govern it are ignored). A window with an
// unknown time zone blocks with that as its reason: it fails closed.
WindowVerdict Evaluate(const std::vector<SyncWindow>& windows, int64_t now_s,
                       const std::string& service, const std::string& machine);

// `t_s` on the wall clock of `time_zone`, for messages: "22:00
// Europe/Berlin" when it falls on the same local day as `now_s`, else
// "2026-03-29 03:00 Europe/Berlin"; seconds appear when not zero. An
// unknown zone prints in UTC with "UTC".
std::string FormatWindowTime(int64_t t_s, const std::string& time_zone, int64_t now_s);

}  // namespace clusterctl::desired_state
