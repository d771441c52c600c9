#include "reconcilers/driver_scripts.h"

#include <algorithm>
#include <sstream>

#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;

// The shell functions of every driver call (see driver_scripts.h). POSIX sh
// (dash): no `local`, arrays or `read -d`; every function returns, never
// exits; every variable starts with _cc_; only regular builtins carry
// redirections (a failed redirection on a special builtin such as `:` ends
// a non-interactive shell); every number is checked before arithmetic (an
// arithmetic error ends the shell too).
constexpr const char* kLibrary =
    R"sh(# _cc_read FILE: _cc_v = the first line of FILE ("" when missing or unreadable;
# `read` fails on a last line without a newline but still sets it).
_cc_read() {
  _cc_v=
  read -r _cc_v 2>/dev/null <"$1"
  [ -n "$_cc_v" ]
}
# _cc_pid_ok WORD: WORD is a pid we may signal (a number > 1, no leading 0).
_cc_pid_ok() {
  case $1 in '' | 0* | 1 | *[!0-9]*) return 1 ;; esac
}
# _cc_cut_comm: cuts _cc_sl (a /proc/<pid>/stat line) after its last ") ",
# where the fields after comm begin. Comm may hold ") " itself, the fields
# after it never do. (${v#*x} in a loop: ${v##*x} costs O(n^2) in dash.)
_cc_cut_comm() {
  while :; do
    case $_cc_sl in
      *') '*) _cc_sl=${_cc_sl#*') '} ;;
      *) return 0 ;;
    esac
  done
}
# _cc_pstat PID: /proc/PID/stat -> _cc_state (field 3), _cc_pgrp (5), _cc_stime
# (22, start in clock ticks after boot). Fails when there is no such process.
_cc_pstat() {
  _cc_state= _cc_pgrp= _cc_stime=
  _cc_pid_ok "$1" || return 1
  _cc_sl=
  read -r _cc_sl 2>/dev/null <"/proc/$1/stat"
  case $_cc_sl in *') '*) ;; *) return 1 ;; esac
  _cc_cut_comm
  set -f
  set -- $_cc_sl
  set +f
  _cc_state=$1 _cc_pgrp=$3 _cc_stime=${20}
  case $_cc_stime in '' | *[!0-9]*) return 1 ;; esac
}
# _cc_leader DIR: _cc_pid from DIR/pid and _cc_how: running (alive, not a
# zombie, started at DIR/starttime), recycled (alive, but another process),
# or dead (gone, a zombie, or no pid).
_cc_leader() {
  _cc_read "$1/pid"
  _cc_pid=$_cc_v _cc_how=dead
  _cc_pstat "$_cc_pid" || return 0
  case $_cc_state in Z | X) return 0 ;; esac
  _cc_read "$1/starttime"
  if [ "$_cc_stime" = "$_cc_v" ]; then _cc_how=running; else _cc_how=recycled; fi
}
# _cc_stopped DIR: clusterctl stopped the service on purpose. DIR/stopped
# holds 0 while it runs the service (a start cannot delete a file without
# forking rm); anything else, also the empty file of older versions, is stopped.
_cc_stopped() {
  [ -e "$1/stopped" ] || return 1
  _cc_read "$1/stopped"
  [ "$_cc_v" != 0 ]
}
# _cc_group_live PGID SUDO: a live (not zombie) process is left in group PGID.
# A zombie answers kill -0, so a group that answers is scanned in /proc.
# With SUDO=1 the processes may be another user's: always scan.
_cc_group_live() {
  _cc_pid_ok "$1" || return 1
  if [ "$2" != 1 ]; then
    kill -s 0 -- "-$1" 2>/dev/null || return 1
  fi
  _cc_gid=$1
  for _cc_gf in /proc/[0-9]*/stat; do
    _cc_sl=
    read -r _cc_sl 2>/dev/null <"$_cc_gf"
    _cc_cut_comm
    case $_cc_sl in *" $_cc_gid "*) ;; *) continue ;; esac
    set -f
    set -- $_cc_sl
    set +f
    [ "${3-}" = "$_cc_gid" ] || continue
    case $1 in Z | X) ;; *) return 0 ;; esac
  done
  return 1
}
# _cc_now: _cc_u = /proc/uptime as printed, _cc_up its whole seconds, _cc_cs
# centiseconds: the clock of every wait and cache (immune to clock steps).
_cc_now() {
  _cc_u=
  read -r _cc_u _cc_x 2>/dev/null </proc/uptime
  _cc_up=${_cc_u%%.*} _cc_h=${_cc_u#*.}
  case $_cc_up in '' | 0?* | *[!0-9]*) _cc_up=0 ;; esac
  case $_cc_h in [0-9][0-9]) ;; *) _cc_h=00 ;; esac
  _cc_cs=$((_cc_up * 100 + 1$_cc_h - 100))
}
# _cc_signal SIG PGID SUDO: SIG to the process group, else to the process.
_cc_signal() {
  if [ "$3" = 1 ]; then
    sudo -n kill -s "$1" -- "-$2" 2>/dev/null || sudo -n kill -s "$1" "$2" 2>/dev/null
  else
    kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" "$2" 2>/dev/null
  fi
}
# _cc_wait_group PGID CS SIG SUDO: waits at most CS centiseconds until no live
# process is left in the group, sending SIG (if given) again before each
# check. Fails at the deadline.
_cc_wait_group() {
  _cc_now
  _cc_until=$((_cc_cs + $2))
  while _cc_group_live "$1" "$4"; do
    _cc_now
    [ "$_cc_cs" -lt "$_cc_until" ] || return 1
    [ -z "$3" ] || _cc_signal "$3" "$1" "$4"
    sleep 0.1
  done
  return 0
}
# _cc_end_group PGID TIMEOUT SUDO: SIGTERM to the group, SIGKILL after TIMEOUT
# seconds; waits for the whole group each time. _cc_outcome = terminated or
# killed; fails (30) when a process survives SIGKILL for 5 s.
_cc_end_group() {
  _cc_pid_ok "$1" || return 0
  _cc_outcome=terminated
  _cc_signal TERM "$1" "$3"
  _cc_wait_group "$1" $(($2 * 100)) '' "$3" && return 0
  _cc_outcome=killed
  _cc_signal KILL "$1" "$3"
  _cc_wait_group "$1" 500 KILL "$3" && return 0
  echo "process group $1 survived SIGKILL" >&2
  return 30
}
# _cc_abort PID SUDO: kills a service that was just started (its group, and
# the process itself in case it has not called setsid yet) and waits.
_cc_abort() {
  _cc_signal KILL "$1" "$2"
  if [ "$2" = 1 ]; then sudo -n kill -s KILL "$1" 2>/dev/null; else kill -s KILL "$1" 2>/dev/null; fi
  _cc_wait_group "$1" 500 KILL "$2" || echo "process group $1 survived SIGKILL" >&2
  # Before its setsid the process is not yet the leader of group $1.
  _cc_wait_dead "$1" 500 || echo "process $1 survived SIGKILL" >&2
}
# _cc_wait_dead PID CS: waits at most CS centiseconds until PID has exited
# (gone, or a zombie). Fails at the deadline.
_cc_wait_dead() {
  _cc_now
  _cc_until=$((_cc_cs + $2))
  while _cc_sl= && read -r _cc_sl 2>/dev/null <"/proc/$1/stat"; do
    _cc_cut_comm
    case $_cc_sl in Z* | X*) return 0 ;; esac
    _cc_now
    [ "$_cc_cs" -lt "$_cc_until" ] || return 1
    sleep 0.1
  done
  return 0
}
# _cc_mkdir DIR: creates DIR (mkdir: only when it is missing).
_cc_mkdir() {
  [ -d "$1" ] || mkdir -p -- "$1" 2>/dev/null || [ -d "$1" ] || {
    echo "cannot create $1" >&2
    return 1
  }
}
# _cc_write FILE VALUE: writes one line and reads it back; says which file
# could not be written (full disk, read-only, not a file).
_cc_write() {
  if printf '%s\n' "$2" 2>/dev/null >"$1"; then
    _cc_read "$1"
    [ "$_cc_v" = "$2" ] && return 0
  fi
  echo "cannot write $1" >&2
  return 1
}
# _cc_bump DIR: one more start in DIR/restarts.
_cc_bump() {
  _cc_read "$1/restarts"
  case $_cc_v in '' | 0?* | *[!0-9]*) _cc_v=0 ;; esac
  printf '%s\n' $((_cc_v + 1)) 2>/dev/null >"$1/restarts" || echo "cannot write $1/restarts" >&2
}
# _cc_start_proc DIR HASH WORKDIR TIMEOUT SUDO ARGV...: starts ARGV (setsid
# [sudo] env ... command) unless DIR/pid is running. Ends what is left of the
# previous process group first. The service is started from a transient
# subshell ($(...)), so it is re-parented to init and never lingers as a
# zombie child of a persistent shell. A pid or starttime that cannot be
# recorded kills the service again: a later start never makes a duplicate.
_cc_start_proc() {
  _cc_dir=$1 _cc_hash=$2 _cc_wdir=${3:-$1} _cc_to=$4 _cc_su=$5
  shift 5
  _cc_mkdir "$_cc_dir" || return 20
  _cc_leader "$_cc_dir"
  if [ "$_cc_how" = running ]; then
    echo "already-running $_cc_pid"
    return 0
  fi
  if [ "$_cc_how" = dead ] && _cc_group_live "$_cc_pid" "$_cc_su"; then
    _cc_end_group "$_cc_pid" "$_cc_to" "$_cc_su" || return
    echo "ended the rest of process group $_cc_pid ($_cc_outcome)"
  fi
  if [ ! -d "$_cc_wdir" ]; then
    echo "working directory $_cc_wdir does not exist" >&2
    return 21
  fi
  _cc_write "$_cc_dir/spec" "$_cc_hash" || return 22
  _cc_write "$_cc_dir/stopped" 0 || return 22
  if ! printf '' 2>/dev/null >>"$_cc_dir/log"; then
    echo "cannot write $_cc_dir/log" >&2
    return 22
  fi
  _cc_pid=$(cd "$_cc_wdir" && {
    "$@" >>"$_cc_dir/log" 2>&1 </dev/null &
    echo "$!"
  }) || {
    echo "cannot enter working directory $_cc_wdir" >&2
    return 21
  }
  if ! _cc_pid_ok "$_cc_pid"; then
    echo "the shell reported no pid for the service" >&2
    return 24
  fi
  if ! _cc_write "$_cc_dir/pid" "$_cc_pid"; then
    _cc_abort "$_cc_pid" "$_cc_su"
    return 23
  fi
  _cc_pstat "$_cc_pid"
  if ! _cc_write "$_cc_dir/starttime" "$_cc_stime"; then
    _cc_abort "$_cc_pid" "$_cc_su"
    return 23
  fi
  _cc_bump "$_cc_dir"
  echo "started $_cc_pid"
}
# _cc_stop_proc DIR TIMEOUT SUDO: marks DIR stopped and ends the process
# group: prints terminated, killed or not-running.
_cc_stop_proc() {
  _cc_mkdir "$1" && _cc_write "$1/stopped" 1
  _cc_leader "$1"
  if [ "$_cc_how" = running ] || { [ "$_cc_how" = dead ] && _cc_group_live "$_cc_pid" "$3"; }; then
    _cc_end_group "$_cc_pid" "$2" "$3" || return
    echo "$_cc_outcome"
  else
    echo not-running
  fi
}
# _cc_start_unit DIR HASH ARGV...: ARGV is [sudo -n] systemctl start UNIT.
_cc_start_unit() {
  _cc_dir=$1 _cc_hash=$2
  shift 2
  _cc_mkdir "$_cc_dir" || return 20
  _cc_write "$_cc_dir/stopped" 0 || return 22
  "$@" || return
  _cc_write "$_cc_dir/spec" "$_cc_hash" || return 22
  _cc_bump "$_cc_dir"
  echo started
}
# _cc_stop_unit DIR ARGV...: ARGV is [sudo -n] systemctl stop UNIT.
_cc_stop_unit() {
  _cc_dir=$1
  shift
  _cc_mkdir "$_cc_dir" && _cc_write "$_cc_dir/stopped" 1
  "$@" || return
  echo terminated
}
# _cc_obs_begin STATEDIR: facts cached in the shell. Clock ticks once per
# shell (getconf); disk (df), boot time and CPUs (/proc/stat) when older
# than 60 s or for another STATEDIR. Forks nothing in between.
_cc_obs_begin() {
  if [ -z "${_cc_hz-}" ]; then
    _cc_hz=$(getconf CLK_TCK 2>/dev/null)
    case $_cc_hz in '' | 0* | *[!0-9]*) _cc_hz=100 ;; esac
  fi
  _cc_now
  if [ "${_cc_slow_dir-}" != "$1" ] || [ "$_cc_up" -ge "${_cc_slow_next:-0}" ]; then
    _cc_slow_facts "$1"
  fi
}
# _cc_slow_facts STATEDIR: _cc_dtotal, _cc_davail (kB), _cc_btime, _cc_cpus.
_cc_slow_facts() {
  _cc_slow_dir=$1 _cc_slow_next=$((_cc_up + 60))
  _cc_dd=$1
  [ -d "$_cc_dd" ] || _cc_dd=/
  _cc_df=$(df -Pk -- "$_cc_dd" 2>/dev/null)
  _cc_df=${_cc_df#*"
"}
  set -f
  set -- $_cc_df
  set +f
  _cc_dtotal=${2:-0} _cc_davail=${4:-0}
  case $_cc_dtotal in *[!0-9]*) _cc_dtotal=0 ;; esac
  case $_cc_davail in *[!0-9]*) _cc_davail=0 ;; esac
  _cc_btime=0 _cc_cpus=0
  while read -r _cc_k _cc_x; do
    case $_cc_k in
      cpu[0-9]*) _cc_cpus=$((_cc_cpus + 1)) ;;
      btime) _cc_btime=$_cc_x && break ;;
    esac
  done 2>/dev/null </proc/stat
  case $_cc_btime in '' | 0?* | *[!0-9]*) _cc_btime=0 ;; esac
}
# _cc_obs_proc NAME DIR: the I line of a process-driver service. Builtins only.
_cc_obs_proc() {
  _cc_read "$2/spec"
  _cc_sp=$_cc_v
  _cc_read "$2/restarts"
  _cc_rs=${_cc_v:-0}
  _cc_leader "$2"
  if [ "$_cc_how" = running ]; then
    printf 'I\t%s\trunning\t%s\t%s\t%s\t%s\t\n' "$1" "$_cc_pid" \
      $((${_cc_btime:-0} + _cc_stime / ${_cc_hz:-100})) "$_cc_sp" "$_cc_rs"
  elif [ -z "$_cc_pid" ]; then
    printf 'I\t%s\tstopped\t0\t0\t%s\t%s\tnever-started\n' "$1" "$_cc_sp" "$_cc_rs"
  elif _cc_stopped "$2"; then
    printf 'I\t%s\tstopped\t0\t0\t%s\t%s\tstopped\n' "$1" "$_cc_sp" "$_cc_rs"
  elif [ "$_cc_how" = recycled ]; then
    printf 'I\t%s\tfailed\t0\t0\t%s\t%s\texited; pid %s is now another process\n' \
      "$1" "$_cc_sp" "$_cc_rs" "$_cc_pid"
  else
    printf 'I\t%s\tfailed\t0\t0\t%s\t%s\texited\n' "$1" "$_cc_sp" "$_cc_rs"
  fi
}
# _cc_obs_unit NAME DIR UNIT: the I line of a systemd unit (runs systemctl).
_cc_obs_unit() {
  _cc_read "$2/spec"
  _cc_sp=$_cc_v
  _cc_read "$2/restarts"
  _cc_rs=${_cc_v:-0}
  _cc_as= _cc_ss= _cc_mp=0 _cc_mono=0
  while IFS='=' read -r _cc_k _cc_x; do
    case $_cc_k in
      ActiveState) _cc_as=$_cc_x ;;
      SubState) _cc_ss=$_cc_x ;;
      MainPID) _cc_mp=$_cc_x ;;
      ExecMainStartTimestampMonotonic) _cc_mono=$_cc_x ;;
    esac
  done <<EOF
