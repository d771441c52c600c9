// Cron parsing, time-zone conversion (date/tz, the one file that includes
// it) and the window rules of sync_windows.h.
#include "desired-state/sync_windows.h"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>

namespace clusterctl::desired_state {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kSearchDays = 9 * 366;  // NextLocal's horizon.

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

date::year_month_day CivilOf(int64_t day) {
  return date::year_month_day{date::sys_days{date::days{day}}};
}

// ---- cron fields ----

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names;  // names[i] spells min + i; may be null
};

const char* const kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const FieldSpec kFields[5] = {{"minute", 0, 59, nullptr},
                              {"hour", 0, 23, nullptr},
                              {"day-of-month", 1, 31, nullptr},
                              {"month", 1, 12, kMonthNames},
                              {"day-of-week", 0, 7, kDayNames}};

Result<int> ParseValue(const FieldSpec& f, std::string_view s) {
  if (s.empty()) return Status::Invalid("empty value");
  if (f.names != nullptr && s.size() == 3 && !std::isdigit(static_cast<unsigned char>(s[0]))) {
    std::string lower(s);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const int count = f.max == 12 ? 12 : 7;
    for (int i = 0; i < count; ++i) {
      if (lower == f.names[i]) return f.min + i;
    }
  }
  int v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || v > 1000) {
      return Status::Invalid("\"" + std::string(s) + "\" is not a number" +
                             (f.names != nullptr ? " or a name" : ""));
    }
    v = v * 10 + (c - '0');
  }
  if (v < f.min || v > f.max) {
    return Status::Invalid(std::to_string(v) + " is out of range " + std::to_string(f.min) + "-" +
                           std::to_string(f.max));
  }
  return v;
}

// Sets the bits of one field's text ("1-10/2,15"); bits are indexed by value.
Status ParseField(const FieldSpec& f, std::string_view text, std::vector<bool>* bits) {
  bits->assign(f.max + 1, false);
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) return Status::Invalid("empty list item in \"" + std::string(text) + "\"");
    int step = 1;
    const size_t slash = item.find('/');
    std::string_view range = item.substr(0, slash);
    if (slash != std::string_view::npos) {
      std::string_view s = item.substr(slash + 1);
      int v = 0;
      for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c)) || v > 1000) {
          return Status::Invalid("step \"" + std::string(s) + "\" is not a number");
        }
        v = v * 10 + (c - '0');
      }
      if (s.empty() || v == 0)
        return Status::Invalid("step in \"" + std::string(item) + "\" must be at least 1");
      step = v;
    }
    int lo = f.min, hi = f.max;
    if (range == "*") {
      if (f.max == 7) hi = 6;  // `*` weekdays are 0-6; 7 is Sunday again
    } else {
      const size_t dash = range.find('-');
      auto a = ParseValue(f, range.substr(0, dash));
      if (!a.ok()) return a.status();
      lo = *a;
      if (dash != std::string_view::npos) {
        auto b = ParseValue(f, range.substr(dash + 1));
        if (!b.ok()) return b.status();
        hi = *b;
        if (hi < lo) {
          return Status::Invalid("range " + std::string(range) + " goes backwards; write it as " +
                                 std::to_string(lo) + "-" + std::to_string(f.max) + "," +
                                 std::to_string(f.min) + "-" + std::to_string(hi));
        }
      } else if (slash == std::string_view::npos) {
        hi = lo;
      } else if (f.max == 7) {
        hi = 6;  // `1/2` in day-of-week: up to Saturday
      }
    }
    for (int v = lo; v <= hi; v += step) (*bits)[v] = true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Status::Ok();
}

std::string Expand(std::string_view text) {
  if (text == "@hourly") return "0 * * * *";
  if (text == "@daily" || text == "@midnight") return "0 0 * * *";
  if (text == "@weekly") return "0 0 * * 0";
  if (text == "@monthly") return "0 0 1 * *";
  if (text == "@yearly" || text == "@annually") return "0 0 1 1 *";
  return std::string(text);
}

// ---- time zones ----

// A zone of the system's tzdata, or UTC without touching it.
class Zone {
 public:
  static Result<Zone> Find(const std::string& name) {
    if (name == "UTC") return Zone(nullptr);
    try {
      return Zone(date::locate_zone(name));
    } catch (const std::exception&) {
      return Status::Invalid("unknown time zone \"" + name + "\"");
    }
  }

