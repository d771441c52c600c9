#include "desired-state/git_source.h"

#include <fcntl.h>
#include <git2.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include "base/clock.h"
#include "base/sha256.h"
#include "desired-state/redact_url.h"

namespace clusterctl::desired_state {
namespace {

namespace fs = std::filesystem;

// Rollback commits waiting for their push (one ref per commit, full SHA).
constexpr char kRollbackRefs[] = "refs/clusterctl/rollback/";

// ---------------------------------------------------------------------------
// RAII for libgit2 objects.

template <typename T, void (*Free)(T*)>
struct GitDeleter {
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};

using RepoPtr = std::unique_ptr<git_repository, GitDeleter<git_repository, git_repository_free>>;
using ObjectPtr = std::unique_ptr<git_object, GitDeleter<git_object, git_object_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitDeleter<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, GitDeleter<git_tree, git_tree_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitDeleter<git_blob, git_blob_free>>;
using OdbPtr = std::unique_ptr<git_odb, GitDeleter<git_odb, git_odb_free>>;
using RemotePtr = std::unique_ptr<git_remote, GitDeleter<git_remote, git_remote_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, GitDeleter<git_revwalk, git_revwalk_free>>;
using BufPtr = std::unique_ptr<git_buf, GitDeleter<git_buf, git_buf_dispose>>;

// ---------------------------------------------------------------------------
// Library set-up: once per process.

Status InitLibgit2() {
  static std::once_flag once;
  static Status init_status;
  std::call_once(once, [] {
    if (int rc = git_libgit2_init(); rc < 0) {
      const git_error* e = git_error_last();
      init_status = Status::Internal(std::string("initializing libgit2: ") +
                                     (e != nullptr ? e->message : "unknown error"));
      return;
    }
    // Never read the user's or the system's git configuration: settings such
    // as core.protectNTFS or url.<base>.insteadOf would change what we read.
    for (int level : {GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                      GIT_CONFIG_LEVEL_GLOBAL}) {
      if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "") < 0) {
        const git_error* e = git_error_last();
        init_status = Status::Internal(
            std::string("configuring libgit2 to ignore the global git configuration: ") +
            (e != nullptr ? e->message : "unknown error"));
        return;
      }
    }
  });
  return init_status;
}

// ---------------------------------------------------------------------------
// Error helpers.

// `s` with quotes, backslashes and control characters escaped, for messages.
std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Quoted and escaped; a URL in it loses its credentials (redact_url.h).
std::string Quote(std::string_view s) { return "\"" + Escape(RedactUrls(s)) + "\""; }

// The last libgit2 error message, without a trailing period or newline.
std::string LastGitError() {
  const git_error* e = git_error_last();
  std::string m = (e != nullptr && e->message != nullptr) ? e->message : "unknown libgit2 error";
  while (!m.empty() && (m.back() == '\n' || m.back() == '.')) m.pop_back();
  return RedactUrls(m);  // libgit2 may quote the URL, credentials and all.
}

