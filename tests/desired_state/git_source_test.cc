// Tests for GitSource against real repositories made with the git CLI (and,
// for trees git refuses to make, with libgit2's object database directly).
#include "desired-state/git_source.h"

#include <arpa/inet.h>
#include <git2.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "desired-state/commit_signature.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

using ::clusterctl::testing::ReadFile;
using ::clusterctl::testing::RunShell;
using ::clusterctl::testing::TempDir;
using ::clusterctl::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kGitEnv[] =
    "GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 "
    "GIT_AUTHOR_NAME='Ada Lovelace' GIT_AUTHOR_EMAIL=ada@example.com "
    "GIT_COMMITTER_NAME='Ada Lovelace' GIT_COMMITTER_EMAIL=ada@example.com ";

// Runs `git <args>` in `dir`; fails the test when git fails. Returns the
// output without its trailing newline.
std::string Git(const std::string& dir, const std::string& args) {
  std::string out;
  int rc =
      RunShell("cd '" + dir + "' && " + kGitEnv + "git -c init.defaultBranch=main " + args, &out);
  EXPECT_EQ(rc, 0) << "git " << args << " in " << dir << ":\n" << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<std::string> Paths(const Snapshot& s) {
  std::vector<std::string> out;
  for (const auto& f : s.files) out.push_back(f.path);
  return out;
}

std::map<std::string, std::string> Contents(const Snapshot& s) {
  std::map<std::string, std::string> out;
  for (const auto& f : s.files) out[f.path] = f.content;
  return out;
}

std::vector<std::string> Messages(const Snapshot& s) {
  std::vector<std::string> out;
  for (const auto& d : s.problems.Sorted()) out.push_back(d.message);
  return out;
}

class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = tmp_.Sub("work");
    std::filesystem::create_directories(work_);
    Git(work_, "init -q");
  }

  // Writes `files` into the work tree, commits everything, returns the SHA.
  std::string Commit(const std::map<std::string, std::string>& files,
                     const std::string& message = "change") {
    for (const auto& [path, content] : files) WriteFile(work_ + "/" + path, content);
    Git(work_, "add -A");
    Git(work_, "commit -q --allow-empty -m '" + message + "'");
    return Git(work_, "rev-parse HEAD");
  }

  // A bare copy of the work repository, pushed to as the "origin" remote.
  std::string MakeOrigin() {
    std::string bare = tmp_.Sub("origin.git");
    Git(tmp_.path(), "clone -q --bare work origin.git");
    Git(work_, "remote add origin '" + bare + "'");
    return bare;
  }

  Result<std::unique_ptr<GitSource>> OpenLocal(const std::string& repo, SourceLimits limits = {}) {
    GitSource::Options o;
    o.repo = repo;
    o.limits = limits;
    return GitSource::Open(o);
  }

  // Options for a remote `url` cloned into the test's cache directory.
  GitSource::Options Remote(const std::string& url, int fetch_timeout_seconds = 60,
                            bool defer_clone = false) {
    GitSource::Options o;
    o.repo = url;
    o.cache_dir = tmp_.Sub("cache");
    o.fetch_timeout_seconds = fetch_timeout_seconds;
    o.defer_clone = defer_clone;
    return o;
  }

  std::unique_ptr<GitSource> MustOpen(const GitSource::Options& o) {
    auto r = GitSource::Open(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  std::unique_ptr<GitSource> MustOpenLocal(SourceLimits limits = {}) {
    auto r = OpenLocal(work_, limits);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  TempDir tmp_;
  std::string work_;
};

// ---------------------------------------------------------------------------
// Local repositories.

TEST_F(GitSourceTest, ReadsYamlFilesAtTheBranchHead) {
  std::string sha = Commit({
      {"cluster.yaml", "kind: Cluster\n"},
      {"machines/a.yml", "kind: Machine\n"},
      {"services/deep/nested/b.yaml", "kind: Service\nspec: {}\n"},
      {"README.md", "# readme\n"},
      {"services/notes.txt", "not yaml\n"},
      {"services/c.yaml.bak", "not yaml either\n"},
  });
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, sha);
  EXPECT_THAT(Paths(*snap),
              ElementsAre("cluster.yaml", "machines/a.yml", "services/deep/nested/b.yaml"));
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "kind: Cluster\n");
  EXPECT_EQ(Contents(*snap)["machines/a.yml"], "kind: Machine\n");
  EXPECT_EQ(Contents(*snap)["services/deep/nested/b.yaml"], "kind: Service\nspec: {}\n");
  EXPECT_TRUE(snap->problems.empty()) << snap->problems.ToString();
  EXPECT_TRUE(snap->warnings.empty());
}

