#include "api/api.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/sha256.h"
#include "base/time_format.h"

namespace clusterctl::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace api_detail {

// One complete request as the handlers see it.
struct Request {
  std::string method;                              // As sent: "GET", "HEAD", "POST", ...
  std::string path;                                // Percent-decoded, without the query.
  std::multimap<std::string, std::string> params;  // Decoded query ('+' is a space).
  http::fields headers;                            // Case-insensitive lookup.
  std::string body;
  std::string remote_addr;

  bool has_header(std::string_view name) const {
    return headers.find(beast::string_view(name.data(), name.size())) != headers.end();
  }
  // The first value of header `name`; "" when absent.
  std::string get_header_value(std::string_view name) const {
    auto it = headers.find(beast::string_view(name.data(), name.size()));
    if (it == headers.end()) return "";
    return std::string(it->value().data(), it->value().size());
  }
};

// One answer, built by the handlers.
struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  void set_header(const std::string& name, const std::string& value) {
    headers.emplace_back(name, value);
  }
  void set_content(std::string content, const std::string& content_type) {
    body = std::move(content);
    set_header("Content-Type", content_type);
  }
};

}  // namespace api_detail

namespace {

using api_detail::Request;
using api_detail::Response;

using json = nlohmann::json;

constexpr size_t kDefaultListLimit = 20;   // history, revisions
constexpr size_t kDefaultAuditLimit = 50;  // audit (AuditFilter's default)
constexpr size_t kMaxLimit = 1000;         // every list
// How long a refused connection is drained before it is closed, so the
// client reads the answer instead of a reset.
constexpr auto kLingerTime = std::chrono::milliseconds(500);
constexpr size_t kLingerBytes = 64 << 10;
// How long accepting pauses when the process is out of file descriptors.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);

// Every JSON answer goes out through here: invalid UTF-8 in a view's data
// (a service's detail text, ...) is replaced instead of throwing.
void ReplyJson(Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// {"error": message, "parameter": parameter (when given)}.
void ReplyError(Response& res, int status, const std::string& message,
                const std::string& parameter = "") {
  json body = {{"error", message}};
  if (!parameter.empty()) body["parameter"] = parameter;
  ReplyJson(res, status, body);
}

// The HTTP status for a Status from the DaemonView.
int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalid:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kConflict:
      return 409;
    case Code::kPermission:
      return 403;
    case Code::kUnavailable:
    case Code::kTimeout:
    case Code::kResourceExhausted:
      return 503;
    case Code::kInternal:
      return 500;
  }
  return 500;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Whether `signature_header` ("sha256=<64 hex>") is the HMAC-SHA256 of `body`
// under `secret`.
bool ValidWebhookSignature(std::string_view signature_header, std::string_view body,
                           const std::string& secret) {
  constexpr std::string_view kPrefix = "sha256=";
  if (signature_header.size() != kPrefix.size() + 2 * SHA256_DIGEST_LENGTH) return false;
  if (signature_header.substr(0, kPrefix.size()) != kPrefix) return false;
  std::array<unsigned char, SHA256_DIGEST_LENGTH> given{};
  std::string_view hex = signature_header.substr(kPrefix.size());
  for (size_t i = 0; i < given.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    given[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac.data(),
           &mac_len) == nullptr ||
      mac_len != SHA256_DIGEST_LENGTH) {
    return false;
  }
  return CRYPTO_memcmp(mac.data(), given.data(), given.size()) == 0;
}

// Whether every character of `s` is a letter, digit, '.', '_', '-' or one
// of `extra`.
bool NameChars(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || extra.find(c) != std::string_view::npos;
  });
}

// "alice@laptop": a user and a host spelled as user and host names are.
bool ValidActor(std::string_view actor) {
  if (actor.empty() || actor.size() > 256) return false;
  size_t at = actor.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == actor.size()) return false;
  if (actor.find('@', at + 1) != std::string_view::npos) return false;
  return NameChars(actor.substr(0, at), "+") && NameChars(actor.substr(at + 1), ":");
}

// A request path as it may appear in a log line or an answer: printable
// ASCII, bounded.
std::string PrintablePath(std::string_view path) {
  std::string out;
  for (char c : path.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (path.size() > 200) out += "...";
  return out;
}

// "127.0.0.1:7480" / "[::1]:0" / ":7480" -> host and port.
Status ParseListen(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::Invalid("listen \"" + listen + "\": expected host:port, e.g. 127.0.0.1:7480");
  }
  std::string h = listen.substr(0, colon);
  std::string p = listen.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return Status::Invalid("listen \"" + listen +
                           "\": write IPv6 addresses in brackets, e.g. [::1]:7480");
  }
  if (h.empty()) h = "0.0.0.0";
  int value = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value < 0 || value > 65535) {
    return Status::Invalid("listen \"" + listen + "\": port must be a number from 0 to 65535");
  }
  *host = h;
  *port = value;
  return Status::Ok();
}