// A Status for a failed libgit2 call: "context: libgit2 message; hint".
Status GitStatus(int rc, const std::string& context, const std::string& hint = "") {
  const git_error* e = git_error_last();
  int klass = e != nullptr ? e->klass : GIT_ERROR_NONE;
  std::string message = context + ": " + LastGitError();
  if (!hint.empty()) message += "; " + hint;
  switch (rc) {
    case GIT_ENOTFOUND:
      return Status::NotFound(std::move(message));
    case GIT_EAUTH:
    case GIT_ECERTIFICATE:
    case GIT_EOWNER:
      return Status::Permission(std::move(message));
    case GIT_EAMBIGUOUS:
    case GIT_EINVALIDSPEC:
    case GIT_EINVALID:
      return Status::Invalid(std::move(message));
    case GIT_ELOCKED:
      return Status::Conflict(std::move(message));
    default:
      break;
  }
  switch (klass) {
    case GIT_ERROR_NET:
    case GIT_ERROR_SSH:
    case GIT_ERROR_HTTP:
    case GIT_ERROR_SSL:
    case GIT_ERROR_OS:
    case GIT_ERROR_CALLBACK:
      return Status::Unavailable(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

std::string HumanBytes(size_t n) {
  constexpr size_t kKiB = 1024;
  constexpr size_t kMiB = 1024 * 1024;
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + " KiB";
  return "";
}

// "M bytes (1 MiB)" or "M bytes".
std::string LimitBytes(size_t n) {
  std::string human = HumanBytes(n);
  return std::to_string(n) + " bytes" + (human.empty() ? "" : " (" + human + ")");
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsYamlName(std::string_view name) { return EndsWith(name, ".yaml") || EndsWith(name, ".yml"); }

// Names that must never become part of a path: they would climb out of the
// repository, into its git directory, or hide a directory separator.
bool IsUnsafeName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return true;
  if (name.size() == 4 && name[0] == '.' && (name[1] | 0x20) == 'g' && (name[2] | 0x20) == 'i' &&
      (name[3] | 0x20) == 't') {
    return true;
  }
  return name.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos;
}

std::string StripTrailingSlash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// Whether `s` contains a match of ".+-[0-9]+-g[0-9a-fA-F]+" (the shape of
// `git describe` output, as libgit2 searches for it).
bool HasDescribeShape(std::string_view s) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  auto is_hex = [&](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  for (size_t g = s.find("-g"); g != std::string_view::npos; g = s.find("-g", g + 1)) {
    if (g + 2 >= s.size() || !is_hex(s[g + 2])) continue;
    size_t d = g;
    while (d > 0 && is_digit(s[d - 1])) --d;
    if (d == g) continue;                        // No digits before "-g".
    if (d >= 2 && s[d - 1] == '-') return true;  // At least one character before "-".
  }
  return false;
}

// libgit2 1.5.1 leaks about 20 KiB (a pcre2 match block) whenever
// git_revparse_single tries a name containing "-g" as `git describe` output
// and it does not match. That only happens for names that are neither a
// reference nor a SHA, so such names are answered "not found" here first.
// Returns true when `rev` can be given to git_revparse_single.
bool SafeForRevparse(git_repository* repo, const std::string& rev) {
  std::string base = rev.substr(0, rev.find_first_of("~^:@"));
  if (base.find("-g") == std::string::npos || HasDescribeShape(base)) return true;
  git_reference* ref = nullptr;
  int rc = git_reference_dwim(&ref, repo, base.c_str());
  git_reference_free(ref);
  return rc != GIT_ENOTFOUND;  // "-g" is not hex: it cannot be a SHA either.
}

// Credentials for SSH remotes: the ssh-agent, a few attempts at most (libgit2
// asks again after each refusal and would loop forever otherwise).
int CredentialCallback(git_credential** out, const char* /*url*/, const char* username_from_url,
                       unsigned int allowed_types, void* payload) {
  int* attempts = static_cast<int*>(payload);
  if (++*attempts > 3) {
    git_error_set_str(GIT_ERROR_SSH, "authentication failed after 3 attempts");
    return GIT_EAUTH;
  }
  const char* user =
      (username_from_url != nullptr && *username_from_url) ? username_from_url : "git";
  if (allowed_types & GIT_CREDENTIAL_USERNAME) return git_credential_username_new(out, user);
  if (allowed_types & GIT_CREDENTIAL_SSH_KEY) return git_credential_ssh_key_from_agent(out, user);
  return GIT_PASSTHROUGH;
}

// Fetches every branch and tag of `url` into `repo`, forced, pruning refs
// deleted on the remote.
Status FetchInto(git_repository* repo, const std::string& url) {
  // An anonymous remote, without url.<base>.insteadOf rewriting: the URL
  // given is the URL used. Skipping it also avoids a leak in libgit2 1.5.1,
  // whose config glob match (pcre2) leaks about 20 KiB per non-matching
  // config entry, on every fetch.
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* raw_remote = nullptr;
  if (int rc = git_remote_create_with_opts(&raw_remote, url.c_str(), &create); rc < 0) {
    return GitStatus(rc, "fetching " + Quote(url), "check the repository URL");
  }
  RemotePtr remote(raw_remote);

  char heads[] = "+refs/heads/*:refs/heads/*";
  char tags[] = "+refs/tags/*:refs/tags/*";
  char* specs[] = {heads, tags};
  git_strarray refspecs = {specs, 2};

  int attempts = 0;
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.prune = GIT_FETCH_PRUNE;
  opts.update_fetchhead = 0;
  // Tags come through the forced refspec above; auto-follow would never move
  // an existing tag.
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  opts.callbacks.credentials = CredentialCallback;
  opts.callbacks.payload = &attempts;
  if (int rc = git_remote_fetch(remote.get(), &refspecs, &opts, "clusterctl: fetch"); rc < 0) {
    return GitStatus(rc, "fetching " + Quote(url),
                     "check that the remote is reachable and that its host key and "
                     "credentials are set up");
  }
  return Status::Ok();
}

// Runs FetchInto for the repository at `git_dir` in a child process, so that
// a remote that accepts and never answers cannot hold the caller: libgit2 1.5
// has no network timeouts. The child is killed at `timeout_seconds` or as
// soon as `cancel_fd` becomes readable.
Status FetchWithDeadline(const std::string& git_dir, const std::string& url, int timeout_seconds,
                         int cancel_fd) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    return Status::Unavailable(std::string("fetching: cannot make a pipe: ") +
                               std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(out[0]);
    close(out[1]);
    return Status::Unavailable(std::string("fetching: cannot fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    // The child: fetch, report "<code>\n<message>" on the pipe, exit at once.
    close(out[0]);
    git_repository* raw = nullptr;
    Status s = git_repository_open_bare(&raw, git_dir.c_str()) < 0
                   ? Status::Unavailable("cannot open " + Quote(git_dir))
                   : FetchInto(raw, url);
    const std::string report = std::to_string(static_cast<int>(s.code())) + "\n" + s.message();
    for (size_t done = 0; done < report.size();) {
      const ssize_t n = write(out[1], report.data() + done, report.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(out[1]);
  const auto deadline = SteadyNow() + std::chrono::seconds(std::max(timeout_seconds, 1));
  std::string report;
  Status outcome;
  bool eof = false;
  while (!eof) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow()).count();
    if (left <= 0) {
      outcome = Status::Timeout("fetching " + Quote(url) + " timed out after " +
                                std::to_string(timeout_seconds) +
                                " s (fetchTimeoutSeconds); the remote did not answer in time");
      break;
    }
    pollfd fds[2] = {{out[0], POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    const int n =
        poll(fds, cancel_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) {
      outcome = Status::Unavailable(std::string("fetching: poll: ") + std::strerror(errno));
      break;
    }
    if (cancel_fd >= 0 && (fds[1].revents & POLLIN) != 0) {
      outcome = Status::Unavailable("fetching " + Quote(url) + " cancelled: shutting down");
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP)) != 0) {
      char buf[4096];
      const ssize_t got = read(out[0], buf, sizeof buf);
      if (got > 0) {
        report.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        eof = true;
      }
    }
  }
  close(out[0]);
  if (!eof) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!eof) return outcome;
  const size_t nl = report.find('\n');
  if (nl == std::string::npos) {
    return Status::Unavailable(
        "fetching " + Quote(url) + ": the fetch process died (" +
        (WIFSIGNALED(wstatus) ? "signal " + std::to_string(WTERMSIG(wstatus)) : "no report") + ")");
  }
  const int code = std::atoi(report.substr(0, nl).c_str());
  if (code == 0) return Status::Ok();
  return Status(static_cast<Code>(code), report.substr(nl + 1));
}

// A candidate file found by the walk, not read yet.
struct Candidate {
  std::string path;
  git_oid oid;
};

}  // namespace

// ---------------------------------------------------------------------------

bool IsRemoteUrl(const std::string& repo) {
  if (repo.find("://") != std::string::npos) return true;
  // scp-like syntax: user@host:path, with no "/" before the ":".
  size_t colon = repo.find(':');
  if (colon == std::string::npos) return false;
  size_t slash = repo.find('/');
  if (slash != std::string::npos && slash < colon) return false;
  size_t at = repo.find('@');
  return at != std::string::npos && at > 0 && at + 1 < colon;
}

struct GitSource::Impl {
  Options options;
  bool remote = false;
  std::string git_dir;
  RepoPtr repo;              // Null while a deferred clone has not happened.
  std::string cache_path;    // For a URL: the clone's directory.
  int cancel[2] = {-1, -1};  // For a URL: readable once Cancel() was called.
  // Guards `repo` and its use: held by every method but not while a fetch's
  // child process runs, so reads go on during a slow fetch.
  mutable std::mutex mu;

  ~Impl() {
    for (int fd : cancel) {
      if (fd >= 0) close(fd);
    }
  }

  std::string Describe() const { return Quote(options.repo); }

  Status NeedRepo() const {
    if (repo) return Status::Ok();
    return Status::Unavailable("the repository " + Describe() +
                               " is not cloned yet: its remote has not answered so far");
  }

  Status OpenCache() {
    git_repository* raw = nullptr;
    if (int rc = git_repository_open_bare(&raw, cache_path.c_str()); rc < 0) {
      return GitStatus(rc, "opening the cache of " + Describe() + " at " + Quote(cache_path),
                       "remove that directory to clone the repository again");
    }
    repo.reset(raw);
    if (git_dir.empty()) {  // A deferred clone set it already (git_dir() reads it unlocked).
      const char* path = git_repository_path(raw);
      git_dir = StripTrailingSlash(path != nullptr ? path : "");
    }
    return Status::Ok();
  }

  // Clones into a temporary directory and renames it into place, so that a
  // failed, timed-out or interrupted clone never leaves a half-filled cache.
  Status Clone() {
    std::string tmpl = cache_path + ".tmp-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Status::Unavailable("creating a directory in " + Quote(options.cache_dir) + ": " +
                                 std::strerror(errno) + "; check its permissions");
    }
    const std::string tmp = tmpl;
    auto cleanup = [&tmp] {
      std::error_code ignored;
      fs::remove_all(tmp, ignored);
    };
    git_repository_init_options init = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    init.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    init.initial_head = options.branch.c_str();
    git_repository* raw = nullptr;
    if (int rc = git_repository_init_ext(&raw, tmp.c_str(), &init); rc < 0) {
      Status s = GitStatus(rc, "creating the cache of " + Describe() + " in " + Quote(tmp),
                           "check the permissions of the cache directory");
      cleanup();
      return s;
    }
    git_repository_free(raw);
    if (Status s = FetchWithDeadline(tmp, options.repo, options.fetch_timeout_seconds, cancel[0]);
        !s.ok()) {
      cleanup();
      return s.Annotate("cloning " + Describe());
    }
    if (std::rename(tmp.c_str(), cache_path.c_str()) != 0) {
      const int err = errno;
      cleanup();
      std::error_code ec;
      // Another process may have cloned it first; use theirs.
      if (!fs::exists(cache_path, ec)) {
        return Status::Unavailable("moving the clone of " + Describe() + " to " +
                                   Quote(cache_path) + ": " + std::strerror(err) +
                                   "; check the permissions of the cache directory");
      }
    }
    return Status::Ok();
  }

  // Resolves `rev` (empty: the branch head) to a commit.
  Result<CommitPtr> LookupCommit(const std::string& rev) {
    CLUSTERCTL_RETURN_IF_ERROR(NeedRepo());
    git_oid oid;
    if (rev.empty()) {
      std::string ref = "refs/heads/" + options.branch;
      if (int rc = git_reference_name_to_id(&oid, repo.get(), ref.c_str()); rc < 0) {
        if (rc == GIT_ENOTFOUND) {
          return Status::NotFound(
              "branch " + Quote(options.branch) + " not found in " + Describe() + "; " +
              (remote ? "push the branch to the remote (it is fetched on every reconcile)"
                      : "create the branch") +
              ", or set the branch option to an existing branch");
        }
        return GitStatus(rc, "resolving branch " + Quote(options.branch) + " in " + Describe());
      }
    } else {
      git_object* raw = nullptr;
      int rc = SafeForRevparse(repo.get(), rev) ? git_revparse_single(&raw, repo.get(), rev.c_str())
                                                : GIT_ENOTFOUND;
      ObjectPtr object(raw);
      if (rc == GIT_ENOTFOUND) {
        return Status::NotFound("revision " + Quote(rev) + " not found in " + Describe() +
                                " (branch " + Quote(options.branch) +
                                "); give a branch, a tag or a commit SHA that exists" +
                                (remote ? " on the remote, and fetch first" : ""));
      }
      if (rc < 0) {
        return GitStatus(rc, "resolving revision " + Quote(rev) + " in " + Describe(),
                         "give a branch, a tag or a commit SHA");
      }
      git_object* peeled = nullptr;
      rc = git_object_peel(&peeled, object.get(), GIT_OBJECT_COMMIT);
      ObjectPtr commit_object(peeled);
      if (rc < 0) {
        return Status::Invalid("revision " + Quote(rev) + " in " + Describe() +
                               " does not name a commit: " + LastGitError() +
                               "; give a branch, a tag or a commit SHA");
      }
      git_oid_cpy(&oid, git_object_id(commit_object.get()));
    }
    git_commit* commit = nullptr;
    if (int rc = git_commit_lookup(&commit, repo.get(), &oid); rc < 0) {
      char hex[GIT_OID_HEXSZ + 1];
      git_oid_tostr(hex, sizeof hex, &oid);
      return GitStatus(rc, "reading commit " + std::string(hex) + " in " + Describe(),
                       "the repository may be corrupt; fetch again or re-clone it");
    }
    return CommitPtr(commit);
  }

  // After a fetch: each rollback commit not yet in the branch gets its local
  // branch clusterctl/rollback-<sha7> back (the fetch pruned it); one the
  // branch now contains is done and forgotten.
  Status KeepRollbackBranches() {
    git_oid head;
    const std::string branch = "refs/heads/" + options.branch;
    const bool have_head = git_reference_name_to_id(&head, repo.get(), branch.c_str()) == 0;
    std::vector<std::pair<std::string, git_oid>> kept;
    git_reference_iterator* raw_it = nullptr;
    const std::string glob = std::string(kRollbackRefs) + "*";
    if (int rc = git_reference_iterator_glob_new(&raw_it, repo.get(), glob.c_str()); rc < 0) {
      return GitStatus(rc, "listing rollback commits in " + Describe());
    }
    git_reference* ref = nullptr;
    while (git_reference_next(&ref, raw_it) == 0) {
      if (const git_oid* oid = git_reference_target(ref))
        kept.emplace_back(git_reference_name(ref), *oid);
      git_reference_free(ref);
    }
    git_reference_iterator_free(raw_it);
    for (const auto& [name, oid] : kept) {
      char hex[GIT_OID_HEXSZ + 1];
      git_oid_tostr(hex, sizeof hex, &oid);
      const bool merged = have_head && (git_oid_equal(&head, &oid) ||
                                        git_graph_descendant_of(repo.get(), &head, &oid) == 1);
      const std::string local = "refs/heads/clusterctl/rollback-" + std::string(hex, 7);
      if (merged) {
        git_reference* r = nullptr;
        if (git_reference_lookup(&r, repo.get(), name.c_str()) == 0) {
          git_reference_delete(r);
          git_reference_free(r);
        }
        continue;
      }
      git_reference* r = nullptr;
      int rc = git_reference_create(&r, repo.get(), local.c_str(), &oid, 0, "clusterctl: rollback");
      if (rc == 0) git_reference_free(r);
      if (rc < 0 && rc != GIT_EEXISTS) return GitStatus(rc, "keeping branch " + Quote(local));
    }
    return Status::Ok();
  }

  static Revision ToRevision(const git_commit* commit) {
    Revision r;
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, git_commit_id(commit));
    r.commit = hex;
    if (const git_signature* a = git_commit_author(commit); a != nullptr) {
      r.author = std::string(a->name != nullptr ? a->name : "") + " <" +
                 (a->email != nullptr ? a->email : "") + ">";
    }
    const char* message = git_commit_message(commit);
    r.message = message != nullptr ? message : "";
    r.time = static_cast<int64_t>(git_commit_time(commit));
    return r;
  }

  Result<Snapshot> ReadCommit(const git_commit* commit);

  // Makes commit `id` (child of `parent_id`) the branch head: for a local
  // repository by moving the branch (only from `parent_id`); for a URL by a
  // branch clusterctl/<purpose>-<sha7> in the cache pushed to the remote
  // branch, a refused push reported in *push_error. `keep`: that branch
  // survives fetches until merged (rollback commits).
  Result<Revision> PublishCommit(const git_oid& id, const git_oid& parent_id,
                                 const std::string& purpose, bool keep, std::string* push_error);
};