TEST_F(GitSourceTest, SkipsHiddenDirectoriesAndHiddenFiles) {
  Commit({
      {"cluster.yaml", "a: 1\n"},
      {".github/workflows/ci.yaml", "on: push\n"},
      {".hidden.yaml", "b: 2\n"},
      {"services/.secret/x.yaml", "c: 3\n"},
      {"services/.y.yml", "d: 4\n"},
      {"services/ok.yaml", "e: 5\n"},
  });
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml", "services/ok.yaml"));
  EXPECT_TRUE(snap->problems.empty()) << snap->problems.ToString();
}

TEST_F(GitSourceTest, ResolvesTheCommitAuthorMessageAndTime) {
  WriteFile(work_ + "/cluster.yaml", "a: 1\n");
  Git(work_, "add -A");
  // Revision::time is the committer date, not the author date.
  ASSERT_EQ(RunShell("cd '" + work_ + "' && " + kGitEnv +
                     "GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000100 "
                     "git commit -q -m 'First line' -m 'Body line.'"),
            0);
  std::string sha = Git(work_, "rev-parse HEAD");

  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto rev = source->Resolve("");
  ASSERT_TRUE(rev.ok()) << rev.status().ToString();
  EXPECT_EQ(rev->commit, sha);
  EXPECT_EQ(rev->commit.size(), 40u);
  EXPECT_EQ(rev->author, "Ada Lovelace <ada@example.com>");
  EXPECT_EQ(rev->message, "First line\n\nBody line.\n");
  EXPECT_EQ(rev->time, 1700000100);
}

TEST_F(GitSourceTest, ReadsFilesAtATag) {
  Commit({{"cluster.yaml", "version: 1\n"}});
  Git(work_, "tag v1");
  Git(work_, "tag -a v1-annotated -m 'release 1'");
  std::string v2 = Commit({{"cluster.yaml", "version: 2\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  for (const char* tag : {"v1", "v1-annotated", "refs/tags/v1"}) {
    auto snap = source->Read(tag);
    ASSERT_TRUE(snap.ok()) << tag << ": " << snap.status().ToString();
    EXPECT_EQ(Contents(*snap)["cluster.yaml"], "version: 1\n") << tag;
    EXPECT_NE(snap->revision.commit, v2) << tag;
  }
  auto head = source->Read("");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(Contents(*head)["cluster.yaml"], "version: 2\n");
}

TEST_F(GitSourceTest, ReadsFilesAtAFullSha) {
  std::string v1 = Commit({{"cluster.yaml", "version: 1\n"}});
  Commit({{"cluster.yaml", "version: 2\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read(v1);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, v1);
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "version: 1\n");
}

TEST_F(GitSourceTest, ReadsFilesAtAnAbbreviatedSha) {
  std::string v1 = Commit({{"cluster.yaml", "version: 1\n"}});
  Commit({{"cluster.yaml", "version: 2\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read(v1.substr(0, 10));
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, v1);
  EXPECT_EQ(snap->revision.Short(), v1.substr(0, 7));
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "version: 1\n");
}

TEST_F(GitSourceTest, ReadsTheConfiguredBranch) {
  Commit({{"cluster.yaml", "branch: main\n"}});
  Git(work_, "checkout -q -b staging");
  Commit({{"cluster.yaml", "branch: staging\n"}});
  Git(work_, "checkout -q main");
  GitSource::Options o;
  o.repo = work_;
  o.branch = "staging";
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "branch: staging\n");
}

TEST_F(GitSourceTest, ReadsABareRepository) {
  Commit({{"cluster.yaml", "bare: true\n"}});
  std::string bare = MakeOrigin();
  auto r = OpenLocal(bare);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->git_dir(), bare);
  EXPECT_TRUE((*r)->Fetch().ok());  // A no-op for local repositories.
  auto snap = (*r)->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml"));
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "bare: true\n");
}

TEST_F(GitSourceTest, GitDirOfAWorkTreeIsItsDotGit) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->git_dir(), work_ + "/.git");
}

TEST_F(GitSourceTest, UnknownRevisionIsNotFound) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto rev = source->Resolve("no-such-tag");
  ASSERT_FALSE(rev.ok());
  EXPECT_EQ(rev.status().code(), Code::kNotFound);
  EXPECT_THAT(rev.status().message(), HasSubstr("\"no-such-tag\""));
  EXPECT_THAT(rev.status().message(), HasSubstr("branch \"main\""));
  EXPECT_THAT(rev.status().message(), HasSubstr("; "));  // A hint follows.

  auto snap = source->Read("0123456789abcdef0123456789abcdef01234567");
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), Code::kNotFound);
}

