// How the audit log is stored: the key encoding, the secondary index entries
// a record owns, the stored form of a record and the meta records. Internal
// to the audit library (audit_log.cc, verify.cc, trim.cc, record.cc,
// filter.cc); audit/audit_log.h does not include it.
//
// The layout, in the shared database:
//   "audit"        <seq: 8 bytes big-endian> -> the record as compact JSON
//                  with sorted keys (ToJson(record).dump()), hash included.
//   "audit_index"  secondary index entries, written in the same batch as
//                  their record. Every key ends with the record's seq:
//                    t\0<time><seq>                 every record
//                    s\0<service>\0<time><seq>      records with a service
//                    m\0<machine>\0<time><seq>      records with a machine
//                    a\0<action>\0<time><seq>       every record
//                    p\0<intent_seq><seq>           results naming their intent
//                  <time> is 8 bytes big-endian with the sign bit flipped
//                  (byte order = time order), <seq> and <intent_seq> 8 bytes
//                  big-endian. The value of a t/s/m/a entry holds the fields
//                  the filters look at (result, trigger, actor, revision,
//                  service, machine, action, phase), so a filtered query reads
//                  index entries only and fetches just the records it returns.
//   "meta"         keys starting "audit/": "audit/head" (last seq, hash and
//                  time), "audit/open/<seq>" (an intent with no result yet:
//                  its record), "audit/trim" (what retention removed).
//
// Records are stored as Dump(ToJson(record)): compact JSON with sorted keys,
// hash included; the hash covers the same bytes without the "hash" member
// (audit/record.h: CanonicalForm).
//
// Thread-safety: pure functions, but ReadTrim, which reads the Store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.h"
#include "audit/filter.h"
#include "audit/record.h"
#include "base/status.h"
#include "store/store.h"

namespace clusterctl::audit {

inline constexpr char kAuditCf[] = "audit";
inline constexpr char kIndexCf[] = "audit_index";
inline constexpr char kMetaCf[] = "meta";
inline constexpr char kHeadKey[] = "audit/head";
inline constexpr char kTrimKey[] = "audit/trim";
inline constexpr char kOpenPrefix[] = "audit/open/";

// The prev_hash of the first record and the hash of an empty log's head: 64
// zeros.
const std::string& ZeroHash();

// The compact JSON records are stored and hashed in (invalid UTF-8 replaced).
std::string Dump(const nlohmann::json& j);

// ------------------------------------------------------------ key encoding

// The "audit" key of a record, and its "meta" key while it is an open intent.
std::string SeqKey(uint64_t seq);
std::string OpenKey(uint64_t seq);

// "t\0" or "s\0<name>\0".
std::string IndexPrefix(char kind, std::string_view name = {});

// Index values: the filter fields (audit/filter.h), each a varint length and
// the bytes.
std::string EncodeFields(const AuditRecord& r);
bool DecodeFields(std::string_view in, Fields* f);

struct IndexEntry {
  char kind;
  std::string key, value;
};

// The index entries a record owns (see the layout above).
std::vector<IndexEntry> IndexEntries(const AuditRecord& r);

// --------------------------------------------------------- stored records

// The bytes a stored record's hash covers: `head` then `tail` (the stored
// value without its "hash" member), viewing the value or `owned`.
struct CanonicalBytes {
  std::string_view head, tail;
  std::string owned;
};

// A stored value as a record; `canonical` (optional) receives the bytes the
// hash covers.
Result<AuditRecord> DecodeStored(std::string_view value, CanonicalBytes* canonical);

// The trim record (meta "audit/trim"), or nullopt when nothing was trimmed.
Result<std::optional<TrimInfo>> ReadTrim(const store::Store* store,
                                         const store::StoreSnapshot* snapshot = nullptr);

// A scan of at most `limit` keys of a whole family.
store::ScanRange Whole(bool reverse, size_t limit);

// Messages about the known values (AuditTriggers(), AuditResults()): whether
// `v` is one of `list`, and the list as "a, b, c".
bool Contains(const std::vector<std::string>& list, std::string_view v);
std::string Join(const std::vector<std::string>& list);

}  // namespace clusterctl::audit
