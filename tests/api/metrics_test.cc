// MetricsRegistry: the rendered text is checked line by line against the
// Prometheus text exposition format 0.0.4 by a small validator written here
// (and by `promtool check metrics` when the prometheus package is installed).
#include "api/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace clusterctl::api {
namespace {

// ------------------------------------------------------------ the validator

// One parsed sample line.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // Unescaped values.
  double value = 0;
};

// Go's strconv.ParseFloat forms Prometheus accepts: decimal, exponent,
// +Inf / -Inf / Inf, NaN.
bool ParseValue(const std::string& text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *out = NAN;
    return true;
  }
  static const std::regex kNumber(R"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
  if (!std::regex_match(text, kNumber)) return false;
  *out = std::strtod(text.c_str(), nullptr);
  return true;
}

// Parses `name{l="v",...} value [timestamp]`; returns "" or what is wrong.
std::string ParseSample(const std::string& line, Sample* s) {
  static const std::regex kName(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  static const std::regex kLabelName(R"([a-zA-Z_][a-zA-Z0-9_]*)");
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s->name = line.substr(0, i);
  if (!std::regex_match(s->name, kName)) return "bad metric name \"" + s->name + "\"";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t eq = line.find('=', i);
      if (eq == std::string::npos) return "label without '='";
      std::string lname = line.substr(i, eq - i);
      if (!std::regex_match(lname, kLabelName)) return "bad label name \"" + lname + "\"";
      if (s->labels.count(lname) > 0) return "label \"" + lname + "\" given twice";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value not quoted";
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i >= line.size()) return "dangling backslash";
          char e = line[i++];
          if (e == '\\') {
            value += '\\';
          } else if (e == '"') {
            value += '"';
          } else if (e == 'n') {
            value += '\n';
          } else {
            return std::string("bad escape \\") + e;
          }
        } else if (c == '\n') {
          return "raw newline in label value";
        } else {
          value += c;
        }
      }
      if (!closed) return "unterminated label value";
      s->labels[lname] = value;
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      } else {
        return "expected ',' or '}' after a label";
      }
    }
  }
  if (i >= line.size() || line[i] != ' ') return "expected a space before the value";
  std::istringstream rest(line.substr(i + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!ParseValue(value, &s->value)) return "bad value \"" + value + "\"";
  if (!timestamp.empty() && !std::regex_match(timestamp, std::regex(R"(-?\d+)"))) {
    return "bad timestamp \"" + timestamp + "\"";
  }
  if (!extra.empty()) return "trailing text after the timestamp";
  return "";
}

