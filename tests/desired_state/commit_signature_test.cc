// Commit signature verification (commit_signature.h) and the git side of it
// (GitSource::SignatureData, CommitsSince).
//
// Tests in the fixtures WithSshKeygenAndGit and WithSshKeygen NEED the real
// `ssh-keygen` and `git` programs (openssh-client, git; `openssl` for the
// hand-made RSA signatures): keys are generated with ssh-keygen, commits are
// signed by git (gpg.format=ssh), and `ssh-keygen -Y verify` /
// `-Y find-principals` are run on the same inputs as an oracle whose verdict
// must match ours. They skip when a program is missing. The other tests are
// pure.
#include "desired-state/commit_signature.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "desired-state/git_source.h"
#include "tests/harness/git_repo.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::desired_state {
namespace {

using testing::GitRepo;
using testing::ReadFile;
using testing::RunShell;
using testing::TempDir;
using testing::WriteFile;
using V = SignatureCheck;

// 2026-12-07T12:00:00Z: the "now" of every verification, ours and the oracle's.
constexpr int64_t kNow = 1796644800;
constexpr char kNowSsh[] = "20261207120000Z";

// A fixed ed25519 public key for the pure tests.
constexpr char kEd25519Pub[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIND43BtvI8pMr4cFXbwbz0GfPZnKXlIHI+sauJfOpdvA";

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Sh(const std::string& command) {
  std::string out;
  const int rc = RunShell(command, &out);
  EXPECT_EQ(rc, 0) << command << "\n" << out;
  return Trimmed(out);
}

// The bytes of a hex string (as `od -An -v -tx1 | tr -d ' \n'` prints them).
std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

AllowedSigners ParseOrDie(const std::string& text) {
  Result<AllowedSigners> a = AllowedSigners::Parse(text, "allowed_signers");
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return a.ok() ? *a : AllowedSigners();
}

// ---------------------------------------------------------------------------
// Pure: the allowed-signers file.

TEST(AllowedSignersTest, ReadsLinesOptionsCommentsAndBlanks) {
  const std::string text = std::string("# team keys\n\n") + "alice@example.com " + kEd25519Pub +
                           " alice laptop\n" + "  \"bob@example.com,*@ops.example.com\" " +
                           "namespaces=\"git,file\",valid-after=\"20260101Z\"," +
                           "VALID-BEFORE=\"202701010000\" " + kEd25519Pub + "\n";
  AllowedSigners a = ParseOrDie(text);
  ASSERT_EQ(a.entries().size(), 2u);
  EXPECT_EQ(a.entries()[0].principals, "alice@example.com");
  EXPECT_EQ(a.entries()[0].key_type, "ssh-ed25519");
  EXPECT_EQ(a.entries()[0].fingerprint, "SHA256:wCe5/G8M8NwJVOWgiTj6J0KF4vmFBT1Eb1PMM7QMA2c");
  EXPECT_EQ(a.entries()[0].origin, "allowed_signers:3");
  EXPECT_FALSE(a.entries()[0].namespaces.has_value());
  EXPECT_EQ(a.entries()[1].principals, "bob@example.com,*@ops.example.com");
  EXPECT_EQ(a.entries()[1].namespaces, "git,file");
  EXPECT_EQ(a.entries()[1].valid_after_s, 1767225600);   // 2026-01-01T00:00:00Z
  EXPECT_EQ(a.entries()[1].valid_before_s, 1798761600);  // 2027-01-01T00:00:00Z
  EXPECT_TRUE(a.warnings().empty());
}

TEST(AllowedSignersTest, SkipsCertificateAuthoritiesWithAWarning) {
  AllowedSigners a = ParseOrDie(std::string("*@example.com cert-authority ") + kEd25519Pub + "\n");
  EXPECT_TRUE(a.entries().empty());
  ASSERT_EQ(a.warnings().size(), 1u);
  EXPECT_EQ(a.warnings()[0],
            "allowed_signers:1: cert-authority line skipped: SSH certificates are not supported; "
            "list each signer's own key instead");
}

TEST(AllowedSignersTest, ReportsEveryBadLineWithFileAndLine) {
  const std::string key = kEd25519Pub;
  const std::string text = "a@x " + key + "\n" +                              // 1 good
                           "b@x\n" +                                          // 2
                           "c@x frobnicate " + key + "\n" +                   // 3
                           "d@x valid-before=\"2026-01-01\" " + key + "\n" +  // 4
                           "e@x valid-after=\"20270101Z\",valid-before=\"20260101Z\" " + key +
                           "\n" +                                                       // 5
                           "f@x ecdsa-sha2-nistp256 " + key.substr(12) + "\n" +         // 6
                           "g@x ssh-ed25519 not*base64\n" +                             // 7
                           "h@x namespaces=\"git\",namespaces=\"file\" " + key + "\n";  // 8
  Result<AllowedSigners> a = AllowedSigners::Parse(text, "/etc/clusterctl/allowed_signers");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kInvalid);
  const std::string p = "/etc/clusterctl/allowed_signers:";
  EXPECT_EQ(a.status().message(),
            p +
                "2: error: missing key; the format is: principals [options] keytype base64-key "
                "[comment]\n" +
                p +
                "3: error: bad options: unknown option \"frobnicate\"; known options: "
                "cert-authority, namespaces=\"...\", valid-after=\"...\", valid-before=\"...\"\n" +
                p +
                "4: error: bad options: invalid \"valid-before\" time \"2026-01-01\"; write "
                "YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, ending in Z for UTC; known options: "
                "cert-authority, namespaces=\"...\", valid-after=\"...\", valid-before=\"...\"\n" +
                p +
                "5: error: bad options: \"valid-before\" is not after \"valid-after\"; known "
                "options: cert-authority, namespaces=\"...\", valid-after=\"...\", "
                "valid-before=\"...\"\n" +
                p +
                "6: error: the key is a \"ssh-ed25519\" key, but the line says "
                "ecdsa-sha2-nistp256\n" +
                p +
                "7: error: the ssh-ed25519 key is not valid base64; the format is: principals "
                "[options] keytype base64-key [comment]\n" +
                p +
                "8: error: bad options: multiple \"namespaces\" options; known options: "
                "cert-authority, namespaces=\"...\", valid-after=\"...\", valid-before=\"...\"");
}

TEST(AllowedSignersTest, RefusesAFileOverOneMebibyte) {
  Result<AllowedSigners> a =
      AllowedSigners::Parse(std::string(AllowedSigners::kMaxBytes + 1, '#'), "big");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(),
            "big: the allowed signers file is 1048577 bytes, over the limit of 1 MiB");
}

