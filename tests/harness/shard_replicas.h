// Built clusterd replicas with `redis.shards: auto` on one real redis-server,
// and what the sharded end-to-end tests judge them by: the owners they agree
// on (GET /api/v1/status) and the actions in their audit logs.
// Header-only: include it from tests that link the controller library
// (tests/controller/shards_e2e_test.cc, shards_scale_e2e_test.cc).
//
//   ShardReplicas replicas(dir, base_config_text, token, redis.port(), machines);
//   Replica& a = replicas.Start("node-a");  // clusterd on <dir>/node-a.yaml
//   auto owners = replicas.AgreedOwners({&a, &b, &c});
//   ShardReplicas::ExpectExclusive(replicas.Actions());
//
// Each replica's config is the base text with its own dataDir and listen
// lines (both must be in the base text) and a `redis:` line with short
// leases. Replicas are killed by PID (Process) when the ShardReplicas goes.
//
// Thread-safety: not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "tests/harness/audit_records.h"
#include "tests/harness/paths.h"
#include "tests/harness/process.h"
#include "tests/harness/temp_dir.h"

namespace clusterctl::testing {

struct Replica {
  std::string name, data_dir, listen, config;
  std::unique_ptr<Process> process;
};

// One action of a replica on a machine: a step from its intent to its
// result (or to the replica's death).
struct ShardAction {
  std::string replica, machine, key, action;
  uint64_t token = 0;
  int64_t from_ms = 0, to_ms = 0;
  bool ok = false;  // The result said ok.
};

class ShardReplicas {
 public:
  ShardReplicas(std::string dir, std::string base_config, std::string token, int redis_port,
                std::vector<std::string> machines, int lease_seconds = 3, int renew_seconds = 1)
      : dir_(std::move(dir)),
        base_config_(std::move(base_config)),
        token_(std::move(token)),
        redis_port_(redis_port),
        machines_(std::move(machines)),
        lease_seconds_(lease_seconds),
        renew_seconds_(renew_seconds) {
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r')) token_.pop_back();
  }

  int lease_seconds() const { return lease_seconds_; }
  int renew_seconds() const { return renew_seconds_; }

  // Starts the built clusterd as replica `name` (its log <dir>/<name>.log).
  Replica& Start(const std::string& name) {
    replicas_.push_back(std::make_unique<Replica>());
    Replica& r = *replicas_.back();
    r.name = name;
    r.data_dir = dir_ + "/data-" + name;
    r.listen = "127.0.0.1:" + std::to_string(PickFreePort());
    r.config = dir_ + "/" + name + ".yaml";
    std::string text = base_config_;
    auto replace_line = [&](const std::string& key, const std::string& value) {
      const size_t at = text.find("\n" + key + ": ");
      if (at == std::string::npos) throw std::runtime_error("no " + key + " line in the config");
      const size_t end = text.find('\n', at + 1);
      text.replace(at + 1, end - at - 1, key + ": " + value);
    };
    replace_line("dataDir", r.data_dir);
    replace_line("listen", r.listen);
    text += "redis: {host: 127.0.0.1, port: " + std::to_string(redis_port_) +
            ", leaseSeconds: " + std::to_string(lease_seconds_) +
            ", renewSeconds: " + std::to_string(renew_seconds_) +
            ", retrySeconds: 1, marginSeconds: 1, shards: auto, replicaName: " + name + "}\n";
    WriteFile(r.config, text);
    r.process =
        std::make_unique<Process>(std::vector<std::string>{ClusterdBin(), "--config", r.config},
                                  OutputTo(dir_ + "/" + name + ".log"));
    return r;
  }

  std::vector<Replica*> all() const {
    std::vector<Replica*> out;
    for (const auto& r : replicas_) out.push_back(r.get());
    return out;
  }

  // Every replica's log, for failure messages.
  std::string Logs() const {
    std::string out;
    for (const auto& r : replicas_) {
      out += "---- " + r->name + "\n" + ReadFile(dir_ + "/" + r->name + ".log");
    }
    return out;
  }

