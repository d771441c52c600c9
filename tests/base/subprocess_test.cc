// RunProcess (base/subprocess.h): real programs, no shell in between.
#include "base/subprocess.h"

#include <gtest/gtest.h>

#include <string>

namespace clusterctl {
namespace {

TEST(SubprocessTest, FeedsStdinAndCollectsStdoutAndStderrWithTheExitCode) {
  ProcessOptions o;
  o.input = "hello\n";
  auto r = RunProcess({"/bin/sh", "-c", "cat; echo oops >&2; exit 4"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out, "hello\n");
  EXPECT_EQ(r->err, "oops\n");
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(DescribeExit(*r), "exited 4");
}

// A program that writes as much as it reads: feeding and draining at once
// is what keeps 4 MiB (far past a pipe's buffer) from deadlocking.
TEST(SubprocessTest, LargeInputAndOutputDoNotDeadlockAndOutputIsCapped) {
  ProcessOptions o;
  o.input.assign(4 << 20, 'x');
  o.max_output = 1 << 20;
  auto r = RunProcess({"cat"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out.size(), size_t{1} << 20);
}

TEST(SubprocessTest, AProgramPastItsDeadlineIsKilled) {
  ProcessOptions o;
  o.timeout_ms = 300;
  auto r = RunProcess({"sleep", "30"}, o);
  EXPECT_EQ(r.status().code(), Code::kTimeout);
}

TEST(SubprocessTest, AMissingProgramOrEmptyArgvIsAnError) {
  EXPECT_EQ(RunProcess({"/nonexistent/program"}, {}).status().code(), Code::kUnavailable);
  EXPECT_EQ(RunProcess({}, {}).status().code(), Code::kInvalid);
}

TEST(SubprocessTest, ASignalIsReported) {
  auto r = RunProcess({"/bin/sh", "-c", "kill -TERM $$"}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->signal, 15);
  EXPECT_EQ(DescribeExit(*r), "killed by signal 15");
}

TEST(SubprocessTest, AProgramThatDoesNotReadItsInputStillFinishes) {
  ProcessOptions o;
  o.input.assign(1 << 20, 'x');
  auto r = RunProcess({"true"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
}

}  // namespace
}  // namespace clusterctl
