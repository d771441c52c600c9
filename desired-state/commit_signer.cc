#include "desired-state/commit_signer.h"

#include <utility>

#include "base/subprocess.h"

namespace clusterctl::desired_state {

namespace {

std::string FirstLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  // ssh-keygen prints "Signing data on standard input" before its error.
  const size_t last = text.rfind('\n');
  return last == std::string::npos ? text : text.substr(last + 1);
}

}  // namespace

CommitSigner SshCommitSigner(std::string key_file, int timeout_ms, std::string ssh_keygen) {
  return [key_file = std::move(key_file), timeout_ms,
          ssh_keygen = std::move(ssh_keygen)](const std::string& object) -> Result<std::string> {
    ProcessOptions options;
    options.input = object;
    options.timeout_ms = timeout_ms;
    options.max_output = 64 << 10;
    Result<ProcessResult> r =
        RunProcess({ssh_keygen, "-Y", "sign", "-n", "git", "-f", key_file}, options);
    if (!r.ok()) {
      return Status(r.status().code(), "signing the commit with " + key_file + ": " +
                                           r.status().message() +
                                           " (is openssh-client installed?)");
    }
    constexpr char kBegin[] = "-----BEGIN SSH SIGNATURE-----";
    if (r->exit_code != 0 || r->out.rfind(kBegin, 0) != 0) {
      std::string why = FirstLine(r->err);
      return Status::Permission(
          "signing the commit with " + key_file + " failed: ssh-keygen " + DescribeExit(*r) +
          (why.empty() ? "" : " (" + why + ")") +
          "; repo.signingKey must name a private key file readable only by you, or a public key "
          "whose private key is loaded in ssh-agent");
    }
    std::string sig = r->out;
    while (!sig.empty() && sig.back() == '\n') sig.pop_back();
    return sig;
  };
}

}  // namespace clusterctl::desired_state