// Names containing "-g" take a separate path (see SafeForRevparse).
TEST_F(GitSourceTest, ResolvesNamesWithDashGAndDescribeOutput) {
  Commit({{"cluster.yaml", "v: 1\n"}});
  Git(work_, "tag v1");
  std::string head = Commit({{"cluster.yaml", "v: 2\n"}});
  Git(work_, "branch feature-gpu");
  std::string described = Git(work_, "describe --tags --long");
  ASSERT_THAT(described, StartsWith("v1-1-g"));
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  for (const std::string& rev : {std::string("feature-gpu"), std::string("feature-gpu~0"),
                                 described, std::string("heads/feature-gpu")}) {
    auto r = source->Resolve(rev);
    ASSERT_TRUE(r.ok()) << rev << ": " << r.status().ToString();
    EXPECT_EQ(r->commit, head) << rev;
  }
  for (const std::string& rev :
       {std::string("no-gpu"), std::string("no-gpu~1"), std::string("x-gz")}) {
    auto r = source->Resolve(rev);
    ASSERT_FALSE(r.ok()) << rev;
    EXPECT_EQ(r.status().code(), Code::kNotFound) << rev;
    EXPECT_THAT(r.status().message(), HasSubstr("\"" + rev + "\"")) << rev;
  }
}

TEST_F(GitSourceTest, MissingBranchIsNotFound) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  GitSource::Options o;
  o.repo = work_;
  o.branch = "production";
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), Code::kNotFound);
  EXPECT_THAT(snap.status().message(), HasSubstr("branch \"production\""));
}

TEST_F(GitSourceTest, InvalidBranchNameIsRejectedAtOpen) {
  GitSource::Options o;
  o.repo = work_;
  o.branch = "bad..name";
  auto r = GitSource::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
}

TEST_F(GitSourceTest, OpeningAMissingPathIsNotFound) {
  auto r = OpenLocal(tmp_.Sub("nowhere"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(),
              StartsWith("opening repository \"" + tmp_.Sub("nowhere") + "\": "));
}

TEST_F(GitSourceTest, DoesNotSearchParentDirectoriesForARepository) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  std::filesystem::create_directories(work_ + "/machines");
  WriteFile(work_ + "/machines/x.yaml", "a: 1\n");
  auto r = OpenLocal(work_ + "/machines");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST_F(GitSourceTest, IsDescendantFollowsHistory) {
  std::string a = Commit({{"cluster.yaml", "v: 1\n"}});
  std::string b = Commit({{"cluster.yaml", "v: 2\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto forward = source->IsDescendant(b, a);
  ASSERT_TRUE(forward.ok()) << forward.status().ToString();
  EXPECT_TRUE(*forward);
  auto backward = source->IsDescendant(a, b);
  ASSERT_TRUE(backward.ok());
  EXPECT_FALSE(*backward);
  auto same = source->IsDescendant(a, a);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(*same);
  auto missing = source->IsDescendant(b, "0123456789abcdef0123456789abcdef01234567");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

// ---------------------------------------------------------------------------
// Remote URLs.

TEST(IsRemoteUrlTest, RecognisesUrlsAndScpSyntax) {
  EXPECT_TRUE(IsRemoteUrl("file:///srv/git/cluster.git"));
  EXPECT_TRUE(IsRemoteUrl("https://github.com/acme/cluster.git"));
  EXPECT_TRUE(IsRemoteUrl("ssh://git@host:2222/acme/cluster.git"));
  EXPECT_TRUE(IsRemoteUrl("git@github.com:acme/cluster.git"));
  EXPECT_FALSE(IsRemoteUrl("/srv/git/cluster.git"));
  EXPECT_FALSE(IsRemoteUrl("relative/dir"));
  EXPECT_FALSE(IsRemoteUrl("./a@b:c"));
  EXPECT_FALSE(IsRemoteUrl("/srv/user@host:x"));
  EXPECT_FALSE(IsRemoteUrl("@host:path"));
}

TEST_F(GitSourceTest, RemoteUrlWithoutCacheDirIsInvalid) {
  GitSource::Options o;
  o.repo = "file://" + tmp_.Sub("origin.git");
  auto r = GitSource::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
}

TEST_F(GitSourceTest, UnreachableRemoteFailsAndLeavesNoCache) {
  GitSource::Options o;
  o.repo = "file://" + tmp_.Sub("no-such-origin.git");
  o.cache_dir = tmp_.Sub("cache");
  auto r = GitSource::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(o.repo));
  ASSERT_TRUE(std::filesystem::exists(o.cache_dir));
  EXPECT_TRUE(std::filesystem::is_empty(o.cache_dir));
}

// A git remote on 127.0.0.1 that accepts connections and never answers.
class SilentRemote {
 public:
  SilentRemote() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
  }
  ~SilentRemote() {
    for (int c : clients_) close(c);
    close(fd_);
  }
  std::string url() const { return "git://127.0.0.1:" + std::to_string(port_) + "/cluster.git"; }
  // Waits (at most `ms`) for a client to connect; keeps it open, silent.
  bool Accept(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return false;
    const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return false;
    clients_.push_back(c);
    return true;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
};

// Issue 10 item 4: a remote that accepts and never answers held the fetch
// (and clusterd) forever.
TEST_F(GitSourceTest, ACloneFromARemoteThatNeverAnswersTimesOutAndLeavesNoCache) {
  SilentRemote remote;
  GitSource::Options o = Remote(remote.url(), 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = GitSource::Open(o);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("timed out after 1 s"));
  EXPECT_LT(took, std::chrono::seconds(20));
  EXPECT_TRUE(std::filesystem::is_empty(o.cache_dir));
}

TEST_F(GitSourceTest, ADeferredCloneOpensAtOnceAndTheFirstFetchClones) {
  std::string v1 = Commit({{"cluster.yaml", "v: 1\n"}});
  std::string bare = MakeOrigin();
  GitSource::Options o = Remote("file://" + bare, 60, /*defer_clone=*/true);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->cloned());
  EXPECT_TRUE(std::filesystem::is_empty(o.cache_dir));
  auto early = source->Resolve("");
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), Code::kUnavailable);
  EXPECT_THAT(early.status().message(), HasSubstr("not cloned yet"));
  ASSERT_TRUE(source->Fetch().ok());
  EXPECT_TRUE(source->cloned());
  auto head = source->Resolve("");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->commit, v1);
  EXPECT_EQ(source->git_dir(),
            o.cache_dir + "/" +
                std::filesystem::directory_iterator(o.cache_dir)->path().filename().string());
}

