#include "reconcilers/driver_scripts.h"

#include <sstream>

#include "reconcilers/shell.h"

namespace clusterctl::reconcilers {
namespace {

using desired_state::DriverKind;
using desired_state::Machine;
using desired_state::Service;

// Shell functions every script starts with.
//   _st PID     prints "<state> <starttime>" of a process, fails if none
//   _alive DIR  succeeds when DIR/pid is alive, not a zombie, and has the
//               start time recorded in DIR/starttime (not a recycled pid)
constexpr const char* kPrelude =
    R"sh(_st() { [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1,20; }
_alive() {
  _p=$(cat "$1/pid" 2>/dev/null) || return 1
  [ -n "$_p" ] || return 1
  set -- "$1" $(_st "$_p")
  [ -n "$2" ] && [ "$2" != Z ] && [ "$3" = "$(cat "$1/starttime" 2>/dev/null)" ]
}
_bump() { _n=$(cat "$1/restarts" 2>/dev/null); echo $(( ${_n:-0} + 1 )) > "$1/restarts"; }
)sh";

std::string SudoPrefix(const Service& s) {
  if (s.driver == DriverKind::kSystemd) return s.systemd.sudo ? "sudo -n " : "";
  return s.process.user.empty() ? "" : "sudo -n ";
}

std::string Systemctl(const Service& s, const std::string& verb) {
  return SudoPrefix(s) + "systemctl " + verb + " " + ShellQuote(s.systemd.unit);
}

std::string StartBody(const Machine& m, const Service& s, const std::string& spec_hash) {
  std::ostringstream o;
  const std::string dir = ServiceStateDir(m, s.name);
  o << "d=" << ShellQuote(dir) << "\n"
    << "mkdir -p \"$d\" || { echo \"cannot create $d\" >&2; exit 20; }\n";
  if (s.driver == DriverKind::kSystemd) {
    o << "rm -f \"$d/stopped\"\n"
      << Systemctl(s, "start") << " || exit $?\n"
      << "printf '%s\\n' " << ShellQuote(spec_hash) << " > \"$d/spec\"\n"
      << "_bump \"$d\"\necho started\n";
    return o.str();
  }
  const auto& p = s.process;
  o << "if _alive \"$d\"; then echo \"already-running $(cat \"$d/pid\")\"; exit 0; fi\n";
  if (p.working_dir.empty()) {
    o << "cd \"$d\" || exit 21\n";
  } else {
    o << "cd " << ShellQuote(p.working_dir)
      << " || { echo \"working directory does not exist\" >&2; exit 21; }\n";
  }
  o << "rm -f \"$d/stopped\"\n"
    << "printf '%s\\n' " << ShellQuote(spec_hash) << " > \"$d/spec\"\n"
    << "setsid ";
  if (!p.user.empty()) o << "sudo -n -u " << ShellQuote(p.user) << " -- ";
  o << "env";
  for (const auto& [k, v] : p.env) o << " " << ShellQuote(k + "=" + v);
  o << " " << ShellJoin(p.command) << " >> \"$d/log\" 2>&1 < /dev/null &\n"
    << "_p=$!\n"
    << "echo \"$_p\" > \"$d/pid\"\n"
    << "_st \"$_p\" | cut -d' ' -f2 > \"$d/starttime\"\n"
    << "_bump \"$d\"\n"
    << "echo \"started $_p\"\n";
  return o.str();
}

std::string StopBody(const Machine& m, const Service& s) {
  std::ostringstream o;
  o << "d=" << ShellQuote(ServiceStateDir(m, s.name)) << "\n"
    << "mkdir -p \"$d\" && touch \"$d/stopped\"\n";
  if (s.driver == DriverKind::kSystemd) {
    o << Systemctl(s, "stop") << " || exit $?\necho terminated\n";
    return o.str();
  }
  const std::string sudo = SudoPrefix(s);
  const int ticks = s.stop_timeout_seconds * 10;
  o << "if ! _alive \"$d\"; then echo not-running; exit 0; fi\n"
    << "_p=$(cat \"$d/pid\")\n"
    << sudo << "kill -s TERM -- \"-$_p\" 2>/dev/null || " << sudo << "kill -s TERM \"$_p\"\n"
    << "_i=0\n"
    << "while _alive \"$d\" && [ $_i -lt " << ticks << " ]; do sleep 0.1; _i=$((_i + 1)); done\n"
    << "if ! _alive \"$d\"; then echo terminated; exit 0; fi\n"
    << sudo << "kill -s KILL -- \"-$_p\" 2>/dev/null || " << sudo << "kill -s KILL \"$_p\"\n"
    << "_i=0\n"
    << "while _alive \"$d\" && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done\n"
    << "if _alive \"$d\"; then echo \"pid $_p survived SIGKILL\" >&2; exit 30; fi\n"
    << "echo killed\n";
  return o.str();
}

}  // namespace

std::string ServiceStateDir(const Machine& m, const std::string& service) {
  std::string dir = m.state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + "/" + service;
}

