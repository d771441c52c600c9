#include "reconcilers/shell_framing.h"

#include <algorithm>

#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

// printf of a marker in two parts, so the whole marker never appears in the
// request text.
std::string PrintMarker(const std::string& token, const std::string& suffix, bool with_status,
                        bool to_stderr) {
  return std::string("printf '\\n%s%s") + (with_status ? " %s" : "") + "\\n' '" +
         token.substr(0, 8) + "' '" + token.substr(8) + suffix + "'" +
         (with_status ? " \"$?\"" : "") + (to_stderr ? " >&2" : "");
}

std::string Marker(const std::string& token, const std::string& suffix) { return token + suffix; }

}  // namespace

std::string FrameRequest(const Command& command, const std::string& token, uint64_t seq,
                         bool send_sync, bool send_library) {
  std::string text;
  if (send_sync) {
    text += PrintMarker(token, ":s", false, false) + "; " + PrintMarker(token, ":s", false, true) +
            "\n";
  }
  if (send_library && !command.library.empty()) {
    text += "command eval " + ShellQuote(command.library) + "\n";
  }
  if (command.trusted) {
    text +=
        "_cc_main() { command eval " + ShellQuote(command.script) + "\n}\n_cc_main </dev/null\n";
  } else {
    text += "( eval " + ShellQuote(command.script) + "\n) </dev/null\n";
  }
  const std::string suffix = ":" + std::to_string(seq);
  text += PrintMarker(token, suffix, true, false) + "; " + PrintMarker(token, suffix, false, true) +
          "\n";
  return text;
}

StreamParser::StreamParser(const std::string& token, uint64_t seq, bool with_status, bool synced,
                           size_t max_bytes)
    : sync_key_("\n" + Marker(token, ":s") + "\n"),
      end_key_("\n" + Marker(token, ":" + std::to_string(seq)) + (with_status ? " " : "\n")),
      with_status_(with_status),
      synced_(synced),
      max_bytes_(max_bytes) {}

void StreamParser::Keep(std::string_view bytes) {
  const size_t room = data_.size() < max_bytes_ ? max_bytes_ - data_.size() : 0;
  if (bytes.size() > room) truncated_ = true;
  data_.append(bytes.substr(0, std::min(room, bytes.size())));
}

void StreamParser::Feed(std::string_view bytes) {
  if (done_) return;  // Nothing follows the marker line of a command.
  tail_.append(bytes);
  if (!synced_) {
    const size_t p = tail_.find(sync_key_);
    if (p == std::string::npos) {
      // Start-up noise: keep only what may be the start of the sync line.
      if (tail_.size() > sync_key_.size()) tail_.erase(0, tail_.size() - sync_key_.size());
      return;
    }
    tail_.erase(0, p + sync_key_.size());
    synced_ = true;
  }
  const size_t p = tail_.find(end_key_);
  if (p == std::string::npos) {
    // Everything but a possible partial marker is output.
    if (tail_.size() > end_key_.size()) {
      const size_t n = tail_.size() - end_key_.size();
      Keep(std::string_view(tail_).substr(0, n));
      tail_.erase(0, n);
    }
    return;
  }
  if (with_status_) {
    const size_t nl = tail_.find('\n', p + end_key_.size());
    if (nl == std::string::npos) {
      Keep(std::string_view(tail_).substr(0, p));
      tail_.erase(0, p);
      return;
    }
    const std::string code = tail_.substr(p + end_key_.size(), nl - p - end_key_.size());
    status_ = -1;
    if (!code.empty() && code.size() <= 4 &&
        std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      status_ = std::stoi(code);
    }
  }
  Keep(std::string_view(tail_).substr(0, p));
  tail_.clear();
  done_ = true;
}

}  // namespace clusterctl::reconcilers