// ---------------------------------------------------------------------------
// Pure: signatures that are not SSH signatures, and hostile ones.

TEST(CommitSignatureTest, EmptySignatureIsUnsigned) {
  for (const char* sig : {"", " \n\t\n"}) {
    SignatureCheck c = VerifyCommitSignature("tree 0\n", sig, AllowedSigners(), kNow);
    EXPECT_EQ(c.verdict, V::kUnsigned);
    EXPECT_EQ(c.reason, "the commit is not signed");
  }
}

TEST(CommitSignatureTest, OpenPgpIsUnsupported) {
  SignatureCheck c =
      VerifyCommitSignature("tree 0\n",
                            "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n=abcd\n"
                            "-----END PGP SIGNATURE-----\n",
                            AllowedSigners(), kNow);
  EXPECT_EQ(c.verdict, V::kUnsupported);
  EXPECT_EQ(c.reason, "OpenPGP signatures are not supported; sign with SSH (gpg.format=ssh)");
  EXPECT_STREQ(VerdictName(c.verdict), "unsupported");
}

TEST(CommitSignatureTest, X509AndUnknownArmorAreUnsupportedAndTextIsMalformed) {
  EXPECT_EQ(VerifyCommitSignature("", "-----BEGIN SIGNED MESSAGE-----\nMIAG\n", {}, kNow).verdict,
            V::kUnsupported);
  SignatureCheck c = VerifyCommitSignature("", "-----BEGIN FOO-----\nx\n", {}, kNow);
  EXPECT_EQ(c.verdict, V::kUnsupported);
  EXPECT_EQ(c.reason,
            "unknown signature format \"-----BEGIN FOO-----\"; sign with SSH (gpg.format=ssh)");
  EXPECT_EQ(VerifyCommitSignature("", "hello", {}, kNow).verdict, V::kMalformed);
}

