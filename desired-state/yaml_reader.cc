#include "desired-state/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <istream>
#include <limits>
#include <optional>
#include <streambuf>
#include <utility>

#include "base/utf8.h"

namespace clusterctl::desired_state {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kStandardTagPrefix = "tag:yaml.org,2002:";
// A file with this many problems is not worth reading further.
constexpr size_t kMaxDiagnosticsPerFile = 100;

constexpr char kSyntaxHint[] = "check indentation and quoting";
constexpr char kSplitHint[] = "split it into smaller files";
constexpr char kUtf8Hint[] = "save the file as UTF-8";
constexpr char kAnchorMessage[] = "YAML anchors and aliases are not supported";
constexpr char kAnchorHint[] = "write the value out in full";
constexpr char kRootMessage[] =
    "a document must be a mapping with apiVersion, kind, metadata and spec";

// ---------------------------------------------------------------------------
// Small helpers.

std::string Hex(unsigned char b) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string s = "0x";
  s += kDigits[b >> 4];
  s += kDigits[b & 15];
  return s;
}

// Quotes `s` for a message: escapes quotes, backslashes and control
// characters, and shortens long text.
std::string QuoteForMessage(std::string_view s) {
  constexpr size_t kMax = 64;
  bool cut = false;
  if (s.size() > kMax) {
    size_t n = kMax;
    // Do not cut a UTF-8 sequence in half.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
    cut = true;
  }
  std::string out = "\"";
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (b < 0x20 || b == 0x7F) {
      out += "\\x" + Hex(b).substr(2);
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  out += '"';
  return out;
}

bool IsForbiddenControl(unsigned char b) {
  return (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7F;
}

// A read-only std::streambuf over a string_view, so yaml-cpp reads the text
// without a copy.
class ViewBuffer : public std::streambuf {
 public:
  explicit ViewBuffer(std::string_view text) {
    char* begin = const_cast<char*>(text.data());
    setg(begin, begin, begin + text.size());
  }
};

// ---------------------------------------------------------------------------
// Checks on the raw text, before yaml-cpp sees it.

struct TextProblem {
  int line = 0;
  int column = 0;
  std::string message;
  std::string hint;
};

// One pass over the text: valid UTF-8, no control characters, and flow
// collections ("[", "{" outside quotes and comments) nested at most
// `max_depth` deep. The flow scan approximates YAML's rules and errs towards
// counting too few levels: outside flow collections a bracket counts only
// where a node can start ("key: [", "- [", "? [", "--- [", "&a [", "!!seq [",
// or first on its line), so "say: press [" in a plain scalar does not count.
// The event handler bounds the real depth; this only keeps yaml-cpp's
// recursive scanner and parser from ever seeing pathological nesting.
std::optional<TextProblem> CheckText(std::string_view text, size_t max_depth) {
  enum class State { kNormal, kSingle, kDouble, kComment };
  State state = State::kNormal;
  int line = 1;
  size_t line_start = 0;
  size_t depth = 0;
  // Outside quotes: the previous byte ('\n' at line start), the last
  // non-blank byte of the line and the first byte of its last word (0 when
  // the line has none yet).
  char prev = '\n';
  char last_nonblank = 0;
  char word_first = 0;
  auto problem = [&](size_t i, std::string message, std::string hint) {
    return TextProblem{line, static_cast<int>(i - line_start) + 1, std::move(message),
                       std::move(hint)};
  };
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  for (size_t i = 0; i < text.size();) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b >= 0x80) {
      size_t len = Utf8SequenceLength(text, i);
      if (len == 0) return problem(i, "invalid UTF-8 byte " + Hex(b), kUtf8Hint);
      i += len;
      if (state == State::kNormal) {
        if (blank(prev)) word_first = 'x';
        prev = last_nonblank = 'x';
      }
      continue;
    }
    if (IsForbiddenControl(b)) {
      return problem(i, "control character " + Hex(b) + " is not allowed in YAML", "remove it");
    }
    char c = static_cast<char>(b);
    if (c == '\r') c = '\n';  // For the rules below; lines are counted by '\n'.
    switch (state) {
      case State::kNormal: {
        bool after_blank = blank(prev);
        if (c == '#' && after_blank) {
          state = State::kComment;
        } else if ((c == '\'' || c == '"') &&
                   (after_blank || prev == '[' || prev == '{' || prev == ',' || prev == ':')) {
          state = c == '\'' ? State::kSingle : State::kDouble;
        } else if (c == '[' || c == '{') {
          bool node_start =
              depth > 0 ||
              (after_blank && (last_nonblank == 0 || last_nonblank == ':' || last_nonblank == '-' ||
                               last_nonblank == '?' || word_first == '&' || word_first == '!'));
          if (node_start && ++depth > max_depth) {
            return problem(i, "nesting deeper than " + std::to_string(max_depth) + " levels",
                           "reduce the nesting");
          }
        } else if ((c == ']' || c == '}') && depth > 0) {
          --depth;
        }
        if (!blank(c)) {
          if (after_blank) word_first = c;
          last_nonblank = c;
        }
        prev = c;
        break;
      }
      case State::kSingle:
        if (c == '\'') {
          if (i + 1 < text.size() && text[i + 1] == '\'') {
            ++i;  // An escaped quote.
          } else {
            state = State::kNormal;
            prev = last_nonblank = c;
          }
        }
        break;
      case State::kDouble:
        if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
          ++i;  // An escaped quote or backslash.
        } else if (c == '"') {
          state = State::kNormal;
          prev = last_nonblank = c;
        }
        break;
      case State::kComment:
        if (c == '\n') state = State::kNormal;
        break;
    }
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
      if (state == State::kNormal) {
        prev = '\n';
        last_nonblank = word_first = 0;
      }
    }
    ++i;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// YAML 1.2 core schema.

