// RedactUrls: credentials in repository URLs never reach a message.
#include "desired-state/redact_url.h"

#include <gtest/gtest.h>

namespace clusterctl::desired_state {
namespace {

TEST(RedactUrlsTest, MasksThePasswordAndKeepsTheUser) {
  EXPECT_EQ(RedactUrls("https://user:s3cret@git.example.com/org/repo.git"),
            "https://user:***@git.example.com/org/repo.git");
  EXPECT_EQ(RedactUrls("http://user:s3cret@127.0.0.1:9/repo.git"),
            "http://user:***@127.0.0.1:9/repo.git");
}

TEST(RedactUrlsTest, MasksATokenInTheUserPartOfHttpUrls) {
  EXPECT_EQ(RedactUrls("https://ghp_abc123@github.com/org/repo.git"),
            "https://***@github.com/org/repo.git");
  EXPECT_EQ(RedactUrls("HTTPS://tok@host/r"), "HTTPS://***@host/r");
}

TEST(RedactUrlsTest, APasswordHoldingAnAtSignIsMaskedWhole) {
  EXPECT_EQ(RedactUrls("https://u:p@ss@host/r"), "https://u:***@host/r");
}

TEST(RedactUrlsTest, LeavesUrlsWithoutCredentialsAlone) {
  for (const char* s :
       {"https://github.com/org/repo.git", "file:///srv/git/cluster.git", "/srv/git/cluster.git",
        "relative/repo", "", "https://host/path?email=a@b.c", "https://host/a@b"}) {
    EXPECT_EQ(RedactUrls(s), s);
  }
}

TEST(RedactUrlsTest, KeepsTheUserOfSshUrlsAndTheScpLikeForm) {
  EXPECT_EQ(RedactUrls("ssh://git@github.com/org/repo.git"), "ssh://git@github.com/org/repo.git");
  EXPECT_EQ(RedactUrls("git@github.com:org/repo.git"), "git@github.com:org/repo.git");
  EXPECT_EQ(RedactUrls("ssh://git:pw@host/r"), "ssh://git:***@host/r");
}

TEST(RedactUrlsTest, RedactsEveryUrlInAMessage) {
  EXPECT_EQ(RedactUrls("cannot fetch 'http://user:s3cret@127.0.0.1:1/repo.git': failed to "
                       "connect to 127.0.0.1 (from https://a:b@c/d too)"),
            "cannot fetch 'http://user:***@127.0.0.1:1/repo.git': failed to "
            "connect to 127.0.0.1 (from https://a:***@c/d too)");
  EXPECT_EQ(RedactUrls("remote https://tok@host"), "remote https://***@host");
}

TEST(RedactUrlsTest, IsIdempotent) {
  const std::string once = RedactUrls("https://user:s3cret@h/r https://tok@h/r");
  EXPECT_EQ(RedactUrls(once), once);
}

}  // namespace
}  // namespace clusterctl::desired_state
