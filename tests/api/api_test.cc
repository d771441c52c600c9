// ApiServer over real HTTP on loopback, serving a fake DaemonView that
// records every call: authentication (token, webhook HMAC), validation,
// pass-through of status and audit filters, pagination, limits.
#include "api/api.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/metrics.h"
#include "audit/audit_log.h"
#include "base/time_format.h"
#include "dashboard/assets.h"

namespace clusterctl::api {
namespace {

using json = nlohmann::json;

constexpr char kToken[] = "tok-7f3a9c1e5b2d4f60-secret";
constexpr char kWebhookSecret[] = "hook-0c9e8d7f6a5b-secret";
constexpr int64_t kNow = 1795000000000;  // 2026-11-18T...: the fake clock.

// Records every call; mutating calls are what 401s must never reach.
class FakeDaemonView : public DaemonView {
 public:
  FakeDaemonView() {
    status_doc = {
        {"timestamp", "2026-11-22T10:30:45.123Z"},
        {"overall_status", "degraded"},
        {"revision", "3f2c1e9"},
        {"machines", {{"jetson", {{"reachable", true}}}}},
        {"services",
         {{"ollama",
           {{"critical", true},
            {"instances",
             {{"jetson",
               {{"state", "running"},
                {"ready", false},
                {"pid", 4242},
                {"restarts", 1},
                {"last_probe", {{"ok", false}, {"latency_ms", 12}, {"detail", "HTTP 500"}}}}}}}}}}},
        {"alerts", json::array({"ollama@jetson not ready"})}};
    for (uint64_t seq = 1; seq <= 25; ++seq) {
      audit::AuditRecord r;
      r.seq = seq;
      r.time = kNow - 100000 + static_cast<int64_t>(seq) * 1000;
      r.actor = "clusterd@cpu-node";
      r.trigger = seq % 2 == 0 ? "drift" : "revision";
      r.revision = "3f2c1e9";
      r.action = "start";
      r.machine = "jetson";
      r.service = seq % 5 == 0 ? "redis" : "ollama";
      r.phase = "result";
      r.result = "ok";
      r.hash = std::string(64, 'a');
      r.prev_hash = std::string(64, 'b');
      records.push_back(r);
    }
  }

  json Status() override {
    Record("Status");
    return status_doc;
  }
  std::vector<alerts::Alert> Alerts(const AlertQuery& q) override {
    Record("Alerts " + std::to_string(static_cast<int>(q.state)) + " " +
           std::to_string(q.since_ms));
    alerts::Alert a;
    a.id = 7;
    a.kind = "crash_loop";
    a.machine = "m1";
    a.service = "api";
    a.key = alerts::Key(a.kind, a.machine, a.service);
    a.severity = "critical";
    a.message = "x";
    a.first_seen_ms = kNow - 60000;
    a.last_seen_ms = kNow - 1000;
    a.count = 3;
    return {a};
  }
  Result<alerts::Alert> AckAlert(const std::string& ref, const std::string& actor, int64_t for_ms,
                                 const std::string& note) override {
    Record("Ack " + ref + " " + actor + " " + std::to_string(for_ms) + " " + note);
    if (ref != "7") return clusterctl::Status(Code::kNotFound, "no firing alert " + ref);
    alerts::Alert a = Alerts({})[0];
    a.ack = alerts::Ack{actor, note, kNow, kNow + for_ms};
    return a;
  }
  StatsView Stats() override {
    Record("Stats");
    StatsView s;
    s.now_ms = kNow;
    s.started_ms = kNow - 5000;
    s.rss_bytes = 1 << 20;
    s.services.push_back({"api", true, false, {{"1h", 0.5, 3600000, 1800000, 1, 1, 2000, 30000}}});
    return s;
  }
  json Graph() override {
    Record("Graph");
    return {{"nodes", json::array()}, {"edges", json::array()}};
  }
  Result<std::vector<FileChange>> RevisionFiles(const std::string& from,
                                                const std::string& to) override {
    Record("RevisionFiles " + from + " " + to);
    if (from == "dead") return clusterctl::Status(Code::kNotFound, "no commit dead");
    return std::vector<FileChange>{{"services/api.yaml", "modified", "a\nb\n", "a\nc\n"},
                                   {"services/new.yaml", "added", "", "x\n"}};
  }
  Result<audit::VerifyReport> VerifyAudit() override {
    Record("VerifyAudit");
    audit::VerifyReport r;
    r.records = 42;
    return r;
  }
  std::vector<std::string> Quarantined() override { return {"3f2c1e9"}; }
  json History(size_t limit) override {
    Record("History " + std::to_string(limit));
    return json::array();
  }
  std::vector<store::RevisionRecord> Revisions(size_t limit) override {
    Record("Revisions " + std::to_string(limit));
    store::RevisionRecord r;
    r.commit = "3f2c1e9";
    r.author = "ana";
    r.message = "add redis";
    r.commit_time = 1795343400;
    r.applied_at_ms = kNow - 30000;
    r.result = "ok";
    r.actor = "clusterd@cpu-node";
    r.trigger = "revision";
    r.detail = "3 ok";
    return {r};
  }
  Result<std::vector<audit::AuditRecord>> Audit(const audit::AuditFilter& f) override {
    Record("Audit");
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_filter = f;
      if (!audit_error_.ok()) return audit_error_;
    }
    // The contract of AuditLog::Query over `records` (seq = time order).
    std::vector<audit::AuditRecord> out;
    std::vector<audit::AuditRecord> ordered = records;
    if (!f.oldest_first) std::reverse(ordered.begin(), ordered.end());
    for (const audit::AuditRecord& r : ordered) {
      if (f.after_seq != 0 && r.seq <= f.after_seq) continue;
      if (f.before_seq != 0 && r.seq >= f.before_seq) continue;
      if (!Matches(f, r)) continue;
      out.push_back(r);
      if (f.limit != 0 && out.size() == f.limit) break;
    }
    return out;
  }
  std::string Metrics() override {
    Record("Metrics");
    return metrics_text;
  }
  bool Healthy(std::string* detail) override {
    Record("Healthy");
    *detail = healthy ? "" : "reconcile loop stalled for 40s";
    return healthy;
  }
  void Sync(const std::string& reason) override { Record("Sync " + reason); }
  ::clusterctl::Status Restart(const std::string& service, const std::string& machine,
                               const std::string& actor) override {
    Record("Restart " + service + " " + machine + " " + actor);
    if (service != "ollama")
      return ::clusterctl::Status::NotFound("no service \"" + service + "\"");
    return ::clusterctl::Status::Ok();
  }
  void Suspend(const std::string& actor) override {
    Record("Suspend " + actor);
    suspended_ = true;
  }
  void Resume(const std::string& actor) override {
    Record("Resume " + actor);
    suspended_ = false;
  }
  bool suspended() override { return suspended_; }

  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // The calls that change something.
  std::vector<std::string> mutations() {
    std::vector<std::string> out;
    for (const std::string& c : calls()) {
      for (const char* prefix : {"Sync", "Restart", "Suspend", "Resume", "Ack"}) {
        if (c.rfind(prefix, 0) == 0) out.push_back(c);
      }
    }
    return out;
  }
  audit::AuditFilter filter() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_filter;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }
  // Set while the server runs: its threads read it under the same lock.
  void SetAuditError(::clusterctl::Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    audit_error_ = std::move(s);
  }
  std::string WriteRefusal() override {
    std::lock_guard<std::mutex> lock(mu_);
    return refusal_;
  }
  void SetWriteRefusal(std::string why) {
    std::lock_guard<std::mutex> lock(mu_);
    refusal_ = std::move(why);
  }

