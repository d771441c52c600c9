// Rendezvous hashing of machines over replicas (pure): one owner per
// machine, stable hashes, and the minimal movement when a replica leaves or
// joins.
#include "ha/rendezvous.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace clusterctl::ha {
namespace {

std::set<std::string> Machines(int n) {
  std::set<std::string> out;
  for (int i = 0; i < n; ++i) out.insert("m" + std::to_string(i));
  return out;
}

std::vector<std::string> Replicas(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("replica-" + std::to_string(i));
  return out;
}

TEST(RendezvousTest, TheHashIsStableAcrossBuilds) {
  // FNV-1a 64 + splitmix64: fixed values, whatever the standard library.
  EXPECT_EQ(StableHash64(""), 0xf52a15e9a9b5e89bULL);
  EXPECT_EQ(StableHash64("m1"), 0xb1f1c6d5119a7801ULL);
  EXPECT_EQ(RendezvousWeight("m1", "a"), 0x4f9400ea602076edULL);
  EXPECT_NE(StableHash64("m1"), StableHash64("m2"));
  EXPECT_NE(RendezvousWeight("m1", "a"), RendezvousWeight("m1", "b"));
  // "m1" + "\0" + "a" and "m1\0" + "a" are one key, but "m" + "1a" is not.
  EXPECT_NE(RendezvousWeight("m", "1a"), RendezvousWeight("m1", "a"));
}

TEST(RendezvousTest, EveryMachineHasExactlyOneOwnerAmongTheReplicas) {
  const auto machines = Machines(1000);
  const auto replicas = Replicas(3);
  const auto owners = AssignMachines(machines, replicas);
  ASSERT_EQ(owners.size(), machines.size());
  std::map<std::string, int> per_replica;
  for (const auto& [m, r] : owners) {
    EXPECT_NE(std::find(replicas.begin(), replicas.end(), r), replicas.end()) << m << " -> " << r;
    ++per_replica[r];
  }
  // Balanced within 20% of 1000/3.
  for (const auto& r : replicas) {
    EXPECT_GT(per_replica[r], 333 * 8 / 10) << r;
    EXPECT_LT(per_replica[r], 333 * 12 / 10) << r;
  }
  // The order of the member list does not matter.
  std::vector<std::string> reversed(replicas.rbegin(), replicas.rend());
  EXPECT_EQ(AssignMachines(machines, reversed), owners);
}

TEST(RendezvousTest, NoReplicasMeansNoOwner) {
  EXPECT_EQ(RendezvousOwner("m1", {}), "");
  EXPECT_EQ(AssignMachines({"m1"}, {}).at("m1"), "");
  EXPECT_EQ(RendezvousOwner("m1", {"only"}), "only");
}

TEST(RendezvousTest, RemovingAReplicaMovesOnlyItsMachines) {
  const auto machines = Machines(1000);
  const auto replicas = Replicas(4);
  const auto before = AssignMachines(machines, replicas);
  std::vector<std::string> fewer = replicas;
  fewer.erase(fewer.begin() + 2);  // replica-2 dies.
  const auto after = AssignMachines(machines, fewer);
  int moved = 0;
  for (const auto& m : machines) {
    if (before.at(m) == "replica-2") {
      EXPECT_NE(after.at(m), "replica-2");
      ++moved;
    } else {
      EXPECT_EQ(after.at(m), before.at(m)) << m << " moved although its owner lives";
    }
  }
  EXPECT_GT(moved, 0);
  // Its machines spread over the survivors, not all onto one.
  std::set<std::string> heirs;
  for (const auto& m : machines) {
    if (before.at(m) == "replica-2") heirs.insert(after.at(m));
  }
  EXPECT_EQ(heirs.size(), 3u);
}

TEST(RendezvousTest, AddingAReplicaMovesAboutOneNthToIt) {
  const auto machines = Machines(1000);
  const auto replicas = Replicas(4);
  const auto before = AssignMachines(machines, replicas);
  std::vector<std::string> more = replicas;
  more.push_back("replica-new");
  const auto after = AssignMachines(machines, more);
  int moved = 0;
  for (const auto& m : machines) {
    if (after.at(m) == before.at(m)) continue;
    EXPECT_EQ(after.at(m), "replica-new") << m << " moved between old replicas";
    ++moved;
  }
  // 1000/5 = 200 expected; the hash is not perfect, so +-30%.
  EXPECT_GT(moved, 140);
  EXPECT_LT(moved, 260);
}

}  // namespace
}  // namespace clusterctl::ha