// The value of query parameter `name`, if given.
std::optional<std::string> Param(const Request& req, const std::string& name) {
  auto it = req.params.find(name);
  if (it == req.params.end()) return std::nullopt;
  return it->second;
}

// Parses "limit": a whole number >= 1; larger than kMaxLimit is lowered to
// kMaxLimit. Absent: `default_limit`.
bool ParseLimit(const std::optional<std::string>& text, size_t default_limit, size_t* out,
                std::string* error) {
  if (!text) {
    *out = default_limit;
    return true;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (text->empty() || end != text->data() + text->size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range) ||
      (ec == std::errc() && v == 0)) {
    *error = "limit: expected a whole number from 1 to " + std::to_string(kMaxLimit) + ", got \"" +
             *text + "\"";
    return false;
  }
  *out = (ec == std::errc::result_out_of_range || v > kMaxLimit) ? kMaxLimit : v;
  return true;
}

bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "1" || text == "yes") {
    *out = true;
  } else if (text == "false" || text == "0" || text == "no") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

// Audit cursors: "b<seq>" continues a newest-first listing (records listed
// before record seq), "a<seq>" an oldest-first one. Opaque to clients.
std::string MakeCursor(bool oldest_first, uint64_t seq) {
  return (oldest_first ? "a" : "b") + std::to_string(seq);
}

bool ParseCursor(const std::string& text, bool* oldest_first, uint64_t* seq) {
  if (text.size() < 2 || (text[0] != 'a' && text[0] != 'b')) return false;
  auto [end, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), *seq);
  if (ec != std::errc() || end != text.data() + text.size() || *seq == 0) return false;
  *oldest_first = text[0] == 'a';
  return true;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

struct ApiServer::Route {
  // How a route authenticates its callers.
  enum class Auth {
    kNone,            // /healthz, /metrics
    kToken,           // Authorization: Bearer <token>
    kTokenOrWebhook,  // the token, or X-Hub-Signature-256 over the body
  };
  const char* method;
  const char* path;
  Auth auth;
  void (ApiServer::*handler)(Call&);
};

// One request being served.
struct ApiServer::Call {
  Call(const Request& rq, Response& rs) : req(rq), res(rs) {}

  const Request& req;
  Response& res;
  bool by_token = false;    // Authenticated with the bearer token.
  bool by_webhook = false;  // Authenticated with a webhook signature.
  std::string actor;        // Who manual actions are done for.

  // Answers 400 and returns false when the query has a parameter outside
  // `allowed`, or one given twice.
  bool CheckParams(std::initializer_list<std::string_view> allowed) {
    for (auto it = req.params.begin(); it != req.params.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it->first) == allowed.end()) {
        std::string known;
        for (std::string_view a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
        ReplyError(res, 400,
                   "unknown query parameter \"" + it->first + "\"" +
                       (known.empty() ? std::string(" (this endpoint takes none)")
                                      : "; this endpoint takes " + known),
                   it->first);
        return false;
      }
      if (req.params.count(it->first) > 1) {
        ReplyError(res, 400, it->first + ": given more than once", it->first);
        return false;
      }
    }
    return true;
  }
};

const std::vector<ApiServer::Route>& ApiServer::Routes() {
  using Auth = Route::Auth;
  static const std::vector<Route> kRoutes = {
      {"GET", "/healthz", Auth::kNone, &ApiServer::HandleHealthz},
      {"GET", "/metrics", Auth::kNone, &ApiServer::HandleMetrics},
      {"GET", "/api/v1/status", Auth::kToken, &ApiServer::HandleStatus},
      {"GET", "/api/v1/alerts", Auth::kToken, &ApiServer::HandleAlerts},
      {"GET", "/api/v1/history", Auth::kToken, &ApiServer::HandleHistory},
      {"GET", "/api/v1/revisions", Auth::kToken, &ApiServer::HandleRevisions},
      {"GET", "/api/v1/audit", Auth::kToken, &ApiServer::HandleAudit},
      {"POST", "/api/v1/sync", Auth::kTokenOrWebhook, &ApiServer::HandleSync},
      {"POST", "/api/v1/restart", Auth::kToken, &ApiServer::HandleRestart},
      {"POST", "/api/v1/suspend", Auth::kToken, &ApiServer::HandleSuspend},
      {"POST", "/api/v1/resume", Auth::kToken, &ApiServer::HandleResume},
  };
  return kRoutes;
}