  json status_doc;
  std::vector<audit::AuditRecord> records;
  std::string metrics_text = "# TYPE clusterctl_suspended gauge\nclusterctl_suspended 0\n";
  std::atomic<bool> healthy{true};

 private:
  void Record(const std::string& call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(call);
  }

  std::mutex mu_;
  std::vector<std::string> calls_;
  audit::AuditFilter last_filter;
  ::clusterctl::Status audit_error_;
  std::string refusal_;
  std::atomic<bool> suspended_{false};
};

std::string HmacHex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

// Sends `request` as raw bytes on a new connection and returns what the
// server answers until it closes the connection (or 5 s pass).
std::string RawExchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return answer;
}

// One answer, kept whole for the checks every test makes in TearDown.
struct Answer {
  int status = 0;  // 0: no answer (connection failed).
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  json Json() const { return json::parse(body, nullptr, false); }
};

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(DefaultOptions()); }

  void TearDown() override {
    if (server_) server_->Stop();
    // Nothing ever echoes a secret: not an answer, not a log line.
    std::lock_guard<std::mutex> lock(log_mu_);
    for (const Answer& a : answers_) {
      for (const std::string& secret : {std::string(kToken), std::string(kWebhookSecret)}) {
        EXPECT_EQ(std::string::npos, a.body.find(secret)) << a.body;
        for (const auto& [name, value] : a.headers) {
          EXPECT_EQ(std::string::npos, value.find(secret)) << name;
        }
      }
    }
    for (const std::string& line : log_) {
      EXPECT_EQ(std::string::npos, line.find(kToken)) << line;
      EXPECT_EQ(std::string::npos, line.find(kWebhookSecret)) << line;
    }
  }

  ApiServer::Options DefaultOptions() {
    ApiServer::Options o;
    o.listen = "127.0.0.1:0";
    o.token = kToken;
    o.webhook_secret = kWebhookSecret;
    o.max_body_bytes = 4096;
    o.threads = 4;
    o.clock = &clock_;
    o.metrics = &metrics_;
    o.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.push_back(line);
    };
    return o;
  }

  void StartServer(ApiServer::Options options) {
    if (server_) server_->Stop();
    server_ = std::make_unique<ApiServer>(&view_, std::move(options));
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
  }

  Answer Keep(const httplib::Result& r) {
    Answer a;
    if (r) {
      a.status = r->status;
      a.body = r->body;
      a.headers = r->headers;
    }
    std::lock_guard<std::mutex> lock(log_mu_);
    answers_.push_back(a);
    return a;
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_connection_timeout(5);
    c.set_read_timeout(10);
    return c;
  }

  static httplib::Headers Bearer(const std::string& token = kToken) {
    return {{"Authorization", "Bearer " + token}};
  }

  Answer Get(const std::string& path, const httplib::Headers& headers = Bearer()) {
    return Keep(Client().Get(path, headers));
  }
  Answer Post(const std::string& path, const std::string& body = "",
              const httplib::Headers& headers = Bearer()) {
    return Keep(Client().Post(path, headers, body, "application/json"));
  }

  // Every JSON answer says so.
  static void ExpectJson(const Answer& a) {
    EXPECT_EQ("application/json", a.header("Content-Type")) << a.body;
    EXPECT_FALSE(a.Json().is_discarded()) << a.body;
  }
  static void ExpectError(const Answer& a, int status, const std::string& parameter = "") {
    EXPECT_EQ(status, a.status) << a.body;
    ExpectJson(a);
    json j = a.Json();
    ASSERT_TRUE(j.is_object() && j.contains("error") && j["error"].is_string()) << a.body;
    if (!parameter.empty()) {
      EXPECT_EQ(parameter, j.value("parameter", "")) << a.body;
    }
  }

  FakeDaemonView view_;
  MetricsRegistry metrics_;
  FakeClock clock_{kNow};
  std::mutex log_mu_;
  std::vector<std::string> log_;
  std::vector<Answer> answers_;
  std::unique_ptr<ApiServer> server_;  // Last: stopped before the rest goes.
};

