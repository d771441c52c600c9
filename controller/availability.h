// AvailabilityBook: per-service availability and recovery figures, from what
// each reconcile pass saw of the instances that should run. Pure: no I/O, no
// clock; every time is passed in (wall milliseconds). Not thread-safe (the
// daemon guards it with its mutex).
//
// Feeding it. Once per pass, for each instance ("service@machine") that the
// desired state says should run: Observe(up) when it was seen running and
// ready, Observe(down) when it was seen otherwise, Unknown() when its machine
// could not be observed. EraseGone() forgets instances that left the desired
// state; Prune() forgets what is older than the keep window.
//
// Definitions.
//   covered time   The time between two consecutive observations of an
//                  instance, when they are at most `max_gap_ms` apart. Each
//                  observation's state holds until the next one. Time after
//                  the last observation, across a longer gap (clusterd was not
//                  running) or after Unknown() (no verdict) is not covered.
//   down episode   Begins at the first down observation after an up one (or
//                  the first observation, when that is down) and ends at the
//                  next up observation. It keeps its times across gaps and
//                  Unknown(): an instance down before clusterd stopped and up
//                  after it came back had one episode.
//   downtime       Covered time inside down episodes, from detection on.
//   availability   1 - downtime / covered time, over the window; -1 when
//                  nothing in the window was covered. For a service: summed
//                  over its instances (an instance of two down half the time
//                  gives 0.75).
//   time to detect Detection minus the last time the instance was seen up: an
//                  upper bound of how long it was down unnoticed (it failed at
//                  some moment between the two observations). Episodes of an
//                  instance never seen up have none.
//   time to recover  Recovery minus detection: the downtime of the episode
//                  seen by clusterd, including uncovered time inside it.
//   failures, restarts  Episodes that began, and that ended, in the window.
//   MTTD, MTTR     Means over the episodes that began (MTTD) or ended (MTTR)
//                  in the window; the most recent recovery gives last_ttr_ms.
//
// Windows are [now - window_ms, now].
//
// Size bound. Consecutive observations in the same state add nothing;
// entries are made by state changes (an episode) and by breaks in coverage
// (a span). Each instance holds at most kMaxEpisodes episodes and kMaxSpans
// spans: past those, the two adjacent closed entries whose union is shortest
// fold into one run that keeps their totals (downtime, counts, sums of time
// to detect and recover). Figures stay exact for a window that holds a run
// whole; a window edge that cuts a run counts it pro rata of its extent (and
// an episode inside a folded run of spans, pro rata of the run). So
// the stored JSON of one instance (ToJson) stays below
// kMaxInstanceJsonBytes plus the length of its instance and service names,
// however often it flaps, and observing every second for 7 days is cheap.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace clusterctl::controller {

struct AvailabilityFigures {
  double availability = -1;  // fraction of covered time up within the window; -1: none covered
  int64_t observed_ms = 0;   // covered time within the window
  int64_t down_ms = 0;       // downtime within the window
  int restarts = 0;          // down episodes that ended (recovered) within the window
  int failures = 0;          // down episodes that began (were detected) within the window
  int64_t mttd_ms = -1;      // mean time to detect (upper bound), -1 if none
  int64_t mttr_ms = -1;      // mean time to recover over recovered episodes, -1 if none
  int64_t last_ttr_ms = -1;  // the most recent recovered episode's time to recover, -1 if none
  bool down_now = false;     // an instance's latest verdict is down
};

class AvailabilityBook {
 public:
  static constexpr int64_t kDefaultMaxGapMs = 10 * 60 * 1000;            // 10 min
  static constexpr int64_t kDefaultKeepMs = (7 * 24 + 1) * 3600 * 1000;  // 7 d + 1 h
  static constexpr size_t kMaxEpisodes = 128;                            // per instance
  static constexpr size_t kMaxSpans = 64;                                // per instance
  static constexpr size_t kMaxInstanceJsonBytes = 32 * 1024;