bool IsCoreNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> CoreBool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

enum class NumberResult { kNotANumber, kOk, kOutOfRange };

bool AllDigits(std::string_view s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < '0' + base);
    if (!ok) return false;
  }
  return true;
}

// Integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+.
NumberResult CoreInt(std::string_view s, Json* out) {
  int base = 10;
  bool negative = false;
  std::string_view digits = s;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    digits = s.substr(2);
  } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    digits = s.substr(1);
  }
  if (!AllDigits(digits, base)) return NumberResult::kNotANumber;
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) return NumberResult::kOutOfRange;
  constexpr uint64_t kMaxInt = std::numeric_limits<int64_t>::max();
  if (negative) {
    if (magnitude > kMaxInt + 1) return NumberResult::kOutOfRange;
    *out = magnitude == kMaxInt + 1 ? std::numeric_limits<int64_t>::min()
                                    : -static_cast<int64_t>(magnitude);
  } else if (magnitude <= kMaxInt) {
    *out = static_cast<int64_t>(magnitude);
  } else {
    *out = magnitude;
  }
  return NumberResult::kOk;
}

// Floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan.
NumberResult CoreFloat(std::string_view s, Json* out) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    negative = body[0] == '-';
    body = body.substr(1);
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    double inf = std::numeric_limits<double>::infinity();
    *out = negative ? -inf : inf;
    return NumberResult::kOk;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return NumberResult::kOk;
  }
  // Match the pattern by hand.
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i;
    return i - start;
  };
  size_t int_digits = digits();
  size_t frac_digits = 0;
  if (i < body.size() && body[i] == '.') {
    ++i;
    frac_digits = digits();
  }
  if (int_digits == 0 && frac_digits == 0) return NumberResult::kNotANumber;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '-' || body[i] == '+')) ++i;
    if (digits() == 0) return NumberResult::kNotANumber;
  }
  if (i != body.size()) return NumberResult::kNotANumber;
  double value = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), value);
  if (ec != std::errc() || end != body.data() + body.size()) return NumberResult::kOutOfRange;
  *out = negative ? -value : value;
  return NumberResult::kOk;
}