TEST(CommitSignatureTest, RefusesSignaturesOver64KiB) {
  std::string big = "-----BEGIN SSH SIGNATURE-----\n" + std::string(64 << 10, 'A') +
                    "\n-----END SSH SIGNATURE-----\n";
  SignatureCheck c = VerifyCommitSignature("", big, {}, kNow);
  EXPECT_EQ(c.verdict, V::kMalformed);
  EXPECT_EQ(c.reason,
            "the signature is " + std::to_string(big.size()) + " bytes, over the limit of 64 KiB");
}

std::string Armor(const std::string& blob) {
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  size_t i = 0;
  for (; i + 2 < blob.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(blob[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(blob[i + 1])} << 8) |
                       static_cast<unsigned char>(blob[i + 2]);
    for (int s : {18, 12, 6, 0}) b64 += kB64[(v >> s) & 63];
  }
  if (i + 1 == blob.size()) {
    const uint32_t v = uint32_t{static_cast<unsigned char>(blob[i])} << 16;
    b64 += std::string{kB64[(v >> 18) & 63], kB64[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == blob.size()) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(blob[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(blob[i + 1])} << 8);
    b64 += std::string{kB64[(v >> 18) & 63], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], '='};
  }
  std::string out = "-----BEGIN SSH SIGNATURE-----\n";
  for (size_t at = 0; at < b64.size(); at += 70) out += b64.substr(at, 70) + "\n";
  return out + "-----END SSH SIGNATURE-----\n";
}

std::string SshString(const std::string& s) {
  const auto n = static_cast<uint32_t>(s.size());
  return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)} +
         s;
}

TEST(CommitSignatureTest, HostileBlobsGiveAVerdictNeverACrash) {
  const std::string u32max("\xff\xff\xff\xff", 4);
  const std::vector<std::string> blobs = {
      "",
      "SSHSIG",
      "SSHSIH" + std::string("\0\0\0\1", 4),
      "SSHSIG" + std::string("\0\0\0\2", 4),
      "SSHSIG" + std::string("\0\0\0\1", 4) + u32max,
      "SSHSIG" + std::string("\0\0\0\1", 4) + SshString("x") + u32max,
      "SSHSIG" + std::string("\0\0\0\1", 4) + SshString(SshString("ssh-ed25519") + u32max) +
          SshString("git") + SshString("") + SshString("sha512") + SshString("x"),
      "SSHSIG" + std::string("\0\0\0\1", 4) +
          SshString(SshString("ssh-ed25519") + SshString(std::string(32, 'k'))) + SshString("git") +
          SshString("") + SshString("sha512") +
          SshString(SshString("ssh-ed25519") + SshString(std::string(64, 's'))) + "trailing",
  };
  for (const std::string& blob : blobs) {
    SignatureCheck c = VerifyCommitSignature("data", Armor(blob), {}, kNow);
    EXPECT_NE(c.verdict, V::kValid);
    EXPECT_FALSE(c.reason.empty());
  }
  std::mt19937 rng(42);
  for (int n = 0; n < 2000; ++n) {
    std::string blob = n % 2 == 0 ? "SSHSIG" + std::string("\0\0\0\1", 4) : "";
    const size_t len = rng() % 300;
    for (size_t i = 0; i < len; ++i) blob += static_cast<char>(rng() % 8 == 0 ? 0 : rng());
    EXPECT_NE(VerifyCommitSignature("data", Armor(blob), {}, kNow).verdict, V::kValid);
  }
}

// ---------------------------------------------------------------------------
// With the real ssh-keygen and git.

struct Key {
  std::string name;       // File name in the key directory.
  std::string principal;  // Its line in allowed_signers.
  std::string key_type;
};

