#include "desired-state/redact_url.h"

#include <cctype>

namespace clusterctl::desired_state {
namespace {

bool SchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Ends the authority of a URL (RFC 3986), or a URL quoted in a message.
bool EndsAuthority(char c) {
  return c == '/' || c == '?' || c == '#' || c == '\'' || c == '"' || c == '`' ||
         std::isspace(static_cast<unsigned char>(c));
}

}  // namespace

std::string RedactUrls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t copied = 0;
  size_t at = 0;
  while ((at = text.find("://", at)) != std::string_view::npos) {
    size_t scheme_start = at;
    while (scheme_start > 0 && SchemeChar(text[scheme_start - 1])) --scheme_start;
    const std::string scheme = Lower(text.substr(scheme_start, at - scheme_start));
    const size_t auth = at + 3;
    size_t end = auth;
    while (end < text.size() && !EndsAuthority(text[end])) ++end;
    // The userinfo ends at the authority's last '@' (a password may hold '@').
    const size_t atsign = text.substr(auth, end - auth).rfind('@');
    at = end;
    if (scheme.empty() || atsign == std::string_view::npos) continue;
    const std::string_view userinfo = text.substr(auth, atsign);
    const size_t colon = userinfo.find(':');
    std::string replacement;
    if (colon != std::string_view::npos) {
      replacement = std::string(userinfo.substr(0, colon)) + ":***";
    } else if (scheme == "http" || scheme == "https") {
      replacement = "***";
    } else {
      continue;
    }
    out.append(text.substr(copied, auth - copied));
    out += replacement;
    copied = auth + atsign;  // From the '@' on.
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace clusterctl::desired_state
