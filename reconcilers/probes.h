// Health probes: one run of a service's readiness or liveness probe against
// one instance, and many such runs at once.
//
// Prober is the seam the reconcile engine and clusterd use; RealProber talks
// to the machines, tests of the engine substitute a fake. A probe never
// throws and never blocks for much longer than its own timeout; every
// outcome, including "could not even try", is a ProbeResult with ok=false
// and a one-line detail meant for operators.
//
//   SshPool ssh(options);
//   RealProber prober(&ssh);
//   ProbeResult r = prober.Run(service, machine, ProbeRole::kReadiness);
//   if (!r.ok) log("{} not ready: {}", r.Key(), r.detail);  // "HTTP 503, expected 200"
//
// What each kind checks (SPEC.md section 2); `host` defaults to the machine's
// address, timeouts come from the probe's timeout_seconds:
//   http   GET scheme://host:port/path with the probe's headers, redirects not
//          followed. Pass: the status is expect_status and, when body_contains
//          is set, the body (its first MiB) contains it. https does not verify
//          the server's certificate (services behind probes commonly use
//          self-signed ones, as Kubernetes probes assume). Details: "HTTP 200",
//          "HTTP 503, expected 200", "HTTP 200, body lacks \"ok\"",
//          "connection refused", "timeout after 2000 ms".
//   tcp    A TCP connect. Details: "connected", "connection refused",
//          "timeout after 2000 ms", "cannot resolve host ...".
//   redis  PING must answer PONG (after AUTH with the content of
//          password_file, a file in the controller's secrets directory read
//          under the rule of base/secret_file.h, when set); then INFO
//          fills info["connected_clients"], info["used_memory_human"],
//          info["uptime_in_seconds"] (and "redis_version", "role"). A failing
//          INFO does not fail the probe. The password never appears in a
//          detail, a log line or an error message. Details: "PONG",
//          "AUTH failed: WRONGPASS ...", "timeout after 2000 ms".
//   exec   The command (argv, quoted with ShellJoin) runs on the machine over
//          SSH through the CommandRunner. Pass: exit status 0. Details:
//          "exit 0", "exit 3: <first line of stderr, at most 200 chars>",
//          "timeout after 2000 ms", or the runner's error. Exec probes run on
//          the machine's probe shells (Purpose::kProbe), never behind an
//          observation or an action; when every probe shell stays busy the
//          result is inconclusive (not run), which is not a failure.
// A service without a probe of the asked role gets ok=true, kind "none" and
// detail "no readiness probe" (a service with no readiness probe is ready once
// it runs, as in Kubernetes).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/secret_file.h"
#include "desired-state/model.h"
#include "reconcilers/observed.h"
#include "reconcilers/ssh.h"

namespace clusterctl::reconcilers {

// Runs probes. Implementations must be safe to call from many threads at once
// (RunProbes does) and must not throw.
class Prober {
 public:
  virtual ~Prober();
  // Runs the `role` probe of `service` against its instance on `machine`.
  // Fills every field of the result: service, machine, role, kind, ok,
  // latency_ms, time_ms, detail (and info for redis).
  virtual ProbeResult Run(const desired_state::Service& service,
                          const desired_state::Machine& machine, ProbeRole role) = 0;
};

// The real prober: HTTP (cpp-httplib), TCP (sockets), Redis (hiredis) from
// the controller host, exec over SSH.
//
// Thread-safety: safe for concurrent Run/Check calls; it holds no mutable
// state. `ssh` and `clock` must be safe to call from many threads.
class RealProber : public Prober {
 public:
  // `ssh` runs exec probes; it is not owned and must outlive the prober.
  // Default: nullptr = exec probes fail with "exec probe needs an SSH runner,
  // none is configured". `clock` stamps time_ms (WallMs). Default: RealClock(). `secrets` is where
  // a redis passwordFile may be read from (base/secret_file.h); a path it refuses fails the probe
  // before anything is sent. Default: empty dir = every passwordFile is refused.
  explicit RealProber(CommandRunner* ssh = nullptr, const Clock* clock = nullptr,
                      SecretsPolicy secrets = {});

  ProbeResult Run(const desired_state::Service& service, const desired_state::Machine& machine,
                  ProbeRole role) override;

  // Runs `probe` against `machine`. Fills kind, ok, latency_ms, time_ms,
  // detail and info; the caller fills service, machine and role.
  ProbeResult Check(const desired_state::Probe& probe, const desired_state::Machine& machine);

 private:
  CommandRunner* const ssh_;
  const Clock& clock_;
  const SecretsPolicy secrets_;
};

// One probe to run: the `role` probe of `service` on `machine`. The pointed-to
// values are not owned and must outlive the RunProbes call.
struct ProbeRequest {
  const desired_state::Service* service = nullptr;
  const desired_state::Machine* machine = nullptr;
  ProbeRole role = ProbeRole::kReadiness;
};

// Runs every request on `prober`, at most `max_parallel` at once (values < 1
// mean 1), and returns the results in the order of `requests`. Each probe is
// bounded by its own timeout, so with enough parallelism a slow or hanging
// probe delays no other result; the call returns when the last probe is done.
// `on_result`, when set, is called with (index, result) as each probe
// finishes, from the worker threads but never two calls at once.
// A request with a null service or machine gets ok=false and a detail saying
// so. Never throws (if no thread can be started, probes run on the calling
// thread).
std::vector<ProbeResult> RunProbes(
    Prober& prober, const std::vector<ProbeRequest>& requests, int max_parallel,
    const std::function<void(size_t, const ProbeResult&)>& on_result = nullptr);

}  // namespace clusterctl::reconcilers
