// Signing the commits clusterctl writes (rollback commits, and the commits
// of `clusterctl stop|start`) so that a repository with `repo.verify`
// accepts them: an SSH signature exactly as git makes one with
// `gpg.format=ssh` and `user.signingKey`. Like git, it runs
//
//   ssh-keygen -Y sign -n git -f <key>
//
// with the commit object on stdin and the armored SSHSIG on stdout. <key> is
// a private key file (unencrypted, or encrypted with its passphrase asked on
// the terminal), or a public key file whose private half is in ssh-agent.
// commit_signature.h verifies the result in process; ssh-keygen is only
// needed where commits are signed.
//
// Thread-safety: a CommitSigner may be called from any thread.
#pragma once

#include <functional>
#include <string>

#include "base/status.h"

namespace clusterctl::desired_state {

// Given the commit object to sign (git_commit_create_buffer), returns the
// armored signature for its "gpgsig" header. An empty CommitSigner means
// "do not sign".
using CommitSigner = std::function<Result<std::string>(const std::string& commit_object)>;

// A signer running ssh-keygen (found on $PATH, or `ssh_keygen`) with `key_file`.
// Errors name the key and ssh-keygen's own message; never the commit.
CommitSigner SshCommitSigner(std::string key_file, int timeout_ms = 60000,
                             std::string ssh_keygen = "ssh-keygen");

}  // namespace clusterctl::desired_state
