// Secret files named by the desired-state repository: where they may live.
//
// A revision names files on the controller host (`passwordFile` of a redis
// probe, `identityFile` of a machine or of the Cluster's ssh defaults) whose
// content is sent to other hosts. Whoever can push to the repository must not
// be able to make the controller send any other file (its API token, say) to a
// host of their choosing, so the rule is:
//
//   - A repository path is relative to the controller's secrets directory
//     (config `secretsDir`, default `<dataDir>/secrets`): `redis/password`.
//     An absolute path is accepted when it lies inside that directory.
//   - No `..` component, no `~`, no path outside the directory.
//   - No symlink below the directory is followed (each component is opened
//     with O_NOFOLLOW); the directory itself may be a symlink (the operator
//     chose it in the config).
//   - The controller's own secrets (tokenFile, webhookSecretFile, the config's
//     ssh.identityFile and redis.passwordFile) are never accepted, even when
//     they lie inside the directory (compared by path and by inode).
//   - The file may be absent when a revision is validated (it can be
//     provisioned later); reading it then fails like any unreadable file.
//
// ResolveSecretFile checks a path when a revision is loaded (file:line:col
// diagnostics come from the loader); ReadSecretFile applies the same rule at
// the moment the file is read, so a symlink planted after validation is still
// refused.
//
// Not pure: both functions look at the file system. Thread-safety: reentrant.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace clusterctl {

struct SecretsPolicy {
  // Absolute path of the secrets directory. Default: empty = the repository
  // may name no secret file at all.
  std::string dir;
  // The controller's own secret files: (config key, path), e.g.
  // {"tokenFile", "/etc/clusterd/token"}. Empty paths are ignored.
  std::vector<std::pair<std::string, std::string>> reserved;
};

// Checks `written`, a path as the repository writes it, against `policy`.
// Returns the absolute path of the file inside policy.dir. Errors are
// kInvalid with a message that names `written` and why it is refused, never
// the file's content:
//   `"/etc/clusterd/token" is outside secretsDir /var/lib/clusterd/secrets`
Result<std::string> ResolveSecretFile(const SecretsPolicy& policy, const std::string& written);

// Reads the file `written` names under the same rule, following no symlink
// below policy.dir, and returns its content (at most `max_bytes`, else
// kResourceExhausted). kInvalid when the rule refuses the path (the message
// is ResolveSecretFile's), kNotFound or kPermission when the file cannot be
// read ("<absolute path>: no such file"). Messages name the path only.
Result<std::string> ReadSecretFile(const SecretsPolicy& policy, const std::string& written,
                                   size_t max_bytes = 64 * 1024);

// `text` with every occurrence of `secret` replaced by "***", for messages
// that may quote a secret (a server echoing a password). An empty secret
// changes nothing.
std::string Redact(std::string text, const std::string& secret);

}  // namespace clusterctl