// The authenticated endpoints, each with a request that would succeed.
struct Endpoint {
  std::string method, path, body;
};
const std::vector<Endpoint>& AuthenticatedEndpoints() {
  static const std::vector<Endpoint> kEndpoints = {
      {"GET", "/api/v1/status", ""},
      {"GET", "/api/v1/alerts", ""},
      {"POST", "/api/v1/alerts/7/ack", R"({"for":"1h"})"},
      {"GET", "/api/v1/health", ""},
      {"GET", "/api/v1/stats", ""},
      {"GET", "/api/v1/graph", ""},
      {"GET", "/api/v1/revisions/diff?from=abcd&to=ef01", ""},
      {"GET", "/api/v1/audit/verify", ""},
      {"GET", "/api/v1/history?limit=5", ""},
      {"GET", "/api/v1/revisions", ""},
      {"GET", "/api/v1/audit?since=15m", ""},
      {"POST", "/api/v1/sync", ""},
      {"POST", "/api/v1/restart", R"({"service":"ollama"})"},
      {"POST", "/api/v1/suspend", ""},
      {"POST", "/api/v1/resume", ""},
  };
  return kEndpoints;
}

TEST_F(ApiServerTest, EveryAuthenticatedEndpointRefusesMissingOrWrongCredentials) {
  const std::vector<std::pair<std::string, httplib::Headers>> bad = {
      {"no header", {}},
      {"wrong token", Bearer("tok-7f3a9c1e5b2d4f60-secreT")},
      {"token prefix", Bearer(std::string(kToken).substr(0, 10))},
      {"token plus more", Bearer(std::string(kToken) + "x")},
      {"empty bearer", {{"Authorization", "Bearer "}}},
      {"basic scheme", {{"Authorization", std::string("Basic ") + kToken}}},
      {"token without scheme", {{"Authorization", kToken}}},
      {"webhook secret as token", Bearer(kWebhookSecret)},
  };
  for (const Endpoint& e : AuthenticatedEndpoints()) {
    for (const auto& [what, headers] : bad) {
      SCOPED_TRACE(e.method + " " + e.path + " with " + what);
      Answer a = e.method == "GET" ? Get(e.path, headers) : Post(e.path, e.body, headers);
      ExpectError(a, 401);
      EXPECT_EQ("Bearer realm=\"clusterd\"", a.header("WWW-Authenticate"));
    }
  }
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, EveryAuthenticatedEndpointAnswersTheRightToken) {
  for (const Endpoint& e : AuthenticatedEndpoints()) {
    SCOPED_TRACE(e.method + " " + e.path);
    Answer a = e.method == "GET" ? Get(e.path) : Post(e.path, e.body);
    EXPECT_EQ(200, a.status) << a.body;
    ExpectJson(a);
  }
  // "bearer" is case-insensitive (RFC 6750).
  EXPECT_EQ(200,
            Get("/api/v1/status", {{"Authorization", std::string("bearer ") + kToken}}).status);
  EXPECT_EQ(std::vector<std::string>(
                {"Ack 7 api@127.0.0.1 3600000 ", "Sync api request by api@127.0.0.1",
                 "Restart ollama  api@127.0.0.1", "Suspend api@127.0.0.1", "Resume api@127.0.0.1"}),
            view_.mutations());
}

TEST_F(ApiServerTest, AnEmptyConfiguredTokenRefusesEveryAuthenticatedCall) {
  ApiServer::Options o = DefaultOptions();
  o.token = "";
  StartServer(o);
  EXPECT_EQ(401, Get("/api/v1/status", {{"Authorization", "Bearer "}}).status);
  EXPECT_EQ(401, Get("/api/v1/status", Bearer("x")).status);
  ExpectError(Post("/api/v1/sync", "", Bearer("")), 401);
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
  // The unauthenticated endpoints still work.
  EXPECT_EQ(200, Get("/healthz", {}).status);
}

TEST_F(ApiServerTest, WebhookWithAValidSignatureSyncs) {
  const std::string body = R"({"ref":"refs/heads/main","after":"3f2c1e9"})";
  Answer a = Post("/api/v1/sync", body,
                  {{"X-Hub-Signature-256", "sha256=" + HmacHex(kWebhookSecret, body)},
                   {"X-GitHub-Event", "push"}});
  EXPECT_EQ(200, a.status) << a.body;
  ExpectJson(a);
  EXPECT_EQ(std::vector<std::string>({"Sync webhook from 127.0.0.1 (push)"}), view_.mutations());
}