// The short form of a tag for messages: "!!str" for the standard ones.
std::string DisplayTag(const std::string& tag) {
  if (tag.starts_with(kStandardTagPrefix)) {
    return "!!" + tag.substr(kStandardTagPrefix.size());
  }
  return tag;
}

// The tags this reader understands. yaml-cpp reports "?" for a plain node
// and "!" for a quoted scalar (or the non-specific tag "!").
enum class Tag { kPlain, kNonSpecific, kStr, kInt, kBool, kNull, kFloat, kMap, kSeq, kOther };

Tag ClassifyTag(std::string_view tag) {
  if (tag == "?") return Tag::kPlain;
  if (tag == "!") return Tag::kNonSpecific;
  if (!tag.starts_with(kStandardTagPrefix)) return Tag::kOther;
  std::string_view name = tag.substr(kStandardTagPrefix.size());
  if (name == "str") return Tag::kStr;
  if (name == "int") return Tag::kInt;
  if (name == "bool") return Tag::kBool;
  if (name == "null") return Tag::kNull;
  if (name == "float") return Tag::kFloat;
  if (name == "map") return Tag::kMap;
  if (name == "seq") return Tag::kSeq;
  return Tag::kOther;
}

// ---------------------------------------------------------------------------
// The event handler: builds JSON documents with an explicit stack.

// Thrown by the handler to stop parsing; the diagnostic is already recorded.
struct StopParsing {};

class JsonBuilder : public YAML::EventHandler {
 public:
  JsonBuilder(const std::string& path, std::string_view text, const YamlLimits& limits)
      : path_(path), text_(text), limits_(limits) {}

  std::vector<Diagnostic>& diagnostics() { return diags_; }
  std::vector<YamlDocument>& documents() { return docs_; }
  size_t document_count() const { return document_count_; }

  Location Where(const YAML::Mark& mark) const {
    const YamlDocument::LineColumn at = Place(mark);
    return Location{path_, at.line, at.column};
  }
  static YamlDocument::LineColumn Place(const YAML::Mark& mark) {
    if (mark.is_null()) return {0, 0};
    return {mark.line + 1, mark.column + 1};
  }

  // Records a problem. Stops parsing once a file has too many.
  void Report(Location where, std::string message, std::string hint) {
    diags_.push_back({where, std::move(message), std::move(hint)});
    if (diags_.size() >= kMaxDiagnosticsPerFile) {
      Fatal(std::move(where),
            "too many errors (" + std::to_string(kMaxDiagnosticsPerFile) +
                "); stopped reading this file",
            "fix the errors above first");
    }
  }

  // Records a problem and stops parsing.
  [[noreturn]] void Fatal(Location where, std::string message, std::string hint) {
    diags_.push_back({std::move(where), std::move(message), std::move(hint)});
    Stop();
  }

  [[noreturn]] void Stop() { throw StopParsing{}; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp can start "documents" forever at a token it cannot consume.
    if (document_count_ > 0 && mark.pos <= last_document_pos_) {
      Fatal(Where(mark), "could not parse YAML near line " + std::to_string(mark.line + 1),
            kSyntaxHint);
    }
    last_document_pos_ = mark.pos;
    if (++document_count_ > limits_.max_documents) {
      Fatal(Where(mark),
            "file has more than " + std::to_string(limits_.max_documents) + " YAML documents",
            kSplitHint);
    }
    stack_.clear();
    doc_ = YamlDocument{};
    doc_.where = Where(mark);
    places_.clear();
    places_.emplace("", Place(mark));
    root_ = RootKind::kNone;
  }

