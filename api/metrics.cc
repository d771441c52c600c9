#include "api/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace clusterctl::api {

namespace {

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text escapes `\` and newline only.
std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} with `extra` (le="...") appended; "" when there are none.
std::string RenderLabels(const MetricLabels& labels, const char* extra_name = nullptr,
                         const std::string& extra_value = "") {
  if (labels.empty() && extra_name == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += EscapeLabelValue(v);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += EscapeLabelValue(extra_value);
    out += '"';
  }
  out += '}';
  return out;
}

bool ValidBuckets(const std::vector<double>& b) {
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(b[i])) return false;
    if (i > 0 && !(b[i - 1] < b[i])) return false;
  }
  return true;
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return "0";  // Also -0.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

const std::vector<double>& MetricsRegistry::DefaultBuckets() {
  static const std::vector<double> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10};
  return kBuckets;
}

Status MetricsRegistry::Describe(const std::string& name, MetricType type,
                                 const std::string& help) {
  if (!IsValidMetricName(name)) return Status::Invalid("invalid metric name \"" + name + "\"");
  if (type == MetricType::kHistogram) {
    return Status::Invalid(name + ": describe histograms with DescribeHistogram");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = families_.try_emplace(name);
  Family& f = it->second;
  if (inserted) {
    f.type = type;
  } else if (f.type != type) {
    return Status::Invalid(name + ": already a " + TypeName(f.type));
  }
  f.help = help;
  f.described = true;
  return Status::Ok();
}

Status MetricsRegistry::DescribeHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> buckets) {
  if (!IsValidMetricName(name)) return Status::Invalid("invalid metric name \"" + name + "\"");
  if (buckets.empty()) buckets = DefaultBuckets();
  if (!ValidBuckets(buckets)) {
    return Status::Invalid(name + ": buckets must be finite and strictly increasing");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = families_.try_emplace(name);
  Family& f = it->second;
  if (inserted) {
    f.type = MetricType::kHistogram;
    f.buckets = std::move(buckets);
  } else if (f.type != MetricType::kHistogram) {
    return Status::Invalid(name + ": already a " + TypeName(f.type));
  } else if (f.buckets != buckets) {
    return Status::Invalid(name + ": already described with other buckets");
  }
  f.help = help;
  f.described = true;
  return Status::Ok();
}

MetricsRegistry::Family* MetricsRegistry::FamilyForUpdate(const std::string& name, MetricType type,
                                                          const MetricLabels& labels) {
  if (!IsValidMetricName(name)) {
    ++dropped_;
    return nullptr;
  }
  for (const auto& [k, v] : labels) {
    if (!IsValidLabelName(k) || (type == MetricType::kHistogram && k == "le")) {
      ++dropped_;
      return nullptr;
    }
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family f;
    f.type = type;
    if (type == MetricType::kHistogram) f.buckets = DefaultBuckets();
    it = families_.emplace(name, std::move(f)).first;
  }
  if (it->second.type != type) {
    ++dropped_;
    return nullptr;
  }
  return &it->second;
}

void MetricsRegistry::Inc(const std::string& name, const MetricLabels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  // Inc on an existing gauge adds to it; otherwise it is a counter.
  MetricType type = (it != families_.end() && it->second.type == MetricType::kGauge)
                        ? MetricType::kGauge
                        : MetricType::kCounter;
  if (!std::isfinite(v) || (type == MetricType::kCounter && v < 0)) {
    ++dropped_;
    return;
  }
  Family* f = FamilyForUpdate(name, type, labels);
  if (f == nullptr) return;
  f->series[labels].value += v;
}

void MetricsRegistry::Set(const std::string& name, const MetricLabels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = FamilyForUpdate(name, MetricType::kGauge, labels);
  if (f == nullptr) return;
  f->series[labels].value = v;
}

void MetricsRegistry::Observe(const std::string& name, const MetricLabels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::isnan(v)) {
    ++dropped_;
    return;
  }
  Family* f = FamilyForUpdate(name, MetricType::kHistogram, labels);
  if (f == nullptr) return;
  Series& s = f->series[labels];
  if (s.bucket_counts.size() != f->buckets.size()) s.bucket_counts.assign(f->buckets.size(), 0);
  // The first bucket whose upper bound is >= v; none: only +Inf counts it.
  auto pos = std::lower_bound(f->buckets.begin(), f->buckets.end(), v);
  if (pos != f->buckets.end()) ++s.bucket_counts[pos - f->buckets.begin()];
  ++s.count;
  s.sum += v;
}

void MetricsRegistry::Remove(const std::string& name, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) it->second.series.erase(labels);
}

void MetricsRegistry::Clear(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) it->second.series.clear();
}

double MetricsRegistry::Value(const std::string& name, const MetricLabels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto s = it->second.series.find(labels);
  if (s == it->second.series.end()) return 0;
  if (it->second.type == MetricType::kHistogram) return static_cast<double>(s->second.count);
  return s->second.value;
}

uint64_t MetricsRegistry::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (f.described) out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + TypeName(f.type) + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != MetricType::kHistogram) {
        out += name + RenderLabels(labels) + " " + FormatMetricValue(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        if (i < s.bucket_counts.size()) cumulative += s.bucket_counts[i];
        out += name + "_bucket" + RenderLabels(labels, "le", FormatMetricValue(f.buckets[i])) +
               " " + std::to_string(cumulative) + "\n";
      }
      out += name + "_bucket" + RenderLabels(labels, "le", "+Inf") + " " + std::to_string(s.count) +
             "\n";
      out += name + "_sum" + RenderLabels(labels) + " " + FormatMetricValue(s.sum) + "\n";
      out += name + "_count" + RenderLabels(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

void DescribeClusterdMetrics(MetricsRegistry* r) {
  // The descriptions below are static and valid: their Status is always OK.
  (void)r->Describe(kMetricReconcileTotal, MetricType::kCounter,
                    "Reconcile passes by outcome (converged, progressing, failed, skipped).");
  (void)r->DescribeHistogram(kMetricReconcileDuration,
                             "Duration of reconcile passes in seconds, by outcome.",
                             {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300});
  (void)r->Describe(kMetricActionsTotal, MetricType::kCounter,
                    "Steps run on machines by action (start, stop, restart) and result.");
  (void)r->Describe(kMetricInstances, MetricType::kGauge, "Service instances by observed state.");
  (void)r->Describe(kMetricAlertsFiring, MetricType::kGauge, "Firing alerts by severity.");
  (void)r->Describe(kMetricServiceAvailability, MetricType::kGauge,
                    "Fraction of observed time a service's instances were up, per window.");
  (void)r->Describe(kMetricProcessRss, MetricType::kGauge, "Resident memory size in bytes.");
  // A gauge read from the kernel as a total (the registry's counters count
  // increments), so not named process_cpu_seconds_total.
  (void)r->Describe(kMetricProcessCpu, MetricType::kGauge,
                    "Total user and system CPU time clusterd spent, in seconds.");
  (void)r->Describe(kMetricProcessFds, MetricType::kGauge, "Number of open file descriptors.");
  (void)r->Describe(kMetricProcessStart, MetricType::kGauge,
                    "Start time of the process since unix epoch in seconds.");
  (void)r->Describe(kMetricNotificationsQueued, MetricType::kGauge,
                    "Notifications waiting in a sink's outbox.");
  (void)r->Describe(kMetricNotificationsSent, MetricType::kGauge,
                    "Notifications a sink's receiver accepted since clusterd started.");
  (void)r->DescribeHistogram(kMetricProbeLatency, "Health probe latency in seconds, by kind.",
                             {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  (void)r->Describe(kMetricMachineReachable, MetricType::kGauge,
                    "1 when the machine answered its last observation, else 0.");
  (void)r->Describe(kMetricRevisionInfo, MetricType::kGauge,
                    "The desired-state revision in force, as a label; always 1.");
  (void)r->Describe(kMetricSuspended, MetricType::kGauge,
                    "1 while automatic reconciliation is suspended, else 0.");
  (void)r->Describe(kMetricApiRequests, MetricType::kCounter,
                    "HTTP API requests by route and status code.");
  r->Set(kMetricSuspended, {}, 0);
}

}  // namespace clusterctl::api
