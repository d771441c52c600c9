#include "audit/audit_log.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>

#include "base/big_endian.h"
#include "base/sha256.h"
#include "base/time_format.h"
#include "base/utf8.h"
#include "desired-state/spec_hash.h"

namespace clusterctl::audit {
using nlohmann::json;

namespace {

constexpr char kAuditCf[] = "audit";
constexpr char kIndexCf[] = "audit_index";
constexpr char kMetaCf[] = "meta";
constexpr char kHeadKey[] = "audit/head";
constexpr char kTrimKey[] = "audit/trim";
constexpr char kOpenPrefix[] = "audit/open/";
constexpr char kInterruptedDetail[] =
    "the controller stopped before the step ended; outcome unknown, re-observing";
constexpr uint64_t kTrimChunk = 10000;

const std::string& ZeroHash() {
  static const std::string* zeros = new std::string(64, '0');
  return *zeros;
}

// ------------------------------------------------------------ key encoding

std::string SeqKey(uint64_t seq) { return BigEndian64(seq); }
std::string OpenKey(uint64_t seq) { return kOpenPrefix + BigEndian64(seq); }

// Index kinds; their slot in VerifyReport bookkeeping.
constexpr char kKinds[] = {'t', 's', 'm', 'a', 'p'};
constexpr int kNumKinds = 5;
int KindSlot(char kind) {
  for (int i = 0; i < kNumKinds; ++i) {
    if (kKinds[i] == kind) return i;
  }
  return -1;
}
const char* KindName(char kind) {
  switch (kind) {
    case 't':
      return "time";
    case 's':
      return "service";
    case 'm':
      return "machine";
    case 'a':
      return "action";
    case 'p':
      return "intent/result pair";
  }
  return "unknown";
}

// "t\0" or "s\0<name>\0".
std::string IndexPrefix(char kind, std::string_view name = {}) {
  std::string p(1, kind);
  p.push_back('\0');
  if (kind != 't' && kind != 'p') {
    p.append(name);
    p.push_back('\0');
  }
  return p;
}

// Index values: the filter fields, each a varint length and the bytes.
void PutField(std::string* out, std::string_view v) {
  uint64_t n = v.size();
  while (n >= 0x80) {
    out->push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out->push_back(static_cast<char>(n));
  out->append(v);
}

bool GetField(std::string_view* in, std::string_view* v) {
  uint64_t n = 0;
  int shift = 0;
  while (true) {
    if (in->empty() || shift > 28) return false;
    unsigned char c = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    n |= static_cast<uint64_t>(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
    shift += 7;
  }
  if (n > in->size()) return false;
  *v = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

// The fields a filter looks at, as views into an index value or a record.
struct Fields {
  std::string_view result, trigger, actor, revision, service, machine, action, phase;
};

Fields FieldsOf(const AuditRecord& r) {
  return {r.result, r.trigger, r.actor, r.revision, r.service, r.machine, r.action, r.phase};
}

std::string EncodeFields(const AuditRecord& r) {
  std::string out;
  for (std::string_view v :
       {std::string_view(r.result), std::string_view(r.trigger), std::string_view(r.actor),
        std::string_view(r.revision), std::string_view(r.service), std::string_view(r.machine),
        std::string_view(r.action), std::string_view(r.phase)}) {
    PutField(&out, v);
  }
  return out;
}

bool DecodeFields(std::string_view in, Fields* f) {
  return GetField(&in, &f->result) && GetField(&in, &f->trigger) && GetField(&in, &f->actor) &&
         GetField(&in, &f->revision) && GetField(&in, &f->service) && GetField(&in, &f->machine) &&
         GetField(&in, &f->action) && GetField(&in, &f->phase) && in.empty();
}

struct IndexEntry {
  char kind;
  std::string key, value;
};

// The index entries a record owns (see the header for the layout).
std::vector<IndexEntry> IndexEntries(const AuditRecord& r) {
  std::vector<IndexEntry> out;
  const std::string fields = EncodeFields(r);
  const std::string ts = TimeKey(r.time) + BigEndian64(r.seq);
  out.push_back({'t', IndexPrefix('t') + ts, fields});
  if (!r.service.empty()) out.push_back({'s', IndexPrefix('s', r.service) + ts, fields});
  if (!r.machine.empty()) out.push_back({'m', IndexPrefix('m', r.machine) + ts, fields});
  out.push_back({'a', IndexPrefix('a', r.action) + ts, fields});
  if (r.intent_seq != 0)
    out.push_back({'p', IndexPrefix('p') + BigEndian64(r.intent_seq) + BigEndian64(r.seq), ""});
  return out;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// --------------------------------------------------------- stored records

// A parser for the flat JSON objects the log stores (string and integer
// members only). Several times faster than a general JSON parser, which
// is what lets Verify() walk a million records in seconds. Anything it does
// not understand makes it give up; the caller then uses nlohmann::json.
class FlatParser {
 public:
  explicit FlatParser(std::string_view s) : s_(s) {}

  // Fills `r`; sets [*hash_begin, *hash_end) to the "hash" member's bytes
  // (npos when there is none).
  bool Parse(AuditRecord* r, size_t* hash_begin, size_t* hash_end) {
    *hash_begin = *hash_end = std::string_view::npos;
    std::string key, str;
    unsigned seen = 0;
    Ws();
    if (!Eat('{')) return false;
    Ws();
    if (Eat('}')) return AtEnd();
    while (true) {
      const size_t member_begin = pos_;
      if (!String(&key)) return false;
      Ws();
      if (!Eat(':')) return false;
      Ws();
      bool is_string = pos_ < s_.size() && s_[pos_] == '"';
      int64_t num = 0;
      uint64_t unum = 0;
      bool negative = false;
      if (is_string) {
        if (!String(&str)) return false;
      } else if (!Number(&unum, &negative)) {
        return false;
      }
      num = negative ? -static_cast<int64_t>(unum) : static_cast<int64_t>(unum);
      const size_t member_end = pos_;
      int bit = Assign(key, is_string, str, unum, num, negative, r);
      if (bit < 0) return false;
      if (bit > 0) {
        if (seen & (1u << bit)) return false;  // Duplicate member.
        seen |= 1u << bit;
      }
      if (key == "hash") {
        *hash_begin = member_begin;
        *hash_end = member_end;
      }
      Ws();
      if (Eat(',')) {
        Ws();
        continue;
      }
      if (Eat('}')) break;
      return false;
    }
    // Every SPEC field must be there (bits 1..14).
    return (seen & 0x7ffe) == 0x7ffe && AtEnd();
  }

 private:
  // Stores one member; returns its bit (0 for unknown names), -1 on a type
  // error.
  static int Assign(const std::string& key, bool is_string, std::string& str, uint64_t unum,
                    int64_t num, bool negative, AuditRecord* r) {
    auto text = [&](std::string* field, int bit) {
      if (!is_string) return -1;
      *field = std::move(str);
      return bit;
    };
    switch (key.empty() ? 0 : key[0]) {
      case 'a':
        if (key == "actor") return text(&r->actor, 1);
        if (key == "action") return text(&r->action, 2);
        break;
      case 'd':
        if (key == "detail") return text(&r->detail, 3);
        if (key == "duration_ms") {
          if (is_string) return -1;
          r->duration_ms = num;
          return 4;
        }
        break;
      case 'h':
        if (key == "hash") return text(&r->hash, 5);
        break;
      case 'i':
        if (key == "intent_seq") {
          if (is_string || negative) return -1;
          r->intent_seq = unum;
          return 15;
        }
        break;
      case 'm':
        if (key == "machine") return text(&r->machine, 6);
        break;
      case 'p':
        if (key == "phase") return text(&r->phase, 7);
        if (key == "prev_hash") return text(&r->prev_hash, 8);
        break;
      case 'r':
        if (key == "result") return text(&r->result, 9);
        if (key == "revision") return text(&r->revision, 10);
        break;
      case 's':
        if (key == "seq") {
          if (is_string || negative) return -1;
          r->seq = unum;
          return 11;
        }
        if (key == "service") return text(&r->service, 12);
        break;
      case 't':
        if (key == "time") {
          if (!is_string) return -1;
          Result<int64_t> t = ParseRfc3339(str);
          if (!t.ok()) return -1;
          r->time = *t;
          return 13;
        }
        if (key == "trigger") return text(&r->trigger, 14);
        break;
    }
    return 0;
  }

  void Ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    Ws();
    return pos_ == s_.size();
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  bool String(std::string* out) {
    out->clear();
    if (!Eat('"')) return false;
    while (true) {
      size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\' &&
             static_cast<unsigned char>(s_[pos_]) >= 0x20) {
        ++pos_;
      }
      out->append(s_.substr(start, pos_ - start));
      if (pos_ >= s_.size()) return false;
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\' || pos_ >= s_.size()) return false;  // A raw control character.
      char e = s_[pos_++];
      if (e == 'u') {
        uint32_t cp;
        if (!Hex4(&cp)) return false;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo;
          if (!Eat('\\') || !Eat('u') || !Hex4(&lo) || lo < 0xdc00 || lo > 0xdfff) return false;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          return false;
        }
        AppendUtf8(out, cp);
        continue;
      }
      static constexpr std::string_view kEscapes = "\"\\/bfnrt", kMeanings = "\"\\/\b\f\n\r\t";
      size_t k = kEscapes.find(e);
      if (k == std::string_view::npos) return false;
      out->push_back(kMeanings[k]);
    }
  }

  bool Number(uint64_t* out, bool* negative) {
    *negative = Eat('-');
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') return false;
    uint64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      uint64_t d = static_cast<uint64_t>(s_[pos_++] - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
    if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) return false;
    if (*negative && v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = v;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// The bytes a stored record's hash covers: `head` then `tail` (the stored
// value without its "hash" member), viewing the value or `owned`.
struct CanonicalBytes {
  std::string_view head, tail;
  std::string owned;
};

// A stored value as a record; `canonical` (optional) receives the bytes the
// hash covers.
Result<AuditRecord> DecodeStored(std::string_view value, CanonicalBytes* canonical) {
  AuditRecord r;
  size_t hb, he;
  if (FlatParser(value).Parse(&r, &hb, &he)) {
    if (canonical != nullptr) {
      if (hb == std::string_view::npos) {
        canonical->head = value;
        canonical->tail = {};
      } else {
        // The stored form is compact: the member is ',"hash":"..."' (or
        // '"hash":"...",' when first).
        if (hb > 0 && value[hb - 1] == ',') {
          --hb;
        } else if (he < value.size() && value[he] == ',') {
          ++he;
        }
        canonical->head = value.substr(0, hb);
        canonical->tail = value.substr(he);
      }
    }
    return r;
  }
  // Not in the form Append() writes: a general parse.
  json j = json::parse(value.begin(), value.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("not valid JSON");
  Result<AuditRecord> parsed = FromJson(j);
  if (!parsed.ok()) return parsed.status();
  if (canonical != nullptr) {
    j.erase("hash");
    canonical->owned = Dump(j);
    canonical->head = canonical->owned;
    canonical->tail = {};
  }
  return parsed;
}

// ------------------------------------------------------------- matching

bool RevisionMatches(std::string_view prefix, std::string_view revision) {
  if (revision.empty()) return false;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  };
  if (prefix.size() <= revision.size()) {
    return std::equal(prefix.begin(), prefix.end(), revision.begin(), eq);
  }
  // A full sha given for a record that keeps a short one.
  return revision.size() >= 4 && std::equal(revision.begin(), revision.end(), prefix.begin(), eq);
}

bool ActorMatches(std::string_view want, std::string_view actor) {
  if (want.find('@') != std::string_view::npos) return want == actor;
  return actor == want || (actor.size() > want.size() && actor.substr(0, want.size()) == want &&
                           actor[want.size()] == '@');
}

bool FieldsMatch(const AuditFilter& f, const Fields& r) {
  return (f.service.empty() || f.service == r.service) &&
         (f.machine.empty() || f.machine == r.machine) &&
         (f.action.empty() || f.action == r.action) && (f.result.empty() || f.result == r.result) &&
         (f.trigger.empty() || f.trigger == r.trigger) &&
         (f.actor.empty() || ActorMatches(f.actor, r.actor)) &&
         (f.revision_prefix.empty() || RevisionMatches(f.revision_prefix, r.revision));
}

bool Contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string Join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Fingerprints of index entries: Verify() keeps one per expected entry
// instead of the entry itself. 64-bit, keyed with a random seed per run so
// that entries cannot be crafted to collide; never 0 (0 = no entry).
uint64_t Mix(uint64_t x) {  // MurmurHash3's finaliser.
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t Hash64(uint64_t seed, std::string_view s) {
  uint64_t h = Mix(seed ^ (s.size() * 0x9e3779b97f4a7c15ULL));
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = Mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  return Mix(h ^ w ^ 0xa5);
}

// One index entry from its parts: kind, the hash of its name (service,
// machine, action; 0 for t and p), the 8 time bytes (the intent's seq for
// p), the record's seq and the hash of the value.
uint64_t EntryFingerprint(uint64_t seed, char kind, uint64_t name_hash, uint64_t time_bits,
                          uint64_t seq, uint64_t value_hash) {
  uint64_t h = Mix(seed ^ static_cast<unsigned char>(kind));
  h = Mix(h ^ name_hash);
  h = Mix(h ^ time_bits);
  h = Mix(h ^ seq);
  h = Mix(h ^ value_hash);
  return h == 0 ? 1 : h;
}

Result<std::optional<TrimInfo>> ReadTrim(const store::Store* store,
                                         const store::StoreSnapshot* snapshot = nullptr) {
  Result<std::optional<std::string>> v = store->Get(kMetaCf, kTrimKey, snapshot);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<TrimInfo>();
  json j = json::parse(**v, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Internal("audit log: the trim record (meta " + std::string(kTrimKey) +
                            ") is not valid JSON");
  }
  TrimInfo t;
  t.first_kept_seq = j.value("first_kept_seq", uint64_t{0});
  t.first_kept_prev_hash = j.value("first_kept_prev_hash", std::string());
  t.trimmed_count = j.value("trimmed_count", uint64_t{0});
  t.trimmed_through_time = j.value("trimmed_through_time", int64_t{0});
  t.last_trim_at = j.value("last_trim_at", int64_t{0});
  return std::optional<TrimInfo>(t);
}

// A scan of at most `limit` keys of a whole family.
store::ScanRange Whole(bool reverse, size_t limit) {
  store::ScanRange r;
  r.reverse = reverse;
  r.limit = limit;
  return r;
}

// The first stored record's seq, 0 when there is none.
Result<uint64_t> FirstSeq(const store::Store* store) {
  uint64_t first = 0;
  Status s = store->Scan(kAuditCf, Whole(false, 1), [&](std::string_view k, std::string_view) {
    first = DecodeBigEndian64(k);
    return false;
  });
  if (!s.ok()) return s;
  return first;
}

}  // namespace

// ------------------------------------------------------------ record JSON

const std::vector<std::string>& AuditTriggers() {
  static const auto* v =
      new std::vector<std::string>{"revision", "drift", "rollback", "manual", "recovery"};
  return *v;
}

const std::vector<std::string>& AuditResults() {
  static const auto* v = new std::vector<std::string>{"ok", "failed", "interrupted", "skipped"};
  return *v;
}

const std::vector<std::string>& AuditKnownActions() {
  static const auto* v = new std::vector<std::string>{"start",
                                                      "stop",
                                                      "restart",
                                                      "revision_applied",
                                                      "revision_rejected",
                                                      "probe_failed",
                                                      "machine_unreachable",
                                                      "interrupted",
                                                      "rollback",
                                                      "suspend",
                                                      "resume",
                                                      "audit_trimmed"};
  return *v;
}

json ToJson(const AuditRecord& r) {
  json j = json::object();
  j["seq"] = r.seq;
  j["time"] = FormatRfc3339Ms(r.time);
  j["actor"] = r.actor;
  j["trigger"] = r.trigger;
  j["revision"] = r.revision;
  j["action"] = r.action;
  j["machine"] = r.machine;
  j["service"] = r.service;
  j["phase"] = r.phase;
  j["result"] = r.result;
  j["duration_ms"] = r.duration_ms;
  j["detail"] = r.detail;
  j["prev_hash"] = r.prev_hash;
  j["hash"] = r.hash;
  if (r.intent_seq != 0) j["intent_seq"] = r.intent_seq;
  return j;
}

std::string ToJsonLine(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["seq"] = r.seq;
  j["time"] = FormatRfc3339Ms(r.time);
  j["actor"] = r.actor;
  j["trigger"] = r.trigger;
  j["revision"] = r.revision;
  j["action"] = r.action;
  j["machine"] = r.machine;
  j["service"] = r.service;
  j["phase"] = r.phase;
  j["result"] = r.result;
  j["duration_ms"] = r.duration_ms;
  j["detail"] = r.detail;
  if (r.intent_seq != 0) j["intent_seq"] = r.intent_seq;
  j["prev_hash"] = r.prev_hash;
  j["hash"] = r.hash;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<AuditRecord> FromJson(const json& j) {
  if (!j.is_object()) return Status::Invalid("audit record: not a JSON object");
  AuditRecord r;
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Invalid(std::string("audit record: missing \"") + key + "\"");
    if (!it->is_string()) {
      return Status::Invalid(std::string("audit record: \"") + key + "\" must be a string");
    }
    *out = it->get<std::string>();
    return Status::Ok();
  };
  auto uint = [&](const char* key, uint64_t* out, bool required) -> Status {
    auto it = j.find(key);
    if (it == j.end()) {
      if (!required) return Status::Ok();
      return Status::Invalid(std::string("audit record: missing \"") + key + "\"");
    }
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
      return Status::Invalid(std::string("audit record: \"") + key +
                             "\" must be a non-negative integer");
    }
    *out = it->get<uint64_t>();
    return Status::Ok();
  };
  CLUSTERCTL_RETURN_IF_ERROR(uint("seq", &r.seq, true));
  std::string time;
  CLUSTERCTL_RETURN_IF_ERROR(str("time", &time));
  Result<int64_t> t = ParseRfc3339(time);
  if (!t.ok()) return t.status().Annotate("audit record: \"time\"");
  r.time = *t;
  CLUSTERCTL_RETURN_IF_ERROR(str("actor", &r.actor));
  CLUSTERCTL_RETURN_IF_ERROR(str("trigger", &r.trigger));
  CLUSTERCTL_RETURN_IF_ERROR(str("revision", &r.revision));
  CLUSTERCTL_RETURN_IF_ERROR(str("action", &r.action));
  CLUSTERCTL_RETURN_IF_ERROR(str("machine", &r.machine));
  CLUSTERCTL_RETURN_IF_ERROR(str("service", &r.service));
  CLUSTERCTL_RETURN_IF_ERROR(str("phase", &r.phase));
  CLUSTERCTL_RETURN_IF_ERROR(str("result", &r.result));
  auto d = j.find("duration_ms");
  if (d == j.end() || !d->is_number_integer()) {
    return Status::Invalid("audit record: \"duration_ms\" must be an integer");
  }
  r.duration_ms = d->get<int64_t>();
  CLUSTERCTL_RETURN_IF_ERROR(str("detail", &r.detail));
  CLUSTERCTL_RETURN_IF_ERROR(str("prev_hash", &r.prev_hash));
  CLUSTERCTL_RETURN_IF_ERROR(str("hash", &r.hash));
  CLUSTERCTL_RETURN_IF_ERROR(uint("intent_seq", &r.intent_seq, false));
  return r;
}

std::string CanonicalForm(const AuditRecord& r) {
  json j = ToJson(r);
  j.erase("hash");
  return Dump(j);
}

std::string ComputeHash(const AuditRecord& r) { return Sha256Hex(CanonicalForm(r)); }

// ---------------------------------------------------------------- filters

Status ValidateFilter(const AuditFilter& f) {
  if (!f.trigger.empty() && !Contains(AuditTriggers(), f.trigger)) {
    return Status::Invalid("--trigger: \"" + f.trigger + "\" is not a trigger; use one of " +
                           Join(AuditTriggers()) + " (e.g. --trigger drift)");
  }
  if (!f.result.empty() && !Contains(AuditResults(), f.result)) {
    return Status::Invalid("--result: \"" + f.result + "\" is not a result; use one of " +
                           Join(AuditResults()) + " (e.g. --result failed)");
  }
  if (!f.revision_prefix.empty() &&
      !std::all_of(f.revision_prefix.begin(), f.revision_prefix.end(),
                   [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::Invalid("--revision: \"" + f.revision_prefix +
                           "\" is not a commit sha prefix (hex digits, e.g. --revision 3f2c1e9)");
  }
  if (f.since_ms && f.until_ms && *f.since_ms >= *f.until_ms) {
    return Status::Invalid("--since (" + FormatRfc3339Ms(*f.since_ms) +
                           ") must be before --until (" + FormatRfc3339Ms(*f.until_ms) +
                           "), e.g. --since 2h --until 1h");
  }
  for (const std::string* name : {&f.service, &f.machine, &f.action}) {
    if (name->find('\0') != std::string::npos) {
      return Status::Invalid("filter values cannot contain a NUL byte");
    }
  }
  return Status::Ok();
}

bool Matches(const AuditFilter& f, const AuditRecord& r) {
  if (f.since_ms && r.time < *f.since_ms) return false;
  if (f.until_ms && r.time >= *f.until_ms) return false;
  return FieldsMatch(f, FieldsOf(r));
}

// ---------------------------------------------------------------- AuditLog

AuditLog::AuditLog(store::Store* store, const Clock& clock) : store_(store), clock_(clock) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(store::Store* store, const Clock* clock) {
  if (store == nullptr) return Status::Internal("AuditLog::Open: no store");
  std::unique_ptr<AuditLog> log(new AuditLog(store, ClockOr(clock)));
  std::lock_guard<std::mutex> lock(log->mu_);
  CLUSTERCTL_RETURN_IF_ERROR(log->LoadHead());
  return log;
}

Result<AuditHead> AuditLog::Head() const {
  AuditHead head{0, ZeroHash(), 0};
  Result<std::optional<std::string>> v = store_->Get(kMetaCf, kHeadKey);
  if (!v.ok()) return v.status();
  if (v->has_value()) {
    json j = json::parse(**v, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status::Internal("audit log: the head record (meta audit/head) is not valid JSON");
    }
    head.seq = j.value("seq", uint64_t{0});
    head.hash = j.value("hash", ZeroHash());
    head.time = j.value("time", int64_t{0});
  }
  // The newest record wins over the head should they ever disagree: a seq
  // must never be handed out twice.
  std::string last;
  uint64_t last_seq = 0;
  Status s =
      store_->Scan(kAuditCf, Whole(true, 1), [&](std::string_view k, std::string_view value) {
        last_seq = DecodeBigEndian64(k);
        last.assign(value);
        return false;
      });
  if (!s.ok()) return s;
  if (last_seq > head.seq) {
    Result<AuditRecord> r = DecodeStored(last, nullptr);
    if (!r.ok()) {
      return r.status().Annotate("audit log: reading the newest record " +
                                 std::to_string(last_seq));
    }
    head = {last_seq, r->hash, r->time};
  }
  return head;
}

Status AuditLog::LoadHead() {
  Result<AuditHead> head = Head();
  if (!head.ok()) return head.status();
  last_seq_ = head->seq;
  last_hash_ = head->hash;
  last_time_ = head->time;
  return Status::Ok();
}

Result<std::optional<TrimInfo>> AuditLog::Trimmed() const { return ReadTrim(store_); }

Status AuditLog::CheckRecord(const AuditRecord& r) const {
  if (r.actor.empty()) return Status::Invalid("audit record without an actor");
  if (!IsIdentifier(r.action)) {
    return Status::Invalid("audit record action \"" + r.action +
                           "\" must be a lower-case identifier (start, revision_applied, ...)");
  }
  if (!Contains(AuditTriggers(), r.trigger)) {
    return Status::Invalid("audit record trigger \"" + r.trigger + "\" is not one of " +
                           Join(AuditTriggers()));
  }
  if (r.phase != kPhaseIntent && r.phase != kPhaseResult && r.phase != kPhaseEvent) {
    return Status::Invalid("audit record phase \"" + r.phase +
                           "\" is not one of intent, result, event");
  }
  if (r.phase == kPhaseIntent && !r.result.empty()) {
    return Status::Invalid("an audit intent has no result (got \"" + r.result + "\")");
  }
  if (r.phase == kPhaseResult && r.result.empty()) {
    return Status::Invalid("an audit result record needs a result (ok, failed, ...)");
  }
  if (!r.result.empty() && !Contains(AuditResults(), r.result)) {
    return Status::Invalid("audit record result \"" + r.result + "\" is not one of " +
                           Join(AuditResults()));
  }
  if (r.intent_seq != 0 && r.phase != kPhaseResult) {
    return Status::Invalid("only a result record names an intent (intent_seq)");
  }
  for (const std::string* name : {&r.service, &r.machine}) {
    if (name->find('\0') != std::string::npos) {
      return Status::Invalid("audit record service and machine cannot contain a NUL byte");
    }
  }
  return Status::Ok();
}

Result<AuditRecord> AuditLog::Append(AuditRecord r) {
  std::vector<AuditRecord> one;
  one.push_back(std::move(r));
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::vector<AuditRecord>> out = AppendLocked(std::move(one));
  if (!out.ok()) return out.status();
  return std::move(out->front());
}

Result<std::vector<AuditRecord>> AuditLog::AppendBatch(std::vector<AuditRecord> records) {
  std::lock_guard<std::mutex> lock(mu_);
  return AppendLocked(std::move(records));
}

Result<std::vector<AuditRecord>> AuditLog::AppendLocked(std::vector<AuditRecord> records) {
  if (store_->read_only()) {
    return Status::Permission("the audit log in " + store_->data_dir() +
                              " is open read-only; records are written by the process that owns "
                              "the data directory (clusterd, or clusterctl apply without one)");
  }
  if (records.empty()) return records;
  if (reload_head_) {
    CLUSTERCTL_RETURN_IF_ERROR(LoadHead());
    reload_head_ = false;
  }
  store::StoreBatch batch(store_);
  uint64_t seq = last_seq_;
  std::string prev = last_hash_;
  int64_t time = last_time_;
  for (AuditRecord& r : records) {
    for (std::string* s : {&r.actor, &r.trigger, &r.revision, &r.action, &r.machine, &r.service,
                           &r.phase, &r.result, &r.detail}) {
      SanitizeUtf8(s);
    }
    Status check = CheckRecord(r);
    if (!check.ok()) return check;
    r.seq = ++seq;
    if (r.intent_seq >= r.seq) {
      return Status::Invalid("audit result names intent " + std::to_string(r.intent_seq) +
                             ", which is not an earlier record");
    }
    time = std::clamp(clock_.WallMs(), kMinTimeMs, kMaxTimeMs);
    r.time = time;
    r.prev_hash = prev;
    json j = ToJson(r);
    j.erase("hash");
    r.hash = Sha256Hex(Dump(j));
    j["hash"] = r.hash;
    prev = r.hash;
    const std::string value = Dump(j);
    batch.Put(kAuditCf, SeqKey(r.seq), value);
    for (const IndexEntry& e : IndexEntries(r)) batch.Put(kIndexCf, e.key, e.value);
    if (r.phase == kPhaseIntent) batch.Put(kMetaCf, OpenKey(r.seq), value);
    if (r.intent_seq != 0) batch.Delete(kMetaCf, OpenKey(r.intent_seq));
  }
  batch.Put(kMetaCf, kHeadKey, json{{"seq", seq}, {"hash", prev}, {"time", time}}.dump());
  Status s = store_->Commit(&batch, /*sync=*/true);
  if (!s.ok()) {
    reload_head_ = true;  // Whatever happened, ask the store before the next seq.
    return s.Annotate("writing audit record " + std::to_string(last_seq_ + 1));
  }
  last_seq_ = seq;
  last_hash_ = prev;
  last_time_ = time;
  return records;
}

// ------------------------------------------------------------------ reads

Result<std::optional<AuditRecord>> AuditLog::Get(uint64_t seq) const {
  Result<std::optional<std::string>> v = store_->Get(kAuditCf, SeqKey(seq));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<AuditRecord>();
  Result<AuditRecord> r = DecodeStored(**v, nullptr);
  if (!r.ok()) return r.status().Annotate("audit record " + std::to_string(seq));
  return std::optional<AuditRecord>(std::move(r).value());
}

Result<std::vector<AuditRecord>> AuditLog::ReadAfter(uint64_t after_seq, size_t limit) const {
  std::vector<AuditRecord> out;
  Status bad;
  store::ScanRange range;
  range.begin = SeqKey(after_seq + 1);
  range.limit = limit;
  if (after_seq == UINT64_MAX) return out;
  Status s = store_->Scan(kAuditCf, range, [&](std::string_view k, std::string_view v) {
    Result<AuditRecord> r = DecodeStored(v, nullptr);
    if (!r.ok()) {
      bad = r.status().Annotate("audit record " + std::to_string(DecodeBigEndian64(k)));
      return false;
    }
    out.push_back(std::move(r).value());
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::ResultsOf(uint64_t intent_seq) const {
  std::vector<uint64_t> seqs;
  Status s =
      store_->Scan(kIndexCf, store::ScanRange::Prefix(IndexPrefix('p') + BigEndian64(intent_seq)),
                   [&](std::string_view k, std::string_view) {
                     if (k.size() == 18) seqs.push_back(DecodeBigEndian64(k.substr(10)));
                     return true;
                   });
  if (!s.ok()) return s;
  std::vector<AuditRecord> out;
  for (uint64_t seq : seqs) {
    Result<std::optional<AuditRecord>> r = Get(seq);
    if (!r.ok()) return r.status();
    if (r->has_value() && (*r)->intent_seq == intent_seq) out.push_back(std::move(**r));
  }
  return out;
}

Result<bool> AuditLog::ActionExists(const std::string& action) const {
  bool found = false;
  Status s = store_->Scan(kIndexCf, store::ScanRange::Prefix(IndexPrefix('a', action), false, 1),
                          [&](std::string_view, std::string_view) {
                            found = true;
                            return false;
                          });
  if (!s.ok()) return s;
  return found;
}

Result<std::vector<AuditRecord>> AuditLog::Query(const AuditFilter& f) const {
  std::vector<AuditRecord> out;
  Status s = QueryEach(f, [&](const AuditRecord& r) {
    out.push_back(r);
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

Status AuditLog::QueryEach(const AuditFilter& f,
                           const std::function<bool(const AuditRecord&)>& visit) const {
  CLUSTERCTL_RETURN_IF_ERROR(ValidateFilter(f));
  // The index to read: the most selective filter given.
  std::string prefix;
  if (!f.service.empty()) {
    prefix = IndexPrefix('s', f.service);
  } else if (!f.machine.empty()) {
    prefix = IndexPrefix('m', f.machine);
  } else if (!f.action.empty()) {
    prefix = IndexPrefix('a', f.action);
  } else {
    prefix = IndexPrefix('t');
  }
  store::ScanRange range = store::ScanRange::Prefix(prefix, /*reverse=*/!f.oldest_first);
  if (f.since_ms) range.begin = prefix + TimeKey(*f.since_ms);
  if (f.until_ms) range.end = prefix + TimeKey(*f.until_ms);
  // Cursors: a position in (time, seq) order, from the cursor's record.
  uint64_t seq_above = 0, seq_below = 0;  // Plain seq bounds when it is gone.
  if (f.after_seq != 0) {
    Result<std::optional<AuditRecord>> c = Get(f.after_seq);
    if (!c.ok()) return c.status();
    if (c->has_value()) {
      std::string b =
          prefix + TimeKey((*c)->time) + BigEndian64(f.after_seq) + std::string(1, '\0');
      range.begin = std::max(range.begin, b);
    } else {
      seq_above = f.after_seq;
    }
  }
  if (f.before_seq != 0) {
    Result<std::optional<AuditRecord>> c = Get(f.before_seq);
    if (!c.ok()) return c.status();
    if (c->has_value()) {
      std::string e = prefix + TimeKey((*c)->time) + BigEndian64(f.before_seq);
      range.end = std::min(range.end, e);
    } else {
      seq_below = f.before_seq;
    }
  }
  if (range.begin >= range.end) return Status::Ok();

  size_t returned = 0;
  Status bad;
  Status s = store_->Scan(kIndexCf, range, [&](std::string_view k, std::string_view v) {
    if (k.size() < prefix.size() + 16) return true;
    const uint64_t seq = DecodeBigEndian64(k.substr(k.size() - 8));
    if (seq <= seq_above || (seq_below != 0 && seq >= seq_below)) return true;
    Fields fields;
    if (DecodeFields(v, &fields) && !FieldsMatch(f, fields)) return true;
    // A candidate: fetch the record and check it for real (an index entry
    // that lies does not get a record into the answer; Verify reports it).
    Result<std::optional<AuditRecord>> r = Get(seq);
    if (!r.ok()) {
      bad = r.status();
      return false;
    }
    if (!r->has_value() || !Matches(f, **r)) return true;
    if (!visit(**r)) return false;
    return f.limit == 0 || ++returned < f.limit;
  });
  CLUSTERCTL_RETURN_IF_ERROR(s);
  return bad;
}

// --------------------------------------------------------------- recovery

Result<std::vector<AuditRecord>> AuditLog::UnfinishedIntents() const {
  std::vector<AuditRecord> out;
  Status bad;
  Status s = store_->Scan(kMetaCf, store::ScanRange::Prefix(kOpenPrefix),
                          [&](std::string_view k, std::string_view v) {
                            Result<AuditRecord> r = DecodeStored(v, nullptr);
                            if (!r.ok()) {
                              bad = r.status().Annotate("open audit intent " + std::string(k));
                              return false;
                            }
                            out.push_back(std::move(r).value());
                            return true;
                          });
  CLUSTERCTL_RETURN_IF_ERROR(s);
  if (!bad.ok()) return bad;
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::RecordInterrupted(const std::string& actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::vector<AuditRecord>> open = UnfinishedIntents();
  if (!open.ok()) return open.status();
  std::vector<AuditRecord> results;
  const int64_t now = clock_.WallMs();
  for (const AuditRecord& intent : *open) {
    AuditRecord r;
    r.actor = actor;
    r.trigger = "recovery";
    r.revision = intent.revision;
    r.action = intent.action;
    r.machine = intent.machine;
    r.service = intent.service;
    r.phase = kPhaseResult;
    r.result = "interrupted";
    r.duration_ms = std::max<int64_t>(0, now - intent.time);
    r.detail = kInterruptedDetail;
    r.intent_seq = intent.seq;
    results.push_back(std::move(r));
  }
  return AppendLocked(std::move(results));
}

// ----------------------------------------------------------------- verify

Result<VerifyReport> AuditLog::Verify() const {
  VerifyReport rep;
  // Every read below is of one moment: on a live primary, appends go on
  // while the walk runs, and records, index and head read at different
  // times would disagree (false corruption).
  const std::unique_ptr<store::StoreSnapshot> snap = store_->Snapshot();
  Result<std::optional<TrimInfo>> trim = ReadTrim(store_, snap.get());
  if (!trim.ok()) return trim.status();
  rep.trim = *trim;
  const uint64_t first = *trim ? (*trim)->first_kept_seq : 1;

  // The head: where the last write left the end of the chain.
  Result<std::optional<std::string>> head_value = store_->Get(kMetaCf, kHeadKey, snap.get());
  if (!head_value.ok()) return head_value.status();
  std::optional<uint64_t> head_seq;
  std::string head_hash;
  if (head_value->has_value()) {
    json h = json::parse(**head_value, nullptr, false);
    head_seq = h.is_object() ? h.value("seq", uint64_t{0}) : 0;
    head_hash = h.is_object() ? h.value("hash", std::string()) : "";
  }
  // One slot per record there should be, for the index check.
  uint64_t newest = head_seq.value_or(0);
  CLUSTERCTL_RETURN_IF_ERROR(store_->Scan(
      kAuditCf, Whole(/*reverse=*/true, 1),
      [&](std::string_view k, std::string_view) {
        if (k.size() == 8) newest = std::max(newest, DecodeBigEndian64(k));
        return false;
      },
      snap.get()));
  const uint64_t slots = newest >= first ? newest - first + 1 : 0;

  // The failure with the lowest seq wins.
  struct Failure {
    bool failed = false;
    uint64_t seq = 0;
    std::string reason;
    void Add(uint64_t at, std::string why) {
      if (failed && seq <= at) return;
      failed = true;
      seq = at;
      reason = std::move(why);
    }
  };
  const uint64_t seed =
      std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
  auto fp32 = [](uint64_t fp) {
    uint32_t v = static_cast<uint32_t>(fp ^ (fp >> 32));
    return v == 0 ? 1u : v;
  };

  // Two passes at once: this thread walks the chain and notes the index
  // entries each record must have; a second thread reads every index entry
  // and notes what it finds. The notes are compared at the end.
  std::vector<std::array<uint32_t, kNumKinds>> expected;  // 0 = no such entry.
  std::vector<std::array<uint32_t, kNumKinds>> found(slots);
  std::vector<uint8_t> found_mask(slots), duplicate_mask(slots);
  Failure index_failure;
  Status index_status;
  uint64_t index_entries = 0;
  std::thread index_reader([&] {
    index_status = store_->Scan(
        kIndexCf, store::ScanRange{},
        [&](std::string_view k, std::string_view v) {
          ++index_entries;
          // Split the key: <kind>\0[<name>\0]<8 bytes><seq>.
          const int slot = k.size() < 18 || k[1] != '\0' ? -1 : KindSlot(k[0]);
          const bool named = slot == 1 || slot == 2 || slot == 3;
          if (slot < 0 || (named ? k.size() < 19 || k[k.size() - 17] != '\0' : k.size() != 18)) {
            index_failure.Add(k.size() >= 8 ? DecodeBigEndian64(k.substr(k.size() - 8)) : 0,
                              "malformed index entry");
            return true;
          }
          const uint64_t seq = DecodeBigEndian64(k.substr(k.size() - 8));
          if (seq < first || seq - first >= slots) {
            index_failure.Add(
                seq, std::string("index entry without record (") + KindName(k[0]) + " index)");
            return true;
          }
          const uint64_t name_hash = named ? Hash64(seed, k.substr(2, k.size() - 19)) : 0;
          const uint64_t i = seq - first;
          if (found_mask[i] & (1u << slot)) duplicate_mask[i] |= static_cast<uint8_t>(1u << slot);
          found_mask[i] |= static_cast<uint8_t>(1u << slot);
          found[i][slot] = fp32(EntryFingerprint(seed, k[0], name_hash,
                                                 DecodeBigEndian64(k.substr(k.size() - 16)), seq,
                                                 Hash64(seed, v)));
          return true;
        },
        snap.get());
  });

  Failure chain;
  std::string expected_prev = *trim ? (*trim)->first_kept_prev_hash : ZeroHash();
  uint64_t expected_seq = first;
  CanonicalBytes canonical;
  std::string last_hash;
  const uint64_t empty_hash = Hash64(seed, "");
  Status s = store_->Scan(
      kAuditCf, store::ScanRange{},
      [&](std::string_view k, std::string_view v) {
        if (k.size() != 8) {
          chain.Add(expected_seq, "malformed key in the audit column family (" +
                                      std::to_string(k.size()) + " bytes)");
          return false;
        }
        const uint64_t seq = DecodeBigEndian64(k);
        if (seq < expected_seq) {
          chain.Add(seq, "record precedes the first kept record " + std::to_string(first) +
                             " of the trim record");
          return false;
        }
        if (seq > expected_seq) {
          chain.Add(expected_seq,
                    seq == expected_seq + 1
                        ? "gap in sequence: " + std::to_string(expected_seq) + " missing"
                        : "gap in sequence: " + std::to_string(expected_seq) + ".." +
                              std::to_string(seq - 1) + " missing");
          return false;
        }
        Result<AuditRecord> r = DecodeStored(v, &canonical);
        if (!r.ok()) {
          chain.Add(seq, "record unreadable: " + r.status().message());
          return false;
        }
        if (Sha256Hex(canonical.head, canonical.tail) != r->hash) {
          chain.Add(
              seq,
              "hash mismatch (the record's content is not what was hashed when it was written)");
          return false;
        }
        if (r->prev_hash != expected_prev) {
          if (seq != first) {
            chain.Add(seq, "prev_hash does not match record " + std::to_string(seq - 1));
          } else if (*trim) {
            chain.Add(seq, "prev_hash does not match the trim record (first kept record " +
                               std::to_string(first) + ")");
          } else {
            chain.Add(seq, "prev_hash of the first record is not 64 zeros");
          }
          return false;
        }
        if (r->seq != seq) {
          chain.Add(seq, "record stored under seq " + std::to_string(seq) + " says seq " +
                             std::to_string(r->seq));
          return false;
        }
        // The entries IndexEntries() writes for it, as fingerprints.
        std::array<uint32_t, kNumKinds> e{};
        const uint64_t value_hash = Hash64(seed, EncodeFields(*r));
        const uint64_t time_bits = DecodeBigEndian64(TimeKey(r->time));
        e[0] = fp32(EntryFingerprint(seed, 't', 0, time_bits, seq, value_hash));
        if (!r->service.empty()) {
          e[1] = fp32(
              EntryFingerprint(seed, 's', Hash64(seed, r->service), time_bits, seq, value_hash));
        }
        if (!r->machine.empty()) {
          e[2] = fp32(
              EntryFingerprint(seed, 'm', Hash64(seed, r->machine), time_bits, seq, value_hash));
        }
        e[3] =
            fp32(EntryFingerprint(seed, 'a', Hash64(seed, r->action), time_bits, seq, value_hash));
        if (r->intent_seq != 0) {
          e[4] = fp32(EntryFingerprint(seed, 'p', 0, r->intent_seq, seq, empty_hash));
        }
        expected.push_back(e);
        expected_prev = r->hash;
        last_hash = r->hash;
        ++expected_seq;
        ++rep.records;
        return true;
      },
      snap.get());
  index_reader.join();
  CLUSTERCTL_RETURN_IF_ERROR(s);
  CLUSTERCTL_RETURN_IF_ERROR(index_status);
  rep.index_entries = index_entries;
  if (rep.records > 0) {
    rep.first_seq = first;
    rep.last_seq = expected_seq - 1;
  }

  // The end of the chain must be the head (a removed newest record leaves
  // no gap behind it otherwise).
  if (!chain.failed) {
    if (!head_seq) {
      if (rep.records > 0) chain.Add(rep.last_seq, "the log's head (meta audit/head) is missing");
    } else if (*head_seq > rep.last_seq && *head_seq >= first) {
      const uint64_t missing = std::max(rep.last_seq + 1, first);
      chain.Add(missing,
                missing == *head_seq
                    ? "gap in sequence: " + std::to_string(missing) + " missing (the head names it)"
                    : "gap in sequence: " + std::to_string(missing) + ".." +
                          std::to_string(*head_seq) + " missing (the head names record " +
                          std::to_string(*head_seq) + ")");
    } else if (*head_seq < rep.last_seq) {
      chain.Add(*head_seq + 1, "record is newer than the log's head (record " +
                                   std::to_string(*head_seq) + "): added behind the log's back");
    } else if (rep.records > 0 && head_hash != last_hash) {
      chain.Add(rep.last_seq, "hash does not match the log's head");
    }
  }

  // Each verified record against the index entries found for it.
  for (uint64_t i = 0; i < expected.size() && i < slots; ++i) {
    if (index_failure.failed && first + i >= index_failure.seq) break;
    for (int k = 0; k < kNumKinds; ++k) {
      const bool has = found_mask[i] & (1u << k);
      const char* kind = KindName(kKinds[k]);
      if (expected[i][k] != 0 && !has) {
        index_failure.Add(first + i, std::string("index entry missing (") + kind + " index)");
      } else if (has && (expected[i][k] != found[i][k] || (duplicate_mask[i] & (1u << k)))) {
        index_failure.Add(first + i,
                          std::string("index entry does not match record (") + kind + " index)");
      } else {
        continue;
      }
      break;
    }
  }
  // Index problems past a broken chain say nothing new.
  if (chain.failed) {
    rep.ok = false;
    rep.first_bad_seq = chain.seq;
    rep.reason = chain.reason;
    if (index_failure.failed && index_failure.seq < chain.seq) {
      rep.first_bad_seq = index_failure.seq;
      rep.reason = index_failure.reason;
    }
  } else if (index_failure.failed) {
    rep.ok = false;
    rep.first_bad_seq = index_failure.seq;
    rep.reason = index_failure.reason;
  }
  return rep;
}

// -------------------------------------------------------------- retention

Result<uint64_t> AuditLog::Trim(uint64_t before_seq, const std::string& actor) {
  std::lock_guard<std::mutex> lock(mu_);
  if (store_->read_only()) {
    return Status::Permission("the audit log in " + store_->data_dir() +
                              " is open read-only; it cannot be trimmed");
  }
  if (reload_head_) {
    CLUSTERCTL_RETURN_IF_ERROR(LoadHead());
    reload_head_ = false;
  }
  before_seq = std::min(before_seq, last_seq_);  // The newest record stays.
  Result<std::optional<TrimInfo>> trim = Trimmed();
  if (!trim.ok()) return trim.status();
  TrimInfo info = trim->value_or(TrimInfo{});
  Result<uint64_t> first_r = FirstSeq(store_);
  if (!first_r.ok()) return first_r.status();
  uint64_t first = *first_r;
  if (first == 0 || before_seq <= first) return uint64_t{0};
  std::string expected_prev = *trim ? info.first_kept_prev_hash : ZeroHash();
  if (first != (*trim ? info.first_kept_seq : 1)) {
    return Status::Internal("refusing to trim: the audit log's first record is " +
                            std::to_string(first) +
                            ", not the one the trim record expects; run "
                            "clusterctl audit verify");
  }

  const uint64_t from = first;
  int64_t first_time = 0;
  uint64_t removed = 0;
  while (first < before_seq) {
    const uint64_t chunk_end = std::min(before_seq, first + kTrimChunk);
    store::StoreBatch batch(store_);
    Status bad;
    uint64_t next = first;
    CanonicalBytes canonical;
    store::ScanRange range{SeqKey(first), SeqKey(chunk_end + 1)};  // Includes the new first record.
    Status s = store_->Scan(kAuditCf, range, [&](std::string_view k, std::string_view v) {
      const uint64_t seq = DecodeBigEndian64(k);
      Result<AuditRecord> r = DecodeStored(v, &canonical);
      // Trim never hides a broken chain: what it removes must verify.
      std::string why;
      if (seq != next) {
        why = "gap in sequence: " + std::to_string(next) + " missing";
      } else if (!r.ok()) {
        why = "record unreadable";
      } else if (Sha256Hex(canonical.head, canonical.tail) != r->hash) {
        why = "hash mismatch";
      } else if (r->prev_hash != expected_prev) {
        why = "prev_hash does not match the record before it";
      }
      if (!why.empty()) {
        bad = Status::Internal("refusing to trim: the audit chain is broken at record " +
                               std::to_string(seq != next ? next : seq) + " (" + why +
                               "); run clusterctl audit verify");
        return false;
      }
      expected_prev = r->hash;
      if (seq == chunk_end) return false;  // The new first record: kept.
      if (first_time == 0) first_time = r->time;
      info.trimmed_through_time = r->time;
      batch.Delete(kAuditCf, k);
      for (const IndexEntry& e : IndexEntries(*r)) batch.Delete(kIndexCf, e.key);
      ++next;
      return true;
    });
    CLUSTERCTL_RETURN_IF_ERROR(s);
    CLUSTERCTL_RETURN_IF_ERROR(bad);
    if (next != chunk_end) {
      return Status::Internal("refusing to trim: record " + std::to_string(next) +
                              " is missing; run clusterctl audit verify");
    }
    Result<std::optional<AuditRecord>> kept = Get(chunk_end);
    if (!kept.ok()) return kept.status();
    if (!kept->has_value()) {
      return Status::Internal("refusing to trim: record " + std::to_string(chunk_end) +
                              " is missing; run clusterctl audit verify");
    }
    info.first_kept_seq = chunk_end;
    info.first_kept_prev_hash = (*kept)->prev_hash;
    info.trimmed_count += chunk_end - first;
    info.last_trim_at = clock_.WallMs();
    batch.Put(kMetaCf, kTrimKey,
              json{{"first_kept_seq", info.first_kept_seq},
                   {"first_kept_prev_hash", info.first_kept_prev_hash},
                   {"trimmed_count", info.trimmed_count},
                   {"trimmed_through_time", info.trimmed_through_time},
                   {"last_trim_at", info.last_trim_at}}
                  .dump());
    CLUSTERCTL_RETURN_IF_ERROR(store_->Commit(&batch, /*sync=*/true));
    removed += chunk_end - first;
    expected_prev = (*kept)->prev_hash;
    first = chunk_end;
  }

  AuditRecord event;
  event.actor = actor;
  event.trigger = "manual";
  event.action = "audit_trimmed";
  event.phase = kPhaseEvent;
  event.result = "ok";
  event.detail = "retention removed records " + std::to_string(from) + ".." +
                 std::to_string(before_seq - 1) + " (" + std::to_string(removed) + " records, " +
                 FormatRfc3339Ms(first_time) + " to " + FormatRfc3339Ms(info.trimmed_through_time) +
                 "); the chain is verified from record " + std::to_string(before_seq);
  Result<std::vector<AuditRecord>> appended = AppendLocked({event});
  if (!appended.ok()) return appended.status().Annotate("recording the trim");
  return removed;
}

}  // namespace clusterctl::audit
