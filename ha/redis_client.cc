#include "ha/redis_client.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <cctype>
#include <cerrno>
#include <chrono>

#include "base/secret_file.h"

namespace clusterctl::ha {
namespace {

timeval ToTimeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

int64_t MsUntil(SteadyTime deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyNow()).count();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RedisReply::~RedisReply() { freeReplyObject(r); }

std::string RedisReply::text() const {
  return r->str ? std::string(r->str, r->len) : std::string();
}

void BlockSigpipe() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

bool IsString(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_STRING; }

std::string StringOf(const redisReply* r) {
  return IsString(r) ? std::string(r->str, r->len) : std::string();
}

std::string RedisClient::where() const {
  return "redis " + endpoint_.host + ":" + std::to_string(endpoint_.port);
}

void RedisClient::Disconnect() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

// The context's error as a Status (a timeout when the deadline has passed or
// the socket timed out), and the connection dropped.
Status RedisClient::Failure(const std::string& what, SteadyTime deadline) {
  const int saved = errno;
  std::string why = context_ != nullptr ? Lower(context_->errstr) : "cannot allocate a context";
  const bool timed_out = MsUntil(deadline) <= 0 || saved == EAGAIN || saved == EWOULDBLOCK ||
                         saved == ETIMEDOUT || why.find("timed out") != std::string::npos ||
                         why.find("temporarily unavailable") != std::string::npos;
  if (context_ != nullptr && context_->err == REDIS_ERR_EOF) why = "connection closed by redis";
  Disconnect();
  if (timed_out) {
    return Status::Timeout(where() + ": " + what + ": no answer within " +
                           std::to_string(endpoint_.timeout_ms) + " ms");
  }
  return Status::Unavailable(Redact(where() + ": " + what + ": " + why, endpoint_.password));
}

Status RedisClient::Connect(SteadyTime deadline) {
  errno = 0;
  context_ =
      redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(MsUntil(deadline)));
  if (context_ == nullptr || context_->err) return Failure("connect", deadline);
  if (endpoint_.password.empty()) return Status::Ok();
  const int64_t left = MsUntil(deadline);
  if (left <= 0) return Failure("AUTH", deadline);
  redisSetTimeout(context_, ToTimeval(left));
  errno = 0;
  const char* argv[] = {"AUTH", endpoint_.password.c_str()};
  const size_t lens[] = {4, endpoint_.password.size()};
  void* raw = redisCommandArgv(context_, 2, argv, lens);
  if (raw == nullptr) return Failure("AUTH", deadline);
  RedisReply reply(static_cast<redisReply*>(raw));
  if (reply.r->type == REDIS_REPLY_ERROR) {
    const std::string text = reply.text();
    Disconnect();
    return Status::Permission(
        Redact(where() + " refused the password: " + text, endpoint_.password));
  }
  return Status::Ok();
}

Result<std::unique_ptr<RedisReply>> RedisClient::Call(const std::vector<std::string>& args) {
  const SteadyTime deadline = SteadyNow() + std::chrono::milliseconds(endpoint_.timeout_ms);
  if (context_ == nullptr) CLUSTERCTL_RETURN_IF_ERROR(Connect(deadline));
  const int64_t left = MsUntil(deadline);
  if (left <= 0) return Failure(args[0], deadline);
  redisSetTimeout(context_, ToTimeval(left));
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
    lens.push_back(a.size());
  }
  errno = 0;
  void* raw = redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), lens.data());
  if (raw == nullptr) return Failure(args[0], deadline);
  auto reply = std::make_unique<RedisReply>(static_cast<redisReply*>(raw));
  if (reply->r->type == REDIS_REPLY_ERROR) {
    const std::string text = Redact(reply->text(), endpoint_.password);
    const std::string what = where() + ": " + args[0] + ": " + text;
    if (text.rfind("NOAUTH", 0) == 0 || text.rfind("WRONGPASS", 0) == 0) {
      Disconnect();
      return Status::Permission(what);
    }
    return Status::Internal(what);
  }
  return reply;
}

}  // namespace clusterctl::ha