  int64_t ToLocal(int64_t t) const {
    if (zone_ == nullptr) return t;
    return t + zone_->get_info(date::sys_seconds{std::chrono::seconds{t}}).offset.count();
  }

  // The instant a window scheduled at local time `l` opens: the first
  // instant after a gap, the first of two occurrences. Non-decreasing in `l`,
  // and FromLocal(ToLocal(t)) <= t.
  int64_t FromLocal(int64_t l) const {
    if (zone_ == nullptr) return l;
    const date::local_info info = zone_->get_info(date::local_seconds{std::chrono::seconds{l}});
    if (info.result == date::local_info::nonexistent) {
      return info.second.begin.time_since_epoch().count();
    }
    return l - info.first.offset.count();
  }

 private:
  explicit Zone(const date::time_zone* z) : zone_(z) {}
  const date::time_zone* zone_;
};

// The first opening of `w` at or after `t`.
std::optional<int64_t> FirstOpeningFrom(const SyncWindow& w, const Zone& zone, int64_t t) {
  // Every local time up to ToLocal(t - 1) opens before t (FromLocal is
  // monotonic), so the search starts just after it; what it skips past are
  // the repeated local times of a fall-back, at most the size of the overlap.
  int64_t l = zone.ToLocal(t - 1) + 1;
  for (int i = 0; i < 100000; ++i) {
    std::optional<int64_t> match = w.schedule.NextLocal(l);
    if (!match) return std::nullopt;
    const int64_t open = zone.FromLocal(*match);
    if (open >= t) return open;
    l = *match + 60;
  }
  return std::nullopt;
}

// Where the interval that starts with the opening `open` ends, following
// openings that overlap or touch it. 0: it does not end.
int64_t CloseOf(const SyncWindow& w, const Zone& zone, int64_t open) {
  int64_t close = open + w.duration_s;
  int64_t last = open;
  for (int i = 0; i < kMaxChainedOpenings; ++i) {
    std::optional<int64_t> next = FirstOpeningFrom(w, zone, last + 1);
    if (!next || *next > close) return close;
    last = *next;
    close = std::max(close, last + w.duration_s);
  }
  return 0;
}

std::optional<WindowInterval> IntervalAt(const SyncWindow& w, const Zone& zone, int64_t t) {
  std::optional<int64_t> open = FirstOpeningFrom(w, zone, t - w.duration_s + 1);
  if (!open || *open > t) return std::nullopt;
  return WindowInterval{*open, CloseOf(w, zone, *open)};
}

}  // namespace

// ---- CronSchedule ----

CronSchedule::CronSchedule() : text_("* * * * *") {
  minutes_.set();
  hours_.set();
  days_.set();
  days_.reset(0);
  months_.set();
  months_.reset(0);
  weekdays_.set();
}

