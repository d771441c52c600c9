// ParseCache: the per-file work of loading a revision, kept between loads so
// that a new revision only parses the files it changed.
//
// clusterd loads the whole revision on every push; in a repository of 10,000
// services a push usually changes one file. What Load (loader.h) computes
// from one file alone is kept here: its YAML documents (schema defaults
// applied), every diagnostic of reading, schema-checking and decoding them,
// and the decoded objects. An entry is keyed by
//   - the file's path (every diagnostic names it),
//   - its git blob id (SourceFile::blob; a SHA-256 of the content when the
//     file does not come from git),
//   - a fingerprint of everything else the per-file work depends on: the
//     schemas (Schemas::fingerprint()), the YAML limits and the format of an
//     entry. A change of any of them misses every entry.
// The steps over the whole revision (document count, secret files, one
// Cluster, unique names, references, selectors, cycles, instances) run on
// every load, over cached and fresh files alike, so a cached load gives the
// same DesiredState and the same diagnostics as a cold one.
//
// After each load the cache holds the entries of that revision's files and
// nothing else (files deleted or changed are dropped), in path order up to
// max_bytes of source text; files beyond the bound are parsed again next
// time.
//
// Thread-safety: thread-safe (a mutex guards the map; entries are immutable
// and shared). Loads that share a cache may run concurrently; the last one
// decides what is kept.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace clusterctl::desired_state {

namespace internal {
struct ParsedFile;
}  // namespace internal

class ParseCache {
 public:
  struct Options {
    // Bound on the source text of the files kept. The parsed form stays
    // resident and takes about 17 times its text (the decoded objects,
    // every node's line:column, and the part of each document's JSON the
    // whole-revision steps read): a revision of 10,000 services, 2.7 MiB
    // of YAML, holds ~45 MiB (docs/benchmarks.md). Files past the bound
    // are parsed on every load. Default: 4 MiB of text (~70 MiB resident).
    size_t max_bytes = 4 << 20;
  };

  struct Stats {
    size_t hits = 0;    // Files of the last load found in the cache.
    size_t misses = 0;  // Files of the last load parsed.
    size_t entries = 0;
    size_t bytes = 0;  // Source text of the entries.
  };

  ParseCache() : ParseCache(Options{}) {}
  explicit ParseCache(Options options) : options_(options) {}

  Stats stats() const;

  // For Load (loader.cc) -----------------------------------------------------
  using Entry = std::shared_ptr<const internal::ParsedFile>;

  // The entry of `key`, or nullptr.
  Entry Find(const std::string& key) const;

  // Makes `entries` (the files of the revision just loaded, in order) the
  // whole content of the cache, as far as max_bytes allows, and records the
  // hits and misses of that load.
  void Replace(std::vector<std::pair<std::string, Entry>> entries, size_t hits, size_t misses);

 private:
  const Options options_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // Guarded by mu_.
  Stats stats_;                           // Guarded by mu_.
};

}  // namespace clusterctl::desired_state