$(systemctl show -p ActiveState -p SubState -p MainPID -p ExecMainStartTimestampMonotonic "$3" 2>/dev/null)
EOF
  case $_cc_as in
    active | reloading | activating) _cc_s=running ;;
    failed) _cc_s=failed ;;
    '') _cc_s=unknown ;;
    *) _cc_s=stopped ;;
  esac
  case $_cc_mono in '' | 0?* | *[!0-9]*) _cc_mono=0 ;; esac
  _cc_t=0
  if [ "$_cc_s" = running ] && [ "$_cc_mono" -gt 0 ]; then
    _cc_t=$((${_cc_btime:-0} + _cc_mono / 1000000))
  fi
  printf 'I\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$_cc_s" "${_cc_mp:-0}" "$_cc_t" \
    "$_cc_sp" "$_cc_rs" "${_cc_ss:-systemctl failed}"
}
# _cc_obs_facts: the F line. Builtins only.
_cc_obs_facts() {
  _cc_now
  _cc_l1=0 _cc_l5=0 _cc_l15=0
  read -r _cc_l1 _cc_l5 _cc_l15 _cc_x 2>/dev/null </proc/loadavg
  _cc_mt=0 _cc_ma=0
  while read -r _cc_k _cc_n _cc_x; do
    case $_cc_k in
      MemTotal:) _cc_mt=$_cc_n ;;
      MemAvailable:) _cc_ma=$_cc_n && break ;;
    esac
  done 2>/dev/null </proc/meminfo
  printf 'F\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${_cc_u:-0}" "$_cc_l1" "$_cc_l5" \
    "$_cc_l15" "$_cc_mt" "$_cc_ma" "${_cc_dtotal:-0}" "${_cc_davail:-0}" "${_cc_cpus:-0}"
}
)sh";

