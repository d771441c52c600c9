// The shell scripts the service drivers run on a machine, and the parser of
// what they print. Pure: strings in, strings out; no I/O.
//
// Agentless: a machine needs only sshd, a POSIX sh (dash, bash, busybox ash)
// and the usual tools (setsid, sleep, df, getconf, mkdir; sudo when a service
// asks for it; systemctl for the systemd driver). Every value from the
// desired state reaches the script through ShellQuote.
//
// Persistent-shell form (issue 9). All the logic is in ShellLibrary(), a set
// of shell functions; StartScript, StopScript, RestartScript and
// ObserveScript return short *calls* of them, e.g.
//   _cc_obs_begin /var/lib/clusterctl
//   _cc_obs_proc web /var/lib/clusterctl/web
//   _cc_obs_facts
// Run one as Command{call, ShellLibrary(), /*trusted=*/true, purpose}: a
// persistent shell defines the library once and runs each call as the body
// of a function, without a fork; Command::Standalone() gives the same text
// for a one-shot `sh -c`. The functions end with `return` (never `exit` or
// `exec`), never read stdin, never `set -e`, and name every variable _cc_*.
// Correctness never depends on shell state surviving between calls: cached
// facts only save work.
//
// Processes created on the machine:
//   observation  none (process driver, after the shell's first observation).
//                Files are read with `read`, /proc/<pid>/stat is split with
//                parameter expansion and `set --`, /proc/meminfo, /proc/stat,
//                /proc/loadavg and /proc/uptime with builtin loops. Facts
//                with no builtin source are cached in shell variables: clock
//                ticks (getconf) once per shell; disk total/available (df),
//                boot time and CPU count (/proc/stat) refreshed when older
//                than 60 s by /proc/uptime, so a steady observation every few
//                seconds forks nothing (one df a minute). A one-shot `sh -c`
//                pays getconf and df every time. A systemd unit costs one
//                `systemctl show`.
//   start        the service (setsid, then sudo when process.user is set, then
//                env exec'ing the command), started from one transient
//                subshell (`$(... & echo $!)`) so the service is re-parented
//                to init and never lingers as a zombie child of the
//                long-lived shell; `mkdir` when the state directory is
//                missing; `sleep`s while it ends what is left of a previous
//                process group (see stop).
//   stop         `sleep 0.1` between checks of the process group (and
//                `sudo -n kill` for another user's service).
//
// Process driver layout on the machine, per service, in <stateDir>/<service>/:
//   pid        the process (group leader, started with setsid)
//   starttime  field 22 of /proc/<pid>/stat when it started: a pid recycled
//              by another process has another start time, so it is never
//              mistaken for the service
//   spec       the spec hash it was started with
//   restarts   how many times clusterctl started it
//   stopped    "0" while clusterctl keeps it started; any other content (an
//              empty file, as older versions left) when clusterctl stopped it
//              on purpose (a start rewrites the file: deleting it would fork
//              rm)
//   log        its stdout and stderr
// The systemd driver keeps `spec`, `restarts` and `stopped` there too.
//
// States (process driver): running = the pid is alive, not a zombie (Z, X),
// and has the recorded start time; otherwise stopped ("never-started" when no
// pid was recorded, "stopped" when stopped on purpose) or failed ("exited",
// or "exited; pid N is now another process" when the pid was recycled).
//
// Start: prints "already-running PID" when running. Otherwise it first ends
// what is left of the previous process group (a crashed leader's children:
// as a stop does, printed as "ended the rest of process group N (...)"),
// checks the working directory, writes spec and stopped, starts the service,
// and records pid and starttime. Every write is read back: a file that cannot
// be written (full disk, read-only, not a file) fails the start with "cannot
// write <file>" (exit 22 before the service is started, 23 after: then the
// service's process group has been killed again, so a later start never
// makes a duplicate). Exit 20: the state directory cannot be created; 21:
// the working directory does not exist.
//
// Stop: SIGTERM to the process group, then waits until no live process of
// the group is left (the whole group, not only the leader: a wrapper whose
// child ignores SIGTERM is not "terminated" while the child runs; zombies do
// not count, so the group is checked by scanning /proc/[0-9]*/stat for its
// pgrp); after stopTimeoutSeconds SIGKILL to the group and wait again (5 s;
// exit 30 "process group N survived SIGKILL"). Prints "terminated", "killed"
// or "not-running". A stop also ends a group whose leader died but whose
// children live on; it never signals a recycled pid.
//
// Observation output, one line per item, tab-separated:
//   I <service> <state> <pid> <start epoch s> <spec hash> <restarts> <detail>
//   F <uptime s> <load1> <load5> <load15> <mem total kB> <mem avail kB>
//     <disk total kB> <disk avail kB> <cpus>
// <cpus> counts the cpuN lines of /proc/stat (the online CPUs).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "desired-state/model.h"
#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

