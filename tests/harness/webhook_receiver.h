// A real HTTP receiver on loopback for notification tests: records every
// POST (path, headers, body), answers 200, or 503 while told to fail.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace clusterctl::testing {

class WebhookReceiver {
 public:
  struct Delivery {
    std::string path, body;
    std::map<std::string, std::string> headers;
  };
  WebhookReceiver();  // Listens on 127.0.0.1, a free port.
  ~WebhookReceiver();

  std::string Url(const std::string& path = "/hook") const;
  // The next `n` requests are answered 503 (and not recorded as delivered).
  void FailNext(int n);
  int refused() const;
  std::vector<Delivery> Deliveries() const;
  // Waits until at least `n` deliveries arrived or `timeout_ms` passed.
  bool WaitFor(size_t n, int timeout_ms) const;

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  int fail_next_ = 0, refused_ = 0;
  std::vector<Delivery> deliveries_;
};

}  // namespace clusterctl::testing