// "sudo -n " when signals and systemctl need root for this service.
std::string SudoPrefix(const Service& s) {
  if (s.driver == DriverKind::kSystemd) return s.systemd.sudo ? "sudo -n " : "";
  return s.process.user.empty() ? "" : "sudo -n ";
}

std::string Systemctl(const Service& s, const std::string& verb) {
  return SudoPrefix(s) + "systemctl " + verb + " " + ShellQuote(s.systemd.unit);
}

// "TIMEOUT SUDO" arguments of the process-driver functions.
std::string StopArgs(const Service& s) {
  return std::to_string(std::max(0, s.stop_timeout_seconds)) + " " +
         (SudoPrefix(s).empty() ? "0" : "1");
}

}  // namespace

const std::string& ShellLibrary() {
  static const std::string* const library = new std::string(kLibrary);
  return *library;
}

std::string ServiceStateDir(const Machine& m, const std::string& service) {
  std::string dir = m.state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + "/" + service;
}

std::string StartScript(const Machine& m, const Service& s, const std::string& spec_hash) {
  const std::string dir = ShellQuote(ServiceStateDir(m, s.name));
  if (s.driver == DriverKind::kSystemd) {
    return "_cc_start_unit " + dir + " " + ShellQuote(spec_hash) + " " + Systemctl(s, "start") +
           "\n";
  }
  const auto& p = s.process;
  std::ostringstream o;
  o << "_cc_start_proc " << dir << " " << ShellQuote(spec_hash) << " " << ShellQuote(p.working_dir)
    << " " << StopArgs(s) << " setsid ";
  if (!p.user.empty()) o << "sudo -n -u " << ShellQuote(p.user) << " -- ";
  o << "env";
  for (const auto& [k, v] : p.env) o << " " << ShellQuote(k + "=" + v);
  o << " " << ShellJoin(p.command) << "\n";
  return o.str();
}