TEST_F(ApiServerTest, WebhookWithABadSignatureIsRefusedAndChangesNothing) {
  const std::string body = R"({"ref":"refs/heads/main"})";
  const std::string good = HmacHex(kWebhookSecret, body);
  std::string flipped = good;
  flipped[10] = flipped[10] == 'a' ? 'b' : 'a';
  const std::vector<std::string> bad_signatures = {
      "sha256=" + flipped,
      "sha256=" + HmacHex(kWebhookSecret, body + " "),  // Signs another body.
      "sha256=" + HmacHex(kToken, body),                // Another key.
      "sha256=" + HmacHex("", body),                    // The empty key.
      "sha1=" + good,
      good,                              // No "sha256=".
      "sha256=" + good.substr(0, 62),    // Short.
      "sha256=" + good + "00",           // Long.
      "sha256=" + std::string(64, 'z'),  // Not hex.
      "",
  };
  for (const std::string& sig : bad_signatures) {
    SCOPED_TRACE(sig);
    ExpectError(Post("/api/v1/sync", body, {{"X-Hub-Signature-256", sig}}), 401);
  }
  // A signature only opens /sync, never another endpoint.
  ExpectError(Post("/api/v1/suspend", body, {{"X-Hub-Signature-256", "sha256=" + good}}), 401);
  ExpectError(Post("/api/v1/restart", body, {{"X-Hub-Signature-256", "sha256=" + good}}), 401);
  // A wrong token next to a good signature is still a wrong token.
  ExpectError(Post("/api/v1/sync", body,
                   {{"X-Hub-Signature-256", "sha256=" + good}, {"Authorization", "Bearer nope"}}),
              401);
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, WebhooksAreRefusedWithoutAConfiguredSecret) {
  ApiServer::Options o = DefaultOptions();
  o.webhook_secret = "";
  StartServer(o);
  const std::string body = "{}";
  // HMAC with an empty key is computable by anyone: it must not pass.
  ExpectError(Post("/api/v1/sync", body, {{"X-Hub-Signature-256", "sha256=" + HmacHex("", body)}}),
              401);
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
  // The token still works.
  EXPECT_EQ(200, Post("/api/v1/sync").status);
}

TEST_F(ApiServerTest, HealthzAndMetricsNeedNoAuth) {
  Answer h = Get("/healthz", {});
  EXPECT_EQ(200, h.status);
  ExpectJson(h);
  EXPECT_EQ(json({{"status", "ok"}}), h.Json());

  view_.healthy = false;
  Answer sick = Get("/healthz", {});
  EXPECT_EQ(503, sick.status);
  ExpectJson(sick);
  EXPECT_EQ("unhealthy", sick.Json()["status"]);
  EXPECT_EQ("reconcile loop stalled for 40s", sick.Json()["detail"]);

  Answer m = Get("/metrics", {});
  EXPECT_EQ(200, m.status);
  EXPECT_EQ(view_.metrics_text, m.body);
  EXPECT_EQ("text/plain; version=0.0.4; charset=utf-8", m.header("Content-Type"));
  // A token, even a wrong one, does not hurt.
  EXPECT_EQ(200, Get("/metrics", Bearer("wrong")).status);
}

TEST_F(ApiServerTest, StatusDocumentPassesThroughUnchanged) {
  Answer a = Get("/api/v1/status");
  EXPECT_EQ(200, a.status);
  ExpectJson(a);
  EXPECT_EQ(view_.status_doc, a.Json());
  EXPECT_EQ("no-store", a.header("Cache-Control"));
  // Typed answers of the view, in the JSON of docs/api.md.
  Answer alerts = Get("/api/v1/alerts");
  EXPECT_EQ(json::parse(R"([{"id": "7", "key": "crash_loop/m1/api", "kind": "crash_loop",
                             "machine": "m1", "service": "api", "severity": "critical",
                             "message": "x", "state": "firing", "since": ")" +
                        FormatRfc3339Ms(kNow - 60000) + R"(", "last_seen": ")" +
                        FormatRfc3339Ms(kNow - 1000) + R"(", "resolved": null, "count": 3,
                             "level": 0, "acknowledged": null}])"),
            alerts.Json());
  Answer revisions = Get("/api/v1/revisions");
  EXPECT_EQ(json::parse(R"([{"commit": "3f2c1e9", "author": "ana", "message": "add redis",
                             "commit_time": 1795343400, "applied_at": ")" +
                        FormatRfc3339Ms(kNow - 30000) + R"(", "result": "ok",
                             "actor": "clusterd@cpu-node", "trigger": "revision",
                             "detail": "3 ok", "quarantined": true}])"),
            revisions.Json());
}

TEST_F(ApiServerTest, HistoryAndRevisionsLimits) {
  EXPECT_EQ(200, Get("/api/v1/history").status);
  EXPECT_EQ(200, Get("/api/v1/history?limit=7").status);
  EXPECT_EQ(200, Get("/api/v1/history?limit=5000").status);
  EXPECT_EQ(200, Get("/api/v1/history?limit=99999999999999999999999").status);
  EXPECT_EQ(200, Get("/api/v1/revisions?limit=3").status);
  EXPECT_EQ(200, Get("/api/v1/revisions").status);
  EXPECT_EQ(std::vector<std::string>({"History 20", "History 7", "History 1000", "History 1000",
                                      "Revisions 3", "Revisions 20"}),
            view_.calls());
  view_.Clear();
  for (const char* bad : {"0", "-1", "abc", "", "5x", "1.5"}) {
    SCOPED_TRACE(bad);
    ExpectError(Get(std::string("/api/v1/history?limit=") + bad), 400, "limit");
  }
  ExpectError(Get("/api/v1/history?limit=1&limit=2"), 400, "limit");
  ExpectError(Get("/api/v1/history?lmit=2"), 400, "lmit");
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, AuditFiltersPassThrough) {
  Answer a =
      Get("/api/v1/audit?since=15m&until=now&service=ollama&machine=jetson&action=start&result=ok"
          "&revision=3F2c&actor=clusterd&trigger=drift&limit=7&reverse=true");
  EXPECT_EQ(200, a.status) << a.body;
  audit::AuditFilter f = view_.filter();
  EXPECT_EQ(kNow - 15 * 60 * 1000, f.since_ms.value_or(0));
  EXPECT_EQ(kNow, f.until_ms.value_or(0));
  EXPECT_EQ("ollama", f.service);
  EXPECT_EQ("jetson", f.machine);
  EXPECT_EQ("start", f.action);
  EXPECT_EQ("ok", f.result);
  EXPECT_EQ("3F2c", f.revision_prefix);
  EXPECT_EQ("clusterd", f.actor);
  EXPECT_EQ("drift", f.trigger);
  EXPECT_TRUE(f.oldest_first);
  EXPECT_EQ(8u, f.limit);  // One more than the page, to know whether a next page exists.
  EXPECT_EQ(0u, f.after_seq);
  EXPECT_EQ(0u, f.before_seq);
  // The records that match, oldest first: drift (even seq), ollama (not % 5).
  std::vector<uint64_t> seqs;
  const json page = a.Json();
  for (const json& r : page["records"]) seqs.push_back(r["seq"].get<uint64_t>());
  EXPECT_EQ(std::vector<uint64_t>({2, 4, 6, 8, 12, 14, 16}), seqs);
  EXPECT_EQ(ToJson(view_.records[1]), page["records"][0]);

  // Defaults: newest first, 50, no time bounds.
  ASSERT_EQ(200, Get("/api/v1/audit").status);
  f = view_.filter();
  EXPECT_FALSE(f.since_ms.has_value());
  EXPECT_FALSE(f.until_ms.has_value());
  EXPECT_FALSE(f.oldest_first);
  EXPECT_EQ(51u, f.limit);

  // RFC 3339, with the '+' of the offset encoded (%2B) or sent raw.
  const int64_t expected = ParseRfc3339("2026-11-18T10:00:00+01:00").value();
  ASSERT_EQ(200, Get("/api/v1/audit?since=2026-11-18T10:00:00%2B01:00").status);
  EXPECT_EQ(expected, view_.filter().since_ms.value_or(0));
  ASSERT_EQ(200, Get("/api/v1/audit?since=2026-11-18T10:00:00+01:00").status);
  EXPECT_EQ(expected, view_.filter().since_ms.value_or(0));
  ASSERT_EQ(200, Get("/api/v1/audit?until=2026-11-18T09:00:00Z").status);
  EXPECT_EQ(ParseRfc3339("2026-11-18T09:00:00Z").value(), view_.filter().until_ms.value_or(0));
}