TEST_F(GitSourceTest, CancelEndsAFetchInFlightAtOnce) {
  SilentRemote remote;
  GitSource::Options o = Remote(remote.url(), 600, /*defer_clone=*/true);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  Status fetched;
  std::thread fetch([&] { fetched = source->Fetch(); });
  const bool connected = remote.Accept(30000);  // The fetch is in flight.
  const auto t0 = std::chrono::steady_clock::now();
  source->Cancel();
  fetch.join();
  ASSERT_TRUE(connected);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_FALSE(fetched.ok());
  EXPECT_THAT(fetched.message(), HasSubstr("cancelled"));
  // Cancel is for shutdown: later fetches end at once too.
  EXPECT_FALSE(source->Fetch().ok());
}

TEST_F(GitSourceTest, ClonesARemoteUrlIntoTheCacheAndSeesNewPushesAfterFetch) {
  std::string v1 = Commit({{"cluster.yaml", "v: 1\n"}});
  std::string bare = MakeOrigin();
  GitSource::Options o = Remote("file://" + bare);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(source->git_dir(), StartsWith(o.cache_dir + "/repo-"));
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, v1);
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "v: 1\n");

  std::string v2 = Commit({{"cluster.yaml", "v: 2\n"}});
  Git(work_, "push -q origin main");
  auto before = source->Resolve("");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->commit, v1);  // Not fetched yet.

  ASSERT_TRUE(source->Fetch().ok());
  auto after = source->Read("");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->revision.commit, v2);
  EXPECT_EQ(Contents(*after)["cluster.yaml"], "v: 2\n");
  auto ff = source->IsDescendant(v2, v1);
  ASSERT_TRUE(ff.ok()) << ff.status().ToString();
  EXPECT_TRUE(*ff);

  // A second Open reuses the cache without cloning again.
  std::string git_dir = source->git_dir();
  source.reset();
  auto again = MustOpen(o);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->git_dir(), git_dir);
  auto cached = again->Resolve("");
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->commit, v2);
  int repos = 0;
  for (const auto& e : std::filesystem::directory_iterator(o.cache_dir)) {
    (void)e;
    ++repos;
  }
  EXPECT_EQ(repos, 1);
}

TEST_F(GitSourceTest, IgnoresTheUsersGitConfig) {
  Commit({{"cluster.yaml", "v: 1\n"}});
  std::string bare = MakeOrigin();
  // A global config that would send the clone somewhere else entirely.
  std::string home = tmp_.Sub("home");
  WriteFile(home + "/.gitconfig", "[url \"file://" + tmp_.Sub("nowhere") +
                                      "/\"]\n\tinsteadOf = file://" + tmp_.path() + "/\n");
  GitSource::Options o = Remote("file://" + bare);
  // libgit2 reads $HOME when it is initialised, once per process: run the
  // clone in a fresh process (the "threadsafe" style re-executes this test).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("HOME", home.c_str(), 1);
        bool ok = false;
        {
          auto r = GitSource::Open(o);
          ok = r.ok() && (*r)->Resolve("").ok();
          if (!ok) std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
        }
        std::error_code ec;
        std::filesystem::remove_all(tmp_.path(), ec);  // exit() skips ~TempDir.
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");

  // In this process too, every config level outside the repository is off.
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  for (int level : {GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                    GIT_CONFIG_LEVEL_GLOBAL}) {
    git_buf buf = GIT_BUF_INIT;
    ASSERT_EQ(git_libgit2_opts(GIT_OPT_GET_SEARCH_PATH, level, &buf), 0);
    EXPECT_EQ(std::string(buf.ptr != nullptr ? buf.ptr : "", buf.size), "") << level;
    git_buf_dispose(&buf);
  }
}

