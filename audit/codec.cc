// The audit log's storage format (audit/codec.h): keys, index entries and
// their values, the fast decoder of stored records, the trim record.
#include "audit/codec.h"

#include <algorithm>
#include <cstdint>

#include "base/big_endian.h"
#include "base/time_format.h"
#include "base/utf8.h"

namespace clusterctl::audit {
using nlohmann::json;

const std::string& ZeroHash() {
  static const std::string* zeros = new std::string(64, '0');
  return *zeros;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ------------------------------------------------------------ key encoding

std::string SeqKey(uint64_t seq) { return BigEndian64(seq); }
std::string OpenKey(uint64_t seq) { return kOpenPrefix + BigEndian64(seq); }

std::string IndexPrefix(char kind, std::string_view name) {
  std::string p(1, kind);
  p.push_back('\0');
  if (kind != 't' && kind != 'p') {
    p.append(name);
    p.push_back('\0');
  }
  return p;
}

namespace {

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

}  // namespace

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

// The index entries a record owns (see codec.h for the layout).
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

// --------------------------------------------------------- stored records

namespace {

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
      case 'f':
        if (key == "fencing_token") {
          if (is_string || negative) return -1;
          r->fencing_token = unum;
          return 16;
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
      case 'l':
        if (key == "leader") return text(&r->leader, 17);
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

}  // namespace

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

Result<std::optional<TrimInfo>> ReadTrim(const store::Store* store,
                                         const store::StoreSnapshot* snapshot) {
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

store::ScanRange Whole(bool reverse, size_t limit) {
  store::ScanRange r;
  r.reverse = reverse;
  r.limit = limit;
  return r;
}

bool Contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string Join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace clusterctl::audit
