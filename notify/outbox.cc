#include "notify/outbox.h"

#include <cstdio>

namespace clusterctl::notify {

using nlohmann::json;

namespace {
constexpr char kMeta[] = "meta";
constexpr char kRoot[] = "notify/outbox/";

json EntryJson(const OutboxEntry& e) {
  return {{"notification", e.notification},
          {"attempts", e.attempts},
          {"next_attempt_ms", e.next_attempt_ms},
          {"last_error", e.last_error}};
}
}  // namespace

std::string Outbox::Prefix(const std::string& sink) { return kRoot + sink + "/"; }

std::string Outbox::KeyOf(const std::string& sink, uint64_t seq) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%016llu", static_cast<unsigned long long>(seq));
  return Prefix(sink) + digits;
}

Result<std::unique_ptr<Outbox>> Outbox::Open(store::Store* store, size_t max_per_sink) {
  std::unique_ptr<Outbox> o(new Outbox(store, max_per_sink == 0 ? 1 : max_per_sink));
  Status scanned = store->Scan(
      kMeta, store::ScanRange::Prefix(kRoot), [&](std::string_view key, std::string_view) {
        std::string_view rest = key.substr(sizeof(kRoot) - 1);
        const size_t slash = rest.rfind('/');
        if (slash == std::string_view::npos) return true;
        const std::string sink(rest.substr(0, slash));
        const uint64_t seq =
            std::strtoull(std::string(rest.substr(slash + 1)).c_str(), nullptr, 10);
        o->next_seq_ = std::max(o->next_seq_, seq + 1);
        ++o->sizes_[sink];
        return true;
      });
  if (!scanned.ok()) return scanned;
  return o;
}

Status Outbox::Push(const std::string& sink, const json& notification, size_t* dropped) {
  std::lock_guard<std::mutex> g(mu_);
  store::StoreBatch batch(store_);
  OutboxEntry e;
  e.sink = sink;
  e.seq = next_seq_;
  e.notification = notification;
  batch.Put(kMeta, KeyOf(sink, e.seq), EntryJson(e).dump());
  size_t& size = sizes_[sink];
  size_t drop = size + 1 > max_ ? size + 1 - max_ : 0;
  if (drop > 0) {
    Status s = store_->Scan(kMeta, store::ScanRange::Prefix(Prefix(sink), false, drop),
                            [&](std::string_view key, std::string_view) {
                              batch.Delete(kMeta, key);
                              return true;
                            });
    if (!s.ok()) return s;
  }
  Status s = store_->Commit(&batch, /*sync=*/true);
  if (!s.ok()) return s;
  ++next_seq_;
  size = size + 1 - drop;
  if (dropped != nullptr) *dropped = drop;
  return Status::Ok();
}

Result<std::optional<OutboxEntry>> Outbox::Head(const std::string& sink) const {
  std::optional<OutboxEntry> out;
  bool malformed = false;
  Status s = store_->Scan(kMeta, store::ScanRange::Prefix(Prefix(sink), false, 1),
                          [&](std::string_view key, std::string_view value) {
                            json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
                            OutboxEntry e;
                            e.sink = sink;
                            e.seq = std::strtoull(
                                std::string(key.substr(key.rfind('/') + 1)).c_str(), nullptr, 10);
                            if (!j.is_object() || !j.contains("notification")) {
                              malformed = true;  // Removed below: it can never be delivered.
                              out = e;
                              return false;
                            }
                            e.notification = j["notification"];
                            e.attempts = j.value("attempts", 0);
                            e.next_attempt_ms = j.value("next_attempt_ms", int64_t{0});
                            e.last_error = j.value("last_error", "");
                            out = std::move(e);
                            return false;
                          });
  if (!s.ok()) return s;
  if (malformed) {
    Status r = const_cast<Outbox*>(this)->Remove(*out);
    if (!r.ok()) return r;
    return Head(sink);
  }
  return out;
}

Status Outbox::Remove(const OutboxEntry& e) {
  std::lock_guard<std::mutex> g(mu_);
  store::StoreBatch batch(store_);
  batch.Delete(kMeta, KeyOf(e.sink, e.seq));
  Status s = store_->Commit(&batch, /*sync=*/false);
  if (s.ok() && sizes_[e.sink] > 0) --sizes_[e.sink];
  return s;
}

Status Outbox::Update(const OutboxEntry& e) {
  std::lock_guard<std::mutex> g(mu_);
  store::StoreBatch batch(store_);
  batch.Put(kMeta, KeyOf(e.sink, e.seq), EntryJson(e).dump());
  return store_->Commit(&batch, /*sync=*/false);
}

size_t Outbox::Size(const std::string& sink) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = sizes_.find(sink);
  return it == sizes_.end() ? 0 : it->second;
}

}  // namespace clusterctl::notify