const std::vector<Key>& Keys() {
  static const std::vector<Key> keys = {
      {"ed25519", "ed@example.com", "ssh-ed25519"},
      {"ecdsa256", "ec256@example.com", "ecdsa-sha2-nistp256"},
      {"ecdsa384", "ec384@example.com", "ecdsa-sha2-nistp384"},
      {"ecdsa521", "ec521@example.com", "ecdsa-sha2-nistp521"},
      {"rsa", "rsa@example.com", "ssh-rsa"},
  };
  return keys;
}

class WithSshKeygen : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    missing_ = Trimmed([] {
      std::string out;
      RunShell(
          "for p in ssh-keygen git openssl; do command -v $p >/dev/null || printf '%s ' $p; "
          "done",
          &out);
      return out;
    }());
    if (!missing_.empty()) return;
    keys_ = new TempDir();
    const std::string d = keys_->path();
    Sh("cd " + d + " && ssh-keygen -q -t ed25519 -N '' -C ed -f ed25519" +
       " && ssh-keygen -q -t ecdsa -b 256 -N '' -C ec -f ecdsa256" +
       " && ssh-keygen -q -t ecdsa -b 384 -N '' -C ec -f ecdsa384" +
       " && ssh-keygen -q -t ecdsa -b 521 -N '' -C ec -f ecdsa521" +
       " && ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -C rsa -f rsa" +
       " && ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger");
  }
  static void TearDownTestSuite() {
    delete keys_;
    keys_ = nullptr;
  }
  void SetUp() override {
    if (!missing_.empty()) GTEST_SKIP() << "needs " << missing_ << "(not installed)";
  }

  static std::string KeyPath(const std::string& name) { return keys_->Sub(name); }
  static std::string Pub(const std::string& name) { return Sh("cat " + KeyPath(name) + ".pub"); }

  // Every key of Keys() under its principal, with `options` on each line.
  static std::string AllowedText(const std::string& options = "") {
    std::string text = "# test keys\n";
    for (const Key& k : Keys()) {
      text += k.principal + " " + (options.empty() ? "" : options + " ") + Pub(k.name) + "\n";
    }
    return text;
  }

  // ssh-keygen -Y verify on the same inputs: whether it accepts, as `principal`.
  bool OracleVerifies(const std::string& allowed_text, const std::string& principal,
                      const std::string& data, const std::string& signature) {
    WriteFile(work_.Sub("oracle_allowed"), allowed_text);
    WriteFile(work_.Sub("oracle_data"), data);
    WriteFile(work_.Sub("oracle.sig"), signature);
    return RunShell("ssh-keygen -Y verify -f " + work_.Sub("oracle_allowed") + " -I '" + principal +
                    "' -n git -s " + work_.Sub("oracle.sig") + " -Overify-time=" + kNowSsh + " < " +
                    work_.Sub("oracle_data")) == 0;
  }

  // ssh-keygen -Y find-principals: the principals of the signing key, or "".
  std::string OraclePrincipals(const std::string& allowed_text, const std::string& signature) {
    WriteFile(work_.Sub("oracle_allowed"), allowed_text);
    WriteFile(work_.Sub("oracle.sig"), signature);
    std::string out;
    if (RunShell("ssh-keygen -Y find-principals -f " + work_.Sub("oracle_allowed") + " -s " +
                     work_.Sub("oracle.sig") + " -Overify-time=" + kNowSsh + " 2>/dev/null",
                 &out) != 0) {
      return "";
    }
    return Trimmed(out);
  }

  // `ssh-keygen -Y sign` of `data` with key `name` in namespace `ns`.
  std::string SignFile(const std::string& name, const std::string& ns, const std::string& data,
                       const std::string& extra = "") {
    WriteFile(work_.Sub("to_sign"), data);
    Sh("rm -f " + work_.Sub("to_sign.sig") + " && ssh-keygen -q -Y sign -f " + KeyPath(name) +
       " -n " + ns + " " + extra + " " + work_.Sub("to_sign") + " 2>/dev/null");
    return ReadFile(work_.Sub("to_sign.sig"));
  }

  // Our verdict and the oracle's for (data, signature), checked to agree.
  SignatureCheck VerifyBoth(const std::string& allowed_text, const std::string& principal,
                            const std::string& data, const std::string& signature) {
    SignatureCheck c = VerifyCommitSignature(data, signature, ParseOrDie(allowed_text), kNow);
    EXPECT_EQ(c.verdict == V::kValid, OracleVerifies(allowed_text, principal, data, signature))
        << "ours: " << VerdictName(c.verdict) << " (" << c.reason << ")";
    return c;
  }

  static inline std::string missing_;
  static inline TempDir* keys_ = nullptr;
  TempDir work_;
};