TEST_F(ApiServerTest, InvalidAuditFiltersAre400NamingTheParameter) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"since=yesterday", "since"},   {"until=15x", "until"},
      {"since=1h&until=2h", "since"},  // since after until.
      {"trigger=cron", "trigger"},    {"result=great", "result"},
      {"revision=xyz", "revision"},   {"limit=0", "limit"},
      {"limit=ten", "limit"},         {"reverse=maybe", "reverse"},
      {"cursor=zzz", "cursor"},       {"cursor=b0", "cursor"},
      {"cursor=a5", "cursor"},  // An oldest-first cursor on a newest-first listing.
      {"servce=ollama", "servce"},    {"service=a&service=b", "service"},
  };
  for (const auto& [query, parameter] : cases) {
    SCOPED_TRACE(query);
    Answer a = Get("/api/v1/audit?" + query);
    ExpectError(a, 400, parameter);
    EXPECT_NE(std::string::npos, a.Json()["error"].get<std::string>().find(parameter)) << a.body;
  }
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, AFollowerRefusesEveryWriteNamingTheLeaderAndStillServesReads) {
  view_.SetWriteRefusal("this clusterd (node-b) is a follower; the leader is node-a");
  for (const char* path : {"/api/v1/sync", "/api/v1/suspend", "/api/v1/resume"}) {
    Answer a = Post(path);
    ExpectError(a, 409);
    EXPECT_NE(std::string::npos, a.body.find("the leader is node-a")) << path;
  }
  Answer r = Post("/api/v1/restart", R"({"service": "api"})");
  ExpectError(r, 409);
  EXPECT_TRUE(view_.mutations().empty());
  EXPECT_EQ(200, Get("/api/v1/status").status);
  EXPECT_EQ(200, Get("/api/v1/audit").status);
  view_.SetWriteRefusal("");
  EXPECT_EQ(200, Post("/api/v1/sync").status);
  EXPECT_EQ(1u, view_.mutations().size());
}

TEST_F(ApiServerTest, AuditErrorsOfTheViewAreReported) {
  view_.SetAuditError(::clusterctl::Status::Unavailable("store closed"));
  Answer a = Get("/api/v1/audit");
  ExpectError(a, 503);
  EXPECT_NE(std::string::npos, a.body.find("store closed"));
}

// Pages through every record with `query`; returns the seqs in order.
std::vector<uint64_t> PageThrough(const std::function<Answer(const std::string&)>& get,
                                  const std::string& query, size_t* pages) {
  std::vector<uint64_t> seqs;
  std::string cursor;
  *pages = 0;
  while (true) {
    std::string path = "/api/v1/audit?" + query;
    if (!cursor.empty()) path += "&cursor=" + cursor;
    Answer a = get(path);
    EXPECT_EQ(200, a.status) << a.body;
    if (a.status != 200 || *pages > 100) break;
    ++*pages;
    json j = a.Json();
    for (const json& r : j["records"]) seqs.push_back(r["seq"].get<uint64_t>());
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"].get<std::string>();
    EXPECT_FALSE(cursor.empty());
  }
  return seqs;
}