std::string StartScript(const Machine& m, const Service& s, const std::string& spec_hash) {
  return std::string(kPrelude) + StartBody(m, s, spec_hash);
}

std::string StopScript(const Machine& m, const Service& s) {
  return std::string(kPrelude) + StopBody(m, s);
}

std::string RestartScript(const Machine& m, const Service& s, const std::string& spec_hash) {
  // The stop part prints its outcome; the start part runs in a subshell so
  // its `exit 0` on "already running" cannot end the script early.
  return std::string(kPrelude) + "_out=$( " + StopBody(m, s) + ") || exit $?\necho \"$_out\"\n" +
         "(\n" + StartBody(m, s, spec_hash) + ")\n";
}

std::string ObserveScript(const Machine& m, const std::vector<const Service*>& services) {
  std::ostringstream o;
  o << kPrelude
    << "_bt=$(awk '/^btime/{print $2}' /proc/stat)\n"
       "_hz=$(getconf CLK_TCK 2>/dev/null || echo 100)\n"
       "_proc() {\n"
       "  _n=$1; _d=$2\n"
       "  _sp=$(cat \"$_d/spec\" 2>/dev/null); _rs=$(cat \"$_d/restarts\" 2>/dev/null)\n"
       "  _pid=$(cat \"$_d/pid\" 2>/dev/null)\n"
       "  if _alive \"$_d\"; then\n"
       "    _t=$(cat \"$_d/starttime\")\n"
       "    printf 'I\\t%s\\trunning\\t%s\\t%s\\t%s\\t%s\\t\\n' \"$_n\" \"$_pid\" "
       "\"$((_bt + _t / _hz))\" \"$_sp\" \"${_rs:-0}\"\n"
       "  elif [ -f \"$_d/stopped\" ] || [ -z \"$_pid\" ]; then\n"
       "    printf 'I\\t%s\\tstopped\\t0\\t0\\t%s\\t%s\\t%s\\n' \"$_n\" \"$_sp\" \"${_rs:-0}\" "
       "\"$([ -z \"$_pid\" ] && echo never-started || echo stopped)\"\n"
       "  else\n"
       "    _why=exited; set -- $(_st \"$_pid\")\n"
       "    [ -n \"$1\" ] && [ \"$1\" != Z ] && _why=\"exited; pid $_pid is now another process\"\n"
       "    printf 'I\\t%s\\tfailed\\t0\\t0\\t%s\\t%s\\t%s\\n' \"$_n\" \"$_sp\" \"${_rs:-0}\" "
       "\"$_why\"\n"
       "  fi\n"
       "}\n"
       "_unit() {\n"
       "  _n=$1; _d=$2; _u=$3\n"
       "  _sp=$(cat \"$_d/spec\" 2>/dev/null); _rs=$(cat \"$_d/restarts\" 2>/dev/null)\n"
       "  _as=; _ss=; _mp=0; _mono=0\n"
       "  while IFS='=' read -r _k _v; do case $_k in ActiveState) _as=$_v;; SubState) "
       "_ss=$_v;; MainPID) _mp=$_v;; ExecMainStartTimestampMonotonic) _mono=$_v;; esac; done "
       "<<EOF\n"
       "$(systemctl show -p ActiveState -p SubState -p MainPID -p "
       "ExecMainStartTimestampMonotonic \"$_u\" 2>/dev/null)\n"
       "EOF\n"
       "  case $_as in active|reloading|activating) _s=running;; failed) _s=failed;; '') "
       "_s=unknown;; *) _s=stopped;; esac\n"
       "  _start=0; [ \"$_s\" = running ] && [ \"${_mono:-0}\" -gt 0 ] && _start=$((_bt + _mono / "
       "1000000))\n"
       "  printf 'I\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$_n\" \"$_s\" \"${_mp:-0}\" "
       "\"$_start\" \"$_sp\" \"${_rs:-0}\" \"${_ss:-systemctl failed}\"\n"
       "}\n";
  for (const Service* s : services) {
    const std::string dir = ShellQuote(ServiceStateDir(m, s->name));
    if (s->driver == DriverKind::kSystemd) {
      o << "_unit " << ShellQuote(s->name) << " " << dir << " " << ShellQuote(s->systemd.unit)
        << "\n";
    } else {
      o << "_proc " << ShellQuote(s->name) << " " << dir << "\n";
    }
  }
  o << "read _up _x < /proc/uptime\n"
       "read _l1 _l5 _l15 _x < /proc/loadavg\n"
       "_mt=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)\n"
       "_ma=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)\n"
       "_sd="
    << ShellQuote(m.state_dir)
    << "\n"
       "[ -d \"$_sd\" ] || _sd=/\n"
       "set -- $(df -Pk \"$_sd\" 2>/dev/null | awk 'NR==2{print $2, $4}')\n"
       "printf 'F\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$_up\" \"$_l1\" \"$_l5\" "
       "\"$_l15\" "
       "\"${_mt:-0}\" \"${_ma:-0}\" \"${1:-0}\" \"${2:-0}\" \"$(nproc 2>/dev/null || echo 0)\"\n";
  return o.str();
}

namespace {

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
