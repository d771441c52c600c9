// MetricsRegistry: a small in-process Prometheus registry for clusterd.
//
// It holds counters, gauges and histograms, each a family of series told
// apart by their labels, and renders them in the Prometheus text exposition
// format 0.0.4 (`GET /metrics`, see docs/api.md):
//
//   # HELP clusterctl_actions_total Steps run by the executor, ...
//   # TYPE clusterctl_actions_total counter
//   clusterctl_actions_total{action="start",result="ok"} 12
//
// A family is created by Describe*() (with its help text and, for a
// histogram, its buckets) or, when it was not described, by its first update:
// Inc() creates a counter, Set() a gauge, Observe() a histogram with
// DefaultBuckets(). Updates that do not fit the family (Set() on a counter, a
// negative Inc() on a counter, Observe() on a gauge, an invalid metric or
// label name, a label named "le" on a histogram) change nothing and are
// counted in dropped(): metrics must never fail the code that reports them.
//
// Families render sorted by name, series sorted by their labels, so the
// output is deterministic.
//
// Thread-safety: every method may be called from any thread at once (one
// mutex; updates are a map lookup and an addition).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clusterctl::api {

// Label name -> value. A std::map so that {a, b} and {b, a} are one series.
using MetricLabels = std::map<std::string, std::string>;

enum class MetricType { kCounter, kGauge, kHistogram };

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Upper bounds used by Observe() on a histogram that was not described:
  // 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 (seconds), as Prometheus'
  // client libraries use.
  static const std::vector<double>& DefaultBuckets();

  // Declares a counter or gauge family with its help text (one line; `\` and
  // newlines are escaped on output). Describing a family again with the same
  // type only replaces the help text.
  // Errors: kInvalid for a name outside [a-zA-Z_:][a-zA-Z0-9_:]*, for
  // kHistogram (use DescribeHistogram), or when the family already exists
  // with another type.
  Status Describe(const std::string& name, MetricType type, const std::string& help);
  // Declares a histogram family with `buckets`: finite upper bounds in
  // strictly increasing order (+Inf is always added). Empty = DefaultBuckets().
  // Errors: kInvalid for a bad name, unordered or non-finite buckets, or a
  // family that exists with another type or other buckets.
  Status DescribeHistogram(const std::string& name, const std::string& help,
                           std::vector<double> buckets = {});

  // Adds `v` to a counter (v >= 0) or a gauge (any finite v). Default v: 1.
  void Inc(const std::string& name, const MetricLabels& labels = {}, double v = 1);
  // Sets a gauge.
  void Set(const std::string& name, const MetricLabels& labels, double v);
  // Records one observation in a histogram.
  void Observe(const std::string& name, const MetricLabels& labels, double v);
  // Removes one series (a machine that left the cluster, ...). No-op when
  // it does not exist.
  void Remove(const std::string& name, const MetricLabels& labels);
  // Removes every series of a family but keeps its description (used to
  // move clusterctl_revision_info to a new revision).
  void Clear(const std::string& name);

  // The value of a counter or gauge series, or of a histogram series' count;
  // 0 when it does not exist. For tests and the daemon's own decisions.
  double Value(const std::string& name, const MetricLabels& labels = {}) const;
  // Updates that were refused (see the class comment).
  uint64_t dropped() const;

  // Every family in the text exposition format 0.0.4: "# HELP" (when the
  // family was described) and "# TYPE" lines, then its samples; histograms
  // as cumulative <name>_bucket{...,le="..."} series ending with le="+Inf",
  // then <name>_sum and <name>_count. Families without series print only
  // their HELP and TYPE lines. Ends with a newline unless empty.
  std::string Render() const;

 private:
  struct Series {
    double value = 0;                     // Counter and gauge.
    std::vector<uint64_t> bucket_counts;  // Histogram: per bucket, not cumulative.
    uint64_t count = 0;                   // Histogram.
    double sum = 0;                       // Histogram.
  };
  struct Family {
    MetricType type = MetricType::kCounter;
    std::string help;
    bool described = false;
    std::vector<double> buckets;  // Histogram upper bounds, +Inf excluded.
    std::map<MetricLabels, Series> series;
  };

  // Finds or creates the family `name` of type `type`; nullptr (and counts
  // a drop) when the name or labels are invalid or the type differs.
  // Requires mu_.
  Family* FamilyForUpdate(const std::string& name, MetricType type, const MetricLabels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // Guarded by mu_.
  uint64_t dropped_ = 0;                    // Guarded by mu_.
};