namespace {

// "%2B" -> '+'; with `plus_is_space`, '+' -> ' ' (query strings). A '%' not
// followed by two hex digits stays as it is.
std::string DecodeUrl(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// "a=1&b=&c" -> {a: 1, b: "", c: ""}; empty names are skipped.
std::multimap<std::string, std::string> ParseQuery(std::string_view query) {
  std::multimap<std::string, std::string> params;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (!key.empty()) params.emplace(DecodeUrl(key, true), DecodeUrl(value, true));
  }
  return params;
}

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

}  // namespace

// The server's I/O state. Everything but the thread pools is touched on the
// I/O thread only.
struct ApiServer::Impl {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_backoff{io};
  asio::thread_pool workers;
  asio::thread_pool health{1};  // /healthz only.
  std::thread io_thread;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  bool stopping = false;
  bool refusing = false;  // Over max_connections since the last log line.

  explicit Impl(int threads) : workers(static_cast<size_t>(threads)) {}
};

// One client connection, driven on the I/O thread: read a request (bounded
// by the parser's limits and a deadline), hand it to a worker, write the
// answer, repeat while the client keeps the connection alive.
class ApiServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ApiServer* server, tcp::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(server->options_.max_header_bytes + 8192) {
    beast::error_code ec;
    tcp::endpoint remote = socket_.remote_endpoint(ec);
    remote_ = ec ? "unknown" : remote.address().to_string();
    socket_.set_option(tcp::no_delay(true), ec);
  }

  void Start() { ReadRequest(); }

  // Waiting for (the rest of) a request, not serving or answering one.
  bool idle() const { return state_ == State::kReading; }

  // Closes the socket and forgets the connection. Idempotent.
  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    ++generation_;
    beast::error_code ec;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    server_->impl_->connections.erase(this);
  }

 private:
  enum class State { kReading, kServing, kWriting, kLingering, kClosed };

  const Options& options() const { return server_->options_; }

  // Arms the connection's one timer; `on_expiry` runs unless the timer is
  // re-armed, cancelled, or the connection closed first.
  template <typename F>
  void Arm(std::chrono::milliseconds after, F on_expiry) {
    const uint64_t generation = ++generation_;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), generation, on_expiry](beast::error_code ec) {
      if (ec || self->generation_ != generation || self->state_ == State::kClosed) return;
      on_expiry(*self);
    });
  }

  void ReadRequest() {
    state_ = State::kReading;
    timed_out_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(options().max_body_bytes);
    Arm(options().request_timeout, [](Connection& c) {
      c.timed_out_ = true;
      beast::error_code ignored;
      c.socket_.cancel(ignored);
    });
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Answers a read that failed or timed out (408, 431, 413, 400), or
  // closes the connection when the client went away.
  void ReadFailed(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (timed_out_) {
      if (parser_->got_some() || buffer_.size() > 0) {
        Refuse(408, "request not complete within " +
                        std::to_string(options().request_timeout.count()) + " ms");
      } else {
        Close();  // An idle connection: nothing to answer.
      }
      return;
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Refuse(431, "request header too large: more than " +
                      std::to_string(options().max_header_bytes) + " bytes");
    } else if (ec == http::error::body_limit) {
      Refuse(413, "request body too large");
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      Refuse(400, "malformed request: " + ec.message());
    } else {
      Close();  // The client went away (or reset).
    }
  }

  void OnHeader(beast::error_code ec) {
    if (ec || timed_out_) {
      ReadFailed(ec);
      return;
    }
    const auto& req = parser_->get();
    const size_t fields = static_cast<size_t>(std::distance(req.begin(), req.end()));
    if (fields > static_cast<size_t>(options().max_headers)) {
      Refuse(431, "too many header fields: more than " + std::to_string(options().max_headers));
      return;
    }
    // Bodies are read only with a Content-Length (bounded by body_limit);
    // a chunked or compressed body is refused before it is read.
    if (req.find(http::field::transfer_encoding) != req.end()) {
      Refuse(411, "chunked request bodies are not accepted: send Content-Length");
      return;
    }
    auto encoding = req.find(http::field::content_encoding);
    if (encoding != req.end() && !beast::iequals(encoding->value(), "identity")) {
      Refuse(415, "compressed request bodies are not accepted");
      return;
    }
    if (parser_->is_done()) {
      Serve();
      return;
    }
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
      // curl waits a second for this before it sends a larger body.
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue, sizeof(kContinue) - 1),
                        [self = shared_from_this()](beast::error_code ec2, size_t) {
                          if (ec2 || self->timed_out_) {
                            self->ReadFailed(ec2);
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec2, size_t) { self->OnBody(ec2); });
  }

  void OnBody(beast::error_code ec) {
    if (ec || timed_out_) {
      ReadFailed(ec);
      return;
    }
    Serve();
  }

  // Hands the complete request to a worker (/healthz to its own thread);
  // the answer comes back to the I/O thread.
  void Serve() {
    state_ = State::kServing;
    ++generation_;
    timer_.cancel();
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    const bool keep_alive = msg.keep_alive();
    const unsigned version = msg.version();
    const bool head = msg.method() == http::verb::head;
    auto req = std::make_shared<Request>();
    req->method = ToString(msg.method_string());
    std::string_view target(msg.target().data(), msg.target().size());
    size_t q = target.find('?');
    req->path = DecodeUrl(target.substr(0, q), false);
    if (q != std::string_view::npos) req->params = ParseQuery(target.substr(q + 1));
    req->remote_addr = remote_;
    req->body = std::move(msg.body());
    req->headers = std::move(msg.base());  // Last: `msg` is spent.
    Impl& impl = *server_->impl_;
    asio::thread_pool& pool = req->path == "/healthz" ? impl.health : impl.workers;
    asio::post(pool, [self = shared_from_this(), req, keep_alive, version, head] {
      Response res;
      self->server_->Handle(*req, res);
      auto answer = std::make_shared<http::response<http::string_body>>(
          ToBeast(res, version, keep_alive, head));
      asio::post(self->socket_.get_executor(),
                 [self, answer, keep_alive] { self->Write(answer, !keep_alive, false); });
    });
  }

  static http::response<http::string_body> ToBeast(const Response& res, unsigned version,
                                                   bool keep_alive, bool head) {
    http::response<http::string_body> out{static_cast<http::status>(res.status), version};
    for (const auto& [name, value] : res.headers) out.insert(name, value);
    out.body() = res.body;
    out.keep_alive(keep_alive);
    out.prepare_payload();  // Content-Length of the body, also for HEAD.
    if (head) out.body().clear();
    return out;
  }

  // Answers `status` with a JSON error and closes the connection.
  void Refuse(int status, const std::string& message) {
    Response res;
    ReplyError(res, status, message);
    res.set_header("Connection", "close");
    std::string method, path;
    if (parser_ && parser_->is_header_done()) {
      method = ToString(parser_->get().method_string());
      std::string_view target(parser_->get().target().data(), parser_->get().target().size());
      path = DecodeUrl(target.substr(0, target.find('?')), false);
    }
    server_->LogAnswer(method, path, remote_, status, res.body);
    auto answer = std::make_shared<http::response<http::string_body>>(
        ToBeast(res, 11, /*keep_alive=*/false, /*head=*/false));
    Write(answer, /*close=*/true, /*linger=*/true);
  }

  void Write(const std::shared_ptr<http::response<http::string_body>>& answer, bool close,
             bool linger) {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    Arm(options().request_timeout, [](Connection& c) { c.Close(); });
    http::async_write(
        socket_, *answer,
        [self = shared_from_this(), answer, close, linger](beast::error_code ec, size_t) {
          if (self->state_ == State::kClosed) return;
          if (ec) {
            self->Close();
          } else if (close || self->server_->impl_->stopping) {
            if (linger && !self->server_->impl_->stopping) {
              self->Linger();
            } else {
              self->Close();
            }
          } else {
            self->ReadRequest();
          }
        });
  }

  // Half-closes, then reads and drops what the client still sends (for a
  // short, bounded while) so that it sees the answer rather than a reset.
  void Linger() {
    state_ = State::kLingering;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    Arm(std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTime),
        [](Connection& c) { c.Close(); });
    DrainSome();
  }

  void DrainSome() {
    socket_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (self->state_ != State::kLingering) return;
                              self->drained_ += n;
                              if (ec || self->drained_ >= kLingerBytes) {
                                self->Close();
                              } else {
                                self->DrainSome();
                              }
                            });
  }

  ApiServer* server_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_;
  State state_ = State::kReading;
  uint64_t generation_ = 0;  // Invalidates an armed timer's callback.
  bool timed_out_ = false;
  std::array<char, 4096> drain_{};
  size_t drained_ = 0;
};