  void OnDocumentEnd() override {
    switch (root_) {
      case RootKind::kNone:
      case RootKind::kNull: {
        // A null root is either an empty document ("---" followed by
        // "---", "..." or the end) or a token yaml-cpp could not use (a
        // stray ","), where it would otherwise loop forever.
        auto pos = static_cast<size_t>(root_mark_.pos);
        if (root_ == RootKind::kNull && pos < text_.size() &&
            (text_[pos] == ',' || text_[pos] == ']' || text_[pos] == '}')) {
          Fatal(Where(root_mark_),
                "could not parse YAML near line " + std::to_string(root_mark_.line + 1),
                kSyntaxHint);
        }
        Fatal(doc_.where, "empty YAML document",
              "remove the stray \"---\" or give the document content");
      }
      case RootKind::kBroken:
        break;  // Already reported.
      case RootKind::kValue:
        if (!root_value_.is_object()) {
          Report(Where(root_mark_), kRootMessage, "");
          break;
        }
        doc_.value = std::move(root_value_);
        doc_.places = YamlDocument::Places(places_);
        docs_.push_back(std::move(doc_));
        break;
    }
    root_value_ = Json();
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Slot slot = BeginNode(mark, anchor);
    if (slot.role == Role::kKey) {
      ReportBadKey(mark);
      BadKey();
      return;
    }
    if (slot.role == Role::kRoot) {
      root_ = RootKind::kNull;
      return;
    }
    Deliver(slot, Json(nullptr));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    Slot slot = BeginNode(mark, YAML::NullAnchor);
    ReportAnchor(mark);
    Broken(slot);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Slot slot = BeginNode(mark, anchor);
    Tag kind = ClassifyTag(tag);
    if (kind == Tag::kOther) {
      ReportUnsupportedTag(mark, tag);
      Broken(slot);
      return;
    }
    // Plain scalars are checked with the raw text; the others may hold
    // escapes.
    if (kind != Tag::kPlain && !CheckDecodedText(mark, value)) {
      Broken(slot);
      return;
    }
    if (slot.role == Role::kKey) {
      if (kind == Tag::kMap || kind == Tag::kSeq) {
        ReportTagMismatch(mark, tag, "a scalar");
        BadKey();
        return;
      }
      SetKey(mark, value);
      return;
    }
    std::optional<Json> json = Resolve(mark, kind, tag, value);
    if (!json) {
      Broken(slot);
      return;
    }
    Deliver(slot, std::move(*json));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    StartCollection(mark, tag, anchor, /*is_map=*/false);
  }

