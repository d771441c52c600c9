#include "controller/journal.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "base/time_format.h"

namespace clusterctl::controller {

using nlohmann::json;

namespace {

constexpr char kMeta[] = "meta";
constexpr char kJournalKey[] = "daemon/journal";
constexpr size_t kBatch = 500;

std::string Origin(const std::string& leader, uint64_t seq) {
  return leader + "#" + std::to_string(seq);
}

}  // namespace

Result<JournalState> LoadJournalState(const store::Store& store) {
  auto raw = store.Get(kMeta, kJournalKey);
  if (!raw.ok()) return raw.status();
  JournalState s;
  if (!raw->has_value()) return s;
  json j = json::parse(**raw, nullptr, false);
  if (!j.is_object())
    return Status::Internal("the journal position (meta daemon/journal) is not JSON");
  s.last_id = j.value("last_id", std::string("0"));
  if (j.contains("open") && j["open"].is_object()) {
    for (const auto& [k, v] : j["open"].items()) {
      if (v.is_number_unsigned()) s.open[k] = v.get<uint64_t>();
    }
  }
  return s;
}

Status SaveJournalState(store::Store* store, const JournalState& state) {
  json open = json::object();
  for (const auto& [k, v] : state.open) open[k] = v;
  store::StoreBatch batch(store);
  batch.Put(kMeta, kJournalKey, json{{"last_id", state.last_id}, {"open", open}}.dump());
  return store->Commit(&batch, /*sync=*/true).Annotate("writing the journal position");
}

Result<size_t> FollowJournal(ha::LeaderElector* elector, audit::AuditLog* audit,
                             store::Store* store, JournalState* state,
                             const std::string& own_name) {
  size_t copied = 0;
  for (;;) {
    auto entries = elector->ReadJournal(state->last_id, kBatch);
    if (!entries.ok()) return entries.status().Annotate("reading the leader's journal");
    if (entries->empty()) return copied;
    for (const auto& e : *entries) {
      state->last_id = e.id;
      json j = json::parse(e.payload, nullptr, false);
      Result<audit::AuditRecord> src = audit::FromJson(j);
      if (!src.ok() || src->leader.empty() || src->leader == own_name) continue;
      audit::AuditRecord copy = *src;
      copy.seq = 0;
      copy.time = 0;
      copy.prev_hash.clear();
      copy.hash.clear();
      copy.intent_seq = 0;
      copy.detail = "[journal of " + src->leader + " #" + std::to_string(src->seq) + " " +
                    FormatRfc3339Ms(src->time) + "] " + src->detail;
      if (src->intent_seq != 0) {
        auto it = state->open.find(Origin(src->leader, src->intent_seq));
        if (it != state->open.end()) {
          copy.intent_seq = it->second;
          state->open.erase(it);
        }
      }
      // One record at a time: a result may name the copy just written.
      auto written = audit->AppendCopies({copy});
      if (!written.ok()) return written.status().Annotate("copying the leader's journal");
      if (copy.phase == audit::Name(audit::Phase::kIntent)) {
        state->open[Origin(src->leader, src->seq)] = written->front().seq;
      }
      ++copied;
    }
    CLUSTERCTL_RETURN_IF_ERROR(SaveJournalState(store, *state));
  }
}

Result<size_t> CloseOrphans(audit::AuditLog* audit, store::Store* store, JournalState* state,
                            const std::string& actor) {
  size_t closed = 0;
  for (auto it = state->open.begin(); it != state->open.end();) {
    auto intent = audit->Get(it->second);
    if (!intent.ok()) return intent.status();
    if (intent->has_value()) {
      const audit::AuditRecord& i = **intent;
      audit::AuditRecord r;
      r.actor = actor;
      r.trigger = audit::Name(audit::Trigger::kRecovery);
      r.revision = i.revision;
      r.action = i.action;
      r.machine = i.machine;
      r.service = i.service;
      r.phase = audit::Name(audit::Phase::kResult);
      r.result = audit::Name(audit::Outcome::kInterrupted);
      r.detail = "the leader that sent it (" + i.leader +
                 ") lost its lease before its result was journaled; outcome unknown, re-observed";
      r.intent_seq = i.seq;
      auto written = audit->Append(r);
      if (!written.ok()) return written.status().Annotate("closing " + it->first);
      ++closed;
    }
    it = state->open.erase(it);
  }
  CLUSTERCTL_RETURN_IF_ERROR(SaveJournalState(store, *state));
  return closed;
}

}  // namespace clusterctl::controller