Result<Snapshot> GitSource::Impl::ReadCommit(const git_commit* commit) {
  Snapshot snapshot;
  snapshot.revision = ToRevision(commit);
  const SourceLimits& limits = options.limits;
  const std::string at = " at " + snapshot.revision.Short();

  git_odb* raw_odb = nullptr;
  if (int rc = git_repository_odb(&raw_odb, repo.get()); rc < 0) {
    return GitStatus(rc, "opening the object database of " + Describe());
  }
  OdbPtr odb(raw_odb);

  git_tree* root = nullptr;
  if (int rc = git_commit_tree(&root, commit); rc < 0) {
    return GitStatus(rc, "reading the tree of commit " + snapshot.revision.commit,
                     "the repository may be corrupt; fetch again or re-clone it");
  }

  // Iterative walk, depth and entry count bounded: a tree is a DAG and a few
  // objects can name an exponential number of paths.
  struct Pending {
    TreePtr tree;
    std::string prefix;  // "" or "dir/sub/"
    size_t depth;
  };
  std::vector<Pending> stack;
  stack.push_back({TreePtr(root), "", 0});
  std::vector<Candidate> candidates;
  size_t visited = 0;
  bool walk_aborted = false;

  while (!stack.empty() && !walk_aborted) {
    Pending current = std::move(stack.back());
    stack.pop_back();
    size_t count = git_tree_entrycount(current.tree.get());
    for (size_t i = 0; i < count; ++i) {
      if (++visited > limits.max_entries) {
        snapshot.problems.Add(
            Location{},
            "the git tree has more than " + std::to_string(limits.max_entries) + " entries" + at,
            "remove files or directories from the repository");
        walk_aborted = true;
        break;
      }
      const git_tree_entry* entry = git_tree_entry_byindex(current.tree.get(), i);
      const char* raw_name = git_tree_entry_name(entry);
      std::string_view name = raw_name != nullptr ? raw_name : "";
      std::string path = current.prefix + std::string(name);
      std::string shown = Escape(path);

      if (IsUnsafeName(name)) {
        snapshot.problems.Add(Location{shown}, "unsafe path " + Quote(path) + " in the git tree",
                              "remove the entry from the repository");
        continue;
      }
      if (name.front() == '.') continue;  // Hidden file or directory.

      git_filemode_t mode = git_tree_entry_filemode_raw(entry);
      const git_oid* oid = git_tree_entry_id(entry);
      switch (mode) {
        case GIT_FILEMODE_TREE: {
          if (current.depth + 1 > limits.max_depth) {
            snapshot.problems.Add(Location{shown},
                                  "directory " + Quote(path) + " is nested more than " +
                                      std::to_string(limits.max_depth) + " levels deep",
                                  "flatten the directory layout");
            break;
          }
          size_t size = 0;
          git_object_t type = GIT_OBJECT_INVALID;
          if (int rc = git_odb_read_header(&size, &type, odb.get(), oid); rc < 0) {
            return GitStatus(rc, "reading directory " + Quote(path) + at,
                             "the repository may be corrupt; fetch again or re-clone it");
          }
          if (type != GIT_OBJECT_TREE) {
            snapshot.problems.Add(Location{shown},
                                  "directory entry " + Quote(path) + " is a " +
                                      git_object_type2string(type) + ", not a tree",
                                  "remove the entry from the repository");
            break;
          }
          git_tree* sub = nullptr;
          if (int rc = git_tree_lookup(&sub, repo.get(), oid); rc < 0) {
            return GitStatus(rc, "reading directory " + Quote(path) + at,
                             "the repository may be corrupt; fetch again or re-clone it");
          }
          stack.push_back({TreePtr(sub), path + "/", current.depth + 1});
          break;
        }
        case GIT_FILEMODE_BLOB:
        case GIT_FILEMODE_BLOB_EXECUTABLE:
          if (IsYamlName(name)) candidates.push_back({path, *oid});
          break;
        case GIT_FILEMODE_LINK:
          if (IsYamlName(name)) {
            snapshot.problems.Add(
                Location{shown},
                "symbolic link " + Quote(path) + " is not allowed in a desired-state repository",
                "replace it with the file itself");
          } else {
            snapshot.warnings.push_back("symbolic link " + Quote(path) + " ignored");
          }
          break;
        case GIT_FILEMODE_COMMIT:
          snapshot.warnings.push_back("submodule " + Quote(path) + " ignored");
          break;
        default: {
          char octal[16];
          std::snprintf(octal, sizeof octal, "%06o", static_cast<unsigned>(mode));
          // A YAML file or a directory we cannot read is an error; anything
          // else would have been ignored anyway.
          if (IsYamlName(name) || (mode & 0170000) == 0040000) {
            snapshot.problems.Add(Location{shown},
                                  "entry " + Quote(path) + " has unsupported mode " + octal,
                                  "re-add it with `git add` so that git records a standard mode");
          } else {
            snapshot.warnings.push_back("entry " + Quote(path) + " with unsupported mode " + octal +
                                        " ignored");
          }
          break;
        }
      }
    }
  }
  if (walk_aborted) return snapshot;

  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  // The same path twice (a hand-made tree): neither copy is trusted.
  std::vector<Candidate> unique;
  for (size_t i = 0; i < candidates.size();) {
    size_t j = i + 1;
    while (j < candidates.size() && candidates[j].path == candidates[i].path) ++j;
    if (j - i > 1) {
      snapshot.problems.Add(Location{Escape(candidates[i].path)},
                            "duplicate entry " + Quote(candidates[i].path) + " in the git tree",
                            "remove the entry from the repository");
    } else {
      unique.push_back(std::move(candidates[i]));
    }
    i = j;
  }

  if (unique.size() > limits.max_files) {
    snapshot.problems.Add(Location{},
                          "the revision has " + std::to_string(unique.size()) +
                              " YAML files, over the limit of " + std::to_string(limits.max_files) +
                              at,
                          "remove files from the repository");
    return snapshot;
  }

  // Sizes first, from the object headers: nothing is inflated until every
  // limit is known to hold.
  std::vector<Candidate> readable;
  size_t total = 0;
  for (Candidate& c : unique) {
    size_t size = 0;
    git_object_t type = GIT_OBJECT_INVALID;
    if (int rc = git_odb_read_header(&size, &type, odb.get(), &c.oid); rc < 0) {
      return GitStatus(rc, "reading file " + Quote(c.path) + at,
                       "the repository may be corrupt; fetch again or re-clone it");
    }
    if (type != GIT_OBJECT_BLOB) {
      snapshot.problems.Add(
          Location{Escape(c.path)},
          "file entry " + Quote(c.path) + " is a " + git_object_type2string(type) + ", not a blob",
          "remove the entry from the repository");
      continue;
    }
    if (size > limits.max_file_bytes) {
      snapshot.problems.Add(Location{Escape(c.path)},
                            "file is " + std::to_string(size) + " bytes, over the limit of " +
                                LimitBytes(limits.max_file_bytes),
                            "split it into smaller files");
      continue;
    }
    total += size;
    readable.push_back(std::move(c));
  }
  if (total > limits.max_total_bytes) {
    snapshot.problems.Add(Location{},
                          "the YAML files" + at + " total " + std::to_string(total) +
                              " bytes, over the limit of " + LimitBytes(limits.max_total_bytes),
                          "remove or shrink files in the repository");
    return snapshot;
  }

  snapshot.files.reserve(readable.size());
  for (const Candidate& c : readable) {
    git_blob* raw_blob = nullptr;
    if (int rc = git_blob_lookup(&raw_blob, repo.get(), &c.oid); rc < 0) {
      return GitStatus(rc, "reading file " + Quote(c.path) + at,
                       "the repository may be corrupt; fetch again or re-clone it");
    }
    BlobPtr blob(raw_blob);
    auto size = static_cast<size_t>(git_blob_rawsize(blob.get()));
    if (size > limits.max_file_bytes) {  // Cannot differ from the header; checked anyway.
      snapshot.problems.Add(Location{Escape(c.path)},
                            "file is " + std::to_string(size) + " bytes, over the limit of " +
                                LimitBytes(limits.max_file_bytes),
                            "split it into smaller files");
      continue;
    }
    const char* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &c.oid);
    snapshot.files.push_back({c.path, std::string(data, size), hex});
  }
  return snapshot;
}

