#include "desired-state/parse_cache.h"

#include "desired-state/internal.h"

namespace clusterctl::desired_state {

ParseCache::Stats ParseCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

ParseCache::Entry ParseCache::Find(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

void ParseCache::Replace(std::vector<std::pair<std::string, Entry>> entries, size_t hits,
                         size_t misses) {
  std::map<std::string, Entry> kept;
  size_t bytes = 0;
  for (auto& [key, entry] : entries) {
    if (bytes + entry->bytes > options_.max_bytes) continue;
    bytes += entry->bytes;
    kept.emplace(std::move(key), std::move(entry));
  }
  std::map<std::string, Entry> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped.swap(entries_);
    entries_ = std::move(kept);
    stats_ = Stats{hits, misses, entries_.size(), bytes};
  }
  // `dropped` is freed here, outside the lock.
}

}  // namespace clusterctl::desired_state