ApiServer::ApiServer(DaemonView* view, Options options)
    : view_(view), options_(std::move(options)) {}

ApiServer::~ApiServer() { Stop(); }

namespace {

// Answers 503 on a connection over the limit and closes it at once, without
// waiting for anything: it must not hold its descriptor.
void RefuseOverLimit(tcp::socket socket, int max_connections) {
  beast::error_code ec;
  socket.non_blocking(true, ec);
  // What the client sent already is dropped, so that closing does not reset
  // the connection before the answer is read.
  std::array<char, 4096> scratch{};
  socket.read_some(asio::buffer(scratch), ec);
  const std::string body = json({{"error", "too many connections (more than " +
                                               std::to_string(max_connections) + "); retry later"}})
                               .dump();
  const std::string answer =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  asio::write(socket, asio::buffer(answer), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

}  // namespace

Status ApiServer::Start() {
  if (started_) return Status::Conflict("API server already started");
  if (view_ == nullptr) return Status::Invalid("API server: no daemon view");
  if (options_.threads < 1) return Status::Invalid("API server: threads must be at least 1");
  if (options_.max_body_bytes == 0) {
    return Status::Invalid("API server: max_body_bytes must be at least 1");
  }
  if (options_.max_connections < 1) {
    return Status::Invalid("API server: max_connections must be at least 1");
  }
  if (options_.max_header_bytes < 256) {
    return Status::Invalid("API server: max_header_bytes must be at least 256");
  }
  if (options_.max_headers < 1)
    return Status::Invalid("API server: max_headers must be at least 1");
  if (options_.request_timeout.count() < 1) {
    return Status::Invalid("API server: request_timeout must be at least 1 ms");
  }
  std::string host;
  int port = 0;
  CLUSTERCTL_RETURN_IF_ERROR(ParseListen(options_.listen, &host, &port));

  auto impl = std::make_unique<Impl>(options_.threads);
  beast::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(impl->io);
    auto results = resolver.resolve(host, "", ec);
    if (ec || results.empty()) {
      return Status::Unavailable("cannot listen on " + options_.listen + ": cannot resolve \"" +
                                 host + "\"");
    }
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  auto fail = [&](const char* what) {
    return Status::Unavailable("cannot listen on " + options_.listen + ": " + what + ": " +
                               ec.message());
  };
  // SO_REUSEADDR allows a quick restart while old connections linger in
  // TIME_WAIT; no SO_REUSEPORT, so a second clusterd cannot share the port.
  if (impl->acceptor.open(endpoint.protocol(), ec)) return fail("socket");
  if (impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec)) return fail("option");
  if (impl->acceptor.bind(endpoint, ec)) return fail("bind");
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen");
  port_ = impl->acceptor.local_endpoint(ec).port();
  if (ec) return fail("local address");

  impl_ = std::move(impl);
  started_ = true;
  impl_->work.emplace(impl_->io.get_executor());
  Accept();
  impl_->io_thread = std::thread([this] { impl_->io.run(); });
  if (options_.log) options_.log("API listening on " + host + ":" + std::to_string(port_));
  return Status::Ok();
}

void ApiServer::Accept() {
  impl_->acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    Impl& impl = *impl_;
    if (impl.stopping || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors (or another transient error): pause instead of
      // spinning; connections that close free descriptors meanwhile.
      impl.accept_backoff.expires_after(kAcceptBackoff);
      impl.accept_backoff.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && !impl_->stopping) Accept();
      });
      return;
    }
    if (impl.connections.size() >= static_cast<size_t>(options_.max_connections)) {
      if (!impl.refusing) {
        impl.refusing = true;
        LogAnswer(
            "", "", "(connections over the limit)", 503,
            json({{"error", "too many connections (more than " +
                                std::to_string(options_.max_connections) + "): refusing new ones"}})
                .dump());
      } else if (options_.metrics != nullptr) {
        options_.metrics->Inc(kMetricApiRequests, {{"route", "other"}, {"code", "503"}});
      }
      RefuseOverLimit(std::move(socket), options_.max_connections);
    } else {
      impl.refusing = false;
      auto connection = std::make_shared<Connection>(this, std::move(socket));
      impl.connections.emplace(connection.get(), connection);
      connection->Start();
    }
    Accept();
  });
}