Result<CronSchedule> CronSchedule::Parse(std::string_view text) {
  const std::string quoted = "cron \"" + std::string(text) + "\": ";
  if (!text.empty() && text[0] == '@' && Expand(text) == text) {
    return Status::Invalid(quoted +
                           "unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly, or "
                           "five fields (minute hour day-of-month month day-of-week)");
  }
  const std::string expanded = Expand(text);
  std::vector<std::string> fields;
  size_t i = 0;
  while (i < expanded.size()) {
    while (i < expanded.size() && (expanded[i] == ' ' || expanded[i] == '\t')) ++i;
    size_t j = i;
    while (j < expanded.size() && expanded[j] != ' ' && expanded[j] != '\t') ++j;
    if (j > i) fields.push_back(expanded.substr(i, j - i));
    i = j;
  }
  if (fields.size() != 5) {
    return Status::Invalid(quoted +
                           "expected 5 fields (minute hour day-of-month month day-of-week), got " +
                           std::to_string(fields.size()));
  }
  CronSchedule c;
  c.text_ = std::string(text);
  std::vector<bool> bits[5];
  for (int f = 0; f < 5; ++f) {
    Status s = ParseField(kFields[f], fields[f], &bits[f]);
    if (!s.ok()) return Status::Invalid(quoted + kFields[f].name + ": " + s.message());
  }
  for (int v = 0; v < 60; ++v) c.minutes_[v] = bits[0][v];
  for (int v = 0; v < 24; ++v) c.hours_[v] = bits[1][v];
  for (int v = 0; v < 32; ++v) c.days_[v] = bits[2][v];
  for (int v = 0; v < 13; ++v) c.months_[v] = bits[3][v];
  for (int v = 0; v < 7; ++v) c.weekdays_[v] = bits[4][v] || (v == 0 && bits[4][7]);
  c.days_star_ = fields[2][0] == '*';
  c.weekdays_star_ = fields[4][0] == '*';
  // Only day-of-month can make a schedule impossible (31 in a 30-day month).
  if (c.weekdays_star_) {
    static const int kMaxDay[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool possible = false;
    for (int m = 1; m <= 12; ++m) {
      for (int d = 1; d <= kMaxDay[m]; ++d) possible = possible || (c.months_[m] && c.days_[d]);
    }
    if (!possible) {
      return Status::Invalid(quoted + "day-of-month: no month of the schedule has such a day");
    }
  }
  return c;
}

bool CronSchedule::DayMatches(int year, int month, int day) const {
  if (!months_[month]) return false;
  const int wd = static_cast<int>(date::weekday{
      date::sys_days{date::year{year} / date::month(static_cast<unsigned>(month)) /
                     date::day(static_cast<unsigned>(
                         day))}}.c_encoding());
  if (!days_star_ && !weekdays_star_) return days_[day] || weekdays_[wd];
  return days_[day] && weekdays_[wd];
}

bool CronSchedule::Matches(int year, int month, int day, int hour, int minute) const {
  return DayMatches(year, month, day) && hours_[hour] && minutes_[minute];
}

std::optional<int64_t> CronSchedule::NextLocal(int64_t local_s) const {
  const int64_t minute = FloorDiv(local_s + 59, 60);  // rounded up
  int64_t day = FloorDiv(minute, 1440);
  int from = static_cast<int>(minute - day * 1440);  // minute of the day
  for (const int64_t end = day + kSearchDays; day < end; ++day, from = 0) {
    const date::year_month_day ymd = CivilOf(day);
    if (!DayMatches(static_cast<int>(ymd.year()), static_cast<int>(unsigned(ymd.month())),
                    static_cast<int>(unsigned(ymd.day())))) {
      continue;
    }
    for (int h = from / 60; h < 24; ++h) {
      if (!hours_[h]) continue;
      for (int m = h == from / 60 ? from % 60 : 0; m < 60; ++m) {
        if (minutes_[m]) return day * kDay + h * 3600 + m * 60;
      }
    }
  }
  return std::nullopt;
}

// ---- windows ----

const char* WindowKindName(SyncWindow::Kind k) { return k == SyncWindow::kDeny ? "deny" : "allow"; }

Status CheckTimeZone(const std::string& name) { return Zone::Find(name).status(); }

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher: on a mismatch, let the last `*` absorb one more char.
  size_t p = 0, t = 0, star = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool WindowApplies(const SyncWindow& w, const std::string& service, const std::string& machine) {
  auto any = [](const std::vector<std::string>& patterns, const std::string& name) {
    if (patterns.empty()) return true;
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return GlobMatch(p, name); });
  };
  return any(w.services, service) && any(w.machines, machine);
}

std::optional<WindowInterval> OpenIntervalAt(const SyncWindow& window, int64_t t_s) {
  auto zone = Zone::Find(window.time_zone);
  if (!zone.ok()) return std::nullopt;
  return IntervalAt(window, *zone, t_s);
}

std::vector<WindowInterval> NextTransitions(const SyncWindow& window, int64_t now_s, int n) {
  std::vector<WindowInterval> out;
  auto zone = Zone::Find(window.time_zone);
  if (!zone.ok()) return out;
  int64_t from = now_s;
  if (auto current = IntervalAt(window, *zone, now_s)) {
    out.push_back(*current);
    from = current->close_s;
  }
  while (static_cast<int>(out.size()) < n && (out.empty() || out.back().close_s != 0)) {
    std::optional<int64_t> open = FirstOpeningFrom(window, *zone, from);
    if (!open) break;
    out.push_back({*open, CloseOf(window, *zone, *open)});
    from = out.back().close_s;
  }
  if (static_cast<int>(out.size()) > n) out.resize(std::max(n, 0));
  return out;
}