  // A request to `r`'s API with the token; the JSON answered with 200, else
  // null.
  nlohmann::json Get(const Replica& r, const std::string& path) const {
    httplib::Client c("http://" + r.listen);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(5, 0);
    auto res = c.Get(path, {{"Authorization", "Bearer " + token_}});
    if (!res || res->status != 200) return nlohmann::json();
    return nlohmann::json::parse(res->body, nullptr, false);
  }
  nlohmann::json Status(const Replica& r) const { return Get(r, "/api/v1/status"); }
  // POST `body` (JSON) to `r`'s API with the token; the HTTP status, 0
  // without an answer.
  int Post(const Replica& r, const std::string& path, const std::string& body = "{}") const {
    httplib::Client c("http://" + r.listen);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(5, 0);
    auto res = c.Post(path, {{"Authorization", "Bearer " + token_}}, body, "application/json");
    return res ? res->status : 0;
  }

  // Machine -> owner name, when every replica in `alive` reports the same
  // owner for every machine and lists exactly `alive` as members; else {}.
  std::map<std::string, std::string> AgreedOwners(const std::vector<Replica*>& alive) const {
    std::map<std::string, std::string> agreed;
    std::set<std::string> names;
    for (Replica* r : alive) names.insert(r->name);
    for (Replica* r : alive) {
      const nlohmann::json st = Status(*r);
      if (!st.is_object() || st.value("shards", "") != "auto") return {};
      std::set<std::string> members;
      for (const auto& m : st.value("members", nlohmann::json::array())) {
        members.insert(m.get<std::string>());
      }
      if (members != names || !st.contains("machines")) return {};
      std::map<std::string, std::string> owners;
      for (const std::string& m : machines_) {
        const nlohmann::json& f = st["machines"].value(m, nlohmann::json::object());
        if (!f.contains("owner") || !f["owner"].is_string()) return {};
        owners[m] = f["owner"].get<std::string>();
        if (!names.count(owners[m])) return {};
      }
      if (!agreed.empty() && owners != agreed) return {};
      agreed = owners;
    }
    return agreed;
  }

  // The status of instance svc@m in `status`; {} when absent.
  static nlohmann::json Instance(const nlohmann::json& status, const std::string& svc,
                                 const std::string& m) {
    if (!status.is_object() || !status.contains("services") || !status["services"].contains(svc)) {
      return nlohmann::json::object();
    }
    const nlohmann::json& instances = status["services"][svc]["instances"];
    return instances.contains(m) ? instances[m] : nlohmann::json::object();
  }

  // Every instance desired running runs and is ready as `r` sees it (its own
  // machines observed, the others as their owners publish), and there are
  // `expected` of them.
  bool AllReady(const Replica& r, size_t expected) const {
    const nlohmann::json st = Status(r);
    if (!st.is_object() || !st.contains("services")) return false;
    size_t n = 0;
    for (const auto& [svc, s] : st["services"].items()) {
      for (const auto& [m, i] : s["instances"].items()) {
        if (i.value("desired", "") != "running") continue;
        if (i.value("state", "") != "running" || !i.value("ready", false)) return false;
        ++n;
      }
    }
    return n == expected;
  }

  // What a kill -9 of one replica left.
  struct Takeover {
    std::vector<Replica*> alive;               // The others.
    std::set<std::string> moved;               // The victim's machines.
    std::map<std::string, std::string> after;  // The owners they agree on; {} if never.
    int64_t killed_ms = 0, took_ms = 0;
  };

  // Kills `victim` with SIGKILL and waits (30 s at most) until the others
  // agree on the owners of `owners`' machines. Expects that this took at
  // most the lease plus a renew interval (the tick that sees it) plus 5 s of
  // slack (the status poll, a slow sanitised build), and that no machine of
  // a living replica moved. Records the property takeover_ms.
  Takeover Kill9AndTakeOver(Replica* victim, const std::map<std::string, std::string>& owners) {
    Takeover t;
    for (const auto& r : replicas_) {
      if (r.get() != victim) t.alive.push_back(r.get());
    }
    for (const auto& [m, o] : owners) {
      if (o == victim->name) t.moved.insert(m);
    }
    victim->process->Kill(SIGKILL);
    t.killed_ms = WallClockMs();
    (void)victim->process->WaitForExit(std::chrono::seconds(5));
    if (!WaitFor(
            [&] {
              t.after = AgreedOwners(t.alive);
              return !t.after.empty();
            },
            std::chrono::seconds(30), std::chrono::milliseconds(100))) {
      ADD_FAILURE() << "the living replicas never agreed on the owners\n" << Logs();
      return t;
    }
    t.took_ms = WallClockMs() - t.killed_ms;
    ::testing::Test::RecordProperty("takeover_ms", static_cast<int>(t.took_ms));
    EXPECT_LT(t.took_ms, (lease_seconds_ + renew_seconds_) * 1000 + 5000);
    for (const auto& [m, o] : owners) {
      if (o != victim->name) {
        EXPECT_EQ(t.after.at(m), o) << m << " moved although its owner lives";
      }
    }
    return t;
  }

