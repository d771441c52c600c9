// Commit signatures: verifies SSH-signed git commits (git's
// `gpg.format=ssh`) against an allowed-signers file, the way
// `git verify-commit` with `gpg.ssh.allowedSignersFile` does through
// `ssh-keygen -Y find-principals` and `ssh-keygen -Y verify -n git`, but in
// process: no git, no ssh-keygen, only OpenSSL's libcrypto.
//
// Pure: both functions work on the bytes they are given. Reading the
// allowed-signers file and the commit (GitSource::SignatureData in
// git_source.h) is the caller's business; so is the time (`now_s`).
//
// Thread-safety: value types and free functions; safe from any thread.
//
// ## What a signed commit is
//
// A signed commit object carries its signature in a "gpgsig" header; the
// signed bytes are the commit object without that header. With
// gpg.format=ssh the signature is an SSHSIG (openssh PROTOCOL.sshsig):
//
//   -----BEGIN SSH SIGNATURE-----
//   <base64, wrapped at 70 columns>
//   -----END SSH SIGNATURE-----
//
// whose decoded blob is
//
//   byte[6] "SSHSIG"
//   uint32  version          must be 1
//   string  publickey        the signer's public key, SSH wire format
//   string  namespace        must be "git" (a signature made with
//                            `ssh-keygen -Y sign -n file` is refused)
//   string  reserved         ignored, as openssh does
//   string  hash_algorithm   "sha256" or "sha512"
//   string  signature        SSH wire signature: string format, string blob
//
// and the signature covers "SSHSIG" || string("git") || string("") ||
// string(hash_algorithm) || string(H(signed data)). `string` is a big-endian
// uint32 length and the bytes; every length is checked against what is left.
//
// Accepted keys and signature formats (key type -> signature format):
//   ssh-ed25519          -> ssh-ed25519 (Ed25519)
//   ecdsa-sha2-nistp256  -> same name, ECDSA P-256 with SHA-256
//   ecdsa-sha2-nistp384  -> same name, ECDSA P-384 with SHA-384
//   ecdsa-sha2-nistp521  -> same name, ECDSA P-521 with SHA-512
//   ssh-rsa (1024..16384 bits) -> rsa-sha2-256 or rsa-sha2-512 (PKCS#1 v1.5)
// Refused as kUnsupported: ssh-rsa signatures (RSA with SHA-1, weak; modern
// ssh-keygen never makes them), ssh-dss, security keys (sk-*@openssh.com),
// certificates (*-cert-v01@openssh.com), OpenPGP and X.509 armor, SSHSIG
// versions other than 1, hash algorithms other than sha256/sha512.
//
// ## The allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS)
//
// One key per line: `principals [options] keytype base64key [comment]`.
// Blank lines and lines starting with "#" are skipped. `principals` is a
// comma-separated list of patterns (`*` and `?`, as in ssh_config(5)); the
// verdict reports it as written (git prints the same). Options, comma
// separated, names case-insensitive, values may be double-quoted:
//   namespaces="git,file"  the key signs only in these namespaces (patterns,
//                          `!` negates); a line without it allows every one.
//   valid-after="YYYYMMDD[HHMM[SS]][Z]"   not before this time
//   valid-before="YYYYMMDD[HHMM[SS]][Z]"  not after this time
//   cert-authority         a CA key for certificates. Not supported: the line
//                          is skipped with a warning (warnings()), and a
//                          commit signed by a certificate is kUnsupported.
// An unknown option, a repeated one, a bad time, valid-before not after
// valid-after, an unknown key type, a key type that differs from the one
// inside the base64 key, or bad base64 is an error naming file:line. All
// errors of a file are reported at once.
//
// Differences from ssh-keygen, on purpose:
// - A time without a zone suffix ("Z" or "UTC") is read as UTC; ssh-keygen
//   reads it in the local time zone of the machine. Write the "Z".
// - The time checked is `now_s` as given. git's own verification passes the
//   committer date, which the committer chooses; clusterd passes the current
//   time, so an expired key cannot sign a back-dated commit.
// - sk-* keys and certificates are refused rather than verified.
//
// ## Order of the checks (the first that fails decides the verdict)
//   empty signature (only whitespace)          -> kUnsigned
//   OpenPGP / X.509 / other armor              -> kUnsupported
//   over 64 KiB, not SSHSIG armor, bad base64,
//     lengths that overrun, trailing bytes     -> kMalformed
//   version, key type, hash or signature
//     algorithm not supported                  -> kUnsupported
//   namespace not "git"                        -> kBadSignature
//   the signature does not verify              -> kBadSignature
//   key not in the allowed signers, or only on
//     lines whose namespaces or validity window
//     exclude it                               -> kUnknownKey
//   otherwise                                  -> kValid
// As in ssh-keygen, the signature is checked before the key is looked up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clusterctl::desired_state {