class WithSshKeygenAndGit : public WithSshKeygen {
 protected:
  void SetUp() override {
    WithSshKeygen::SetUp();
    if (IsSkipped()) return;
    repo_ = std::make_unique<GitRepo>(work_.Sub("repo"));
    repo_->Write("cluster.yaml", "kind: Cluster\n");
    base_ = repo_->CommitAll("base");
  }

  // A commit signed by git with key `name` (gpg.format=ssh).
  std::string SignedCommit(const std::string& name, const std::string& message) {
    repo_->Git("-c gpg.format=ssh -c user.signingkey=" + KeyPath(name) +
               " commit -q --allow-empty -S -m '" + message + "'");
    return repo_->Rev();
  }

  std::unique_ptr<GitSource> Source(SourceLimits limits = {}) {
    GitSource::Options o;
    o.repo = repo_->path();
    o.limits = limits;
    Result<std::unique_ptr<GitSource>> s = GitSource::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  CommitSignatureData Data(const std::string& commit) {
    Result<CommitSignatureData> d = Source()->SignatureData(commit);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : CommitSignatureData();
  }

  std::unique_ptr<GitRepo> repo_;
  std::string base_;
};

TEST_F(WithSshKeygenAndGit, EachKeyTypeIsValidWithItsSignerAndFingerprint) {
  const std::string allowed = AllowedText();
  for (const Key& k : Keys()) {
    SCOPED_TRACE(k.name);
    const std::string commit = SignedCommit(k.name, "signed by " + k.name);
    CommitSignatureData d = Data(commit);
    EXPECT_EQ(d.commit, commit);
    EXPECT_NE(d.signature.find("-----BEGIN SSH SIGNATURE-----"), std::string::npos);
    EXPECT_EQ(d.signed_data, Sh("cd " + repo_->path() + " && git cat-file commit " + commit +
                                " | sed '/^gpgsig /,/END SSH SIGNATURE/d'") +
                                 "\n");
    SignatureCheck c = VerifyBoth(allowed, k.principal, d.signed_data, d.signature);
    EXPECT_EQ(c.verdict, V::kValid) << c.reason;
    EXPECT_EQ(c.signer, k.principal);
    EXPECT_EQ(c.signer, OraclePrincipals(allowed, d.signature));
    EXPECT_EQ(c.fingerprint, Sh("ssh-keygen -lf " + KeyPath(k.name) + ".pub | cut -d' ' -f2"));
    EXPECT_TRUE(c.reason.empty());
  }
}

TEST_F(WithSshKeygenAndGit, UnsignedCommitIsUnsigned) {
  CommitSignatureData d = Data(base_);
  EXPECT_EQ(d.commit, base_);
  EXPECT_EQ(d.signature, "");
  EXPECT_EQ(
      VerifyCommitSignature(d.signed_data, d.signature, ParseOrDie(AllowedText()), kNow).verdict,
      V::kUnsigned);
}

TEST_F(WithSshKeygenAndGit, KeyNotInAllowedSignersIsUnknown) {
  CommitSignatureData d = Data(SignedCommit("stranger", "who am I"));
  SignatureCheck c = VerifyBoth(AllowedText(), "ed@example.com", d.signed_data, d.signature);
  EXPECT_EQ(c.verdict, V::kUnknownKey);
  const std::string fp = Sh("ssh-keygen -lf " + KeyPath("stranger") + ".pub | cut -d' ' -f2");
  EXPECT_EQ(c.fingerprint, fp);
  EXPECT_EQ(c.reason, "the commit is signed by key " + fp +
                          " (ssh-ed25519), which is not in the allowed signers");
  EXPECT_EQ(OraclePrincipals(AllowedText(), d.signature), "");
}

TEST_F(WithSshKeygenAndGit, TamperedCommitHasABadSignature) {
  const std::string commit = SignedCommit("ed25519", "deploy v1");
  // The same object with another message, keeping the gpgsig header.
  const std::string forged = Sh("cd " + repo_->path() + " && git cat-file commit " + commit +
                                " | sed 's/deploy v1/deploy evil/' | " + GitRepo::Env() +
                                "git hash-object -t commit -w --stdin");
  ASSERT_NE(forged, commit);
  CommitSignatureData d = Data(forged);
  EXPECT_EQ(d.signature, Data(commit).signature);
  SignatureCheck c = VerifyBoth(AllowedText(), "ed@example.com", d.signed_data, d.signature);
  EXPECT_EQ(c.verdict, V::kBadSignature);
  EXPECT_EQ(c.reason,
            "the signature does not match the commit (the commit or its signature was altered)");
}

TEST_F(WithSshKeygenAndGit, RangeWithAnUnsignedCommitInTheMiddleIsCaught) {
  const std::string a = SignedCommit("ed25519", "one");
  const std::string b = repo_->CommitAll("unsigned");
  const std::string c = SignedCommit("rsa", "three");
  Result<std::vector<std::string>> range = Source()->CommitsSince(base_, c);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  ASSERT_EQ(*range, (std::vector<std::string>{a, b, c}));
  const AllowedSigners allowed = ParseOrDie(AllowedText());
  std::vector<std::string> verdicts;
  for (const std::string& commit : *range) {
    CommitSignatureData d = Data(commit);
    verdicts.push_back(
        VerdictName(VerifyCommitSignature(d.signed_data, d.signature, allowed, kNow).verdict));
  }
  EXPECT_EQ(verdicts, (std::vector<std::string>{"valid", "unsigned", "valid"}));
}

TEST_F(WithSshKeygen, OtherNamespaceIsRefused) {
  const std::string data = "tree 1234\n\nnot a commit\n";
  const std::string sig = SignFile("ed25519", "file", data);
  SignatureCheck c = VerifyBoth(AllowedText(), "ed@example.com", data, sig);
  EXPECT_EQ(c.verdict, V::kBadSignature);
  EXPECT_EQ(c.reason,
            "the signature is for namespace \"file\", not \"git\": it was not made "
            "for a commit");
}

TEST_F(WithSshKeygen, Sha256MessageHashIsValid) {
  const std::string data = "tree 1234\n\nsha256\n";
  for (const Key& k : Keys()) {
    SignatureCheck c = VerifyBoth(AllowedText(), k.principal, data,
                                  SignFile(k.name, "git", data, "-Ohashalg=sha256"));
    EXPECT_EQ(c.verdict, V::kValid) << k.name << ": " << c.reason;
  }
}

TEST_F(WithSshKeygen, AllowedSignersOptionsAreHonouredAsSshKeygenDoes) {
  const std::string data = "tree 1234\n\nwindows\n";
  const std::string sig = SignFile("ed25519", "git", data);
  struct Case {
    std::string options;
    V::Verdict verdict;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"valid-before=\"20200101Z\"", V::kUnknownKey,
       "the key of ed@example.com (allowed_signers:2) has expired (valid-before "
       "2020-01-01T00:00:00.000Z)"},
      {"valid-after=\"20300101Z\"", V::kUnknownKey,
       "the key of ed@example.com (allowed_signers:2) is not valid yet (valid-after "
       "2030-01-01T00:00:00.000Z)"},
      {"valid-after=\"20260101Z\",valid-before=\"20270101Z\"", V::kValid, ""},
      {"valid-before=\"20261207120000Z\"", V::kValid, ""},  // Inclusive, as ssh-keygen.
      {"namespaces=\"file\"", V::kUnknownKey,
       "the key of ed@example.com (allowed_signers:2) is not allowed to sign in namespace "
       "\"git\" (namespaces=\"file\")"},
      {"namespaces=\"file,g*\"", V::kValid, ""},
      {"namespaces=\"*,!git\"", V::kUnknownKey,
       "the key of ed@example.com (allowed_signers:2) is not allowed to sign in namespace "
       "\"git\" (namespaces=\"*,!git\")"},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.options);
    SignatureCheck c = VerifyBoth(AllowedText(t.options), "ed@example.com", data, sig);
    EXPECT_EQ(c.verdict, t.verdict);
    EXPECT_EQ(c.reason, t.reason);
  }
}