void ApiServer::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!impl_) return;
  asio::post(impl_->io, [this] {
    Impl& impl = *impl_;
    impl.stopping = true;
    beast::error_code ignored;
    impl.acceptor.close(ignored);
    impl.accept_backoff.cancel();
    std::vector<std::shared_ptr<Connection>> idle;
    for (auto& [raw, weak] : impl.connections) {
      if (auto c = weak.lock(); c && c->idle()) idle.push_back(c);
    }
    for (auto& c : idle) c->Close();
  });
  // Requests in flight finish; their answers are posted to the I/O thread,
  // which runs until the last connection has written its answer and closed.
  Impl& stopped = *impl_;
  stopped.health.join();
  stopped.workers.join();
  stopped.work.reset();
  if (stopped.io_thread.joinable()) stopped.io_thread.join();
  impl_.reset();
  if (options_.log) options_.log("API stopped");
}

void ApiServer::Handle(const Request& req, Response& res) {
  Dispatch(req, res);
  LogAnswer(req.method, req.path, req.remote_addr, res.status, res.body);
}

void ApiServer::LogAnswer(const std::string& method, const std::string& path,
                          const std::string& remote, int status, const std::string& body) {
  std::string route = "other";
  for (const Route& r : Routes()) {
    if (path == r.path) route = r.path;
  }
  if (options_.metrics != nullptr) {
    options_.metrics->Inc(kMetricApiRequests, {{"route", route}, {"code", std::to_string(status)}});
  }
  if (!options_.log) return;
  std::string line =
      method.empty() ? std::string("request") : PrintablePath(method) + " " + PrintablePath(path);
  line += " " + std::to_string(status) + " from " + remote;
  if (status >= 400) {
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      line += ": " + j["error"].get<std::string>();
    }
  }
  options_.log(line);
}
void ApiServer::Dispatch(const Request& req, Response& res) {
  using Auth = Route::Auth;
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  const Route* route = nullptr;
  std::string allow;
  for (const Route& r : Routes()) {
    if (req.path != r.path) continue;
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
    if (method == r.method) route = &r;
  }
  if (route == nullptr) {
    if (allow.empty()) {
      ReplyError(res, 404, "no such endpoint: " + PrintablePath(req.path));
    } else {
      res.set_header("Allow", allow);
      ReplyError(
          res, 405,
          "method " + PrintablePath(req.method) + " not allowed on " + req.path + "; use " + allow);
    }
    return;
  }

  Call call(req, res);
  if (route->auth != Auth::kNone) {
    const bool has_authorization = req.has_header("Authorization");
    const bool has_signature = req.has_header("X-Hub-Signature-256");
    std::string failure;
    if (has_authorization || !has_signature || route->auth != Auth::kTokenOrWebhook) {
      // RFC 6750: "Bearer" is case-insensitive.
      const std::string header = req.get_header_value("Authorization");
      constexpr std::string_view kScheme = "bearer ";
      const bool bearer =
          header.size() > kScheme.size() &&
          std::equal(kScheme.begin(), kScheme.end(), header.begin(), [](char a, char b) {
            return a == std::tolower(static_cast<unsigned char>(b));
          });
      std::string_view given =
          bearer ? std::string_view(header).substr(kScheme.size()) : std::string_view();
      while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
      if (!has_authorization) {
        failure = "missing credentials: send Authorization: Bearer <token>";
      } else if (!bearer || given.empty()) {
        failure = "malformed Authorization header: expected Bearer <token>";
      } else if (options_.token.empty()) {
        failure = "no API token is configured on the server (tokenFile)";
      } else if (!SecretEquals(given, options_.token)) {
        failure = "invalid token";
      } else {
        call.by_token = true;
      }
    } else if (options_.webhook_secret.empty()) {
      failure = "webhooks are not accepted: no webhook secret is configured (webhookSecretFile)";
    } else if (!ValidWebhookSignature(req.get_header_value("X-Hub-Signature-256"), req.body,
                                      options_.webhook_secret)) {
      failure = "invalid webhook signature (X-Hub-Signature-256)";
    } else {
      call.by_webhook = true;
    }
    if (!failure.empty()) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"clusterd\"");
      ReplyError(res, 401, failure);
      return;
    }
  }

  call.actor = "api@" + req.remote_addr;
  if (call.by_token && req.has_header("X-Clusterctl-Actor")) {
    std::string actor = req.get_header_value("X-Clusterctl-Actor");
    if (!ValidActor(actor)) {
      ReplyError(res, 400, "X-Clusterctl-Actor: expected user@host, e.g. alice@laptop",
                 "X-Clusterctl-Actor");
      return;
    }
    call.actor = actor;
  }

  try {
    (this->*(route->handler))(call);
  } catch (...) {
    // A library exception's message may quote data: answer plainly.
    ReplyError(res, 500, "internal error while serving " + std::string(route->path));
  }
}