std::string FormatWindowTime(int64_t t_s, const std::string& time_zone, int64_t now_s) {
  auto found = Zone::Find(time_zone);
  const std::string shown = found.ok() ? time_zone : "UTC";
  const Zone zone = found.ok() ? *found : *Zone::Find("UTC");
  const int64_t local = zone.ToLocal(t_s);
  const int64_t day = FloorDiv(local, kDay);
  const int64_t secs = local - day * kDay;
  char buf[64];
  std::string out;
  if (day != FloorDiv(zone.ToLocal(now_s), kDay)) {
    const date::year_month_day ymd = CivilOf(day);
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u ", static_cast<int>(ymd.year()),
                  unsigned(ymd.month()), unsigned(ymd.day()));
    out = buf;
  }
  std::snprintf(buf, sizeof(buf), "%02d:%02d", static_cast<int>(secs / 3600),
                static_cast<int>(secs % 3600 / 60));
  out += buf;
  if (secs % 60 != 0) {
    std::snprintf(buf, sizeof(buf), ":%02d", static_cast<int>(secs % 60));
    out += buf;
  }
  return out + " " + shown;
}

WindowVerdict Evaluate(const std::vector<SyncWindow>& windows, int64_t now_s,
                       const std::string& service, const std::string& machine) {
  struct Governing {
    const SyncWindow* window;
    Zone zone;
  };
  std::vector<Governing> allows, denies;
  WindowVerdict v;
  for (const SyncWindow& w : windows) {
    if (!WindowApplies(w, service, machine)) continue;
    auto zone = Zone::Find(w.time_zone);
    if (!zone.ok()) {  // Fails closed; the loader refuses such windows.
      v.allowed = false;
      v.blocking = w.name;
      v.reason = "window " + w.name + ": " + zone.status().message();
      v.overridable = w.manual_override;
      return v;
    }
    (w.kind == SyncWindow::kAllow ? allows : denies).push_back({&w, *zone});
  }

  // Moves t past every deny interval and to the next allow opening until
  // both rules agree. `decider` is the window that set t last.
  int64_t t = now_s;
  const SyncWindow* blocker = nullptr;  // the window blocking at now_s
  const SyncWindow* decider = nullptr;
  bool never = false;
  for (int round = 0; round < 64 && !never; ++round) {
    bool moved = false;
    for (const Governing& d : denies) {
      std::optional<WindowInterval> in = IntervalAt(*d.window, d.zone, t);
      if (!in) continue;
      if (t == now_s && blocker == nullptr) blocker = d.window;
      decider = d.window;
      never = in->close_s == 0;
      t = in->close_s;
      moved = true;
      if (never) break;
    }
    if (never || allows.empty()) {
      if (!moved) break;
      continue;
    }
    bool open = false;
    std::optional<int64_t> next;
    const SyncWindow* next_window = nullptr;
    for (const Governing& a : allows) {
      if (IntervalAt(*a.window, a.zone, t)) {
        open = true;
        break;
      }
      std::optional<int64_t> o = FirstOpeningFrom(*a.window, a.zone, t);
      if (o && (!next || *o < *next)) {
        next = o;
        next_window = a.window;
      }
    }
    if (!open) {
      if (t == now_s) {
        blocker = next_window != nullptr ? next_window : allows[0].window;
      }
      decider = next_window != nullptr ? next_window : allows[0].window;
      never = !next;
      if (next) t = *next;
      moved = true;
    }
    if (!moved) break;
  }
  if (t == now_s && !never) return WindowVerdict{};

  v.allowed = false;
  v.blocking = blocker->name;
  // Overriding must lift every deny window open now and stand in for a
  // closed allow window.
  bool allow_open = allows.empty();
  bool allow_override = false;
  for (const Governing& a : allows) {
    allow_open = allow_open || IntervalAt(*a.window, a.zone, now_s).has_value();
    allow_override = allow_override || a.window->manual_override;
  }
  v.overridable = allow_open || allow_override;
  for (const Governing& d : denies) {
    if (!d.window->manual_override && IntervalAt(*d.window, d.zone, now_s)) v.overridable = false;
  }
  v.opens_at_s = never ? 0 : t;
  const bool deny_now = blocker->kind == SyncWindow::kDeny && blocker != decider;
  std::string when = never ? (decider->kind == SyncWindow::kDeny ? "does not end" : "never opens")
                           : (decider->kind == SyncWindow::kDeny ? "ends " : "opens ") +
                                 FormatWindowTime(t, decider->time_zone, now_s);
  std::string what = decider->kind == SyncWindow::kDeny ? "in deny window " + decider->name
                                                        : "waiting for window " + decider->name;
  v.reason =
      (deny_now ? "in deny window " + v.blocking + ", then " : "") + what + " (" + when + ")";
  return v;
}

}  // namespace clusterctl::desired_state