TEST_F(ApiServerTest, AuditCursorPagesWithoutOverlapOrGap) {
  auto get = [this](const std::string& path) { return Get(path); };
  std::vector<uint64_t> newest_first, oldest_first;
  for (uint64_t s = 25; s >= 1; --s) newest_first.push_back(s);
  for (uint64_t s = 1; s <= 25; ++s) oldest_first.push_back(s);
  size_t pages = 0;

  EXPECT_EQ(newest_first, PageThrough(get, "limit=10", &pages));
  EXPECT_EQ(3u, pages);
  EXPECT_EQ(oldest_first, PageThrough(get, "limit=10&reverse=true", &pages));
  EXPECT_EQ(3u, pages);
  // A page size that divides the total: no empty last page.
  EXPECT_EQ(newest_first, PageThrough(get, "limit=5", &pages));
  EXPECT_EQ(5u, pages);
  // With a filter: only redis (seq 5, 10, 15, 20, 25).
  EXPECT_EQ(std::vector<uint64_t>({25, 20, 15, 10, 5}),
            PageThrough(get, "service=redis&limit=2", &pages));
  EXPECT_EQ(3u, pages);
  // The first page's cursor carries the last record shown.
  Answer first = Get("/api/v1/audit?limit=10");
  Answer second =
      Get("/api/v1/audit?limit=10&cursor=" + first.Json()["next_cursor"].get<std::string>());
  EXPECT_EQ(16u, view_.filter().before_seq);
  EXPECT_EQ(15u, second.Json()["records"][0]["seq"].get<uint64_t>());
  // Nothing matches: an empty page, no cursor.
  Answer none = Get("/api/v1/audit?service=nothing");
  EXPECT_EQ(json({{"records", json::array()}, {"next_cursor", nullptr}}), none.Json());
}

TEST_F(ApiServerTest, RestartValidatesItsBody) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not json", "body"},
      {"", "body"},
      {"[\"ollama\"]", "body"},
      {"{}", "service"},
      {R"({"service": ""})", "service"},
      {R"({"service": 5})", "service"},
      {R"({"service": "ollama", "machine": 7})", "machine"},
      {R"({"service": "ollama", "machnie": "jetson"})", "machnie"},
  };
  for (const auto& [body, parameter] : bad) {
    SCOPED_TRACE(body);
    ExpectError(Post("/api/v1/restart", body), 400, parameter);
  }
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());

  Answer unknown = Post("/api/v1/restart", R"({"service": "nope"})");
  ExpectError(unknown, 404);
  EXPECT_NE(std::string::npos, unknown.body.find("no service \\\"nope\\\""));

  Answer ok = Post("/api/v1/restart", R"({"service": "ollama", "machine": "jetson"})");
  EXPECT_EQ(200, ok.status) << ok.body;
  ExpectJson(ok);
  EXPECT_EQ("jetson", ok.Json()["machine"]);
  Answer all = Post("/api/v1/restart", R"({"service": "ollama", "machine": null})");
  EXPECT_EQ(200, all.status) << all.body;
  EXPECT_EQ(std::vector<std::string>({"Restart nope  api@127.0.0.1",
                                      "Restart ollama jetson api@127.0.0.1",
                                      "Restart ollama  api@127.0.0.1"}),
            view_.mutations());
}

TEST_F(ApiServerTest, AlertsTakeStateAndSinceAndRefuseOthers) {
  EXPECT_EQ(200, Get("/api/v1/alerts?state=all&since=2026-01-01T00:00:00Z").status);
  EXPECT_EQ(200, Get("/api/v1/alerts?state=resolved").status);
  EXPECT_EQ(std::vector<std::string>({"Alerts 2 1767225600000", "Alerts 1 0"}), view_.calls());
  ExpectError(Get("/api/v1/alerts?state=open"), 400, "state");
  ExpectError(Get("/api/v1/alerts?since=yesterday"), 400, "since");
  ExpectError(Get("/api/v1/alerts?limit=3"), 400, "limit");
}

TEST_F(ApiServerTest, AckTakesAnIdOrKeyADurationAndANoteAndNamesTheActor) {
  httplib::Headers h = Bearer();
  h.emplace("X-Clusterctl-Actor", "alice@laptop");
  Answer ok = Post("/api/v1/alerts/7/ack", R"({"for": "30m", "note": "fixing the disk"})", h);
  ASSERT_EQ(200, ok.status) << ok.body;
  EXPECT_EQ("alice@laptop", ok.Json()["acknowledged"]["by"]);
  EXPECT_EQ(FormatRfc3339Ms(kNow + 30 * 60000), ok.Json()["acknowledged"]["until"]);
  // A dedup key (slashes percent-encoded) reaches the view whole.
  ExpectError(Post("/api/v1/alerts/crash_loop%2Fm1%2Fapi/ack", "{}"), 404);
  for (const auto& [body, parameter] :
       std::vector<std::pair<std::string, std::string>>{{R"({"for": "forever"})", "for"},
                                                        {R"({"for": "90d"})", "for"},
                                                        {R"({"for": 5})", "for"},
                                                        {R"({"until": "1h"})", "until"},
                                                        {"[1]", "body"}}) {
    SCOPED_TRACE(body);
    ExpectError(Post("/api/v1/alerts/7/ack", body), 400, parameter);
  }
  ExpectError(Post("/api/v1/alerts//ack", "{}"), 404);
  EXPECT_EQ(std::vector<std::string>({"Ack 7 alice@laptop 1800000 fixing the disk",
                                      "Ack crash_loop/m1/api api@127.0.0.1 3600000 "}),
            view_.mutations());
}

TEST_F(ApiServerTest, HealthSummarizesTheStatusDocumentAndStatsAreServed) {
  Answer h = Get("/api/v1/health");
  ASSERT_EQ(200, h.status) << h.body;
  const json j = h.Json();
  EXPECT_EQ(view_.status_doc["overall_status"], j["status"]);
  EXPECT_EQ(view_.status_doc["timestamp"], j["last_check"]);
  EXPECT_EQ(1, j["alerts"]["critical"]);
  Answer s = Get("/api/v1/stats");
  ASSERT_EQ(200, s.status) << s.body;
  EXPECT_EQ(5.0, s.Json()["process"]["uptime_seconds"]);
  EXPECT_EQ(0.5, s.Json()["availability"]["api"]["windows"]["1h"]["availability"]);
  EXPECT_EQ(30000, s.Json()["availability"]["api"]["windows"]["1h"]["mttr_ms"]);
}