void ApiServer::HandleHealthz(Call& call) {
  if (!call.CheckParams({})) return;
  std::string detail;
  if (view_->Healthy(&detail)) {
    json body = {{"status", "ok"}};
    if (!detail.empty()) body["detail"] = detail;
    ReplyJson(call.res, 200, body);
  } else {
    ReplyJson(call.res, 503, {{"status", "unhealthy"}, {"detail", detail}});
  }
}

void ApiServer::HandleMetrics(Call& call) {
  if (!call.CheckParams({})) return;
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-store");
  call.res.set_content(view_->Metrics(), "text/plain; version=0.0.4; charset=utf-8");
}

void ApiServer::HandleStatus(Call& call) {
  if (!call.CheckParams({})) return;
  ReplyJson(call.res, 200, view_->Status());
}

void ApiServer::HandleAlerts(Call& call) {
  if (!call.CheckParams({})) return;
  json out = json::array();
  for (const AlertView& a : view_->Alerts()) {
    out.push_back({{"id", a.id},
                   {"severity", a.severity},
                   {"message", a.message},
                   {"since", FormatRfc3339Ms(a.since_ms)}});
  }
  ReplyJson(call.res, 200, out);
}

void ApiServer::HandleHistory(Call& call) {
  if (!call.CheckParams({"limit"})) return;
  size_t limit = 0;
  std::string error;
  if (!ParseLimit(Param(call.req, "limit"), kDefaultListLimit, &limit, &error)) {
    ReplyError(call.res, 400, error, "limit");
    return;
  }
  ReplyJson(call.res, 200, view_->History(limit));
}