// RSA signatures made by hand with openssl, since ssh-keygen always makes
// rsa-sha2-512: rsa-sha2-256 is valid, ssh-rsa (SHA-1) refused as weak.
TEST_F(WithSshKeygen, RsaSha256IsValidAndSha1IsRefused) {
  const std::string data = "tree 1234\n\nrsa\n";
  const std::string sha512_sig = SignFile("rsa", "git", data);
  // The public key blob, from the .pub file.
  const std::string key_blob = FromHex(
      Sh("cut -d' ' -f2 " + KeyPath("rsa") + ".pub | base64 -d | od -An -v -tx1 | tr -d ' \\n'"));
  const std::string digest = FromHex(Sh("printf '%s' '" + data +
                                        "' | openssl dgst -sha512 -r | "
                                        "cut -d' ' -f1"));
  const std::string to_sign =
      "SSHSIG" + SshString("git") + SshString("") + SshString("sha512") + SshString(digest);
  WriteFile(work_.Sub("to_sign.bin"), to_sign);
  for (const auto& [format, md, verdict] :
       std::vector<std::tuple<std::string, std::string, V::Verdict>>{
           {"rsa-sha2-256", "sha256", V::kValid},
           {"ssh-rsa", "sha1", V::kUnsupported},
       }) {
    SCOPED_TRACE(format);
    Sh("openssl dgst -" + md + " -sign " + KeyPath("rsa") + " -out " + work_.Sub("rsa.sig") + " " +
       work_.Sub("to_sign.bin"));
    const std::string raw = ReadFile(work_.Sub("rsa.sig"));
    const std::string blob = "SSHSIG" + std::string("\0\0\0\1", 4) + SshString(key_blob) +
                             SshString("git") + SshString("") + SshString("sha512") +
                             SshString(SshString(format) + SshString(raw));
    SignatureCheck c = VerifyCommitSignature(data, Armor(blob), ParseOrDie(AllowedText()), kNow);
    EXPECT_EQ(c.verdict, verdict) << c.reason;
    if (verdict == V::kValid) {
      EXPECT_TRUE(OracleVerifies(AllowedText(), "rsa@example.com", data, Armor(blob)));
    } else {
      EXPECT_EQ(c.reason,
                "RSA signatures with SHA-1 (ssh-rsa) are refused as weak; sign with a current "
                "ssh-keygen (it makes rsa-sha2-512) or an ed25519 key");
    }
  }
  EXPECT_EQ(VerifyCommitSignature(data, sha512_sig, ParseOrDie(AllowedText()), kNow).verdict,
            V::kValid);
}

