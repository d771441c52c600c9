// Load errors with a place in the repository and a hint of what to do.
//
// Every problem found while loading a revision becomes one Diagnostic. They
// are collected, not thrown, so a user sees every error of a revision at
// once, sorted by file, line and column:
//
//   services/ollama.yaml:12:5: error: unknown field "comand" in Service spec;
//       remove it or fix its spelling (fields: see docs/desired-state.md)
//
// Thread-safety: value types.
#pragma once

#include <string>
#include <vector>

namespace clusterctl::desired_state {

// A place in a file of the repository. line and column are 1-based; 0 means
// "the whole file" (a file too large to parse has no line).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;

  // "file:line:col", "file:line" or "file".
  std::string ToString() const;
  bool operator<(const Location& o) const;
  bool operator==(const Location& o) const = default;
};

struct Diagnostic {
  Location where;
  std::string message;  // what is wrong: `unknown field "comand" in Service spec`
  std::string hint;     // what to do: `remove it or fix its spelling`; may be empty

  // "file:line:col: error: message; hint"
  std::string ToString() const;
};

// An ordered collection of diagnostics.
class Diagnostics {
 public:
  void Add(Location where, std::string message, std::string hint = "");
  void Append(const Diagnostics& other);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  // Sorted by file, line, column (stable for equal places); duplicates removed.
  std::vector<Diagnostic> Sorted() const;
  // Every diagnostic on its own line, sorted.
  std::string ToString() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace clusterctl::desired_state