void ApiServer::HandleRevisions(Call& call) {
  if (!call.CheckParams({"limit"})) return;
  size_t limit = 0;
  std::string error;
  if (!ParseLimit(Param(call.req, "limit"), kDefaultListLimit, &limit, &error)) {
    ReplyError(call.res, 400, error, "limit");
    return;
  }
  json out = json::array();
  for (const store::RevisionRecord& r : view_->Revisions(limit)) {
    out.push_back({{"commit", r.commit},
                   {"author", r.author},
                   {"message", r.message},
                   {"commit_time", r.commit_time},
                   {"applied_at", FormatRfc3339Ms(r.applied_at_ms)},
                   {"result", r.result},
                   {"actor", r.actor},
                   {"trigger", r.trigger},
                   {"detail", r.detail}});
  }
  ReplyJson(call.res, 200, out);
}

void ApiServer::HandleAudit(Call& call) {
  if (!call.CheckParams({"since", "until", "service", "machine", "action", "result", "revision",
                         "actor", "trigger", "limit", "reverse", "cursor"})) {
    return;
  }
  const Request& req = call.req;
  Response& res = call.res;
  audit::AuditFilter f;
  const int64_t now = ClockOr(options_.clock).WallMs();
  for (const char* name : {"since", "until"}) {
    std::optional<std::string> text = Param(req, name);
    if (!text) continue;
    Result<int64_t> t = ParseTimeFlag(*text, now);
    if (!t.ok() && text->find(' ') != std::string::npos) {
      // The '+' of a UTC offset sent unencoded arrives as a space.
      std::string plus = *text;
      std::replace(plus.begin(), plus.end(), ' ', '+');
      Result<int64_t> again = ParseTimeFlag(plus, now);
      if (again.ok()) t = again;
    }
    if (!t.ok()) {
      ReplyError(res, 400, std::string(name) + ": " + t.status().message(), name);
      return;
    }
    (std::string_view(name) == "since" ? f.since_ms : f.until_ms) = *t;
  }
  f.service = Param(req, "service").value_or("");
  f.machine = Param(req, "machine").value_or("");
  f.action = Param(req, "action").value_or("");
  f.result = Param(req, "result").value_or("");
  f.revision_prefix = Param(req, "revision").value_or("");
  f.actor = Param(req, "actor").value_or("");
  f.trigger = Param(req, "trigger").value_or("");

  std::string error;
  if (!ParseLimit(Param(req, "limit"), kDefaultAuditLimit, &f.limit, &error)) {
    ReplyError(res, 400, error, "limit");
    return;
  }
  if (auto reverse = Param(req, "reverse")) {
    if (!ParseBool(*reverse, &f.oldest_first)) {
      ReplyError(res, 400, "reverse: expected true or false, got \"" + *reverse + "\"", "reverse");
      return;
    }
  }
  if (auto cursor = Param(req, "cursor")) {
    bool cursor_oldest_first = false;
    uint64_t seq = 0;
    if (!ParseCursor(*cursor, &cursor_oldest_first, &seq)) {
      ReplyError(res, 400, "cursor: not a cursor this server handed out", "cursor");
      return;
    }
    if (cursor_oldest_first != f.oldest_first) {
      ReplyError(res, 400,
                 std::string("cursor: it continues a listing with reverse=") +
                     (cursor_oldest_first ? "true" : "false") + "; repeat the same parameters",
                 "cursor");
      return;
    }
    (f.oldest_first ? f.after_seq : f.before_seq) = seq;
  }

  // The API's own messages first (they name the parameter), then whatever
  // else the audit log checks.
  if (!f.trigger.empty() && !Contains(audit::AuditTriggers(), f.trigger)) {
    ReplyError(res, 400,
               "trigger: \"" + f.trigger + "\" is not a trigger; use one of " +
                   Join(audit::AuditTriggers()),
               "trigger");
    return;
  }
  if (!f.result.empty() && !Contains(audit::AuditResults(), f.result)) {
    ReplyError(
        res, 400,
        "result: \"" + f.result + "\" is not a result; use one of " + Join(audit::AuditResults()),
        "result");
    return;
  }
  if (!std::all_of(f.revision_prefix.begin(), f.revision_prefix.end(),
                   [](unsigned char c) { return std::isxdigit(c); })) {
    ReplyError(res, 400,
               "revision: \"" + f.revision_prefix + "\" is not a commit sha prefix (hex digits)",
               "revision");
    return;
  }
  if (f.since_ms && f.until_ms && *f.since_ms >= *f.until_ms) {
    ReplyError(res, 400,
               "since (" + FormatRfc3339Ms(*f.since_ms) + ") must be before until (" +
                   FormatRfc3339Ms(*f.until_ms) + ")",
               "since");
    return;
  }
  if (Status s = audit::ValidateFilter(f); !s.ok()) {
    ReplyError(res, 400, s.message());
    return;
  }

  // One record more than asked tells whether there is a next page.
  const size_t page = f.limit;
  f.limit = page + 1;
  Result<std::vector<audit::AuditRecord>> records = view_->Audit(f);
  if (!records.ok()) {
    ReplyError(res, HttpStatusFor(records.status().code()),
               "audit query failed: " + records.status().message());
    return;
  }
  std::vector<audit::AuditRecord>& list = *records;
  json next_cursor = nullptr;
  if (list.size() > page) {
    list.resize(page);
    next_cursor = MakeCursor(f.oldest_first, list.back().seq);
  }
  json out = json::array();
  for (const audit::AuditRecord& r : list) out.push_back(ToJson(r));
  ReplyJson(res, 200, {{"records", std::move(out)}, {"next_cursor", next_cursor}});
}