// One usable line of an allowed-signers file.
struct AllowedSigner {
  std::string principals;                 // As written: "alice@example.com,*@ops.example.com".
  std::string key_type;                   // "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
  std::string key_blob;                   // The decoded public key (SSH wire format).
  std::string fingerprint;                // "SHA256:..." as ssh-keygen -l prints it.
  std::optional<std::string> namespaces;  // Pattern list; absent = every namespace.
  std::optional<int64_t> valid_after_s;   // Unix seconds, inclusive.
  std::optional<int64_t> valid_before_s;  // Unix seconds, inclusive.
  std::string origin;                     // "file:line", for messages.
};

// The parsed allowed-signers file. A value; copy it freely.
class AllowedSigners {
 public:
  // The largest text Parse() accepts.
  static constexpr size_t kMaxBytes = 1 << 20;  // 1 MiB.

  // Parses the text of an allowed-signers file; `file` names it in messages.
  // Errors: Code::kInvalid listing every bad line as
  // "file:line: error: what; hint", one per line of the message.
  static Result<AllowedSigners> Parse(std::string_view text, std::string_view file);

  const std::vector<AllowedSigner>& entries() const { return entries_; }
  // Lines skipped but worth telling the operator about (cert-authority).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::vector<AllowedSigner> entries_;
  std::vector<std::string> warnings_;
};

struct SignatureCheck {
  enum Verdict {
    kValid,         // Signed by an allowed key, valid now, namespace "git".
    kUnsigned,      // No signature at all.
    kUnknownKey,    // A good signature by a key not allowed (now).
    kBadSignature,  // The signature does not match the data, or is for another namespace.
    kUnsupported,   // OpenPGP, certificates, security keys, SHA-1 RSA, ...
    kMalformed,     // Not a well-formed SSHSIG, or over the size limit.
  };
  Verdict verdict = kMalformed;
  std::string signer;       // kValid: the principals of the matching line.
  std::string fingerprint;  // "SHA256:<base64>" of the signing key, once it could be read.
  std::string reason;       // Why, for every verdict but kValid; audit- and user-facing.
};

// "valid", "unsigned", "unknown key", "bad signature", "unsupported", "malformed".
const char* VerdictName(SignatureCheck::Verdict verdict);

// The largest armored signature VerifyCommitSignature() reads.
constexpr size_t kMaxSignatureBytes = 64 << 10;  // 64 KiB.

// Verifies the SSH signature of a git commit: `signed_data` is the commit
// object without its gpgsig header and `signature_armored` that header's
// value (GitSource::SignatureData gives both; an unsigned commit has an empty
// signature). `now_s` (Unix seconds) is checked against the valid-after and
// valid-before options of the allowed signers. Never fails and never crashes:
// any input gives a verdict.
SignatureCheck VerifyCommitSignature(std::string_view signed_data,
                                     std::string_view signature_armored,
                                     const AllowedSigners& allowed, int64_t now_s);

}  // namespace clusterctl::desired_state