// Every truncation and every one-byte change of real signatures: a verdict,
// never a crash, and never "valid" (the oracle agrees on a sample).
TEST_F(WithSshKeygen, TruncatedAndFlippedSignaturesAreNeverValid) {
  const std::string data = "tree 1234\n\nfuzz\n";
  const AllowedSigners allowed = ParseOrDie(AllowedText());
  for (const char* name : {"ed25519", "ecdsa256", "rsa"}) {
    SCOPED_TRACE(name);
    const std::string armored = SignFile(name, "git", data);
    ASSERT_EQ(VerifyCommitSignature(data, armored, allowed, kNow).verdict, V::kValid);
    // The blob, decoded by base64(1).
    const std::string blob = FromHex(Sh("sed '1d;$d' " + work_.Sub("to_sign.sig") +
                                        " | base64 -d | od -An -v -tx1 | tr -d ' \\n'"));
    ASSERT_EQ(VerifyCommitSignature(data, Armor(blob), allowed, kNow).verdict, V::kValid);
    for (size_t len = 0; len < blob.size(); ++len) {
      EXPECT_NE(VerifyCommitSignature(data, Armor(blob.substr(0, len)), allowed, kNow).verdict,
                V::kValid)
          << len;
    }
    for (size_t at = 0; at < blob.size(); ++at) {
      std::string flipped = blob;
      flipped[at] = static_cast<char>(flipped[at] ^ 0x01);
      EXPECT_NE(VerifyCommitSignature(data, Armor(flipped), allowed, kNow).verdict, V::kValid)
          << at;
    }
    // Cut anywhere before the end of the END line (only whitespace may follow it).
    const size_t end = armored.find("-----END SSH SIGNATURE-----") + 27;
    for (size_t cut = 0; cut < end; cut += 7) {
      EXPECT_NE(VerifyCommitSignature(data, armored.substr(0, cut), allowed, kNow).verdict,
                V::kValid);
    }
    std::string last = blob;
    last.back() = static_cast<char>(last.back() ^ 0x01);
    EXPECT_FALSE(OracleVerifies(AllowedText(), "ed@example.com", data, Armor(last)));
  }
}

