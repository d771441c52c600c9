// ApiServer's HTTP server (api/api.h) on Boost.Beast: the listener, the
// connection limit, one Connection per client (reading a request within the
// header, body and time limits, handing it to a worker thread, writing the
// answer, keep-alive and lingering close), and Start and Stop. What a request
// gets as its answer is handlers.cc; the Request and Response they exchange
// are api/request.h.
#include "api/api.h"

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
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "api/request.h"

namespace clusterctl::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

using api_detail::DecodeUrl;
using api_detail::ParseQuery;
using api_detail::ReplyError;
using api_detail::Request;
using api_detail::Response;

using json = nlohmann::json;

// How long a refused connection is drained before it is closed, so the
// client reads the answer instead of a reset.
constexpr auto kLingerTime = std::chrono::milliseconds(500);
constexpr size_t kLingerBytes = 64 << 10;
// How long accepting pauses when the process is out of file descriptors.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);

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

}  // namespace clusterctl::api