TEST_F(ApiServerTest, TheDashboardAddsNoUnauthenticatedDataEndpoint) {
  // Without credentials only /healthz, /metrics and the dashboard's static
  // files answer; the files are the embedded bytes and ask the view nothing.
  int assets = 0;
  for (const ApiServer::RouteInfo& r : ApiServer::RouteTable()) {
    if (r.authenticated) continue;
    SCOPED_TRACE(r.path);
    if (r.path == "/healthz" || r.path == "/metrics") continue;
    const dashboard::Asset* a = dashboard::Find(r.path == "/" ? "index.html" : r.path.substr(1));
    ASSERT_NE(nullptr, a) << "an unauthenticated route that is not a dashboard file";
    ++assets;
    view_.Clear();
    auto res = Client().Get(r.path.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(200, res->status);
    EXPECT_EQ(std::string(a->content), res->body);
    EXPECT_EQ(std::string(a->content_type), res->get_header_value("Content-Type"));
    EXPECT_EQ(dashboard::kContentSecurityPolicy, res->get_header_value("Content-Security-Policy"));
    EXPECT_EQ("nosniff", res->get_header_value("X-Content-Type-Options"));
    EXPECT_EQ(std::vector<std::string>{}, view_.calls());
  }
  EXPECT_EQ(static_cast<int>(dashboard::All().size()) + 1, assets);  // Each file, and "/".
  // Unknown files are 404s, not the page.
  EXPECT_EQ(404, Client().Get("/secrets.js")->status);
  EXPECT_EQ(404, Client().Get("/../etc/passwd")->status);
}

TEST_F(ApiServerTest, RevisionDiffsGraphAndVerifyAnswerTheirDocuments) {
  Answer d = Get("/api/v1/revisions/diff?from=abcd&to=ef01");
  ASSERT_EQ(200, d.status) << d.body;
  EXPECT_EQ(json::parse(R"({"from": "abcd", "to": "ef01", "files": [
      {"path": "services/api.yaml", "status": "modified", "diff": "@@ -1,2 +1,2 @@\n a\n-b\n+c\n"},
      {"path": "services/new.yaml", "status": "added", "diff": "@@ -0,0 +1,1 @@\n+x\n"}]})"),
            d.Json());
  ExpectError(Get("/api/v1/revisions/diff?from=HEAD~1&to=ef01"), 400, "from");
  ExpectError(Get("/api/v1/revisions/diff?from=abcd"), 400, "to");
  ExpectError(Get("/api/v1/revisions/diff?from=dead&to=ef01"), 404);
  Answer v = Get("/api/v1/audit/verify");
  ASSERT_EQ(200, v.status);
  EXPECT_EQ(true, v.Json()["ok"]);
  EXPECT_EQ(42, v.Json()["records"]);
  EXPECT_EQ(200, Get("/api/v1/graph").status);
  Answer revisions = Get("/api/v1/revisions");
  EXPECT_EQ(true, revisions.Json()[0]["quarantined"]);
}

TEST_F(ApiServerTest, ActorHeaderOfAnAuthenticatedClientNamesTheActor) {
  httplib::Headers h = Bearer();
  h.emplace("X-Clusterctl-Actor", "alice@laptop");
  EXPECT_EQ(200, Post("/api/v1/restart", R"({"service":"ollama"})", h).status);
  Answer s = Post("/api/v1/suspend", "", h);
  EXPECT_EQ(200, s.status);
  EXPECT_EQ(json({{"suspended", true}, {"actor", "alice@laptop"}}), s.Json());
  Answer r = Post("/api/v1/resume", "", h);
  EXPECT_EQ(json({{"suspended", false}, {"actor", "alice@laptop"}}), r.Json());
  EXPECT_EQ(200, Post("/api/v1/sync", "", h).status);

  // A malformed actor is refused before anything happens.
  for (const char* bad : {"alice", "@host", "alice@", "a@b@c", "alice@host name", "al\"ice@h"}) {
    SCOPED_TRACE(bad);
    httplib::Headers hb = Bearer();
    hb.emplace("X-Clusterctl-Actor", bad);
    ExpectError(Post("/api/v1/suspend", "", hb), 400, "X-Clusterctl-Actor");
  }
  // A webhook cannot choose its actor.
  const std::string body = "{}";
  EXPECT_EQ(200, Post("/api/v1/sync", body,
                      {{"X-Hub-Signature-256", "sha256=" + HmacHex(kWebhookSecret, body)},
                       {"X-Clusterctl-Actor", "mallory@evil"}})
                     .status);
  EXPECT_EQ(std::vector<std::string>({"Restart ollama  alice@laptop", "Suspend alice@laptop",
                                      "Resume alice@laptop", "Sync api request by alice@laptop",
                                      "Sync webhook from 127.0.0.1"}),
            view_.mutations());
}

TEST_F(ApiServerTest, BodyOverTheLimitIs413AndChangesNothing) {
  std::string big = R"({"service":"ollama","pad":")" + std::string(5000, 'x') + "\"}";
  Answer a = Post("/api/v1/restart", big);
  ExpectError(a, 413);
  Answer hook = Post("/api/v1/sync", big,
                     {{"X-Hub-Signature-256", "sha256=" + HmacHex(kWebhookSecret, big)}});
  EXPECT_EQ(413, hook.status);
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
  // Just under the limit is read (and then refused for its content).
  std::string fits = R"({"service":"ollama","pad":")" + std::string(4000, 'x') + "\"}";
  ExpectError(Post("/api/v1/restart", fits), 400, "pad");
}