// ---------------------------------------------------------------------------

Result<CommitSignatureData> RevisionSource::SignatureData(const std::string& /*commit*/) {
  return Status::NotFound("commit signatures are not supported by this revision source");
}

Result<Revision> RevisionSource::CommitTreeOf(const std::string& /*target*/,
                                              const std::string& /*message*/,
                                              const std::string& /*author_name*/,
                                              const std::string& /*author_email*/,
                                              std::string* /*push_error*/,
                                              const CommitSigner& /*sign*/) {
  return Status::NotFound("writing commits is not supported by this revision source");
}

Result<std::vector<std::string>> RevisionSource::CommitsSince(const std::string& /*from_exclusive*/,
                                                              const std::string& /*to*/) {
  return Status::NotFound("listing commits is not supported by this revision source");
}

GitSource::GitSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GitSource::~GitSource() = default;

Result<std::unique_ptr<GitSource>> GitSource::Open(const Options& options) try {
  CLUSTERCTL_RETURN_IF_ERROR(InitLibgit2());
  if (options.repo.empty()) {
    return Status::Invalid("no desired-state repository given; set repo to a path or a URL");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.branch.empty()) impl->options.branch = "main";
  {
    int valid = 0;
    std::string ref = "refs/heads/" + impl->options.branch;
    if (git_reference_name_is_valid(&valid, ref.c_str()) < 0 || !valid) {
      return Status::Invalid("branch name " + Quote(impl->options.branch) +
                             " is not a valid git branch name; give a name such as \"main\"");
    }
  }
  impl->remote = IsRemoteUrl(options.repo);

  git_repository* raw = nullptr;
  if (!impl->remote) {
    if (int rc = git_repository_open_ext(&raw, options.repo.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH,
                                         nullptr);
        rc < 0) {
      return GitStatus(rc, "opening repository " + Quote(options.repo),
                       "check that the path is a git repository (bare or with a work tree), "
                       "or give a URL");
    }
    impl->repo.reset(raw);
  } else {
    if (options.cache_dir.empty()) {
      return Status::Invalid("repository " + Quote(options.repo) +
                             " is a URL but no cache directory is set; set cache_dir to a "
                             "directory where the repository can be cloned");
    }
    std::error_code ec;
    fs::create_directories(options.cache_dir, ec);
    if (ec) {
      return Status::Unavailable("creating cache directory " + Quote(options.cache_dir) + ": " +
                                 ec.message() + "; check its permissions and free space");
    }
    impl->cache_path = StripTrailingSlash(options.cache_dir) + "/repo-" + Sha256Hex(options.repo);
    if (pipe2(impl->cancel, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Status::Unavailable(std::string("opening the repository: cannot make a pipe: ") +
                                 std::strerror(errno));
    }
    if (!fs::exists(impl->cache_path, ec)) {
      if (options.defer_clone) {
        impl->git_dir = impl->cache_path;  // Cloned by the first Fetch().
        return std::unique_ptr<GitSource>(new GitSource(std::move(impl)));
      }
      CLUSTERCTL_RETURN_IF_ERROR(impl->Clone());
    }
    CLUSTERCTL_RETURN_IF_ERROR(impl->OpenCache());
  }
  const char* path = git_repository_path(impl->repo.get());
  impl->git_dir = StripTrailingSlash(path != nullptr ? path : "");
  return std::unique_ptr<GitSource>(new GitSource(std::move(impl)));
} catch (const std::exception& e) {
  return Status::Internal(std::string("opening the desired-state repository: ") +
                          RedactUrls(e.what()));
}

namespace {

// Pushes `local_ref` to `remote_ref` of `url` (fast-forward only). A
// rejection by the server is an error carrying its message.
Status PushTo(git_repository* repo, const std::string& url, const std::string& local_ref,
              const std::string& remote_ref) {
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* raw_remote = nullptr;
  if (int rc = git_remote_create_with_opts(&raw_remote, url.c_str(), &create); rc < 0) {
    return GitStatus(rc, "pushing to " + Quote(url), "check the repository URL");
  }
  RemotePtr remote(raw_remote);
  std::string spec = local_ref + ":" + remote_ref;
  char* specs[] = {spec.data()};
  git_strarray refspecs = {specs, 1};
  // Standard layout with `attempts` first: CredentialCallback reads it as int*.
  std::string rejected;
  struct Payload {
    int attempts;
    std::string* rejected;
  } payload{0, &rejected};
  git_push_options opts = GIT_PUSH_OPTIONS_INIT;
  opts.callbacks.credentials = CredentialCallback;
  opts.callbacks.push_update_reference = [](const char* ref, const char* status,
                                            void* data) -> int {
    if (status != nullptr) {
      *static_cast<Payload*>(data)->rejected = std::string(ref) + ": " + status;
    }
    return 0;
  };
  opts.callbacks.payload = &payload;
  if (int rc = git_remote_push(remote.get(), &refspecs, &opts); rc < 0) {
    return GitStatus(rc, "pushing to " + Quote(url), "the branch may be protected");
  }
  if (!rejected.empty()) {
    return Status::Permission("the remote refused the push (" + rejected + ")");
  }
  return Status::Ok();
}

}  // namespace

namespace {

using SignaturePtr = std::unique_ptr<git_signature, GitDeleter<git_signature, git_signature_free>>;

// Writes a commit of `tree` on `parent` (not moving any reference), signed
// by `sign` when it is set. Returns its id.
Result<git_oid> WriteCommitObject(git_repository* repo, const git_tree* tree,
                                  const git_commit* parent, const std::string& message,
                                  const std::string& author_name, const std::string& author_email,
                                  const CommitSigner& sign) {
  git_signature* raw_sig = nullptr;
  if (int rc = git_signature_now(&raw_sig, author_name.c_str(), author_email.c_str()); rc < 0) {
    return GitStatus(rc, "making the commit's author line",
                     "set $GIT_AUTHOR_NAME and $GIT_AUTHOR_EMAIL");
  }
  SignaturePtr sig(raw_sig);
  const git_commit* parents[] = {parent};
  git_oid id;
  if (!sign) {
    if (int rc = git_commit_create(&id, repo, nullptr, sig.get(), sig.get(), "UTF-8",
                                   message.c_str(), tree, 1, parents);
        rc < 0) {
      return GitStatus(rc, "writing the commit");
    }
    return id;
  }
  git_buf raw_buf = GIT_BUF_INIT;
  if (int rc = git_commit_create_buffer(&raw_buf, repo, sig.get(), sig.get(), "UTF-8",
                                        message.c_str(), tree, 1, parents);
      rc < 0) {
    return GitStatus(rc, "writing the commit");
  }
  BufPtr buf(&raw_buf);
  Result<std::string> signature = sign(std::string(raw_buf.ptr, raw_buf.size));
  if (!signature.ok()) return signature.status();
  if (int rc =
          git_commit_create_with_signature(&id, repo, raw_buf.ptr, signature->c_str(), "gpgsig");
      rc < 0) {
    return GitStatus(rc, "writing the signed commit");
  }
  return id;
}

}  // namespace

Result<Revision> GitSource::Impl::PublishCommit(const git_oid& id, const git_oid& parent_id,
                                                const std::string& purpose, bool keep,
                                                std::string* push_error) {
  char hex[GIT_OID_HEXSZ + 1] = {0};
  git_oid_tostr(hex, sizeof hex, &id);
  const std::string reflog = "clusterctl: " + purpose;
  if (!remote) {
    git_reference* ref = nullptr;
    const std::string name = "refs/heads/" + options.branch;
    int rc = git_reference_create_matching(&ref, repo.get(), name.c_str(), &id, 1, &parent_id,
                                           reflog.c_str());
    if (rc < 0) {
      return GitStatus(rc, "moving branch " + Quote(options.branch),
                       "the branch moved meanwhile; run the command again");
    }
    git_reference_free(ref);
  } else {
    const std::string local = "refs/heads/clusterctl/" + purpose + "-" + std::string(hex, 7);
    git_reference* ref = nullptr;
    if (int rc = git_reference_create(&ref, repo.get(), local.c_str(), &id, 1, reflog.c_str());
        rc < 0) {
      return GitStatus(rc, "creating branch " + Quote(local));
    }
    git_reference_free(ref);
    if (keep) {
      // The local branch is a mirror of the remote's branches: the next fetch
      // prunes it. This ref outside refs/heads keeps it (see KeepRollbackBranches).
      const std::string kept = std::string(kRollbackRefs) + hex;
      if (int rc = git_reference_create(&ref, repo.get(), kept.c_str(), &id, 1, reflog.c_str());
          rc < 0) {
        return GitStatus(rc, "creating reference " + Quote(kept));
      }
      git_reference_free(ref);
    }
    Status pushed = PushTo(repo.get(), options.repo, local, "refs/heads/" + options.branch);
    if (!pushed.ok() && push_error != nullptr) *push_error = pushed.message();
  }
  Result<CommitPtr> made = LookupCommit(hex);
  if (!made.ok()) return made.status();
  return ToRevision(made->get());
}

Result<Revision> GitSource::CommitTreeOf(const std::string& target, const std::string& message,
                                         const std::string& author_name,
                                         const std::string& author_email, std::string* push_error,
                                         const CommitSigner& sign) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> t = impl_->LookupCommit(target);
  if (!t.ok()) return t.status();
  Result<CommitPtr> head = impl_->LookupCommit("");
  if (!head.ok()) return head.status();
  git_tree* raw_tree = nullptr;
  if (int rc = git_commit_tree(&raw_tree, t->get()); rc < 0) {
    return GitStatus(rc, "reading the tree of " + Quote(target));
  }
  TreePtr tree(raw_tree);
  Result<git_oid> id = WriteCommitObject(impl_->repo.get(), tree.get(), head->get(), message,
                                         author_name, author_email, sign);
  if (!id.ok()) return id.status().Annotate("writing the rollback commit");
  return impl_->PublishCommit(*id, *git_commit_id(head->get()), "rollback", /*keep=*/true,
                              push_error);
} catch (const std::exception& e) {
  return Status::Internal(std::string("writing the rollback commit: ") + RedactUrls(e.what()));
}

