// AuditLog::Verify (audit/audit_log.h): the walk of the hash chain from the
// first kept record to the head, and the check of every index entry against
// the records, with the fingerprints that check keeps per record.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "audit/audit_log.h"
#include "audit/codec.h"
#include "base/big_endian.h"
#include "base/sha256.h"

namespace clusterctl::audit {
using nlohmann::json;

namespace {

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

}  // namespace

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
  // Fencing: the actions of leaders (intents and results with a token) never
  // go back to a lower token along the chain; one that does was sent by a
  // deposed leader.
  // Per machine: the highest fencing token of an action, and its record.
  // One leader's tokens grow on every machine; with clusterd shards each
  // machine has its own lease, so only the tokens of one machine must grow.
  std::map<std::string, std::pair<uint64_t, uint64_t>> max_token;
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
        if (r->fencing_token != 0 && r->phase != Name(Phase::kEvent)) {
          auto& [top, top_seq] = max_token[r->machine];
          if (r->fencing_token < top) {
            chain.Add(seq, "fencing token " + std::to_string(r->fencing_token) +
                               " is below token " + std::to_string(top) + " of record " +
                               std::to_string(top_seq) + " (machine " + r->machine +
                               "): an action of a deposed leader or shard owner");
            return false;
          }
          top = r->fencing_token;
          top_seq = seq;
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

}  // namespace clusterctl::audit
