// The drift watch's shell functions, the two calls it sends, and the parser
// of what they print. Pure: strings in, strings out; no I/O.
//
// The watch keeps one persistent shell per machine (Purpose::kWatch) and
// sends it a tick every ~200 ms. A tick is a builtin-only loop over the
// watched process-driver instances: it forks nothing (no `$(...)`, no pipes,
// no external programs, no `sleep`), so a machine pays a few reads of /proc
// per instance per tick. The only fork is the rare log rotation (`tail`).
//
//   Command set(WatchSetScript(m, services) + "\n" + WatchTickScript(),
//               WatchLibrary(), /*trusted=*/true, Purpose::kWatch);
//   Command tick(WatchTickScript(), WatchLibrary(), true, Purpose::kWatch);
//   // send `set` once, then `tick` every interval; when a tick prints
//   // "W\tunset" the shell is new: send `set` again.
//
// Shell state (variables of the persistent shell; `_w_` prefix):
//   _w_n        how many instances are watched; unset in a new shell
//   _w_<i>_s    service name, _w_<i>_d its state dir (<stateDir>/<service>),
//   _w_<i>_c    its log cap in bytes (0: none), _w_<i>_k "state pid" as
//               printed last (the set clears it, so a set + tick prints
//               every instance once)
//
// Per instance the tick applies the observation's rules (driver_scripts.h):
// the pid in <dir>/pid is the service when /proc/<pid>/stat exists, its
// state is not a zombie (Z or X) and its start time (field 22) equals
// <dir>/starttime; a live pid with another start time is a recycled pid, so
// the service exited. Not running: `stopped` when <dir>/stopped exists or no
// pid was ever written ("never-started"), else `failed`.
//
// Output, one line per item, tab-separated:
//   E <service> <running|stopped|failed> <pid> <detail>
//        the instance's state or pid differs from the previous tick of this
//        shell. pid: the pid file's content (0 when none), also when the
//        process is gone. detail: "", "never-started", "stopped", "exited",
//        "exited; pid N is now another process".
//   L <service> <bytes>
//        the log of a running instance was over its cap (<bytes> written to
//        it) and was rotated: its last <cap> bytes went to <dir>/log.1 and
//        <dir>/log was truncated in place.
//   W unset
//        the shell holds no watch set (a new shell): send the set again.
//
// Log cap: the service writes `>> <dir>/log` (O_APPEND) on its stdout and
// stderr, so the size of the log is the `pos:` of /proc/<pid>/fdinfo/1. Over
// the cap, `tail -c <cap> log > log.1` then truncation of `log` in place: the
// service goes on writing at offset 0 (O_APPEND), no sparse file, and at most
// 2 x cap stay on disk after a tick (plus what the service writes in one
// interval). Bytes written between the copy and the truncation are lost.
// Not capped: a log whose fd 1 is not O_APPEND, or whose fdinfo cannot be
// read (a service run as another user with `process.user`: /proc/<pid>/fdinfo
// is readable only by its owner and root).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

// The watch's shell functions (POSIX sh, builtins only), the `library` of
// every watch Command.
const std::string& WatchLibrary();

// A trusted call that makes the process-driver instances of `services` on
// `machine` the watch set of the shell (systemd services are skipped), and
// forgets what earlier ticks printed.
std::string WatchSetScript(const desired_state::Machine& machine,
                           const std::vector<const desired_state::Service*>& services);

// A trusted call: one tick over the watch set (see the output above).
std::string WatchTickScript();

// One "E" line.
struct WatchChange {
  std::string service;
  ObservedState state = ObservedState::kUnknown;
  int64_t pid = 0;
  std::string detail;
};

// One "L" line.
struct WatchLogRotation {
  std::string service;
  int64_t bytes = 0;
};

// What one tick printed.
struct WatchReport {
  bool unset = false;  // "W unset": the shell had no watch set
  std::vector<WatchChange> changes;
  std::vector<WatchLogRotation> rotations;
};

// Parses the output of a tick (or of a set + tick). Lines it does not know
// are skipped.
WatchReport ParseWatchEvents(const std::string& output);

}  // namespace clusterctl::reconcilers
