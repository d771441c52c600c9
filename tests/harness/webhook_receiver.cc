#include "tests/harness/webhook_receiver.h"

#include <httplib.h>

#include <chrono>

namespace clusterctl::testing {

WebhookReceiver::WebhookReceiver() : server_(std::make_unique<httplib::Server>()) {
  server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> g(mu_);
    if (fail_next_ > 0) {
      --fail_next_;
      ++refused_;
      res.status = 503;
      return;
    }
    Delivery d;
    d.path = req.path;
    d.body = req.body;
    for (const auto& [k, v] : req.headers) d.headers[k] = v;
    deliveries_.push_back(std::move(d));
    res.status = 200;
    cv_.notify_all();
  });
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // This httplib has no wait_until_ready(): poll is_running(), bounded.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

WebhookReceiver::~WebhookReceiver() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string WebhookReceiver::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::FailNext(int n) {
  std::lock_guard<std::mutex> g(mu_);
  fail_next_ = n;
}

int WebhookReceiver::refused() const {
  std::lock_guard<std::mutex> g(mu_);
  return refused_;
}

std::vector<WebhookReceiver::Delivery> WebhookReceiver::Deliveries() const {
  std::lock_guard<std::mutex> g(mu_);
  return deliveries_;
}

bool WebhookReceiver::WaitFor(size_t n, int timeout_ms) const {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, std::chrono::milliseconds(timeout_ms),
                      [&] { return deliveries_.size() >= n; });
}

}  // namespace clusterctl::testing