// Validates a whole exposition; returns one message per problem, each
// starting with "line N: ".
std::vector<std::string> ValidateExposition(const std::string& text) {
  std::vector<std::string> errors;
  auto error = [&](int line, const std::string& what) {
    errors.push_back("line " + std::to_string(line) + ": " + what);
  };
  if (!text.empty() && text.back() != '\n') error(0, "does not end with a newline");

  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helped, families_seen, series_seen;
  std::string current_family;
  // Histogram state, per family and label set without "le".
  struct HistogramSeries {
    double last_le = -INFINITY;
    double last_count = 0;
    bool has_inf = false;
    double inf_count = 0;
    bool has_count = false, has_sum = false;
    double count = 0;
  };
  std::map<std::string, HistogramSeries> histograms;

  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (hash != "#" || (keyword != "HELP" && keyword != "TYPE")) continue;  // A comment.
      if (!std::regex_match(name, std::regex(R"([a-zA-Z_:][a-zA-Z0-9_:]*)"))) {
        error(n, "bad metric name in " + keyword);
        continue;
      }
      if (keyword == "HELP") {
        if (!helped.insert(name).second) error(n, "second HELP for " + name);
        // Only \\ and \n may be escaped in HELP text.
        std::string help = line.substr(std::min(line.size(), 8 + name.size()));
        for (size_t i = 0; i < help.size(); ++i) {
          if (help[i] == '\\') {
            if (i + 1 >= help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n')) {
              error(n, "bad escape in HELP of " + name);
            }
            ++i;
          }
        }
      } else {
        std::string type;
        words >> type;
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (kTypes.count(type) == 0) error(n, "unknown TYPE \"" + type + "\"");
        if (types.count(name) > 0) error(n, "second TYPE for " + name);
        if (families_seen.count(name) > 0) error(n, "TYPE for " + name + " after its samples");
        types[name] = type;
      }
      continue;
    }
    Sample s;
    std::string why = ParseSample(line, &s);
    if (!why.empty()) {
      error(n, why + ": " + line);
      continue;
    }
    // The family this sample belongs to.
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string sfx = suffix;
      if (s.name.size() > sfx.size() && s.name.ends_with(sfx)) {
        std::string base = s.name.substr(0, s.name.size() - sfx.size());
        if (types.count(base) > 0 && types[base] == "histogram") family = base;
      }
    }
    if (types.count(family) == 0) {
      error(n, "sample of " + family + " without a TYPE line before it");
      continue;
    }
    if (family != current_family) {
      if (families_seen.count(family) > 0) error(n, "samples of " + family + " are not together");
      families_seen.insert(family);
      current_family = family;
    }
    std::string series_key = s.name;
    for (const auto& [k, v] : s.labels) series_key += "|" + k + "=" + v;
    if (!series_seen.insert(series_key).second) error(n, "duplicate series " + series_key);

    const std::string& type = types[family];
    if (type == "counter" && !(s.value >= 0)) error(n, "counter below zero: " + line);
    if (type == "histogram") {
      if (s.name == family) {
        error(n, "histogram sample without _bucket/_sum/_count suffix");
        continue;
      }
      std::map<std::string, std::string> base_labels = s.labels;
      base_labels.erase("le");
      std::string key = family;
      for (const auto& [k, v] : base_labels) key += "|" + k + "=" + v;
      HistogramSeries& h = histograms[key];
      if (s.name == family + "_bucket") {
        double le = 0;
        if (s.labels.count("le") == 0 || !ParseValue(s.labels["le"], &le)) {
          error(n, "bucket without a numeric le label");
          continue;
        }
        if (h.has_inf) error(n, "bucket after le=\"+Inf\"");
        if (!(le > h.last_le)) error(n, "bucket le not increasing");
        if (s.value < h.last_count) error(n, "bucket counts not cumulative");
        h.last_le = le;
        h.last_count = s.value;
        if (std::isinf(le) && le > 0) {
          h.has_inf = true;
          h.inf_count = s.value;
        }
      } else if (s.name == family + "_count") {
        if (s.labels.count("le") > 0) error(n, "_count with an le label");
        h.has_count = true;
        h.count = s.value;
      } else {
        if (s.labels.count("le") > 0) error(n, "_sum with an le label");
        h.has_sum = true;
      }
    }
  }
  for (const auto& [key, h] : histograms) {
    if (!h.has_inf) errors.push_back(key + ": no le=\"+Inf\" bucket");
    if (!h.has_count) errors.push_back(key + ": no _count");
    if (!h.has_sum) errors.push_back(key + ": no _sum");
    if (h.has_inf && h.has_count && h.inf_count != h.count) {
      errors.push_back(key + ": +Inf bucket differs from _count");
    }
  }
  return errors;
}

std::string JoinLines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

// A registry as clusterd fills it, with awkward label values.
void FillLikeClusterd(MetricsRegistry* r) {
  DescribeClusterdMetrics(r);
  r->Inc(kMetricReconcileTotal, {{"outcome", "converged"}}, 3);
  r->Inc(kMetricReconcileTotal, {{"outcome", "failed"}});
  for (double v : {0.004, 0.2, 0.2, 1.5, 42.0, 900.0}) {
    r->Observe(kMetricReconcileDuration, {{"outcome", "converged"}}, v);
  }
  r->Observe(kMetricReconcileDuration, {{"outcome", "failed"}}, 0.3);
  r->Inc(kMetricActionsTotal, {{"action", "start"}, {"result", "ok"}}, 12);
  r->Inc(kMetricActionsTotal, {{"action", "restart"}, {"result", "failed"}});
  r->Set(kMetricInstances, {{"state", "running"}}, 9);
  r->Set(kMetricInstances, {{"state", "stopped"}}, 0);
  for (double v : {0.0004, 0.003, 0.02, 0.7, 12.0}) {
    r->Observe(kMetricProbeLatency, {{"kind", "http"}}, v);
  }
  r->Observe(kMetricProbeLatency, {{"kind", "redis"}}, 0.001);
  r->Set(kMetricMachineReachable, {{"machine", "jetson"}}, 1);
  r->Set(kMetricMachineReachable, {{"machine", "we\"ird\\name\nline"}}, 0);
  r->Set(kMetricRevisionInfo, {{"revision", "3f2c1e9"}}, 1);
  r->Set(kMetricSuspended, {}, 1);
  r->Inc(kMetricApiRequests, {{"route", "/api/v1/status"}, {"code", "401"}});
  (void)r->Describe("clusterctl_test_unicode", MetricType::kGauge, "A gauge with UTF-8 labels.");
  r->Set("clusterctl_test_unicode", {{"label", "résumé ✓"}}, -2.5);
}