TEST_F(GitSourceTest, FollowsAForcePushAfterFetch) {
  Commit({{"cluster.yaml", "v: 1\n"}});
  std::string old_head = Commit({{"cluster.yaml", "v: 2\n"}});
  std::string bare = MakeOrigin();
  GitSource::Options o = Remote("file://" + bare);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);

  Git(work_, "reset -q --hard HEAD~1");
  std::string rewritten = Commit({{"cluster.yaml", "v: rewritten\n"}});
  Git(work_, "push -q --force origin main");
  ASSERT_TRUE(source->Fetch().ok());

  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, rewritten);
  EXPECT_EQ(Contents(*snap)["cluster.yaml"], "v: rewritten\n");
  // The old head is still in the cache, but not in the new history.
  auto desc = source->IsDescendant(rewritten, old_head);
  ASSERT_TRUE(desc.ok()) << desc.status().ToString();
  EXPECT_FALSE(*desc);

  // A fresh clone never saw the old head: NotFound.
  GitSource::Options fresh = o;
  fresh.cache_dir = tmp_.Sub("cache2");
  Git(bare, "reflog expire --expire=now --all");
  Git(bare, "gc -q --prune=now");
  auto other = MustOpen(fresh);
  ASSERT_NE(other, nullptr);
  auto gone = other->IsDescendant(rewritten, old_head);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
}

TEST_F(GitSourceTest, FetchFollowsTagsAndPrunesDeletedBranches) {
  Commit({{"cluster.yaml", "v: 1\n"}});
  std::string bare = MakeOrigin();
  Git(work_, "checkout -q -b feature");
  std::string feature = Commit({{"cluster.yaml", "v: feature\n"}});
  Git(work_, "tag release");
  Git(work_, "push -q origin feature release");
  Git(work_, "checkout -q main");

  GitSource::Options o = Remote("file://" + bare);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  auto f = source->Resolve("feature");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->commit, feature);
  auto t = source->Resolve("release");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->commit, feature);

  // Delete the branch and move the tag on the remote.
  std::string moved = Commit({{"cluster.yaml", "v: 3\n"}});
  Git(work_, "tag -f release");
  Git(work_, "push -q origin main :feature");
  Git(work_, "push -q --force origin release");
  ASSERT_TRUE(source->Fetch().ok());

  auto gone = source->Resolve("feature");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
  auto retagged = source->Resolve("release");
  ASSERT_TRUE(retagged.ok()) << retagged.status().ToString();
  EXPECT_EQ(retagged->commit, moved);
}

// Issue 10 item 18: a refused rollback push leaves the commit on a local
// branch for the user to merge; the next fetch pruned that branch.
TEST_F(GitSourceTest, ARollbackBranchWhosePushWasRefusedSurvivesFetchesUntilMerged) {
  std::string v1 = Commit({{"cluster.yaml", "v: 1\n"}});
  Commit({{"cluster.yaml", "v: 2\n"}});
  std::string bare = MakeOrigin();
  GitSource::Options o = Remote("file://" + bare);
  auto source = MustOpen(o);
  ASSERT_NE(source, nullptr);
  // A lock on the branch makes the remote refuse the update, as a protected branch would.
  WriteFile(bare + "/refs/heads/main.lock", "");
  std::string push_error;
  auto rollback = source->CommitTreeOf(v1, "Roll back", "A", "a@example.com", &push_error);
  ASSERT_TRUE(rollback.ok()) << rollback.status().ToString();
  ASSERT_FALSE(push_error.empty());
  std::filesystem::remove(bare + "/refs/heads/main.lock");
  const std::string branch = "clusterctl/rollback-" + rollback->commit.substr(0, 7);
  ASSERT_TRUE(source->Resolve(branch).ok());

  // Someone else pushes meanwhile; two fetches later the branch is still there.
  Commit({{"other.yaml", "x: 1\n"}});
  Git(work_, "push -q origin main");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(source->Fetch().ok());
    auto kept = source->Resolve(branch);
    ASSERT_TRUE(kept.ok()) << kept.status().ToString();
    EXPECT_EQ(kept->commit, rollback->commit);
  }

  // Once the branch holds the rollback commit, the local branch goes.
  Git(source->git_dir(), "push -q '" + bare + "' " + rollback->commit + ":refs/heads/side");
  Git(work_, "fetch -q origin side");
  Git(work_, "merge -q --no-edit FETCH_HEAD");
  Git(work_, "push -q origin main");
  ASSERT_TRUE(source->Fetch().ok());
  ASSERT_TRUE(source->Fetch().ok());
  EXPECT_EQ(source->Resolve(branch).status().code(), Code::kNotFound);
}