// <stateDir>/<service>
std::string ServiceStateDir(const desired_state::Machine& m, const std::string& service);

// Starts the service unless it already runs (then prints "already-running PID").
// Prints "started PID" (process) or "started" (systemd). A call of ShellLibrary().
std::string StartScript(const desired_state::Machine& m, const desired_state::Service& s,
                        const std::string& spec_hash);

// Stops the service: SIGTERM to the process group, SIGKILL after
// stopTimeoutSeconds, each time waiting for the whole group. Prints
// "terminated", "killed" or "not-running". A call of ShellLibrary().
std::string StopScript(const desired_state::Machine& m, const desired_state::Service& s);

// Stop then start, in one round trip; a failed stop starts nothing.
std::string RestartScript(const desired_state::Machine& m, const desired_state::Service& s,
                          const std::string& spec_hash);

// Observes every given service and the machine's facts in one round trip.
// A call of ShellLibrary(); forks nothing for process-driver services.
std::string ObserveScript(const desired_state::Machine& m,
                          const std::vector<const desired_state::Service*>& services);

// What `clusterctl logs` asks of a service's log on one machine.
struct LogRequest {
  // Lines of the log's end to print first; -1 = every line (systemd, with
  // `since`). Default: 100.
  int64_t lines = 100;
  // Keep printing lines as they are written, until the command is ended
  // (SIGTERM, which SshPool::Stream sends when cancelled). Default: false.
  bool follow = false;
  // Only entries written since then (systemd only: the process driver's log
  // has no timestamps). `since_ago_s` is relative to the machine's clock
  // ("journalctl --since=-600s"); `since_epoch_s` an absolute time
  // ("--since=@1764800000"). Default: unset = no bound.
  std::optional<int64_t> since_ago_s, since_epoch_s;
};

// The script that prints the service's log on machine `m`, for
// SshPool::Stream (a plain `sh` script; it execs its last command, so the
// SIGTERM of a cancelled stream reaches it).
//   process  <stateDir>/<service>/log with `tail -n N` (-F to follow: the
//            drift watch empties the file when it rotates it into log.1, and
//            tail then reads on from the start). When the log has fewer than N
//            lines, the rest come from the end of log.1. No log file: exit 3
//            with "no log at ...".
//   systemd  [sudo -n] journalctl --unit=UNIT --no-pager -o cat -n N
//            [--since=...] [-f]. `sudo -n` when the service has systemd.sudo.
// Every value (state directory, service, unit) is quoted with ShellQuote.
// Errors: kInvalid for `since` on a process-driver service, or lines < -1.
Result<std::string> LogScript(const desired_state::Machine& m, const desired_state::Service& s,
                              const LogRequest& request);

// The shell functions every call above uses, sent once per persistent shell.
// Functions other code may call (each documented in the library text):
//   _cc_leader DIR      sets _cc_pid and _cc_how (running, recycled, dead)
//   _cc_pstat PID       sets _cc_state, _cc_pgrp, _cc_stime from /proc
//   _cc_stopped DIR     stopped on purpose
//   _cc_group_live PGID SUDO   a live process is left in the group
const std::string& ShellLibrary();

// The drift watch's scripts and parser live in watch_scripts.h.

// For the parsers of script output: the tab-separated fields of a line, and
// a decimal integer (0 when empty or not a number).
std::vector<std::string> SplitTabs(const std::string& line);
int64_t ToInt(const std::string& s);

// Parses the output of ObserveScript. Services missing from the output come
// back kUnknown. `now_ms` stamps observed_at.
Result<MachineObservation> ParseObservation(
    const desired_state::Machine& m, const std::vector<const desired_state::Service*>& services,
    const std::string& output, int64_t now_ms);

}  // namespace clusterctl::reconcilers