  // `max_gap_ms`: the longest time between two observations that still
  // counts as covered (default 10 min). `keep_ms`: how far back Prune keeps
  // (default 7 days + 1 hour).
  explicit AvailabilityBook(int64_t max_gap_ms = kDefaultMaxGapMs, int64_t keep_ms = kDefaultKeepMs)
      : max_gap_ms_(max_gap_ms), keep_ms_(keep_ms) {}

  // One observation of `instance` of `service`: up (running and ready) or
  // down. An observation older than the instance's latest is ignored.
  void Observe(const std::string& instance, const std::string& service, bool up, int64_t now_ms);
  // The instance could not be observed (machine unreachable): covered time
  // ends at its last observation; an open episode stays open.
  void Unknown(const std::string& instance, int64_t now_ms);
  // Forgets instances not in `live` (they left the desired state).
  void EraseGone(const std::set<std::string>& live);
  // Forgets spans and closed episodes that ended before now - keep_ms, and
  // instances left with neither.
  void Prune(int64_t now_ms);

  // Over all instances of `service` / one instance; all -1 and 0 when unknown.
  // Instances are keyed "service@machine" (the reconcilers' Key()): Service
  // reads the keys that start with "service@", not every track.
  AvailabilityFigures Service(const std::string& service, int64_t window_ms, int64_t now_ms) const;
  AvailabilityFigures Instance(const std::string& instance, int64_t window_ms,
                               int64_t now_ms) const;
  // The services with an instance in the book, sorted.
  std::vector<std::string> Services() const;

  // For the store. A malformed document (or one over the bounds) gives an
  // empty book and `*ok` false; the options are not stored.
  nlohmann::json ToJson() const;
  static AvailabilityBook FromJson(const nlohmann::json& j, bool* ok = nullptr,
                                   int64_t max_gap_ms = kDefaultMaxGapMs,
                                   int64_t keep_ms = kDefaultKeepMs);

  // Equal books store the same JSON: the caller persists only on change.
  bool operator==(const AvailabilityBook&) const = default;

  // Stored entries of one instance (spans + episodes), 0 when unknown.
  size_t EntriesForTest(const std::string& instance) const;
  // Whether `instance` has any history (the daemon starts counting an
  // instance at its first "up": converging is not an outage).
  bool Tracks(const std::string& instance) const { return tracks_.count(instance) > 0; }

 private:
  // Covered time: [begin_ms, end_ms]; a folded run (covered_ms >= 0) covers
  // only covered_ms of it.
  struct Span {
    int64_t begin_ms = 0, end_ms = 0;
    int64_t covered_ms = -1;
    bool operator==(const Span&) const = default;
  };
  // A down episode, or a folded run of `count` closed ones (first detection
  // to last recovery) with their totals.
  struct Episode {
    int64_t last_up_ms = -1;    // last seen up before detection; -1 never
    int64_t began_ms = 0;       // detected
    int64_t recovered_ms = -1;  // -1 while open
    int count = 1;              // the rest only for count > 1
    int ttd_count = 0;
    int64_t down_ms = 0, ttd_sum_ms = 0, ttr_sum_ms = 0, last_ttr_ms = 0;
    bool operator==(const Episode&) const = default;
  };

  struct Track {
    std::string service;
    std::vector<Span> spans;  // ordered; the last one grows while `open`
    std::vector<Episode> episodes;
    bool open = false;        // the last span ends at the latest observation
    int64_t last_ms = -1;     // latest observation
    int64_t last_up_ms = -1;  // latest up observation
    bool operator==(const Track&) const = default;
  };
  struct Sums;

  void CloseSpan(Track* t) const;
  static int64_t Covered(const Track& t, int64_t from_ms, int64_t to_ms);
  static void Fold(Track* t);
  void Add(const Track& t, int64_t from_ms, int64_t now_ms, Sums* sums) const;
  static AvailabilityFigures Finish(const Sums& s);

  int64_t max_gap_ms_, keep_ms_;
  std::map<std::string, Track> tracks_;  // by instance
};

}  // namespace clusterctl::controller