// repo.signingKey (issue 15): a commit signed through CommitSigner carries
// an SSHSIG that the in-process verifier and git itself accept.
TEST_F(GitSourceTest, ASignedRollbackCommitVerifiesWithTheAllowedKey) {
  std::string v1 = Commit({{"cluster.yaml", "v: 1\n"}});
  Commit({{"cluster.yaml", "v: 2\n"}});
  TempDir keys;
  ASSERT_EQ(RunShell("ssh-keygen -q -t ed25519 -N '' -C signer -f " + keys.Sub("k")), 0);
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  std::string push_error;
  auto rollback = source->CommitTreeOf(v1, "Roll back", "A", "a@example.com", &push_error,
                                       SshCommitSigner(keys.Sub("k")));
  ASSERT_TRUE(rollback.ok()) << rollback.status().ToString();
  auto data = source->SignatureData(rollback->commit);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  ASSERT_THAT(data->signature, StartsWith("-----BEGIN SSH SIGNATURE-----"));
  auto allowed =
      AllowedSigners::Parse("ops@example.com " + ReadFile(keys.Sub("k.pub")), "allowed_signers");
  ASSERT_TRUE(allowed.ok()) << allowed.status().ToString();
  SignatureCheck check = VerifyCommitSignature(data->signed_data, data->signature, *allowed,
                                               static_cast<int64_t>(std::time(nullptr)));
  EXPECT_EQ(check.verdict, SignatureCheck::kValid) << check.reason;
  EXPECT_EQ(check.signer, "ops@example.com");
  WriteFile(keys.Sub("allowed"), "ops@example.com " + ReadFile(keys.Sub("k.pub")));
  EXPECT_THAT(Git(work_, "-c gpg.ssh.allowedSignersFile=" + keys.Sub("allowed") +
                             " log -1 --format=%G? " + rollback->commit),
              StartsWith("G"));
  EXPECT_EQ(Git(work_, "rev-parse main^{tree}"), Git(work_, "rev-parse " + v1 + "^{tree}"));
}

TEST_F(GitSourceTest, ASignerThatFailsWritesNoCommitAndNamesTheKey) {
  std::string v1 = Commit({{"cluster.yaml", "v: 1\n"}});
  const std::string head = Commit({{"cluster.yaml", "v: 2\n"}});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  std::string push_error;
  auto rollback = source->CommitTreeOf(v1, "Roll back", "A", "a@example.com", &push_error,
                                       SshCommitSigner("/nonexistent/key"));
  ASSERT_FALSE(rollback.ok());
  EXPECT_THAT(rollback.status().message(), HasSubstr("/nonexistent/key"));
  EXPECT_EQ(Git(work_, "rev-parse main"), head);
}

// CommitEdits, the writer of clusterctl stop|start: a file replaced, one
// added, one removed, on top of the head; a moved head is a conflict.
TEST_F(GitSourceTest, CommitEditsChangesFilesOnTopOfTheHead) {
  Commit({{"cluster.yaml", "v: 1\n"}, {"services/a.yaml", "a: 1\n"}, {"old.yaml", "o: 1\n"}});
  const std::string head = Git(work_, "rev-parse main");
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  std::string push_error;
  auto stale = source->CommitEdits("0000000000000000000000000000000000000000",
                                   {{"services/a.yaml", "a: 2\n"}}, "m", "A", "a@example.com", true,
                                   &push_error);
  EXPECT_EQ(stale.status().code(), Code::kConflict);
  auto made = source->CommitEdits(
      head, {{"services/a.yaml", "a: 2\n"}, {"services/new/b.yaml", "b: 1\n"}, {"old.yaml", {}}},
      "Stop a\n\nClusterctl-Command: stop a\n", "A", "a@example.com", true, &push_error);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(Git(work_, "rev-parse main"), made->commit);
  EXPECT_EQ(Git(work_, "rev-parse main^"), head);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml", "services/a.yaml", "services/new/b.yaml"));
  EXPECT_EQ(snap->files[1].content, "a: 2\n");
  // Without push the commit exists but the branch stays.
  auto unpublished = source->CommitEdits(made->commit, {{"services/a.yaml", "a: 3\n"}}, "m", "A",
                                         "a@example.com", false, &push_error);
  ASSERT_TRUE(unpublished.ok()) << unpublished.status().ToString();
  EXPECT_EQ(Git(work_, "rev-parse main"), made->commit);
  EXPECT_EQ(Git(work_, "rev-parse " + unpublished->commit + "^"), made->commit);
}

// ---------------------------------------------------------------------------
// Hostile trees.

TEST_F(GitSourceTest, SymlinkNamedYamlIsADiagnostic) {
  Commit({{"cluster.yaml", "a: 1\n"}, {"README.md", "hi\n"}});
  ASSERT_EQ(RunShell("cd '" + work_ +
                     "' && mkdir -p machines && ln -s ../cluster.yaml machines/x.yaml && "
                     "ln -s README.md readme-link"),
            0);
  Commit({});
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml"));
  auto problems = snap->problems.Sorted();
  ASSERT_EQ(problems.size(), 1u) << snap->problems.ToString();
  EXPECT_EQ(problems[0].where.file, "machines/x.yaml");
  EXPECT_EQ(problems[0].where.line, 0);
  EXPECT_EQ(problems[0].message,
            "symbolic link \"machines/x.yaml\" is not allowed in a desired-state repository");
  EXPECT_EQ(problems[0].hint, "replace it with the file itself");
  EXPECT_THAT(snap->warnings, ElementsAre("symbolic link \"readme-link\" ignored"));
}