Result<Revision> GitSource::CommitEdits(const std::string& expected_head,
                                        const std::vector<FileEdit>& edits,
                                        const std::string& message, const std::string& author_name,
                                        const std::string& author_email, bool push,
                                        std::string* push_error, const CommitSigner& sign) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> head = impl_->LookupCommit("");
  if (!head.ok()) return head.status();
  char head_hex[GIT_OID_HEXSZ + 1] = {0};
  git_oid_tostr(head_hex, sizeof head_hex, git_commit_id(head->get()));
  if (!expected_head.empty() && expected_head != head_hex) {
    return Status(Code::kConflict, "the branch moved from " + expected_head.substr(0, 7) + " to " +
                                       std::string(head_hex, 7) +
                                       " meanwhile; run the command again");
  }
  git_tree* raw_base = nullptr;
  if (int rc = git_commit_tree(&raw_base, head->get()); rc < 0) {
    return GitStatus(rc, "reading the tree of the branch head");
  }
  TreePtr base(raw_base);
  std::vector<git_tree_update> updates(edits.size());
  for (size_t i = 0; i < edits.size(); ++i) {
    git_tree_update& u = updates[i];
    u.path = edits[i].path.c_str();
    if (!edits[i].content) {
      u.action = GIT_TREE_UPDATE_REMOVE;
      continue;
    }
    u.action = GIT_TREE_UPDATE_UPSERT;
    u.filemode = GIT_FILEMODE_BLOB;
    if (int rc = git_blob_create_from_buffer(&u.id, impl_->repo.get(), edits[i].content->data(),
                                             edits[i].content->size());
        rc < 0) {
      return GitStatus(rc, "writing " + Quote(edits[i].path));
    }
  }
  git_oid tree_id;
  if (int rc = git_tree_create_updated(&tree_id, impl_->repo.get(), base.get(), updates.size(),
                                       updates.data());
      rc < 0) {
    return GitStatus(rc, "writing the changed tree");
  }
  git_tree* raw_tree = nullptr;
  if (int rc = git_tree_lookup(&raw_tree, impl_->repo.get(), &tree_id); rc < 0) {
    return GitStatus(rc, "reading the changed tree");
  }
  TreePtr tree(raw_tree);
  Result<git_oid> id = WriteCommitObject(impl_->repo.get(), tree.get(), head->get(), message,
                                         author_name, author_email, sign);
  if (!id.ok()) return id.status();
  if (!push) {
    char hex[GIT_OID_HEXSZ + 1] = {0};
    git_oid_tostr(hex, sizeof hex, &*id);
    Result<CommitPtr> made = impl_->LookupCommit(hex);
    if (!made.ok()) return made.status();
    return Impl::ToRevision(made->get());
  }
  return impl_->PublishCommit(*id, *git_commit_id(head->get()), "change", /*keep=*/false,
                              push_error);
} catch (const std::exception& e) {
  return Status::Internal(std::string("writing the commit: ") + RedactUrls(e.what()));
}