  void OnSequenceEnd() override { EndCollection(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    StartCollection(mark, tag, anchor, /*is_map=*/true);
  }

  void OnMapEnd() override { EndCollection(); }

 private:
  enum class Role { kRoot, kItem, kKey, kValue };
  enum class RootKind { kNone, kNull, kBroken, kValue };

  // Where a new node goes.
  struct Slot {
    Role role;
    bool keep = true;     // False for the value of a rejected key.
    std::string pointer;  // JSON pointer of the node (not for keys).
  };

  struct Frame {
    bool is_map = false;
    Json value;
    Slot slot;  // Where this collection goes when it ends.
    // Maps only: the state of the current member.
    bool expect_key = true;
    bool key_ok = false;
    std::string key;
    std::string key_pointer;
  };

  // Counts the node, rejects anchors, and says where it goes. Records the
  // place of sequence items; the place of a map member is that of its key.
  Slot BeginNode(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (++node_count_ > limits_.max_nodes) {
      Fatal(Where(mark), "file has more than " + std::to_string(limits_.max_nodes) + " YAML nodes",
            kSplitHint);
    }
    if (anchor != YAML::NullAnchor) ReportAnchor(mark);
    if (stack_.empty()) {
      root_mark_ = mark;
      return Slot{Role::kRoot, true, ""};
    }
    Frame& top = stack_.back();
    if (!top.is_map) {
      std::string pointer = top.slot.pointer;
      pointer += '/';
      pointer += std::to_string(top.value.size());
      places_.insert_or_assign(pointer, Place(mark));
      return Slot{Role::kItem, top.slot.keep, std::move(pointer)};
    }
    if (top.expect_key) return Slot{Role::kKey, false, ""};
    return Slot{Role::kValue, top.slot.keep && top.key_ok, top.key_pointer};
  }

  // Puts a finished node where it belongs.
  void Deliver(const Slot& slot, Json value) {
    switch (slot.role) {
      case Role::kRoot:
        root_ = RootKind::kValue;
        root_value_ = std::move(value);
        return;
      case Role::kItem:
        stack_.back().value.get_ref<Json::array_t&>().push_back(std::move(value));
        return;
      case Role::kValue: {
        Frame& top = stack_.back();
        if (top.key_ok) {
          top.value.get_ref<Json::object_t&>().emplace(std::move(top.key), std::move(value));
        }
        top.expect_key = true;
        return;
      }
      case Role::kKey:
        break;  // Keys never get here.
    }
  }

  // Delivers a placeholder for a node with a problem already reported.
  void Broken(const Slot& slot) {
    if (slot.role == Role::kKey) {
      BadKey();
      return;
    }
    if (slot.role == Role::kRoot) {
      root_ = RootKind::kBroken;
      return;
    }
    Deliver(slot, Json(nullptr));
  }

  void ReportAnchor(const YAML::Mark& mark) {
    if (anchor_reported_) return;  // Once per file is enough.
    anchor_reported_ = true;
    Report(Where(mark), kAnchorMessage, kAnchorHint);
  }

  void SetKey(const YAML::Mark& mark, const std::string& key) {
    Frame& top = stack_.back();
    std::string pointer = top.slot.pointer;
    pointer += '/';
    pointer += JsonPointerEscape(key);
    auto [it, inserted] = places_.try_emplace(pointer, Place(mark));
    top.expect_key = false;
    if (!inserted && top.value.contains(key)) {
      Report(Where(mark),
             "duplicate key " + QuoteForMessage(key) + " (first at line " +
                 std::to_string(it->second.line) + ")",
             "remove one of them");
      top.key_ok = false;
      top.key_pointer = std::move(pointer);
      return;
    }
    it->second = Place(mark);
    top.key_ok = true;
    top.key = key;
    top.key_pointer = std::move(pointer);
  }

  // Skips the value of a key with a problem already reported.
  void BadKey() {
    Frame& top = stack_.back();
    top.expect_key = false;
    top.key_ok = false;
    top.key_pointer = top.slot.pointer + "/?";
  }

  void ReportBadKey(const YAML::Mark& mark) {
    Report(Where(mark), "map keys must be plain strings",
           "write the key as a string, not a list, map or null");
  }

  void ReportUnsupportedTag(const YAML::Mark& mark, const std::string& tag) {
    Report(Where(mark), "YAML tag \"" + DisplayTag(tag) + "\" is not supported", "remove the tag");
  }

  void ReportTagMismatch(const YAML::Mark& mark, const std::string& tag, const char* what) {
    Report(Where(mark), "YAML tag \"" + DisplayTag(tag) + "\" does not fit " + what,
           "remove the tag");
  }

  void StartCollection(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       bool is_map) {
    Slot slot = BeginNode(mark, anchor);
    if (stack_.size() + 1 > limits_.max_depth) {
      Fatal(Where(mark), "nesting deeper than " + std::to_string(limits_.max_depth) + " levels",
            "reduce the nesting");
    }
    if (slot.role == Role::kKey) {
      ReportBadKey(mark);
      slot.keep = false;
    }
    Tag kind = ClassifyTag(tag);
    if (kind == Tag::kOther) {
      ReportUnsupportedTag(mark, tag);
      slot.keep = false;
    } else if (kind != Tag::kPlain && kind != Tag::kNonSpecific &&
               kind != (is_map ? Tag::kMap : Tag::kSeq)) {
      ReportTagMismatch(mark, tag, is_map ? "a mapping" : "a sequence");
      slot.keep = false;
    }
    Frame frame;
    frame.is_map = is_map;
    frame.value = is_map ? Json::object() : Json::array();
    frame.slot = std::move(slot);
    stack_.push_back(std::move(frame));
  }

  void EndCollection() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    if (frame.slot.role == Role::kKey) {
      BadKey();
      return;
    }
    if (!frame.slot.keep) {
      Broken(frame.slot);
      return;
    }
    Deliver(frame.slot, std::move(frame.value));
  }

