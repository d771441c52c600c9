// Rendezvous (highest random weight) hashing: which live replica owns which
// machine when clusterd replicas shard the machines (shard_coordinator.h).
//
// The owner of machine M among replicas R1..Rn is the Ri with the highest
// Weight(M, Ri), ties broken by the smaller id. Every replica that sees the
// same member list computes the same owner, with no coordination. When a
// replica leaves, only its machines move (each to the replica with the next
// highest weight); when one joins, it takes about 1/n of the machines, each
// from its previous owner, and no other machine moves.
//
// The weight is a stable 64-bit hash (FNV-1a over "<machine>\0<replica>",
// then the splitmix64 finaliser for avalanche), the same on every host and
// build: never std::hash, whose values may differ between standard
// libraries and releases.
//
// Pure: no I/O, no clock. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace clusterctl::ha {

// FNV-1a 64 of `s`, then splitmix64's finaliser.
uint64_t StableHash64(std::string_view s);

// The rendezvous weight of `replica` for `machine`.
uint64_t RendezvousWeight(std::string_view machine, std::string_view replica);

// The owner of `machine` among `replicas` (ids), "" when there are none.
std::string RendezvousOwner(std::string_view machine, const std::vector<std::string>& replicas);

// The owner of every machine: machine -> replica id (all "" without replicas).
std::map<std::string, std::string> AssignMachines(const std::set<std::string>& machines,
                                                  const std::vector<std::string>& replicas);

}  // namespace clusterctl::ha
