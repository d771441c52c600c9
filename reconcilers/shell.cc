#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

// Characters no shell gives a meaning to in any position of a word. '=' is
// left out: "A=b" as the first word of a command is an assignment.
bool IsSafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '@' || c == '+' || c == ':' || c == ',' || c == '.' || c == '/' || c == '-';
}

}  // namespace

std::string ShellQuote(std::string_view s) {
  if (s.empty()) return "''";
  bool safe = true;
  for (char c : s) safe = safe && IsSafe(c);
  if (safe) return std::string(s);
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) out += ' ';
    out += ShellQuote(argv[i]);
  }
  return out;
}

}  // namespace clusterctl::reconcilers
