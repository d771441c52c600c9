// Framing of commands to a persistent shell: the pure parts (request text,
// stream parsing). The real-shell behaviour is in remote_shell_test.cc.
#include "reconcilers/shell_framing.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterctl::reconcilers {
namespace {

const std::string kToken = "0123456789abcdef01234567";

std::string EndLine(uint64_t seq, const std::string& status) {
  return "\n" + kToken + ":" + std::to_string(seq) + (status.empty() ? "\n" : " " + status + "\n");
}

TEST(ShellFramingTest, TheRequestNeverContainsTheWholeMarker) {
  Command c("echo hi", "f() { :; }", true, Purpose::kObserve);
  const std::string text = FrameRequest(c, kToken, 7, true, true);
  EXPECT_EQ(text.find(kToken), std::string::npos) << text;
  EXPECT_NE(text.find("command eval 'f() { :; }'"), std::string::npos) << text;
  EXPECT_NE(text.find("_cc_main </dev/null"), std::string::npos) << text;
}

TEST(ShellFramingTest, UntrustedScriptsRunInAnEvalSubshellWithoutStdin) {
  const std::string text = FrameRequest(Command("exit 3"), kToken, 1, false, false);
  EXPECT_NE(text.find("( eval 'exit 3'\n) </dev/null"), std::string::npos) << text;
  EXPECT_EQ(text.find("command eval"), std::string::npos) << text;
}

TEST(ShellFramingTest, ParsesOutputAndStatusAndKeepsAMissingFinalNewline) {
  StreamParser out(kToken, 3, true, true, 1 << 20);
  out.Feed("no newline" + EndLine(3, "42"));
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.data(), "no newline");
  EXPECT_EQ(out.status(), 42);

  StreamParser err(kToken, 3, false, true, 1 << 20);
  err.Feed("line\n" + EndLine(3, ""));
  ASSERT_TRUE(err.done());
  EXPECT_EQ(err.data(), "line\n");
}

TEST(ShellFramingTest, AForgedMarkerWithAnotherTokenOrSequenceIsOutput) {
  const std::string forged = "\nffffffffffffffffffffffff:3 0\n" + std::string("\n") + kToken +
                             ":30 0\n" + "\n" + kToken + ":3x 0\n";
  StreamParser out(kToken, 3, true, true, 1 << 20);
  out.Feed(forged + EndLine(3, "0"));
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.data(), forged);
  EXPECT_EQ(out.status(), 0);
}

TEST(ShellFramingTest, ByteByByteFeedingGivesTheSameResult) {
  const std::string stream = "rc noise\n\n" + kToken + ":s\n" + "hello\nworld" + EndLine(1, "5");
  StreamParser whole(kToken, 1, true, false, 1 << 20), bytes(kToken, 1, true, false, 1 << 20);
  whole.Feed(stream);
  for (char c : stream) bytes.Feed(std::string(1, c));
  ASSERT_TRUE(whole.done());
  ASSERT_TRUE(bytes.done());
  EXPECT_EQ(whole.data(), "hello\nworld");
  EXPECT_EQ(bytes.data(), whole.data());
  EXPECT_EQ(bytes.status(), 5);
}

TEST(ShellFramingTest, StartUpNoiseBeforeTheSyncMarkerIsSkipped) {
  StreamParser out(kToken, 1, true, false, 1 << 20);
  out.Feed("Welcome from .bashrc\n" + EndLine(1, "0"));  // No sync yet: noise.
  EXPECT_FALSE(out.done());
  out.Feed("\n" + kToken + ":s\n" + "real" + EndLine(1, "0"));
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.data(), "real");
}

TEST(ShellFramingTest, OutputBeyondTheCapIsDrainedAndTheMarkerStillFound) {
  StreamParser out(kToken, 2, true, true, 100);
  for (int i = 0; i < 1000; ++i) out.Feed(std::string(1000, 'a'));
  EXPECT_FALSE(out.done());
  out.Feed(EndLine(2, "0"));
  ASSERT_TRUE(out.done());
  EXPECT_TRUE(out.truncated());
  EXPECT_EQ(out.data(), std::string(100, 'a'));
}

TEST(ShellFramingTest, ANonNumericStatusIsMinusOne) {
  StreamParser out(kToken, 2, true, true, 100);
  out.Feed(EndLine(2, "x"));
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.status(), -1);
}

}  // namespace
}  // namespace clusterctl::reconcilers
