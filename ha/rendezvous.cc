#include "ha/rendezvous.h"

namespace clusterctl::ha {

uint64_t StableHash64(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a 64 offset basis.
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;  // FNV-1a 64 prime.
  }
  // splitmix64's finaliser: FNV's low bits vary little for similar names.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

uint64_t RendezvousWeight(std::string_view machine, std::string_view replica) {
  std::string key;
  key.reserve(machine.size() + 1 + replica.size());
  key.append(machine);
  key.push_back('\0');
  key.append(replica);
  return StableHash64(key);
}

std::string RendezvousOwner(std::string_view machine, const std::vector<std::string>& replicas) {
  const std::string* best = nullptr;
  uint64_t best_weight = 0;
  for (const std::string& r : replicas) {
    const uint64_t w = RendezvousWeight(machine, r);
    if (best == nullptr || w > best_weight || (w == best_weight && r < *best)) {
      best = &r;
      best_weight = w;
    }
  }
  return best != nullptr ? *best : std::string();
}

std::map<std::string, std::string> AssignMachines(const std::set<std::string>& machines,
                                                  const std::vector<std::string>& replicas) {
  std::map<std::string, std::string> out;
  for (const std::string& m : machines) out[m] = RendezvousOwner(m, replicas);
  return out;
}

}  // namespace clusterctl::ha