void ApiServer::HandleSync(Call& call) {
  std::string reason;
  if (call.by_webhook) {
    // A git host's query parameters are its own business: none are read.
    reason = "webhook from " + call.req.remote_addr;
    std::string event = call.req.get_header_value("X-GitHub-Event");
    if (event.empty()) event = call.req.get_header_value("X-Gitea-Event");
    if (!event.empty() && event.size() <= 64 && NameChars(event, "")) {
      reason += " (" + event + ")";
    }
  } else {
    if (!call.CheckParams({})) return;
    reason = "api request by " + call.actor;
  }
  view_->Sync(reason);
  ReplyJson(call.res, 200, {{"status", "sync requested"}, {"reason", reason}});
}

void ApiServer::HandleRestart(Call& call) {
  if (!call.CheckParams({})) return;
  Response& res = call.res;
  json body = json::parse(call.req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    ReplyError(res, 400,
               "body: not valid JSON; expected {\"service\": \"...\", \"machine\": \"...\"}",
               "body");
    return;
  }
  if (!body.is_object()) {
    ReplyError(res, 400, "body: expected a JSON object {\"service\": ..., \"machine\": ...}",
               "body");
    return;
  }
  for (const auto& item : body.items()) {
    if (item.key() != "service" && item.key() != "machine") {
      ReplyError(res, 400, "body: unknown field \"" + item.key() + "\" (expected service, machine)",
                 item.key());
      return;
    }
  }
  if (!body.contains("service") || !body["service"].is_string() ||
      body["service"].get<std::string>().empty()) {
    ReplyError(res, 400, "service: required, a service name", "service");
    return;
  }
  std::string service = body["service"].get<std::string>();
  std::string machine;
  if (body.contains("machine") && !body["machine"].is_null()) {
    if (!body["machine"].is_string()) {
      ReplyError(res, 400, "machine: expected a machine name", "machine");
      return;
    }
    machine = body["machine"].get<std::string>();
  }
  Status s = view_->Restart(service, machine, call.actor);
  if (!s.ok()) {
    ReplyError(res, HttpStatusFor(s.code()), s.message());
    return;
  }
  json out = {{"status", "ok"}, {"service", service}, {"actor", call.actor}};
  out["machine"] = machine.empty() ? json(nullptr) : json(machine);
  ReplyJson(res, 200, out);
}

void ApiServer::HandleSuspend(Call& call) {
  if (!call.CheckParams({})) return;
  view_->Suspend(call.actor);
  ReplyJson(call.res, 200, {{"suspended", view_->suspended()}, {"actor", call.actor}});
}

void ApiServer::HandleResume(Call& call) {
  if (!call.CheckParams({})) return;
  view_->Resume(call.actor);
  ReplyJson(call.res, 200, {{"suspended", view_->suspended()}, {"actor", call.actor}});
}

}  // namespace clusterctl::api
