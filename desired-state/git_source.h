// GitSource: reads the desired-state files of a commit straight from a git
// object database (libgit2). Nothing is checked out to disk.
//
// A source is a local repository (bare or with a work tree) or a remote URL,
// which is cloned (bare) into `cache_dir` on first use and fetched afterwards.
// The user's and the system's git configuration are never read.
//
// Hostile trees are handled here, before any YAML parser sees a byte: only
// regular blobs (100644/100755) and trees (040000) are read; symlinks,
// submodules (ignored with a warning), entries named "", ".", "..", ".git" or
// containing "/" or a NUL are reported with their path. Hidden directories
// (".github/") are skipped. Files over the size limits are reported, not read.
//
// Thread-safety: a GitSource is used from one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "desired-state/commit_signer.h"
#include "desired-state/diagnostics.h"
#include "desired-state/model.h"

namespace clusterctl::desired_state {

struct SourceLimits {
  size_t max_file_bytes = 1 << 20;    // Default: 1 MiB per file.
  size_t max_total_bytes = 16 << 20;  // Default: 16 MiB per revision.
  size_t max_files = 20000;           // Default: 20,000 YAML files per revision.
  // Bounds on the walk itself, for trees that reuse one subtree many times
  // (a few objects can name billions of paths).
  size_t max_entries = 1000000;  // Default: 1,000,000 tree entries visited per revision.
  size_t max_depth = 128;        // Default: directories nested at most 128 deep.
  // Bound on CommitsSince()'s answer: a longer range is an error. libgit2
  // still sorts the whole range first, so the walk costs the range's size.
  size_t max_commits_since = 10000;  // Default: 10,000 commits.
};

// What a commit's signature covers (commit_signature.h verifies it).
struct CommitSignatureData {
  std::string commit;       // Full SHA.
  std::string signature;    // The "gpgsig" header's value; empty when unsigned.
  std::string signed_data;  // The commit object without that header; empty when unsigned.
};

// One YAML file of a revision: its path from the repository root, with "/".
struct SourceFile {
  SourceFile() = default;
  SourceFile(std::string path_in, std::string content_in, std::string blob_in = "")
      : path(std::move(path_in)), content(std::move(content_in)), blob(std::move(blob_in)) {}

  std::string path;
  std::string content;
  // The git blob id (hex) of `content`, the key of the parse cache
  // (parse_cache.h). Empty when the file does not come from git: the loader
  // then keys it by a hash of its content.
  std::string blob;
};

// Every *.yaml / *.yml file of one commit, plus what was wrong with the tree.
struct Snapshot {
  Revision revision;
  std::vector<SourceFile> files;      // Sorted by path.
  Diagnostics problems;               // Hostile entries, files over limits.
  std::vector<std::string> warnings;  // Submodules and other ignored entries.
};

// Where a controller reads revisions from: the operations clusterd's source
// loop uses. GitSource is the real one; tests of the daemon give it an
// in-memory history. Fetch() is called from one thread at a time; Cancel(),
// Resolve(), Read() and IsDescendant() from any thread (GitSource guards its
// repository with a mutex that a fetch in flight does not hold).
class RevisionSource {
 public:
  virtual ~RevisionSource() = default;
  // Brings the source up to date with its remote (a no-op for local ones).
  virtual Status Fetch() = 0;
  // Ends a Fetch() in flight and every later one at once (shutdown).
  virtual void Cancel() = 0;
  // Resolves a revision: empty = head of the branch.
  virtual Result<Revision> Resolve(const std::string& rev) = 0;
  // Every desired-state file of a commit.
  virtual Result<Snapshot> Read(const std::string& rev) = 0;
  // Whether `commit` has `ancestor` in its history; NotFound when either is gone.
  virtual Result<bool> IsDescendant(const std::string& commit, const std::string& ancestor) = 0;
  // The signature of a commit and the bytes it signs. By default (a source
  // that has no signatures): Code::kNotFound, "not supported".
  virtual Result<CommitSignatureData> SignatureData(const std::string& commit);
  // The commits reachable from `to` and not from `from_exclusive`, oldest
  // first. By default: Code::kNotFound, "not supported".
  virtual Result<std::vector<std::string>> CommitsSince(const std::string& from_exclusive,
                                                        const std::string& to);
  // A commit whose tree is `target`'s, on top of the branch (GitSource's
  // comment says how). By default: Code::kNotFound, "not supported".
  virtual Result<Revision> CommitTreeOf(const std::string& target, const std::string& message,
                                        const std::string& author_name,
                                        const std::string& author_email, std::string* push_error,
                                        const CommitSigner& sign = nullptr);
};

class GitSource : public RevisionSource {
 public:
  struct Options {
    std::string repo;  // A local path (bare or not) or a URL (file://, ssh://, https://).
    std::string branch = "main";  // Default: "main".
    std::string cache_dir;        // Where remote URLs are cloned. Required for URLs.
    SourceLimits limits;
    // A clone or fetch that has not finished by then is killed (Code::kTimeout).
    int fetch_timeout_seconds = 60;
    // For a URL not cloned yet: Open() returns at once and the first Fetch()
    // clones; until then Resolve/Read fail with Code::kUnavailable.
    bool defer_clone = false;
  };

