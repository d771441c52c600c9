// Redacting credentials from repository URLs and from text that may hold one.
//
// A repository URL may carry credentials in its userinfo
// (`https://user:token@host/org/repo.git`; a bare token in the user part,
// `https://ghp_x@host/...`, is common too). They must never reach a log line,
// an alert, an audit record, an API answer or clusterctl's output, so every
// URL and every message that may quote one (libgit2 errors do) goes through
// RedactUrls first. The rule, for each `scheme://userinfo@` in the text:
//   - a password (`user:password@`) becomes `user:***@`;
//   - for http and https a userinfo without a password is a token in the user
//     part and becomes `***@`;
//   - for other schemes (ssh://git@host/...) a user without a password is not
//     a secret and is kept, as is the scp-like form `git@host:org/repo.git`.
// Plain paths and file:// URLs are returned unchanged.
//
// Pure. Thread-safety: reentrant.
#pragma once

#include <string>
#include <string_view>

namespace clusterctl::desired_state {

// `text` with the credentials of every URL in it replaced as above.
std::string RedactUrls(std::string_view text);

}  // namespace clusterctl::desired_state
