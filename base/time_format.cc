#include "base/time_format.h"

#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>

namespace clusterctl {

namespace {

constexpr int64_t kMsPerDay = 86400000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// The inverse of DaysFromCivil.
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at text[*pos]; false when they are not there.
bool Digits(std::string_view text, size_t* pos, size_t n, int64_t* out) {
  if (*pos + n > text.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

}  // namespace

std::string FormatRfc3339Ms(int64_t ms) {
  if (ms < kMinTimeMs) ms = kMinTimeMs;
  if (ms > kMaxTimeMs) ms = kMaxTimeMs;
  int64_t days = ms / kMsPerDay;
  int64_t rem = ms % kMsPerDay;
  if (rem < 0) {
    rem += kMsPerDay;
    --days;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  const int64_t secs = rem / 1000;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(y), m, d,
                static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                static_cast<int>(secs % 60), static_cast<int>(rem % 1000));
  return buf;
}

namespace {

// ParseRfc3339 without the message around the reason: nullopt and `*why`
// on failure.
std::optional<int64_t> ParseRfc3339Why(std::string_view text, std::string* why) {
  auto Bad = [why](const std::string& reason) -> std::optional<int64_t> {
    *why = reason;
    return std::nullopt;
  };
  size_t pos = 0;
  int64_t year, month, day;
  if (!Digits(text, &pos, 4, &year) || pos >= text.size() || text[pos++] != '-' ||
      !Digits(text, &pos, 2, &month) || pos >= text.size() || text[pos++] != '-' ||
      !Digits(text, &pos, 2, &day)) {
    return Bad("the date must be YYYY-MM-DD");
  }
  if (month < 1 || month > 12) return Bad("month " + std::to_string(month) + " out of range");
  if (day < 1 || day > DaysInMonth(year, static_cast<unsigned>(month))) {
    return Bad("day " + std::to_string(day) + " out of range");
  }
  int64_t ms =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * kMsPerDay;
  if (pos == text.size()) return ms;  // A bare date: midnight UTC.

  char sep = text[pos++];
  if (sep != 'T' && sep != 't' && sep != ' ') {
    return Bad("date and time must be separated by T");
  }
  int64_t hour, minute, second;
  if (!Digits(text, &pos, 2, &hour) || pos >= text.size() || text[pos++] != ':' ||
      !Digits(text, &pos, 2, &minute) || pos >= text.size() || text[pos++] != ':' ||
      !Digits(text, &pos, 2, &second)) {
    return Bad("the time must be HH:MM:SS");
  }
  if (hour > 23) return Bad("hour " + std::to_string(hour) + " out of range");
  if (minute > 59) return Bad("minute " + std::to_string(minute) + " out of range");
  if (second > 60) return Bad("second " + std::to_string(second) + " out of range");
  int64_t frac_ms = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (digits < 3) frac_ms = frac_ms * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return Bad("a '.' must be followed by digits");
    for (size_t i = digits; i < 3; ++i) frac_ms *= 10;
  }
  if (second == 60) {  // A leap second: the last representable instant of :59.
    second = 59;
    frac_ms = 999;
  }
  ms += ((hour * 60 + minute) * 60 + second) * 1000 + frac_ms;

  if (pos >= text.size()) return Bad("missing time zone: add Z for UTC or an offset +HH:MM");
  char zone = text[pos++];
  if (zone == 'Z' || zone == 'z') {
    // UTC.
  } else if (zone == '+' || zone == '-') {
    int64_t oh, om;
    if (!Digits(text, &pos, 2, &oh) || pos >= text.size() || text[pos++] != ':' ||
        !Digits(text, &pos, 2, &om) || oh > 23 || om > 59) {
      return Bad("the offset must be +HH:MM or -HH:MM");
    }
    const int64_t offset_ms = (oh * 60 + om) * 60000;
    ms += zone == '+' ? -offset_ms : offset_ms;
  } else {
    return Bad("unexpected '" + std::string(1, zone) + "' where the time zone belongs");
  }
  if (pos != text.size()) return Bad("unexpected text after the time zone");
  if (ms < kMinTimeMs || ms > kMaxTimeMs) return Bad("outside the years 0000-9999");
  return ms;
}

}  // namespace

Result<int64_t> ParseRfc3339(std::string_view text) {
  std::string why;
  std::optional<int64_t> t = ParseRfc3339Why(text, &why);
  if (t) return *t;
  return Status::Invalid("\"" + std::string(text) + "\" is not an RFC 3339 time (" + why +
                         "); expected e.g. 2026-11-22T10:30:45Z or 2026-11-22T10:30:45.123+01:00");
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("\"" + std::string(text) + "\" is not a duration (" + why +
                           "); expected e.g. 30s, 15m, 2h, 7d or 1h30m");
  };
  if (text.empty()) return bad("empty");
  int64_t total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!IsDigit(text[pos]))
      return bad("expected a number at \"" + std::string(text.substr(pos)) + "\"");
    int64_t n = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return bad("too large");
      n = n * 10 + (text[pos++] - '0');
    }
    size_t unit_start = pos;
    while (pos < text.size() && !IsDigit(text[pos])) ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    int64_t scale;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60 * 1000;
    } else if (unit == "h") {
      scale = 3600 * 1000;
    } else if (unit == "d") {
      scale = kMsPerDay;
    } else if (unit == "w") {
      scale = 7 * kMsPerDay;
    } else if (unit.empty()) {
      return bad("missing unit after " + std::to_string(n));
    } else {
      return bad("unknown unit \"" + std::string(unit) + "\"; use ms, s, m, h, d or w");
    }
    if (n > (std::numeric_limits<int64_t>::max() - total) / scale) return bad("too large");
    total += n * scale;
  }
  return total;
}

Result<int64_t> ParseTimeFlag(std::string_view text, int64_t now_ms) {
  if (text == "now") return now_ms;
  if (!text.empty() && IsDigit(text[0])) {
    // A duration starts with digits and has a unit right after them; a
    // timestamp has a '-' after four digits.
    size_t i = 0;
    while (i < text.size() && IsDigit(text[i])) ++i;
    if (i < text.size() && text[i] != '-') {
      Result<int64_t> d = ParseDurationMs(text);
      if (!d.ok()) return d.status();
      if (*d > now_ms - kMinTimeMs) return kMinTimeMs;  // Before year 0: clamp.
      return now_ms - *d;
    }
  }
  std::string why;
  std::optional<int64_t> t = ParseRfc3339Why(text, &why);
  if (t) return *t;
  return Status::Invalid("\"" + std::string(text) +
                         "\" is neither a relative time (15m, 2h, 7d: that long ago) nor an "
                         "RFC 3339 time (" +
                         why + ")");
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 0) return "-" + FormatDurationMs(-ms);
  char buf[48];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60 * 1000) {
    std::snprintf(buf, sizeof buf, "%lld.%llds", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000 / 100));
  } else if (ms < 3600 * 1000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000),
                  static_cast<long long>(ms / 1000 % 60));
  } else if (ms < kMsPerDay) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3600000),
                  static_cast<long long>(ms / 60000 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(ms / kMsPerDay),
                  static_cast<long long>(ms / 3600000 % 24));
  }
  return buf;
}

}  // namespace clusterctl