// ---------------------------------------------------------------------------
// GitSource: the commits of a range.

TEST_F(WithSshKeygenAndGit, CommitsSinceListsBothSidesOfAMergeOldestFirst) {
  // base - b ------- m
  //    \            /
  //     c ---------
  const std::string b = repo_->CommitAll("b on main");
  repo_->Git("checkout -q -b side " + base_);
  const std::string c = SignedCommit("ecdsa256", "c on side");
  repo_->Git("checkout -q main");
  repo_->Git("merge -q --no-ff -m merge side");
  const std::string m = repo_->Rev();
  std::unique_ptr<GitSource> source = Source();

  Result<std::vector<std::string>> range = source->CommitsSince(base_, m);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  ASSERT_EQ(range->size(), 3u);
  EXPECT_EQ(range->back(), m);
  EXPECT_TRUE(((*range)[0] == b && (*range)[1] == c) || ((*range)[0] == c && (*range)[1] == b));

  Result<std::vector<std::string>> all = source->CommitsSince("", m);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_EQ(all->front(), base_);

  Result<std::vector<std::string>> side = source->CommitsSince(b, m);  // Not b's ancestors.
  ASSERT_TRUE(side.ok());
  EXPECT_EQ(*side, (std::vector<std::string>{c, m}));

  Result<std::vector<std::string>> none = source->CommitsSince(m, m);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  // "main" and abbreviated SHAs resolve as in Resolve().
  Result<std::vector<std::string>> named = source->CommitsSince(base_.substr(0, 10), "main");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->size(), 3u);
}

TEST_F(WithSshKeygenAndGit, CommitsSinceIsBoundedAndNamesMissingCommits) {
  repo_->CommitAll("1");
  repo_->CommitAll("2");
  const std::string head = repo_->CommitAll("3");
  SourceLimits limits;
  limits.max_commits_since = 2;
  std::unique_ptr<GitSource> source = Source(limits);
  Result<std::vector<std::string>> range = source->CommitsSince(base_, head);
  ASSERT_FALSE(range.ok());
  EXPECT_EQ(range.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(range.status().message(), "more than 2 commits between \"" + base_ + "\" and \"" +
                                          head + "\" (limits.max_commits_since)");

  Result<std::vector<std::string>> gone =
      source->CommitsSince("0123456789abcdef0123456789abcdef01234567", head);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
  Result<CommitSignatureData> missing = source->SignatureData("no-such-branch");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

// A RevisionSource that knows nothing of signatures keeps compiling and says so.
TEST(RevisionSourceTest, SignatureMethodsDefaultToNotSupported) {
  struct Minimal : RevisionSource {
    Status Fetch() override { return Status::Ok(); }
    void Cancel() override {}
    Result<Revision> Resolve(const std::string&) override { return Status::NotFound("x"); }
    Result<Snapshot> Read(const std::string&) override { return Status::NotFound("x"); }
    Result<bool> IsDescendant(const std::string&, const std::string&) override { return false; }
  } source;
  Result<CommitSignatureData> d = source.SignatureData("HEAD");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kNotFound);
  EXPECT_EQ(d.status().message(), "commit signatures are not supported by this revision source");
  EXPECT_EQ(source.CommitsSince("a", "b").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace clusterctl::desired_state
