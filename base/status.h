// Status and Result<T>: errors as values across every module of clusterctl.
//
// No exception crosses a module boundary. Libraries that throw (yaml-cpp,
// std::filesystem, nlohmann::json) are caught in the one adapter file that
// uses them and turned into a Status. The code decides what a caller does
// next: kUnavailable and kTimeout back off and retry, kInvalid waits for new
// input (a new git revision), the rest are reported.
//
// Thread-safety: value types; safe to copy between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace clusterctl {

enum class Code {
  kOk = 0,
  kInvalid,            // bad input: desired state, flags, config. Do not retry.
  kNotFound,           // a revision, file, record or service that does not exist.
  kUnavailable,        // a machine, repository or store that cannot be reached now.
  kTimeout,            // an operation that did not finish within its bound.
  kPermission,         // refused: host key mismatch, auth failure, 401.
  kConflict,           // someone else holds the resource (a locked data directory).
  kResourceExhausted,  // a limit was hit: file size, nesting depth, disk full.
  kInternal,           // a bug or an unexpected library failure.
};

// Short lower-case name of a code ("invalid", "unavailable", ...).
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status Permission(std::string m) { return {Code::kPermission, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status Exhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message", keeping the code. Use on the way up:
  //   return s.Annotate("loading services/ollama.yaml");
  Status Annotate(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

  // "invalid: message" or "ok".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace clusterctl

// Returns early from the enclosing function when `expr` yields a failed Status.
#define CLUSTERCTL_RETURN_IF_ERROR(expr) \
  do {                                   \
    ::clusterctl::Status _st = (expr);   \
    if (!_st.ok()) return _st;           \
  } while (0)