Result<std::string> GitSource::Patch(const std::string& commit) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> c = impl_->LookupCommit(commit);
  if (!c.ok()) return c.status();
  git_tree* raw_new = nullptr;
  git_tree* raw_old = nullptr;
  if (int rc = git_commit_tree(&raw_new, c->get()); rc < 0) {
    return GitStatus(rc, "reading the tree of " + Quote(commit));
  }
  TreePtr new_tree(raw_new);
  git_commit* raw_parent = nullptr;
  if (git_commit_parentcount(c->get()) > 0) {
    if (int rc = git_commit_parent(&raw_parent, c->get(), 0); rc < 0) {
      return GitStatus(rc, "reading the parent of " + Quote(commit));
    }
  }
  CommitPtr parent(raw_parent);
  if (parent) {
    if (int rc = git_commit_tree(&raw_old, parent.get()); rc < 0) {
      return GitStatus(rc, "reading the parent's tree of " + Quote(commit));
    }
  }
  TreePtr old_tree(raw_old);
  git_diff* raw_diff = nullptr;
  if (int rc = git_diff_tree_to_tree(&raw_diff, impl_->repo.get(), old_tree.get(), new_tree.get(),
                                     nullptr);
      rc < 0) {
    return GitStatus(rc, "comparing " + Quote(commit) + " with its parent");
  }
  std::unique_ptr<git_diff, GitDeleter<git_diff, git_diff_free>> diff(raw_diff);
  git_buf buf = GIT_BUF_INIT;
  if (int rc = git_diff_to_buf(&buf, diff.get(), GIT_DIFF_FORMAT_PATCH); rc < 0) {
    return GitStatus(rc, "printing the change of " + Quote(commit));
  }
  BufPtr owned(&buf);
  return std::string(buf.ptr, buf.size);
} catch (const std::exception& e) {
  return Status::Internal(std::string("printing a commit: ") + RedactUrls(e.what()));
}