  // Quoted and explicitly tagged scalars may hold escapes: "\0" decodes to
  // NUL, which would cut a C string short.
  bool CheckDecodedText(const YAML::Mark& mark, std::string_view value) {
    for (size_t i = 0; i < value.size();) {
      auto b = static_cast<unsigned char>(value[i]);
      if (b == 0) {
        Report(Where(mark), "string contains a NUL character", "remove it");
        return false;
      }
      size_t len = Utf8SequenceLength(value, i);
      if (len == 0) {
        Report(Where(mark), "string is not valid UTF-8", "check its escape sequences");
        return false;
      }
      i += len;
    }
    return true;
  }

  // The JSON value of a scalar, or nullopt after reporting a problem.
  std::optional<Json> Resolve(const YAML::Mark& mark, Tag kind, const std::string& tag,
                              const std::string& value) {
    switch (kind) {
      case Tag::kNonSpecific:
      case Tag::kStr:
        return Json(value);
      case Tag::kMap:
      case Tag::kSeq:
        ReportTagMismatch(mark, tag, "a scalar");
        return std::nullopt;
      case Tag::kOther:  // Rejected by the caller.
        return std::nullopt;
      default:
        break;
    }
    bool plain = kind == Tag::kPlain;
    if ((plain || kind == Tag::kNull) && IsCoreNull(value)) return Json(nullptr);
    if (plain || kind == Tag::kBool) {
      if (std::optional<bool> b = CoreBool(value)) return Json(*b);
    }
    Json number;
    if (plain || kind == Tag::kInt || kind == Tag::kFloat) {
      NumberResult r = CoreInt(value, &number);
      if (r == NumberResult::kOk) {
        if (kind == Tag::kFloat) return Json(number.get<double>());
        return number;
      }
      if (r == NumberResult::kOutOfRange && kind != Tag::kFloat) {
        Report(Where(mark), "integer " + QuoteForMessage(value) + " is out of range",
               "quote it to make it a string");
        return std::nullopt;
      }
    }
    if (plain || kind == Tag::kFloat) {
      NumberResult r = CoreFloat(value, &number);
      if (r == NumberResult::kOk) return number;
      if (r == NumberResult::kOutOfRange) {
        Report(Where(mark), "number " + QuoteForMessage(value) + " is out of range",
               "quote it to make it a string");
        return std::nullopt;
      }
    }
    if (plain) return Json(value);
    Report(Where(mark), QuoteForMessage(value) + " is not a valid " + DisplayTag(tag),
           "fix the value or remove the tag");
    return std::nullopt;
  }

  const std::string& path_;
  std::string_view text_;
  const YamlLimits& limits_;

  std::vector<Diagnostic> diags_;
  std::vector<YamlDocument> docs_;
  bool anchor_reported_ = false;
  size_t node_count_ = 0;
  size_t document_count_ = 0;
  int last_document_pos_ = -1;

  // The document being built.
  YamlDocument doc_;
  // The places of doc_'s nodes while it is read; compacted into doc_.places
  // when it ends.
  std::unordered_map<std::string, YamlDocument::LineColumn> places_;
  std::vector<Frame> stack_;
  RootKind root_ = RootKind::kNone;
  Json root_value_;
  YAML::Mark root_mark_;
};

}  // namespace