std::string StopScript(const Machine& m, const Service& s) {
  const std::string dir = ShellQuote(ServiceStateDir(m, s.name));
  if (s.driver == DriverKind::kSystemd) {
    return "_cc_stop_unit " + dir + " " + Systemctl(s, "stop") + "\n";
  }
  return "_cc_stop_proc " + dir + " " + StopArgs(s) + "\n";
}

Result<std::string> LogScript(const Machine& m, const Service& s, const LogRequest& request) {
  if (request.lines < -1) return Status::Invalid("the number of lines must be 0 or more");
  const bool since = request.since_ago_s.has_value() || request.since_epoch_s.has_value();
  if (s.driver == DriverKind::kSystemd) {
    std::vector<std::string> argv = {"journalctl", "--unit=" + s.systemd.unit, "--no-pager", "-o",
                                     "cat"};
    argv.push_back("--lines=" +
                   (request.lines < 0 ? std::string("all") : std::to_string(request.lines)));
    if (request.since_ago_s)
      argv.push_back("--since=-" + std::to_string(*request.since_ago_s) + "s");
    if (request.since_epoch_s) argv.push_back("--since=@" + std::to_string(*request.since_epoch_s));
    if (request.follow) argv.push_back("--follow");
    return "exec " + SudoPrefix(s) + ShellJoin(argv) + " </dev/null\n";
  }
  if (since) {
    return Status::Invalid("--since needs timestamps, and the log of a process-driver service (" +
                           ServiceStateDir(m, s.name) +
                           "/log) holds its output as written, without them; use --lines (or a "
                           "service that prints its own timestamps, or the systemd driver)");
  }
  const std::string dir = ServiceStateDir(m, s.name);
  const std::string log = ShellQuote(dir + "/log"), old = ShellQuote(dir + "/log.1");
  const std::string n = request.lines < 0 ? "+1" : std::to_string(request.lines);
  std::ostringstream o;
  o << "[ -f " << log << " ] || { echo \"no log at \"" << log
    << "\": the service has not been started here by clusterctl\" >&2; exit 3; }\n";
  if (request.lines > 0) {
    // Lines the log lacks come from the end of the rotated log.1.
    o << "_cc_n=$(wc -l <" << log << ") && [ \"$_cc_n\" -lt " << request.lines << " ] && [ -f "
      << old << " ] && tail -n $((" << request.lines << " - _cc_n)) -- " << old << "\n";
  }
  o << "exec tail -n " << n << (request.follow ? " -F" : "") << " -- " << log << " </dev/null\n";
  return o.str();
}