TEST_F(ApiServerTest, PostWithoutContentLengthIsServedAtOnce) {
  // `curl -X POST` sends neither Content-Length nor a body: no waiting for one.
  auto start = std::chrono::steady_clock::now();
  std::string answer = RawExchange(server_->port(),
                                   "POST /api/v1/sync HTTP/1.1\r\nHost: x\r\n"
                                   "Authorization: Bearer " +
                                       std::string(kToken) + "\r\nConnection: close\r\n\r\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 200", 0)) << answer;
  answer = RawExchange(server_->port(),
                       "POST /api/v1/suspend HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(0u, answer.rfind("HTTP/1.1 401", 0)) << answer;
  EXPECT_EQ(std::vector<std::string>({"Sync api request by api@127.0.0.1"}), view_.mutations());
}

TEST_F(ApiServerTest, UnboundedBodiesAreRefusedBeforeReading) {
  // httplib does not bound chunked or compressed bodies: both are refused.
  const std::string auth = "Authorization: Bearer " + std::string(kToken) + "\r\n";
  std::string chunked =
      RawExchange(server_->port(), "POST /api/v1/restart HTTP/1.1\r\nHost: x\r\n" + auth +
                                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                       "14\r\n{\"service\":\"ollama\"}\r\n0\r\n\r\n");
  EXPECT_EQ(0u, chunked.rfind("HTTP/1.1 411", 0)) << chunked;
  EXPECT_NE(std::string::npos, chunked.find("Content-Length")) << chunked;
  std::string gzip =
      RawExchange(server_->port(), "POST /api/v1/restart HTTP/1.1\r\nHost: x\r\n" + auth +
                                       "Content-Encoding: gzip\r\nContent-Length: 4\r\n"
                                       "Connection: close\r\n\r\nabcd");
  EXPECT_EQ(0u, gzip.rfind("HTTP/1.1 415", 0)) << gzip;
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, UnknownPathsAre404AndWrongMethods405) {
  ExpectError(Get("/api/v1/nothing"), 404);
  ExpectError(Get("/index.htm"), 404);  // "/" is the dashboard (TheDashboardAdds...).
  ExpectError(Get("/api/v1/status/"), 404);
  ExpectError(Get("/api/v1/status", {}), 401);
  Answer a = Get("/api/v1/sync");
  ExpectError(a, 405);
  EXPECT_EQ("POST", a.header("Allow"));
  Answer b = Post("/api/v1/status");
  ExpectError(b, 405);
  EXPECT_EQ("GET", b.header("Allow"));
  Answer c = Keep(Client().Delete("/api/v1/restart", Bearer()));
  ExpectError(c, 405);
  Answer d = Keep(Client().Put("/healthz", "", "text/plain"));
  ExpectError(d, 405);
  EXPECT_EQ(std::vector<std::string>{}, view_.calls());
}

TEST_F(ApiServerTest, CountsRequestsAndLogsWithoutSecrets) {
  EXPECT_EQ(401, Get("/api/v1/status", Bearer("wrong")).status);
  EXPECT_EQ(200, Get("/api/v1/status").status);
  server_->Stop();  // The logger runs after the answer: wait for it.
  EXPECT_EQ(1, metrics_.Value(kMetricApiRequests, {{"route", "/api/v1/status"}, {"code", "401"}}));
  EXPECT_EQ(1, metrics_.Value(kMetricApiRequests, {{"route", "/api/v1/status"}, {"code", "200"}}));
  std::lock_guard<std::mutex> lock(log_mu_);
  bool saw_401 = false;
  for (const std::string& line : log_) {
    if (line == "GET /api/v1/status 401 from 127.0.0.1: invalid token") saw_401 = true;
  }
  EXPECT_TRUE(saw_401);
}

TEST_F(ApiServerTest, ServesConcurrentClients) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      httplib::Client c("127.0.0.1", server_->port());
      for (int i = 0; i < 25; ++i) {
        auto r = c.Get("/api/v1/status", Bearer());
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(100, ok.load());
}

TEST_F(ApiServerTest, PortInUseIsAClearError) {
  ApiServer::Options o = DefaultOptions();
  o.listen = "127.0.0.1:" + std::to_string(server_->port());
  ApiServer second(&view_, o);
  ::clusterctl::Status s = second.Start();
  EXPECT_EQ(Code::kUnavailable, s.code());
  EXPECT_NE(std::string::npos, s.message().find(o.listen)) << s.message();
  // The first server still answers.
  EXPECT_EQ(200, Get("/healthz", {}).status);
}

TEST_F(ApiServerTest, BadListenAddressesAreInvalid) {
  for (const char* listen : {"7480", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", "::1:80"}) {
    ApiServer::Options o = DefaultOptions();
    o.listen = listen;
    ApiServer s(&view_, o);
    EXPECT_EQ(Code::kInvalid, s.Start().code()) << listen;
  }
}

TEST_F(ApiServerTest, StopIsIdempotentAndClosesThePort) {
  const int port = server_->port();
  server_->Stop();
  server_->Stop();
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1);
  EXPECT_FALSE(c.Get("/healthz"));
  ApiServer never_started(&view_, DefaultOptions());
  never_started.Stop();
  // The port is free again at once (SO_REUSEADDR).
  ApiServer::Options o = DefaultOptions();
  o.listen = "127.0.0.1:" + std::to_string(port);
  ApiServer again(&view_, o);
  EXPECT_TRUE(again.Start().ok());
  again.Stop();
}

TEST_F(ApiServerTest, ServesIpv6Loopback) {
  ApiServer::Options o = DefaultOptions();
  o.listen = "[::1]:0";
  ApiServer v6(&view_, o);
  ::clusterctl::Status s = v6.Start();
  if (!s.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << s.ToString();
  httplib::Client c("::1", v6.port());
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(200, r->status);
}

}  // namespace
}  // namespace clusterctl::api
