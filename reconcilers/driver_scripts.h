// The shell scripts the service drivers run on a machine, and the parser of
// what they print. Pure: strings in, strings out; no I/O.
//
// Agentless: a machine needs only sshd, a POSIX sh and the usual tools
// (setsid, sed, cut, awk, df; systemctl for the systemd driver). Every value
// from the desired state reaches the script through ShellQuote.
//
// Process driver layout on the machine, per service, in <stateDir>/<service>/:
//   pid        the process (group leader, started with setsid)
//   starttime  field 22 of /proc/<pid>/stat when it started: a pid recycled
//              by another process has another start time, so it is never
//              mistaken for the service
//   spec       the spec hash it was started with
//   restarts   how many times clusterctl started it
//   stopped    present when clusterctl stopped it on purpose
//   log        its stdout and stderr
// The systemd driver keeps `spec`, `restarts` and `stopped` there too.
//
// Observation output, one line per item, tab-separated:
//   I <service> <state> <pid> <start epoch s> <spec hash> <restarts> <detail>
//   F <uptime s> <load1> <load5> <load15> <mem total kB> <mem avail kB>
//     <disk total kB> <disk avail kB> <cpus>
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "desired-state/model.h"
#include "desired-state/status.h"
#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

// <stateDir>/<service>
std::string ServiceStateDir(const desired_state::Machine& m, const std::string& service);

// Starts the service unless it already runs (then prints "already-running PID").
// Prints "started PID" (process) or "started" (systemd).
std::string StartScript(const desired_state::Machine& m, const desired_state::Service& s,
                        const std::string& spec_hash);

// Stops the service: SIGTERM to the process group, SIGKILL after
// stopTimeoutSeconds. Prints "terminated", "killed" or "not-running".
std::string StopScript(const desired_state::Machine& m, const desired_state::Service& s);

// Stop then start, in one round trip.
std::string RestartScript(const desired_state::Machine& m, const desired_state::Service& s,
                          const std::string& spec_hash);

// Observes every given service and the machine's facts in one round trip.
std::string ObserveScript(const desired_state::Machine& m,
                          const std::vector<const desired_state::Service*>& services);

// ---- Persistent-shell form (issue 9). Every script above is a *call* of the
// functions in ShellLibrary(): run it as Command{script, ShellLibrary(),
// /*trusted=*/true, purpose}. The calls never `exit` (they `return`), never
// read stdin, and fork nothing but the service itself (and setsid/sudo when
// the service asks for them); an observation forks nothing at all.

// The shell functions every driver call uses (observe, start, stop, restart,
// watch), sent once per persistent shell.
const std::string& ShellLibrary();

// The drift watch's scripts and parser live in watch_scripts.h.

// Parses the output of ObserveScript. Services missing from the output come
// back kUnknown. `now_ms` stamps observed_at.
Result<MachineObservation> ParseObservation(
    const desired_state::Machine& m, const std::vector<const desired_state::Service*>& services,
    const std::string& output, int64_t now_ms);

}  // namespace clusterctl::reconcilers
