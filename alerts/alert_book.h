// AlertBook: the lifecycle of clusterd's alerts, as a pure value.
//
// An alert is one episode of a condition, named by its dedup key
// (kind/machine/service, empty parts kept: "crash_loop/m1/api",
// "machine_unreachable/m1/", "source_fetch//"):
//
//   - Raise(key, severity, message, now) opens a firing episode with a new
//     numeric id, or updates the firing one: last_seen moves on, a new
//     message (with its severity) counts one more occurrence (`count`).
//     Repeats never duplicate an alert.
//   - Resolve(key, now) ends the firing episode: state `resolved`. The next
//     Raise of the key opens a new episode (a new id).
//   - Tick(now) escalates firing episodes by the time they have been open
//     (level 1 after the first of escalate_after_ms, level 2 after the
//     second, ...) and ends acknowledgements that expired.
//   - Ack(id or key, by, until, note, now) acknowledges a firing episode
//     until a time: its notifications are held until then (the events
//     still happen; notify/ drops the held ones). An episode whose ack
//     expires while it still fires emits kAckExpired.
//
// Each change a receiver should hear of (firing, escalated, resolved,
// ack_expired) is queued as an AlertEvent; TakeEvents() hands them over in
// order. Resolved episodes are kept as history, the newest keep_resolved.
//
// Messages are stored as given: the caller redacts credentials first. Pure:
// time is an argument. Not thread-safe (the daemon guards it with its mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace clusterctl::alerts {

// The kinds clusterd raises (docs/monitoring.md lists what each means).
namespace kind {
inline constexpr char kMachineUnreachable[] = "machine_unreachable";
inline constexpr char kHostKeyMismatch[] = "host_key_mismatch";
inline constexpr char kCrashLoop[] = "crash_loop";
inline constexpr char kReadinessTimeout[] = "readiness_timeout";
inline constexpr char kCriticalServiceDown[] = "critical_service_down";
inline constexpr char kRevisionRejected[] = "revision_rejected";
inline constexpr char kMassStopRefused[] = "mass_stop_refused";
inline constexpr char kSourceFetch[] = "source_fetch";
inline constexpr char kProbeSlow[] = "probe_slow";
inline constexpr char kMachineDisk[] = "machine_disk";
inline constexpr char kMachineMemory[] = "machine_memory";
inline constexpr char kQuarantine[] = "quarantine";
inline constexpr char kPruneBlocked[] = "prune_blocked";
inline constexpr char kStoreWrite[] = "store_write";
inline constexpr char kSuspended[] = "suspended";
inline constexpr char kDriftObserved[] = "drift_observed";
inline constexpr char kRolloutFailed[] = "rollout_failed";
}  // namespace kind

// Every kind above, in the order of docs/monitoring.md.
const std::vector<std::string>& Kinds();
// Severities, least to most severe.
const std::vector<std::string>& Severities();

std::string Key(const std::string& kind, const std::string& machine = "",
                const std::string& service = "");

struct Ack {
  std::string by, note;
  int64_t at_ms = 0, until_ms = 0;
};

struct Alert {
  int64_t id = 0;
  std::string key, kind, machine, service, severity, message;
  bool firing = true;  // Else resolved.
  int64_t first_seen_ms = 0, last_seen_ms = 0, resolved_ms = 0;
  int count = 1;  // Occurrences: the first and each new message after it.
  int level = 0;  // Escalation level reached (0: not escalated).
  std::optional<Ack> ack;

  const char* State() const { return firing ? "firing" : "resolved"; }
  // Acknowledged and the ack runs at `now_ms`.
  bool Acked(int64_t now_ms) const { return ack && ack->until_ms > now_ms; }
  bool operator==(const Alert& o) const;
};

enum class EventType { kFiring, kEscalated, kResolved, kAckExpired };
const char* EventName(EventType t);

struct AlertEvent {
  EventType type = EventType::kFiring;
  Alert alert;  // As it was when the event happened.
  int64_t at_ms = 0;
  // Stable across retries and restarts, one per event of an episode:
  // "<id>-firing", "<id>-escalated-<level>", "<id>-resolved",
  // "<id>-ack-expired-<until_ms>".
  std::string Id() const;
};

// The public JSON form, for the API and the notifications: times in RFC
// 3339, the id as a string, absent machine/service as null, acknowledged
// {by, note, at, until} or null.
nlohmann::json PublicJson(const Alert& a);
// The stored form (times in ms since the epoch).
nlohmann::json AlertToJson(const Alert& a);
std::optional<Alert> AlertFromJson(const nlohmann::json& j);

class AlertBook {
 public:
  static constexpr int64_t kDefaultEscalateMs[] = {5 * 60 * 1000, 15 * 60 * 1000};
  explicit AlertBook(std::vector<int64_t> escalate_after_ms = {kDefaultEscalateMs[0],
                                                               kDefaultEscalateMs[1]},
                     size_t keep_resolved = 500);
  void SetEscalation(std::vector<int64_t> escalate_after_ms);
  void SetKeepResolved(size_t keep) { keep_resolved_ = keep; }

  enum class Change { kNone, kOpened, kUpdated };
  Change Raise(const std::string& kind, const std::string& machine, const std::string& service,
               const std::string& severity, const std::string& message, int64_t now_ms);
  Change Raise(const std::string& kind, const std::string& severity, const std::string& message,
               int64_t now_ms) {
    return Raise(kind, "", "", severity, message, now_ms);
  }
  // Whether it was firing.
  bool Resolve(const std::string& key, int64_t now_ms);
  // Resolves every firing alert `pred` selects; returns how many.
  size_t ResolveIf(const std::function<bool(const Alert&)>& pred, int64_t now_ms);
  // Escalations and expired acks at `now_ms`.
  void Tick(int64_t now_ms);
  // `ref` is an id ("42") or a dedup key; only a firing episode is acked.
  Result<Alert> Acknowledge(const std::string& ref, const std::string& by, int64_t until_ms,
                            const std::string& note, int64_t now_ms);

  const Alert* FindFiring(const std::string& key) const;
  bool IsFiring(const std::string& key) const { return FindFiring(key) != nullptr; }
  // Firing alerts ordered by key.
  std::vector<Alert> Firing() const;
  // Firing and kept resolved ones, newest first; `since_ms`: only those
  // seen (last_seen or resolved) at or after it.
  std::vector<Alert> All(int64_t since_ms = 0) const;
  // The firing alerts' messages, ordered by key (the status document's `alerts`).
  std::vector<std::string> Messages() const;

  std::vector<AlertEvent> TakeEvents();
  // Bumped by every change (including last_seen): persist when it moved.
  uint64_t version() const { return version_; }

  nlohmann::json ToJson() const;
  // Malformed input gives an empty book (and `*ok` false).
  void Restore(const nlohmann::json& j, bool* ok = nullptr);

 private:
  Alert* Firing(const std::string& key);
  void Emit(EventType t, const Alert& a, int64_t now_ms) { events_.push_back({t, a, now_ms}); }

  std::vector<int64_t> escalate_after_ms_;
  size_t keep_resolved_;
  int64_t next_id_ = 1;
  std::map<std::string, Alert> firing_;  // By key.
  std::vector<Alert> resolved_;          // Oldest first, bounded.
  std::vector<AlertEvent> events_;
  uint64_t version_ = 0;
};

}  // namespace clusterctl::alerts