Status GitSource::Fetch() try {
  if (!impl_->remote) return Status::Ok();
  if (!cloned()) {  // A deferred clone.
    std::error_code ec;
    if (!fs::exists(impl_->cache_path, ec)) CLUSTERCTL_RETURN_IF_ERROR(impl_->Clone());
    std::lock_guard<std::mutex> g(impl_->mu);
    return impl_->OpenCache();
  }
  CLUSTERCTL_RETURN_IF_ERROR(FetchWithDeadline(
      impl_->git_dir, impl_->options.repo, impl_->options.fetch_timeout_seconds, impl_->cancel[0]));
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->KeepRollbackBranches();
} catch (const std::exception& e) {
  return Status::Internal(std::string("fetching: ") + RedactUrls(e.what()));
}

void GitSource::Cancel() {
  if (impl_->cancel[1] >= 0) {
    const char byte = 1;
    (void)!write(impl_->cancel[1], &byte, 1);
  }
}

bool GitSource::cloned() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->repo != nullptr;
}

Result<Revision> GitSource::Resolve(const std::string& rev) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> commit = impl_->LookupCommit(rev);
  if (!commit.ok()) return commit.status();
  return Impl::ToRevision(commit->get());
} catch (const std::exception& e) {
  return Status::Internal("resolving revision " + Quote(rev) + ": " + RedactUrls(e.what()));
}