TEST_F(GitSourceTest, SubmoduleIsIgnoredWithAWarning) {
  std::string first = Commit({{"cluster.yaml", "a: 1\n"}});
  Git(work_, "update-index --add --cacheinfo 160000," + first + ",vendor/lib");
  Git(work_, "commit -q -m 'add submodule'");
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml"));
  EXPECT_TRUE(snap->problems.empty()) << snap->problems.ToString();
  EXPECT_THAT(snap->warnings, ElementsAre("submodule \"vendor/lib\" ignored"));
}

// Builds raw tree objects, names unchecked, with libgit2's object database.
class RawTreeWriter {
 public:
  explicit RawTreeWriter(const std::string& repo_path) {
    git_libgit2_init();
    EXPECT_EQ(git_repository_open(&repo_, repo_path.c_str()), 0);
    EXPECT_EQ(git_repository_odb(&odb_, repo_), 0);
  }
  ~RawTreeWriter() {
    git_odb_free(odb_);
    git_repository_free(repo_);
    // No git_libgit2_shutdown(): GitSource keeps libgit2 initialised for the
    // whole process and must not see it torn down.
  }

  git_oid Blob(const std::string& content) {
    git_oid oid;
    EXPECT_EQ(git_odb_write(&oid, odb_, content.data(), content.size(), GIT_OBJECT_BLOB), 0);
    return oid;
  }

  // entries: (mode, name, oid), written in the order given.
  git_oid Tree(const std::vector<std::tuple<std::string, std::string, git_oid>>& entries) {
    std::string raw;
    for (const auto& [mode, name, oid] : entries) {
      raw += mode + " " + name;
      raw.push_back('\0');
      raw.append(reinterpret_cast<const char*>(oid.id), GIT_OID_RAWSZ);
    }
    git_oid oid;
    EXPECT_EQ(git_odb_write(&oid, odb_, raw.data(), raw.size(), GIT_OBJECT_TREE), 0);
    return oid;
  }

  static std::string Hex(const git_oid& oid) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &oid);
    return hex;
  }

 private:
  git_repository* repo_ = nullptr;
  git_odb* odb_ = nullptr;
};

TEST_F(GitSourceTest, HostileTreeEntriesAreReportedAndNeverRead) {
  // A file just outside the repository, where "../evil.yaml" would land.
  WriteFile(tmp_.Sub("evil.yaml"), "outside: true\n");
  WriteFile(work_ + "/.git/evil.yaml", "inside-git-dir: true\n");
  std::string tree_hex;
  {
    RawTreeWriter w(work_);
    git_oid ok = w.Blob("kind: Cluster\n");
    git_oid evil = w.Blob("evil: true\n");
    git_oid evil_tree = w.Tree({{"100644", "evil.yaml", evil}});
    git_oid machines = w.Tree({
        {"100644", "m.yaml", ok},
        {"40000", "..", evil_tree},
        {"100644", "..", evil},
    });
    git_oid root = w.Tree({
        {"100644", "cluster.yaml", ok},
        {"40000", "..", evil_tree},
        {"40000", ".", evil_tree},
        {"40000", ".git", evil_tree},
        {"40000", ".GIT", evil_tree},
        {"100644", ".Git", evil},
        {"100644", "a/b.yaml", evil},
        {"100644", "a\\b.yaml", evil},
        {"40000", "machines", machines},
    });
    tree_hex = RawTreeWriter::Hex(root);
  }
  std::string commit = Git(work_, "commit-tree " + tree_hex + " -m hostile");
  Git(work_, "update-ref refs/heads/main " + commit);

  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->revision.commit, commit);
  EXPECT_THAT(Paths(*snap), ElementsAre("cluster.yaml", "machines/m.yaml"));
  for (const auto& f : snap->files) {
    EXPECT_EQ(f.content, "kind: Cluster\n") << f.path;
    EXPECT_EQ(f.path.find(".."), std::string::npos);
  }
  EXPECT_THAT(
      Messages(*snap),
      ::testing::UnorderedElementsAre(
          "unsafe path \".\" in the git tree", "unsafe path \"..\" in the git tree",
          "unsafe path \".GIT\" in the git tree", "unsafe path \".Git\" in the git tree",
          "unsafe path \".git\" in the git tree", "unsafe path \"a/b.yaml\" in the git tree",
          "unsafe path \"a\\\\b.yaml\" in the git tree",
          "unsafe path \"machines/..\" in the git tree"));
  for (const auto& d : snap->problems.Sorted()) {
    EXPECT_EQ(d.hint, "remove the entry from the repository");
  }
  // The files outside were never touched.
  EXPECT_EQ(ReadFile(tmp_.Sub("evil.yaml")), "outside: true\n");
}