  // The actions (intent .. result) of every replica in its own audit log.
  // An intent without a result ends at `dead_ms` for the replica `dead`.
  std::vector<ShardAction> Actions(const std::string& dead = "", int64_t dead_ms = 0) const {
    std::vector<ShardAction> out;
    for (const auto& r : replicas_) {
      std::map<uint64_t, size_t> by_intent;
      for (const auto& rec : AuditRecordsOf(r->data_dir)) {
        if (rec.leader != r->name || rec.fencing_token == 0 || rec.machine.empty()) continue;
        if (rec.phase == "intent") {
          ShardAction a;
          a.replica = r->name;
          a.machine = rec.machine;
          a.key = rec.service + "@" + rec.machine;
          a.action = rec.action;
          a.token = rec.fencing_token;
          a.from_ms = rec.time;
          a.to_ms = r->name == dead ? dead_ms : INT64_MAX;
          by_intent[rec.seq] = out.size();
          out.push_back(a);
        } else if (rec.phase == "result") {
          auto it = by_intent.find(rec.intent_seq);
          if (it == by_intent.end()) continue;
          ShardAction& a = out[it->second];
          a.to_ms = rec.time;
          a.ok = rec.result == "ok";
          EXPECT_EQ(rec.fencing_token, a.token) << a.key << " by " << a.replica;
        }
      }
    }
    return out;
  }

  // Each machine's actions: per replica one token, tokens growing with
  // time, and no action of one replica overlapping another's.
  static void ExpectExclusive(const std::vector<ShardAction>& actions) {
    std::map<std::string, std::vector<const ShardAction*>> by_machine;
    for (const ShardAction& a : actions) by_machine[a.machine].push_back(&a);
    for (auto& [machine, list] : by_machine) {
      std::sort(list.begin(), list.end(),
                [](const ShardAction* x, const ShardAction* y) { return x->from_ms < y->from_ms; });
      for (size_t i = 1; i < list.size(); ++i) {
        const ShardAction& prev = *list[i - 1];
        const ShardAction& cur = *list[i];
        EXPECT_GE(cur.token, prev.token) << machine << ": " << cur.key << " by " << cur.replica
                                         << " after " << prev.key << " by " << prev.replica;
        if (cur.replica != prev.replica) {
          EXPECT_GT(cur.token, prev.token) << machine << ": a new owner, the same token";
          for (size_t j = 0; j < i; ++j) {
            if (list[j]->replica == cur.replica) continue;
            EXPECT_LE(list[j]->to_ms, cur.from_ms)
                << machine << ": " << cur.replica << " acted (" << cur.key << " at " << cur.from_ms
                << ") while " << list[j]->replica << " still did (" << list[j]->key << " until "
                << list[j]->to_ms << ")";
          }
        }
      }
    }
  }

  // The first ok start of every instance: key "svc@machine" -> its action.
  static std::map<std::string, const ShardAction*> FirstStarts(
      const std::vector<ShardAction>& actions) {
    std::map<std::string, const ShardAction*> started;
    for (const ShardAction& a : actions) {
      if (a.action != "start" || !a.ok) continue;
      if (!started.count(a.key) || a.to_ms < started[a.key]->to_ms) started[a.key] = &a;
    }
    return started;
  }

 private:
  std::string dir_, base_config_, token_;
  int redis_port_;
  std::vector<std::string> machines_;
  int lease_seconds_, renew_seconds_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

}  // namespace clusterctl::testing
