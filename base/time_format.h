// Time values as clusterctl prints and reads them: milliseconds since the
// Unix epoch (UTC) in memory, RFC 3339 on screen and in JSON, and short
// relative durations ("15m", "2h", "7d") on the command line.
//
// Everything here is a pure function of its arguments: no function reads the
// clock (base/clock.h) unless it is handed `now_ms`, so callers and tests
// decide what "now" is.
//
// Range: times are clamped to the years 0000-9999 that RFC 3339 can spell,
// [kMinTimeMs, kMaxTimeMs].
//
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace clusterctl {

// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in ms since the epoch.
inline constexpr int64_t kMinTimeMs = -62167219200000;
inline constexpr int64_t kMaxTimeMs = 253402300799999;

// "2026-11-22T10:30:45.123Z": UTC, always with milliseconds and "Z".
// Values outside [kMinTimeMs, kMaxTimeMs] are clamped into it.
std::string FormatRfc3339Ms(int64_t ms);

// Parses an RFC 3339 timestamp to ms since the epoch:
//   2026-11-22T10:30:45Z, 2026-11-22T10:30:45.123456Z, 2026-11-22t10:30:45z,
//   2026-11-22 10:30:45+01:00, 2026-11-22T10:30:45.5-07:30
// Fractions beyond milliseconds are truncated; a leap second (:60) is read
// as :59.999. As a convenience a bare date "2026-11-22" means midnight UTC.
// Errors: Code::kInvalid with what is wrong ("month 13 out of range").
Result<int64_t> ParseRfc3339(std::string_view text);

// Parses a duration: one or more <number><unit> groups, units ms, s, m, h,
// d (24 h) and w (7 d): "30s", "15m", "2h", "7d", "1h30m", "500ms".
// Errors: Code::kInvalid for an empty text, a missing or unknown unit, or a
// value that overflows.
Result<int64_t> ParseDurationMs(std::string_view text);

// A --since / --until value: a duration means that long before `now_ms`
// ("15m" = 15 minutes ago), "now" means `now_ms`, anything else must be an
// RFC 3339 timestamp (ParseRfc3339). Errors: Code::kInvalid naming both
// accepted forms and what is wrong with the text as a timestamp, or, for a
// text that starts like a duration, ParseDurationMs's error.
Result<int64_t> ParseTimeFlag(std::string_view text, int64_t now_ms);

// A short human duration: "0ms", "812ms", "4.2s", "3m04s", "2h05m", "3d04h".
// Negative values print with a leading "-".
std::string FormatDurationMs(int64_t ms);

}  // namespace clusterctl