std::string RestartScript(const Machine& m, const Service& s, const std::string& spec_hash) {
  // A stop that fails (a process survived SIGKILL) starts nothing.
  std::string stop = StopScript(m, s);
  stop.pop_back();
  return stop + " || return\n" + StartScript(m, s, spec_hash);
}

std::string ObserveScript(const Machine& m, const std::vector<const Service*>& services) {
  std::ostringstream o;
  o << "_cc_obs_begin " << ShellQuote(m.state_dir) << "\n";
  for (const Service* s : services) {
    const std::string dir = ShellQuote(ServiceStateDir(m, s->name));
    if (s->driver == DriverKind::kSystemd) {
      o << "_cc_obs_unit " << ShellQuote(s->name) << " " << dir << " "
        << ShellQuote(s->systemd.unit) << "\n";
    } else {
      o << "_cc_obs_proc " << ShellQuote(s->name) << " " << dir << "\n";
    }
  }
  o << "_cc_obs_facts\n";
  return o.str();
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return out;
}

int64_t ToInt(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (...) {
    return 0;
  }
}

namespace {

double ToDouble(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stod(s);
  } catch (...) {
    return 0;
  }
}

}  // namespace

Result<MachineObservation> ParseObservation(const Machine& m,
                                            const std::vector<const Service*>& services,
                                            const std::string& output, int64_t now_ms) {
  MachineObservation obs;
  obs.facts.machine = m.name;
  obs.facts.observed_at_ms = now_ms;
  std::map<std::string, ObservedInstance> seen;
  bool facts = false;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    auto f = SplitTabs(line);
    if (f[0] == "I" && f.size() >= 8) {
      ObservedInstance i;
      i.service = f[1];
      i.machine = m.name;
      i.state = ParseObservedState(f[2]);
      i.pid = ToInt(f[3]);
      i.started_at = ToInt(f[4]);
      i.spec_hash = f[5];
      i.restarts = ToInt(f[6]);
      i.detail = f[7];
      i.observed_at_ms = now_ms;
      seen[i.service] = std::move(i);
    } else if (f[0] == "F" && f.size() >= 10) {
      facts = true;
      obs.facts.uptime_seconds = ToDouble(f[1]);
      obs.facts.load1 = ToDouble(f[2]);
      obs.facts.load5 = ToDouble(f[3]);
      obs.facts.load15 = ToDouble(f[4]);
      obs.facts.mem_total_kb = ToInt(f[5]);
      obs.facts.mem_available_kb = ToInt(f[6]);
      obs.facts.disk_total_kb = ToInt(f[7]);
      obs.facts.disk_available_kb = ToInt(f[8]);
      obs.facts.cpus = static_cast<int>(ToInt(f[9]));
    }
  }
  if (!facts) {
    return Status::Internal("observation of machine \"" + m.name +
                            "\" returned no facts line; is /bin/sh a POSIX shell there?");
  }
  obs.facts.reachable = true;
  for (const Service* s : services) {
    auto it = seen.find(s->name);
    if (it != seen.end()) {
      obs.instances.push_back(std::move(it->second));
    } else {
      ObservedInstance i;
      i.service = s->name;
      i.machine = m.name;
      i.observed_at_ms = now_ms;
      i.detail = "missing from the observation output";
      obs.instances.push_back(std::move(i));
    }
  }
  return obs;
}

}  // namespace clusterctl::reconcilers
