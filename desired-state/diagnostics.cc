#include "desired-state/diagnostics.h"

#include <algorithm>
#include <tuple>

namespace clusterctl::desired_state {

std::string Location::ToString() const {
  std::string s = file.empty() ? "<repository>" : file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
  }
  return s;
}

bool Location::operator<(const Location& o) const {
  return std::tie(file, line, column) < std::tie(o.file, o.line, o.column);
}

std::string Diagnostic::ToString() const {
  std::string s = where.ToString() + ": error: " + message;
  if (!hint.empty()) s += "; " + hint;
  return s;
}

void Diagnostics::Add(Location where, std::string message, std::string hint) {
  items_.push_back({std::move(where), std::move(message), std::move(hint)});
}

void Diagnostics::Append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

std::vector<Diagnostic> Diagnostics::Sorted() const {
  std::vector<Diagnostic> out = items_;
  std::stable_sort(out.begin(), out.end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.where < b.where; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const Diagnostic& a, const Diagnostic& b) {
                          return a.where == b.where && a.message == b.message;
                        }),
            out.end());
  return out;
}

std::string Diagnostics::ToString() const {
  std::string s;
  for (const auto& d : Sorted()) s += d.ToString() + "\n";
  return s;
}

}  // namespace clusterctl::desired_state