Result<Snapshot> GitSource::Read(const std::string& rev) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> commit = impl_->LookupCommit(rev);
  if (!commit.ok()) return commit.status();
  return impl_->ReadCommit(commit->get());
} catch (const std::exception& e) {
  return Status::Internal("reading revision " + Quote(rev) + ": " + RedactUrls(e.what()));
}

Result<bool> GitSource::IsDescendant(const std::string& commit, const std::string& ancestor) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> c = impl_->LookupCommit(commit);
  if (!c.ok()) return c.status();
  Result<CommitPtr> a = impl_->LookupCommit(ancestor);
  if (!a.ok()) return a.status();
  const git_oid* c_id = git_commit_id(c->get());
  const git_oid* a_id = git_commit_id(a->get());
  if (git_oid_equal(c_id, a_id)) return true;  // libgit2 says no; we say yes.
  int rc = git_graph_descendant_of(impl_->repo.get(), c_id, a_id);
  if (rc < 0) {
    return Status::NotFound("checking whether " + Quote(commit) + " descends from " +
                            Quote(ancestor) + ": " + LastGitError() +
                            "; the history may have been rewritten and pruned");
  }
  return rc == 1;
} catch (const std::exception& e) {
  return Status::Internal("comparing revisions: " + RedactUrls(e.what()));
}

Result<CommitSignatureData> GitSource::SignatureData(const std::string& commit) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> c = impl_->LookupCommit(commit);
  if (!c.ok()) return c.status();
  git_oid id;
  git_oid_cpy(&id, git_commit_id(c->get()));
  CommitSignatureData out;
  out.commit = Impl::ToRevision(c->get()).commit;
  git_buf signature = GIT_BUF_INIT;
  git_buf signed_data = GIT_BUF_INIT;
  BufPtr free_signature(&signature);
  BufPtr free_signed_data(&signed_data);
  int rc = git_commit_extract_signature(&signature, &signed_data, impl_->repo.get(), &id, "gpgsig");
  if (rc == GIT_ENOTFOUND) return out;  // The commit exists (looked up above): unsigned.
  if (rc < 0) return GitStatus(rc, "reading the signature of commit " + out.commit);
  out.signature.assign(signature.ptr, signature.size);
  out.signed_data.assign(signed_data.ptr, signed_data.size);
  return out;
} catch (const std::exception& e) {
  return Status::Internal("reading the signature of " + Quote(commit) + ": " +
                          RedactUrls(e.what()));
}

Result<std::vector<std::string>> GitSource::CommitsSince(const std::string& from_exclusive,
                                                         const std::string& to) try {
  std::lock_guard<std::mutex> g(impl_->mu);
  Result<CommitPtr> head = impl_->LookupCommit(to);
  if (!head.ok()) return head.status();
  git_revwalk* raw_walk = nullptr;
  if (int rc = git_revwalk_new(&raw_walk, impl_->repo.get()); rc < 0) {
    return GitStatus(rc, "listing commits");
  }
  RevwalkPtr walk(raw_walk);
  // Parents before children; among unrelated commits, older first.
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME | GIT_SORT_REVERSE);
  if (int rc = git_revwalk_push(walk.get(), git_commit_id(head->get())); rc < 0) {
    return GitStatus(rc, "listing commits of " + Quote(to));
  }
  if (!from_exclusive.empty()) {
    Result<CommitPtr> from = impl_->LookupCommit(from_exclusive);
    if (!from.ok()) return from.status();
    if (int rc = git_revwalk_hide(walk.get(), git_commit_id(from->get())); rc < 0) {
      return GitStatus(rc, "listing commits since " + Quote(from_exclusive));
    }
  }
  const size_t limit = impl_->options.limits.max_commits_since;
  std::vector<std::string> out;
  git_oid id;
  int rc = 0;
  while ((rc = git_revwalk_next(&id, walk.get())) == 0) {
    if (out.size() == limit) {
      return Status::Exhausted("more than " + std::to_string(limit) + " commits between " +
                               Quote(from_exclusive) + " and " + Quote(to) +
                               " (limits.max_commits_since)");
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &id);
    out.emplace_back(hex);
  }
  if (rc != GIT_ITEROVER) {
    return GitStatus(rc, "listing commits between " + Quote(from_exclusive) + " and " + Quote(to),
                     "the repository may be corrupt or shallow; fetch again or re-clone it");
  }
  return out;
} catch (const std::exception& e) {
  return Status::Internal("listing commits: " + RedactUrls(e.what()));
}

const std::string& GitSource::git_dir() const { return impl_->git_dir; }

}  // namespace clusterctl::desired_state