// Names and descriptions of the metrics clusterd exports (docs/api.md):
//   clusterctl_reconcile_total{outcome}              counter
//   clusterctl_reconcile_duration_seconds{outcome}   histogram
//   clusterctl_actions_total{action,result}          counter
//   clusterctl_instances{state}                      gauge
//   clusterctl_probe_latency_seconds{kind}           histogram
//   clusterctl_machine_reachable{machine}            gauge (1 or 0)
//   clusterctl_revision_info{revision}               gauge (always 1)
//   clusterctl_suspended                             gauge (1 or 0)
//   clusterctl_api_requests_total{route,code}        counter (ApiServer)
//   clusterctl_alerts_firing{severity}               gauge
//   clusterctl_service_availability{service,window}  gauge (0..1; 1h, 24h, 7d)
//   clusterctl_process_cpu_seconds, process_resident_memory_bytes, process_open_fds,
//   process_start_time_seconds                       gauges (Prometheus' names)
//   clusterctl_notifications_queued{sink}            gauge
//   clusterctl_notifications_sent{sink}              gauge (accepted since start)
inline constexpr const char* kMetricReconcileTotal = "clusterctl_reconcile_total";
inline constexpr const char* kMetricReconcileDuration = "clusterctl_reconcile_duration_seconds";
inline constexpr const char* kMetricActionsTotal = "clusterctl_actions_total";
inline constexpr const char* kMetricInstances = "clusterctl_instances";
inline constexpr const char* kMetricProbeLatency = "clusterctl_probe_latency_seconds";
inline constexpr const char* kMetricMachineReachable = "clusterctl_machine_reachable";
inline constexpr const char* kMetricRevisionInfo = "clusterctl_revision_info";
inline constexpr const char* kMetricSuspended = "clusterctl_suspended";
inline constexpr const char* kMetricApiRequests = "clusterctl_api_requests_total";
inline constexpr const char* kMetricAlertsFiring = "clusterctl_alerts_firing";
inline constexpr const char* kMetricServiceAvailability = "clusterctl_service_availability";
inline constexpr const char* kMetricProcessRss = "process_resident_memory_bytes";
inline constexpr const char* kMetricProcessCpu = "clusterctl_process_cpu_seconds";
inline constexpr const char* kMetricProcessFds = "process_open_fds";
inline constexpr const char* kMetricProcessStart = "process_start_time_seconds";
inline constexpr const char* kMetricNotificationsQueued = "clusterctl_notifications_queued";
inline constexpr const char* kMetricNotificationsSent = "clusterctl_notifications_sent";
// Replicas only (config redis): 1 on the replica that holds the leader lease.
inline constexpr const char* kMetricLeader = "clusterd_leader";

// Describes every family above with its help text and buckets, and sets
// clusterctl_suspended to 0. Call once on a new registry.
void DescribeClusterdMetrics(MetricsRegistry* registry);

// Helpers for the exposition format, exposed for tests and other exporters.
// Whether `name` is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
bool IsValidMetricName(std::string_view name);
// Whether `name` is a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not "__"-prefixed).
bool IsValidLabelName(std::string_view name);
// A label value with `\`, `"` and newline escaped.
std::string EscapeLabelValue(std::string_view value);
// A sample value: integers without a fraction ("12"), others in the
// shortest form that reads back exactly ("0.25"), "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double v);

}  // namespace clusterctl::api