YamlDocument::Places::Places(const std::unordered_map<std::string, LineColumn>& by_pointer) {
  size_t bytes = 0;
  for (const auto& [pointer, at] : by_pointer) bytes += pointer.size();
  text_.reserve(bytes);
  entries_.reserve(by_pointer.size());
  // A document is at most YamlLimits::max_file_bytes (1 MiB by default) of
  // text, so its pointers fit 32-bit offsets; a larger one is cut short
  // rather than wrapped (its places then fall back to the ancestors').
  for (const auto& [pointer, at] : by_pointer) {
    if (text_.size() + pointer.size() > UINT32_MAX) break;
    entries_.push_back(
        Entry{static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(pointer.size()), at});
    text_ += pointer;
  }
  std::sort(entries_.begin(), entries_.end(),
            [this](const Entry& a, const Entry& b) { return Key(a) < Key(b); });
}

const YamlDocument::LineColumn* YamlDocument::Places::Find(std::string_view pointer) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), pointer,
                             [this](const Entry& e, std::string_view p) { return Key(e) < p; });
  if (it == entries_.end() || Key(*it) != pointer) return nullptr;
  return &it->at;
}

std::vector<std::pair<std::string_view, YamlDocument::LineColumn>> YamlDocument::Places::Under(
    std::string_view pointer) const {
  const std::string prefix = std::string(pointer) + "/";
  std::vector<std::pair<std::string_view, LineColumn>> out;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), std::string_view(prefix),
                             [this](const Entry& e, std::string_view p) { return Key(e) < p; });
  for (; it != entries_.end() && Key(*it).substr(0, prefix.size()) == prefix; ++it) {
    out.emplace_back(Key(*it), it->at);
  }
  return out;
}

Location YamlDocument::Locate(const std::string& pointer) const {
  std::string_view p = pointer;
  while (true) {
    if (const LineColumn* at = places.Find(p)) return Location{where.file, at->line, at->column};
    size_t slash = p.rfind('/');
    if (slash == std::string_view::npos) return where;
    p = p.substr(0, slash);
  }
}

void ReadYaml(const std::string& path, std::string_view content, const YamlLimits& limits,
              std::vector<YamlDocument>* out, Diagnostics* diags) {
  if (content.size() > limits.max_file_bytes) {
    diags->Add(Location{path, 0, 0},
               "file is " + std::to_string(content.size()) + " bytes, over the limit of " +
                   std::to_string(limits.max_file_bytes) + " bytes",
               kSplitHint);
    return;
  }
  auto starts_with = [&](std::string_view prefix) { return content.starts_with(prefix); };
  if (starts_with("\xFF\xFE") || starts_with("\xFE\xFF") ||
      starts_with(std::string_view("\0\0\xFE\xFF", 4))) {
    diags->Add(Location{path, 1, 1}, "file starts with a UTF-16 or UTF-32 byte-order mark",
               kUtf8Hint);
    return;
  }
  // yaml-cpp skips a UTF-8 byte-order mark too; dropping it here keeps the
  // columns of the first line the same for both.
  if (starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);

  if (std::optional<TextProblem> p = CheckText(content, limits.max_depth)) {
    diags->Add(Location{path, p->line, p->column}, std::move(p->message), std::move(p->hint));
    return;
  }

  ViewBuffer buffer(content);
  std::istream stream(&buffer);
  JsonBuilder builder(path, content, limits);
  try {
    YAML::Parser parser(stream);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const StopParsing&) {
    // The reason is already recorded.
  } catch (const YAML::Exception& e) {
    builder.diagnostics().push_back(
        {builder.Where(e.mark), "YAML syntax error: " + e.msg, kSyntaxHint});
  }
  std::vector<Diagnostic>& problems = builder.diagnostics();
  if (problems.empty() && builder.document_count() == 0) {
    problems.push_back(
        {Location{path, 0, 0}, "file has no YAML document",
         "give it a mapping with apiVersion, kind, metadata and spec, or delete it"});
  }
  if (!problems.empty()) {
    for (Diagnostic& d : problems) {
      diags->Add(std::move(d.where), std::move(d.message), std::move(d.hint));
    }
    return;
  }
  for (YamlDocument& doc : builder.documents()) out->push_back(std::move(doc));
}

std::string JsonPointerEscape(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace clusterctl::desired_state
