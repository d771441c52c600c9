#include "reconcilers/watch_scripts.h"

#include <sstream>

#include "reconcilers/driver_scripts.h"
#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;

// Builtins only. Never `:` or `exec` with a redirection (a failing
// redirection of a special builtin ends the shell), never `exit`, never a
// `$(...)`. Every read names 2>/dev/null before its input, so a missing file
// is silent. `set -f` around the one unquoted expansion.
//
//   _wadd NAME DIR CAP   appends an instance to the watch set
//   _wps PID             _ws = state letter, _wt = start time of PID; fails
//                        when there is no such process
//   _w1 I NAME DIR CAP   one instance: prints "E ..." on a change, caps its log
//   _wcap NAME DIR CAP PID  rotates the log of a running instance over CAP
//   _wtick               every instance of the set, or "W unset"
constexpr const char* kLibrary = R"sh(_wadd() {
  _w_n=$((${_w_n:-0} + 1))
  eval "_w_${_w_n}_s=\$1 _w_${_w_n}_d=\$2 _w_${_w_n}_c=\$3 _w_${_w_n}_k="
}
_wps() {
  _ws=; _wt=; _wl=
  read -r _wl 2>/dev/null < "/proc/$1/stat"
  [ -n "$_wl" ] || return 1
  _wl=${_wl##*) }
  set -f
  set -- $_wl
  set +f
  _ws=$1; _wt=${20}
}
_wcap() {
  _wpos=; _wfl=
  while read -r _wa _wb; do
    case $_wa in pos:) _wpos=$_wb;; flags:) _wfl=$_wb;; esac
  done 2>/dev/null < "/proc/$4/fdinfo/1"
  case $_wpos in ''|*[!0-9]*) return 0;; esac
  case $_wfl in ''|*[!0-7]*) return 0;; esac
  [ $((0$_wfl & 1024)) -ne 0 ] || return 0
  [ "$_wpos" -gt "$3" ] && [ -s "$2/log" ] || return 0
  tail -c "$3" "$2/log" 2>/dev/null > "$2/log.1"
  printf '' 2>/dev/null > "$2/log"
  printf 'L\t%s\t%s\n' "$1" "$_wpos"
}
# _wstopped DIR: stopped on purpose. A start leaves "0" in DIR/stopped (it
# cannot remove a file without running rm); anything else there means stopped.
_wstopped() {
  [ -e "$1/stopped" ] || return 1
  _wsv=; read -r _wsv 2>/dev/null < "$1/stopped"
  [ "$_wsv" != 0 ]
}
_w1() {
  _wp=; _wt0=; _ws=; _wst=stopped; _wdet=never-started
  read -r _wp 2>/dev/null < "$3/pid"
  case $_wp in *[!0-9]*) _wp=;; esac
  if [ -n "$_wp" ]; then
    read -r _wt0 2>/dev/null < "$3/starttime"
    if _wps "$_wp" && [ "$_ws" != Z ] && [ "$_ws" != X ] && [ "$_wt" = "$_wt0" ]; then
      _wst=running; _wdet=
    elif _wstopped "$3"; then
      _wdet=stopped
    else
      _wst=failed; _wdet=exited
      case $_ws in ''|Z|X) ;; *) _wdet="exited; pid $_wp is now another process";; esac
    fi
  fi
  eval "_wk=\$_w_$1_k"
  if [ "$_wk" != "$_wst ${_wp:-0}" ]; then
    eval "_w_$1_k=\"\$_wst \${_wp:-0}\""
    printf 'E\t%s\t%s\t%s\t%s\n' "$2" "$_wst" "${_wp:-0}" "$_wdet"
  fi
  if [ "$_wst" = running ] && [ "$4" -gt 0 ]; then _wcap "$2" "$3" "$4" "$_wp"; fi
  return 0
}
_wtick() {
  if [ -z "${_w_n+x}" ]; then printf 'W\tunset\n'; return 0; fi
  _wi=1
  while [ "$_wi" -le "$_w_n" ]; do
    eval "_w1 $_wi \"\$_w_${_wi}_s\" \"\$_w_${_wi}_d\" \"\$_w_${_wi}_c\""
    _wi=$((_wi + 1))
  done
  return 0
}
)sh";

}  // namespace

const std::string& WatchLibrary() {
  static const std::string library(kLibrary);
  return library;
}

std::string WatchSetScript(const Machine& machine, const std::vector<const Service*>& services) {
  std::ostringstream o;
  o << "_w_n=0\n";
  for (const Service* s : services) {
    if (s->driver != DriverKind::kProcess) continue;
    o << "_wadd " << ShellQuote(s->name) << " " << ShellQuote(ServiceStateDir(machine, s->name))
      << " " << s->process.log_max_bytes << "\n";
  }
  return o.str();
}

std::string WatchTickScript() { return "_wtick\n"; }

WatchReport ParseWatchEvents(const std::string& output) {
  WatchReport report;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = SplitTabs(line);
    if (f[0] == "E" && f.size() >= 5) {
      WatchChange c;
      c.service = f[1];
      c.state = ParseObservedState(f[2]);
      c.pid = ToInt(f[3]);
      c.detail = f[4];
      report.changes.push_back(std::move(c));
    } else if (f[0] == "L" && f.size() >= 3) {
      report.rotations.push_back({f[1], ToInt(f[2])});
    } else if (f[0] == "W" && f.size() >= 2 && f[1] == "unset") {
      report.unset = true;
    }
  }
  return report;
}

}  // namespace clusterctl::reconcilers