TEST_F(GitSourceTest, DuplicateAndMistypedEntriesAreDiagnostics) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  std::string tree_hex;
  {
    RawTreeWriter w(work_);
    git_oid one = w.Blob("one: 1\n");
    git_oid two = w.Blob("two: 2\n");
    git_oid sub = w.Tree({{"100644", "x.yaml", one}});
    tree_hex = RawTreeWriter::Hex(w.Tree({
        {"100644", "dup.yaml", one},
        {"100644", "dup.yaml", two},
        {"100644", "dir.yaml", sub},  // A "file" that is a tree.
        {"40000", "notatree", one},   // A "directory" that is a blob.
        {"100664", "old-mode.yaml", one},
        {"100644", "ok.yaml", two},
    }));
  }
  std::string commit = Git(work_, "commit-tree " + tree_hex + " -m odd");
  Git(work_, "update-ref refs/heads/main " + commit);
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("ok.yaml"));
  EXPECT_THAT(Messages(*snap), ElementsAre("file entry \"dir.yaml\" is a tree, not a blob",
                                           "duplicate entry \"dup.yaml\" in the git tree",
                                           "directory entry \"notatree\" is a blob, not a tree",
                                           "entry \"old-mode.yaml\" has unsupported mode 100664"));
}

// ---------------------------------------------------------------------------
// Limits.

TEST_F(GitSourceTest, FileOverTheSizeLimitIsReportedAndNotRead) {
  Commit({
      {"big.yaml", std::string(2 << 20, 'a')},
      {"small.yaml", "a: 1\n"},
  });
  auto source = MustOpenLocal();
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("small.yaml"));
  auto problems = snap->problems.Sorted();
  ASSERT_EQ(problems.size(), 1u) << snap->problems.ToString();
  EXPECT_EQ(problems[0].where.file, "big.yaml");
  EXPECT_EQ(problems[0].where.line, 0);
  EXPECT_EQ(problems[0].message, "file is 2097152 bytes, over the limit of 1048576 bytes (1 MiB)");
  EXPECT_EQ(problems[0].hint, "split it into smaller files");
}

TEST_F(GitSourceTest, TotalSizeOverTheLimitIsReported) {
  Commit({{"a.yaml", "12345678\n"}, {"b.yaml", "12345678\n"}});
  SourceLimits limits;
  limits.max_total_bytes = 10;
  auto source = MustOpenLocal(limits);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_TRUE(snap->files.empty());
  auto problems = snap->problems.Sorted();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].message, HasSubstr("total 18 bytes, over the limit of 10 bytes"));
}

TEST_F(GitSourceTest, TooManyFilesIsReported) {
  Commit({{"a.yaml", "a: 1\n"}, {"b.yaml", "b: 1\n"}, {"c/d.yml", "d: 1\n"}});
  SourceLimits limits;
  limits.max_files = 2;
  auto source = MustOpenLocal(limits);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_TRUE(snap->files.empty());
  EXPECT_THAT(Messages(*snap),
              ElementsAre(HasSubstr("the revision has 3 YAML files, over the limit of 2")));
}

TEST_F(GitSourceTest, ExponentialTreeStopsAtTheEntryLimit) {
  Commit({{"cluster.yaml", "a: 1\n"}});
  std::string tree_hex;
  {
    // 16 levels of 16 names for the same subtree: 16^16 paths, 17 objects.
    RawTreeWriter w(work_);
    git_oid level = w.Tree({{"100644", "x.yaml", w.Blob("x: 1\n")}});
    for (int depth = 0; depth < 16; ++depth) {
      std::vector<std::tuple<std::string, std::string, git_oid>> entries;
      for (char c = 'a'; c < 'a' + 16; ++c) entries.emplace_back("40000", std::string(1, c), level);
      level = w.Tree(entries);
    }
    tree_hex = RawTreeWriter::Hex(level);
  }
  std::string commit = Git(work_, "commit-tree " + tree_hex + " -m bomb");
  Git(work_, "update-ref refs/heads/main " + commit);
  SourceLimits limits;
  limits.max_entries = 10000;
  auto source = MustOpenLocal(limits);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_TRUE(snap->files.empty());
  EXPECT_THAT(Messages(*snap), ElementsAre(HasSubstr("the git tree has more than 10000 entries")));
}

TEST_F(GitSourceTest, DirectoriesNestedTooDeepAreReported) {
  Commit({{"a/b/c/d.yaml", "d: 1\n"}, {"a/ok.yaml", "ok: 1\n"}});
  SourceLimits limits;
  limits.max_depth = 2;
  auto source = MustOpenLocal(limits);
  ASSERT_NE(source, nullptr);
  auto snap = source->Read("");
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_THAT(Paths(*snap), ElementsAre("a/ok.yaml"));
  EXPECT_THAT(Messages(*snap),
              ElementsAre("directory \"a/b/c\" is nested more than 2 levels deep"));
}

}  // namespace
}  // namespace clusterctl::desired_state