// ------------------------------------------------------------------ tests

TEST(MetricsValidatorTest, AcceptsAWellFormedExposition) {
  std::string text =
      "# HELP a_total Things.\n"
      "# TYPE a_total counter\n"
      "a_total{x=\"1\",y=\"a\\\\b\\\"c\\nd\"} 3\n"
      "a_total 1e3 1700000000000\n"
      "# a free comment\n"
      "# TYPE h histogram\n"
      "h_bucket{le=\"0.1\"} 1\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "h_sum 0.3\n"
      "h_count 2\n";
  EXPECT_EQ("", JoinLines(ValidateExposition(text)));
}

TEST(MetricsValidatorTest, RejectsBrokenExpositions) {
  struct Case {
    std::string text;
    std::string expected_error;  // A substring of the first error.
  };
  std::vector<Case> cases = {
      {"# TYPE a counter\n1a 1\n", "bad metric name"},
      {"a 1\n", "without a TYPE line"},
      {"# TYPE a gauge\na 1\n# TYPE a gauge\n", "second TYPE"},
      {"# TYPE a gauge\na{x=\"1} 1\n", "unterminated"},
      {"# TYPE a gauge\na{x=\"\\t\"} 1\n", "bad escape"},
      {"# TYPE a gauge\na{x=1} 1\n", "not quoted"},
      {"# TYPE a gauge\na{1x=\"1\"} 1\n", "bad label name"},
      {"# TYPE a gauge\na one\n", "bad value"},
      {"# TYPE a gauge\na 1\n", ""},
      {"# TYPE a counter\na -1\n", "counter below zero"},
      {"# TYPE a gauge\na 1\na 2\n", "duplicate series"},
      {"# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n", "not together"},
      {"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
       "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
       "not cumulative"},
      {"# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
       "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
       "not increasing"},
      {"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "no le=\"+Inf\""},
      {"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 2\n", "differs from _count"},
      {"# TYPE a gauge\na 1", "newline"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> errors = ValidateExposition(c.text);
    if (c.expected_error.empty()) {
      EXPECT_TRUE(errors.empty()) << c.text << JoinLines(errors);
      continue;
    }
    ASSERT_FALSE(errors.empty()) << "accepted:\n" << c.text;
    EXPECT_NE(std::string::npos, JoinLines(errors).find(c.expected_error)) << c.text << "errors:\n"
                                                                           << JoinLines(errors);
  }
}

TEST(MetricsRegistryTest, RenderOfClusterdMetricsIsValidExposition) {
  MetricsRegistry r;
  FillLikeClusterd(&r);
  std::string text = r.Render();
  EXPECT_EQ("", JoinLines(ValidateExposition(text))) << text;
  EXPECT_EQ(0u, r.dropped());
  // Every documented family is there with HELP and TYPE.
  for (const char* name : {kMetricReconcileTotal, kMetricReconcileDuration, kMetricActionsTotal,
                           kMetricInstances, kMetricProbeLatency, kMetricMachineReachable,
                           kMetricRevisionInfo, kMetricSuspended, kMetricApiRequests}) {
    EXPECT_NE(std::string::npos, text.find(std::string("# HELP ") + name + " ")) << name;
    EXPECT_NE(std::string::npos, text.find(std::string("# TYPE ") + name + " ")) << name;
  }
}

TEST(MetricsRegistryTest, RendersTheExactTextFormat) {
  MetricsRegistry r;
  ASSERT_TRUE(
      r.Describe("jobs_total", MetricType::kCounter, "Jobs done.\nBy kind \\ result.").ok());
  ASSERT_TRUE(r.DescribeHistogram("latency_seconds", "Latency.", {0.1, 1}).ok());
  r.Inc("jobs_total", {{"result", "ok"}, {"kind", "a"}}, 2);
  r.Inc("jobs_total", {{"kind", "a"}, {"result", "ok"}});  // Same series.
  r.Set("temperature", {}, 21.5);
  r.Observe("latency_seconds", {{"kind", "x"}}, 0.1);  // le is inclusive.
  r.Observe("latency_seconds", {{"kind", "x"}}, 0.5);
  r.Observe("latency_seconds", {{"kind", "x"}}, 3);
  EXPECT_EQ(
      "# HELP jobs_total Jobs done.\\nBy kind \\\\ result.\n"
      "# TYPE jobs_total counter\n"
      "jobs_total{kind=\"a\",result=\"ok\"} 3\n"
      "# HELP latency_seconds Latency.\n"
      "# TYPE latency_seconds histogram\n"
      "latency_seconds_bucket{kind=\"x\",le=\"0.1\"} 1\n"
      "latency_seconds_bucket{kind=\"x\",le=\"1\"} 2\n"
      "latency_seconds_bucket{kind=\"x\",le=\"+Inf\"} 3\n"
      "latency_seconds_sum{kind=\"x\"} 3.6\n"
      "latency_seconds_count{kind=\"x\"} 3\n"
      "# TYPE temperature gauge\n"
      "temperature 21.5\n",
      r.Render());
}

TEST(MetricsRegistryTest, EscapesLabelValues) {
  EXPECT_EQ("a\\\\b\\\"c\\nd", EscapeLabelValue("a\\b\"c\nd"));
  EXPECT_EQ("plain é", EscapeLabelValue("plain é"));
  MetricsRegistry r;
  r.Set("g", {{"path", "C:\\dir \"x\"\n"}}, 1);
  EXPECT_EQ("# TYPE g gauge\ng{path=\"C:\\\\dir \\\"x\\\"\\n\"} 1\n", r.Render());
}

TEST(MetricsRegistryTest, FormatsValuesAsPrometheusReadsThem) {
  EXPECT_EQ("12", FormatMetricValue(12));
  EXPECT_EQ("0", FormatMetricValue(-0.0));
  EXPECT_EQ("0.25", FormatMetricValue(0.25));
  EXPECT_EQ("-2.5", FormatMetricValue(-2.5));
  EXPECT_EQ("1e-09", FormatMetricValue(1e-9));
  EXPECT_EQ("+Inf", FormatMetricValue(INFINITY));
  EXPECT_EQ("-Inf", FormatMetricValue(-INFINITY));
  EXPECT_EQ("NaN", FormatMetricValue(NAN));
  for (double v : {0.1, 1.0 / 3, 123456789.123, 1e300, 5e-324}) {
    double back = 0;
    ASSERT_TRUE(ParseValue(FormatMetricValue(v), &back)) << FormatMetricValue(v);
    EXPECT_EQ(v, back) << FormatMetricValue(v);
  }
}

TEST(MetricsRegistryTest, RefusesMisuseWithoutChangingAnything) {
  MetricsRegistry r;
  r.Inc("c_total", {}, 1);
  r.Set("g", {}, 5);
  r.Observe("h", {}, 0.2);
  const std::string before = r.Render();
  r.Set("c_total", {}, 7);                 // Set on a counter.
  r.Inc("c_total", {}, -1);                // A counter never goes down.
  r.Observe("g", {}, 1);                   // Observe on a gauge.
  r.Inc("h", {}, 1);                       // Inc on a histogram.
  r.Observe("h", {{"le", "1"}}, 1);        // "le" is the histogram's own label.
  r.Inc("1bad", {}, 1);                    // Bad metric name.
  r.Inc("c_total", {{"bad-label", "x"}});  // Bad label name.
  r.Inc("c_total", {{"__reserved", "x"}});
  r.Observe("h", {}, NAN);
  EXPECT_EQ(9u, r.dropped());
  EXPECT_EQ(before, r.Render());
  // A gauge may go down with Inc.
  r.Inc("g", {}, -2);
  EXPECT_EQ(3, r.Value("g"));
}

TEST(MetricsRegistryTest, DescribeChecksNamesTypesAndBuckets) {
  MetricsRegistry r;
  EXPECT_EQ(Code::kInvalid, r.Describe("bad name", MetricType::kGauge, "x").code());
  EXPECT_EQ(Code::kInvalid, r.Describe("h", MetricType::kHistogram, "x").code());
  EXPECT_TRUE(r.Describe("g", MetricType::kGauge, "x").ok());
  EXPECT_TRUE(r.Describe("g", MetricType::kGauge, "new help").ok());
  EXPECT_EQ(Code::kInvalid, r.Describe("g", MetricType::kCounter, "x").code());
  EXPECT_EQ(Code::kInvalid, r.DescribeHistogram("h", "x", {1, 0.5}).code());
  EXPECT_EQ(Code::kInvalid, r.DescribeHistogram("h", "x", {0.5, INFINITY}).code());
  EXPECT_TRUE(r.DescribeHistogram("h", "x", {0.5, 1}).ok());
  EXPECT_EQ(Code::kInvalid, r.DescribeHistogram("h", "x", {0.5, 2}).code());
  EXPECT_EQ(Code::kInvalid, r.DescribeHistogram("g", "x").code());
  EXPECT_NE(std::string::npos, r.Render().find("# HELP g new help\n"));
}

TEST(MetricsRegistryTest, RemoveAndClearDropSeriesButKeepTheFamily) {
  MetricsRegistry r;
  DescribeClusterdMetrics(&r);
  r.Set(kMetricRevisionInfo, {{"revision", "aaaaaaa"}}, 1);
  r.Clear(kMetricRevisionInfo);
  r.Set(kMetricRevisionInfo, {{"revision", "bbbbbbb"}}, 1);
  r.Set(kMetricMachineReachable, {{"machine", "a"}}, 1);
  r.Set(kMetricMachineReachable, {{"machine", "b"}}, 1);
  r.Remove(kMetricMachineReachable, {{"machine", "a"}});
  r.Remove(kMetricMachineReachable, {{"machine", "nope"}});
  std::string text = r.Render();
  EXPECT_EQ(std::string::npos, text.find("aaaaaaa"));
  EXPECT_NE(std::string::npos, text.find("clusterctl_revision_info{revision=\"bbbbbbb\"} 1\n"));
  EXPECT_EQ(std::string::npos, text.find("machine=\"a\""));
  EXPECT_NE(std::string::npos, text.find("machine=\"b\""));
  EXPECT_EQ("", JoinLines(ValidateExposition(text)));
}

TEST(MetricsRegistryTest, CountsExactlyUnderConcurrentUpdates) {
  MetricsRegistry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 5000; ++i) {
        r.Inc("hits_total", {{"worker", std::to_string(t % 2)}});
        r.Observe("lat_seconds", {}, 0.01 * (i % 100));
        if (i % 500 == 0) (void)r.Render();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(10000, r.Value("hits_total", {{"worker", "0"}}));
  EXPECT_EQ(10000, r.Value("hits_total", {{"worker", "1"}}));
  EXPECT_EQ(20000, r.Value("lat_seconds"));
  EXPECT_EQ("", JoinLines(ValidateExposition(r.Render())));
}

// `promtool check metrics` reads the exposition from stdin and lints it.
// Only this check needs the prometheus package; it is skipped without it.
TEST(MetricsRegistryTest, PromtoolAcceptsTheRender) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  MetricsRegistry r;
  FillLikeClusterd(&r);
  std::filesystem::path file = std::filesystem::temp_directory_path() /
                               ("clusterctl_metrics_test_" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream out(file);
    out << r.Render();
  }
  std::string output_file = file.string() + ".out";
  std::string cmd = "promtool check metrics < '" + file.string() + "' > '" + output_file + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(output_file);
  std::stringstream output;
  output << in.rdbuf();
  std::filesystem::remove(file);
  std::filesystem::remove(output_file);
  EXPECT_EQ(0, rc) << output.str() << "\n" << r.Render();
}

}  // namespace
}  // namespace clusterctl::api
