// What clusterd reports about itself (base/process_stats.h), measured on this
// test process and on trees it writes.
#include "base/process_stats.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/harness/temp_dir.h"

namespace clusterctl {
namespace {

ProcessStats Now() {
  auto s = ReadProcessStats();
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : ProcessStats{};
}

TEST(ProcessStatsTest, ReadsPlausibleFiguresOfThisProcess) {
  const ProcessStats s = Now();
  EXPECT_GT(s.rss_bytes, 1 << 20);
  EXPECT_GE(s.open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(s.threads, 1);
  EXPECT_GE(s.cpu_seconds, 0);
}

TEST(ProcessStatsTest, ResidentSetGrowsWhenA64MiBAllocationIsTouched) {
  constexpr size_t kSize = 64 << 20;
  const ProcessStats before = Now();
  char* block = static_cast<char*>(std::malloc(kSize));
  ASSERT_NE(nullptr, block);
  volatile char* p = block;
  for (size_t i = 0; i < kSize; i += 4096) p[i] = static_cast<char>(i >> 12);
  const ProcessStats after = Now();
  EXPECT_GE(after.rss_bytes - before.rss_bytes, 60 << 20)
      << "before " << before.rss_bytes << " after " << after.rss_bytes;
  std::free(block);
}

TEST(ProcessStatsTest, OpenDescriptorsFollowOpenAndClose) {
  const ProcessStats before = Now();
  int fds[3];
  for (int& fd : fds) {
    fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
  }
  EXPECT_EQ(before.open_fds + 3, Now().open_fds);
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(before.open_fds, Now().open_fds);
}

TEST(ProcessStatsTest, ThreadsCountsAStartedThread) {
  const ProcessStats before = Now();
  ProcessStats during;
  std::thread t([&] { during = Now(); });
  t.join();
  EXPECT_EQ(before.threads + 1, during.threads);
}

TEST(ProcessStatsTest, CpuTimeGrowsWhileBurningCpu) {
  const ProcessStats before = Now();
  // Bounded by iterations: about 0.1 s on the development VM.
  volatile uint64_t sink = 0;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 100'000'000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if ((i & 0xffff) == 0) sink = sink + x;
  }
  sink = sink + x;
  const ProcessStats after = Now();
  EXPECT_GT(after.cpu_seconds - before.cpu_seconds, 0.01)
      << "before " << before.cpu_seconds << " after " << after.cpu_seconds;
}

// Content that no filesystem compresses away.
std::string Noise(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (char& c : s) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return s;
}

uint64_t Blocks(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(0, ::lstat(path.c_str(), &st)) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST(DirectoryUsageTest, CountsTheTreeAndDoesNotFollowALinkOutOfIt) {
  testing::TempDir dir, outside;
  testing::WriteFile(dir.Sub("a/one"), Noise(100 << 10, 1));
  testing::WriteFile(dir.Sub("a/b/two"), Noise(1 << 20, 2));
  testing::WriteFile(dir.Sub("three"), "");
  testing::WriteFile(outside.Sub("big"), Noise(8 << 20, 3));
  ASSERT_EQ(0, ::symlink(outside.path().c_str(), dir.Sub("link").c_str()));

  auto u = DirectoryUsage(dir.path());
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(3u, u->files);
  EXPECT_FALSE(u->truncated);
  // What du -sx counts: each file's and directory's allocated blocks.
  const uint64_t expected = Blocks(dir.path()) + Blocks(dir.Sub("a")) + Blocks(dir.Sub("a/b")) +
                            Blocks(dir.Sub("a/one")) + Blocks(dir.Sub("a/b/two")) +
                            Blocks(dir.Sub("three"));
  EXPECT_EQ(expected, u->bytes);
  // And by the sizes written: at least 1.1 MiB, far below the 8 MiB behind the link.
  EXPECT_GE(u->bytes, (1u << 20) + (100u << 10));
  EXPECT_LT(u->bytes, 2u << 20);
}

TEST(DirectoryUsageTest, StopsAfterMaxEntriesAndSaysSo) {
  testing::TempDir dir;
  for (int i = 0; i < 10; ++i) testing::WriteFile(dir.Sub("f" + std::to_string(i)), "x");
  auto u = DirectoryUsage(dir.path(), 4);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->truncated);
  EXPECT_EQ(4u, u->files);
  auto all = DirectoryUsage(dir.path(), 10);
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE(all->truncated);
  EXPECT_EQ(10u, all->files);
}

TEST(DirectoryUsageTest, AMissingPathIsAnErrorNamingIt) {
  testing::TempDir dir;
  auto u = DirectoryUsage(dir.Sub("nope"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(Code::kNotFound, u.status().code());
  EXPECT_EQ(dir.Sub("nope") + ": No such file or directory", u.status().message());
}

TEST(DirectoryUsageTest, AnUnreadableDirectoryIsAnErrorNamingIt) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every directory";
  testing::TempDir dir;
  testing::WriteFile(dir.Sub("locked/f"), "x");
  ASSERT_EQ(0, ::chmod(dir.Sub("locked").c_str(), 0));
  auto u = DirectoryUsage(dir.path());
  ::chmod(dir.Sub("locked").c_str(), 0700);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(Code::kPermission, u.status().code());
  EXPECT_EQ(dir.Sub("locked") + ": Permission denied", u.status().message());
}

}  // namespace
}  // namespace clusterctl