  // Opens a local repository, or clones/opens the cache of a remote one.
  static Result<std::unique_ptr<GitSource>> Open(const Options& options);
  ~GitSource() override;

  // Updates the cached clone from the remote (all branches and tags, forced,
  // so a force-pushed branch is followed), or makes it (defer_clone). A no-op
  // for local repositories. Runs in a child process killed at the deadline
  // or by Cancel(), since libgit2 has no network timeouts of its own.
  Status Fetch() override;

  // Ends a Fetch() in flight and every later one at once (shutdown). Any thread.
  void Cancel() override;

  // False until a deferred clone has happened.
  bool cloned() const;

  // Resolves a revision: empty = head of the branch; otherwise a branch name,
  // a tag, a full or abbreviated SHA, or anything `git rev-parse` accepts.
  Result<Revision> Resolve(const std::string& rev) override;

  // Reads every YAML file of a commit (resolved as by Resolve).
  Result<Snapshot> Read(const std::string& rev) override;

  // Whether `commit` has `ancestor` in its history. NotFound when either
  // commit no longer exists (history rewritten and garbage collected).
  Result<bool> IsDescendant(const std::string& commit, const std::string& ancestor) override;

  // The "gpgsig" header of `commit` (resolved as by Resolve) and the commit
  // object without it (git_commit_extract_signature). An unsigned commit has
  // an empty signature: that is not an error. Only the "gpgsig" field is
  // read (SHA-1 repositories); "gpgsig-sha256" is not.
  Result<CommitSignatureData> SignatureData(const std::string& commit) override;

  // Full SHAs of the commits reachable from `to` and not from
  // `from_exclusive` (git rev-list from..to), oldest first (topological, so
  // both sides of a merge come before it). An empty `from_exclusive` means
  // the whole history of `to`. When `from_exclusive` is not an ancestor of
  // `to` (a force push) the answer is still "what `to` has that `from` has
  // not". Errors: NotFound when either is gone; Code::kResourceExhausted
  // past limits.max_commits_since commits.
  Result<std::vector<std::string>> CommitsSince(const std::string& from_exclusive,
                                                const std::string& to) override;

  // Writes a new commit whose tree equals the tree of `target` and whose
  // parent is the branch head, with `message` and the given author (also the
  // committer). History is never rewritten. For a local repository the
  // branch is moved to it (only if its head did not change meanwhile); for a
  // URL the commit is made in the cache on a branch
  // "clusterctl/rollback-<short sha>" and pushed to the remote branch. A
  // refused push (a protected branch) leaves the commit on that local branch
  // and is reported in *push_error (the commit itself is returned).
  // `sign`, when set, signs the commit (commit_signer.h).
  Result<Revision> CommitTreeOf(const std::string& target, const std::string& message,
                                const std::string& author_name, const std::string& author_email,
                                std::string* push_error,
                                const CommitSigner& sign = nullptr) override;

  // One file change of CommitEdits: `content` written at `path` (a path
  // from the repository root with "/"), or the file removed when absent.
  struct FileEdit {
    std::string path;
    std::optional<std::string> content;
  };

  // Writes a commit whose tree is the branch head's with `edits` applied and
  // whose parent is the head, which must still be `expected_head` (a full
  // SHA; empty: any) or the answer is Code::kConflict. With `push`, it is
  // published like a rollback commit (moved onto the local branch, or pushed
  // from a branch "clusterctl/change-<short sha>" whose refusal lands in
  // *push_error and is not kept across fetches). Without `push`, the commit
  // only exists as an object (for printing it as a patch).
  Result<Revision> CommitEdits(const std::string& expected_head, const std::vector<FileEdit>& edits,
                               const std::string& message, const std::string& author_name,
                               const std::string& author_email, bool push, std::string* push_error,
                               const CommitSigner& sign = nullptr);

  // The change `commit` makes to its first parent, as a unified diff
  // ("diff --git a/... b/..."), for printing a commit not pushed.
  Result<std::string> Patch(const std::string& commit);

  // The path of the git directory actually read (the cache for URLs).
  const std::string& git_dir() const;

 private:
  struct Impl;
  explicit GitSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `repo` names a remote URL rather than a local path.
bool IsRemoteUrl(const std::string& repo);

}  // namespace clusterctl::desired_state
