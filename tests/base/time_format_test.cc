// Time parsing and formatting (base/time_format.h): RFC 3339 with
// offsets and fractions, relative durations, and the exact error texts.
#include "base/time_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace clusterctl {
namespace {

using ::testing::HasSubstr;

// 2026-11-22T10:30:45.123Z
constexpr int64_t kExample = 1795343445123;

TEST(TimeUtilTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339Ms(kExample), "2026-11-22T10:30:45.123Z");
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(951782400000), "2000-02-29T00:00:00.000Z");  // Leap day.
  EXPECT_EQ(FormatRfc3339Ms(kMaxTimeMs), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(kMinTimeMs), "0000-01-01T00:00:00.000Z");
}

TEST(TimeUtilTest, ClampsTimesOutsideTheRepresentableYears) {
  EXPECT_EQ(FormatRfc3339Ms(kMaxTimeMs + 1000), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(INT64_MIN), "0000-01-01T00:00:00.000Z");
}

TEST(TimeUtilTest, ParsesWhatItFormats) {
  for (int64_t t : {int64_t{0}, kExample, int64_t{-1}, int64_t{951782400000}, kMaxTimeMs,
                    kMinTimeMs, int64_t{1234567890999}}) {
    Result<int64_t> back = ParseRfc3339(FormatRfc3339Ms(t));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, t);
  }
}

TEST(TimeUtilTest, ParsesOffsetsFractionsAndSeparators) {
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:30:45Z"), kExample - 123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:30:45.123Z"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:30:45.123999Z"), kExample);  // Truncated.
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:30:45.1Z"), kExample - 23);
  EXPECT_EQ(*ParseRfc3339("2026-11-22t10:30:45.123z"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22 10:30:45.123Z"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T11:30:45.123+01:00"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T03:00:45.123-07:30"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-23T00:30:45.123+14:00"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T10:30:45.123+00:00"), kExample);
  EXPECT_EQ(*ParseRfc3339("2026-11-22"), kExample - (10 * 3600 + 30 * 60 + 45) * 1000 - 123);
  EXPECT_EQ(*ParseRfc3339("2016-12-31T23:59:60Z"), *ParseRfc3339("2016-12-31T23:59:59.999Z"));
  EXPECT_EQ(*ParseRfc3339("2024-02-29T00:00:00Z"), 1709164800000);
}

TEST(TimeUtilTest, RejectsMalformedTimesSayingWhatIsWrong) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"", "the date must be YYYY-MM-DD"},
           {"yesterday", "the date must be YYYY-MM-DD"},
           {"2026-13-01T00:00:00Z", "month 13 out of range"},
           {"2026-02-29T00:00:00Z", "day 29 out of range"},
           {"2026-04-31T00:00:00Z", "day 31 out of range"},
           {"2026-11-22T24:00:00Z", "hour 24 out of range"},
           {"2026-11-22T10:60:00Z", "minute 60 out of range"},
           {"2026-11-22T10:30:61Z", "second 61 out of range"},
           {"2026-11-22T10:30Z", "the time must be HH:MM:SS"},
           {"2026-11-22T10:30:45", "missing time zone"},
           {"2026-11-22T10:30:45.Z", "a '.' must be followed by digits"},
           {"2026-11-22T10:30:45+0100", "the offset must be +HH:MM"},
           {"2026-11-22T10:30:45Zjunk", "unexpected text after the time zone"},
           {"2026-11-22X10:30:45Z", "date and time must be separated by T"},
       }) {
    Result<int64_t> r = ParseRfc3339(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), Code::kInvalid);
    EXPECT_THAT(r.status().message(), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr("expected e.g. 2026-11-22T10:30:45Z")) << c.text;
  }
}

TEST(TimeUtilTest, ParsesDurations) {
  EXPECT_EQ(*ParseDurationMs("30s"), 30000);
  EXPECT_EQ(*ParseDurationMs("15m"), 15 * 60000);
  EXPECT_EQ(*ParseDurationMs("2h"), 2 * 3600000);
  EXPECT_EQ(*ParseDurationMs("7d"), 7 * 86400000LL);
  EXPECT_EQ(*ParseDurationMs("2w"), 14 * 86400000LL);
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("1h30m"), 90 * 60000);
  EXPECT_EQ(*ParseDurationMs("0s"), 0);
}

TEST(TimeUtilTest, RejectsBadDurations) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {"15", "missing unit after 15"},
           {"15x", "unknown unit \"x\""},
           {"m15", "expected a number at \"m15\""},
           {"-5m", "expected a number"},
           {"99999999999999999999d", "too large"},
           {"9999999999999999d", "too large"},
       }) {
    Result<int64_t> r = ParseDurationMs(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr("expected e.g. 30s, 15m, 2h, 7d")) << c.text;
  }
}

TEST(TimeUtilTest, TimeFlagsAreRelativeToTheGivenNow) {
  EXPECT_EQ(*ParseTimeFlag("15m", kExample), kExample - 15 * 60000);
  EXPECT_EQ(*ParseTimeFlag("7d", kExample), kExample - 7 * 86400000LL);
  EXPECT_EQ(*ParseTimeFlag("now", kExample), kExample);
  EXPECT_EQ(*ParseTimeFlag("2026-11-22T10:30:45.123Z", 0), kExample);
  EXPECT_EQ(*ParseTimeFlag("2026-11-22", 0), *ParseRfc3339("2026-11-22"));
  // Far enough back to leave the representable years: clamped, not wrapped.
  EXPECT_EQ(*ParseTimeFlag("99999999d", kExample), kMinTimeMs);
}

TEST(TimeUtilTest, BadTimeFlagsNameBothForms) {
  for (const char* text : {"yesterday", "15", "2h ago", "2026-11-22T10:30"}) {
    Result<int64_t> r = ParseTimeFlag(text, kExample);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kInvalid);
    EXPECT_THAT(r.status().message(), HasSubstr(std::string("\"") + text + "\"")) << text;
  }
  EXPECT_EQ(ParseTimeFlag("yesterday", kExample).status().message(),
            "\"yesterday\" is neither a relative time (15m, 2h, 7d: that long ago) nor an RFC "
            "3339 time (the date must be YYYY-MM-DD)");
  EXPECT_THAT(ParseTimeFlag("2026-11-22T10:30", kExample).status().message(),
              HasSubstr("(the time must be HH:MM:SS)"));
  EXPECT_THAT(ParseTimeFlag("15x", kExample).status().message(), HasSubstr("unknown unit"));
}

TEST(TimeUtilTest, FormatsDurationsShortly) {
  EXPECT_EQ(FormatDurationMs(0), "0ms");
  EXPECT_EQ(FormatDurationMs(812), "812ms");
  EXPECT_EQ(FormatDurationMs(4200), "4.2s");
  EXPECT_EQ(FormatDurationMs(59999), "59.9s");
  EXPECT_EQ(FormatDurationMs(184000), "3m04s");
  EXPECT_EQ(FormatDurationMs(7500000), "2h05m");
  EXPECT_EQ(FormatDurationMs(3 * 86400000LL + 4 * 3600000), "3d04h");
  EXPECT_EQ(FormatDurationMs(-812), "-812ms");
}

}  // namespace
}  // namespace clusterctl
