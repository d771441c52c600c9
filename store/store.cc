#include "store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

namespace clusterctl::store {
namespace fs = std::filesystem;

namespace {

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// A RocksDB status as a clusterctl Status, prefixed with `context`.
Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  std::string msg = context + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsNoSpace()) return Status::Exhausted(msg);
  if (s.IsTimedOut()) return Status::Timeout(msg);
  if (s.IsBusy() || s.IsTryAgain() || s.IsIOError()) return Status::Unavailable(msg);
  return Status::Internal(msg);
}

// Bytes available to this user on the file system of `path`; nullopt when
// statvfs fails (the caller then lets RocksDB find out).
std::optional<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

// kExhausted when the file system of `path` has less than the reserve free.
Status CheckFreeSpace(const std::string& path, const std::string& what) {
  std::optional<uint64_t> free = FreeBytes(path);
  if (!free || *free >= Store::kMinFreeBytes) return Status::Ok();
  return Status::Exhausted(what + ": No space left on device: " + std::to_string(*free >> 20) +
                           " MiB free on the disk of " + path + ", and the state store keeps " +
                           std::to_string(Store::kMinFreeBytes >> 20) +
                           " MiB in reserve; free space on that disk (nothing was written)");
}

bool MentionsLock(const rocksdb::Status& s) {
  if (!s.IsIOError()) return false;
  std::string text = s.ToString();
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text.find("lock") != std::string::npos;
}

// RocksDB's info log, into clusterd's own log at warning and above. Not a
// LOG file in the database directory: on a full disk RocksDB 7.8 aborts the
// process (an assertion in WritableFileWriter) the second time a write to
// that file fails, and a close always writes to it (the fault suite found
// this: clusterd died on SIGTERM with its data disk full).
class SpdlogRocksLogger : public rocksdb::Logger {
 public:
  SpdlogRocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    va_list copy;
    va_copy(copy, ap);
    std::vsnprintf(buf, sizeof buf, format, copy);
    va_end(copy);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", buf);
    } else {
      spdlog::warn("rocksdb: {}", buf);
    }
  }
};

// The options every open uses. Sizes are small: the data is small, and the
// controller may run on a single-board computer.
rocksdb::Options BaseOptions() {
  rocksdb::Options o;
  static const std::shared_ptr<rocksdb::Logger> logger = std::make_shared<SpdlogRocksLogger>();
  o.info_log = logger;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.max_total_wal_size = 64 << 20;  // Flush idle families instead of keeping old WALs.
  // Memtables: 2 MiB per family, and 4 MiB for all eight together (the
  // fullest one is flushed when they reach it). With 16 MiB per family and
  // no total they grew by what every pass wrote (the observations and the
  // status snapshot) until each family had 16 MiB: clusterd's resident set
  // grew by ~0.4 MiB a pass at 100 machines (docs/benchmarks.md).
  o.write_buffer_size = 2 << 20;
  o.db_write_buffer_size = 4 << 20;
  // One 2 MiB block cache for every family and store of the process (the
  // default is 8 MiB): what is read back (history, audit queries, a
  // restart) is read once, not hot.
  static const std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(2 << 20);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.max_background_jobs = 2;
  return o;
}

// Removes <dir>/<pid>-<random> entries left by processes that no longer exist.
void RemoveStaleSecondaries(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    size_t dash = name.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    long pid = 0;
    try {
      pid = std::stol(name.substr(0, dash));
    } catch (...) {
      continue;
    }
    if (pid <= 0 || pid == static_cast<long>(getpid())) continue;
    if (kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove_all(it->path(), ignored);
    }
  }
}

// A fresh secondary directory for this process: <data_dir>/secondary/<pid>-<random>,
// or under the system temp directory when the data directory is not writable.
Result<std::string> MakeSecondaryDir(const std::string& data_dir) {
  char suffix[32];
  std::random_device rd;
  std::snprintf(suffix, sizeof suffix, "%ld-%08x", static_cast<long>(getpid()),
                static_cast<unsigned>(rd()));
  std::vector<fs::path> bases = {fs::path(data_dir) / "secondary"};
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  if (!ec) bases.push_back(tmp / ("clusterctl-secondary-" + std::to_string(getuid())));
  std::string last_error;
  for (const fs::path& base : bases) {
    // A secondary writes its own small files; on a full disk RocksDB 7.8
    // aborts on a failed write (an assertion), so only where there is room.
    if (!CheckFreeSpace(base.parent_path().string(), "secondary").ok()) {
      last_error = base.string() + ": no space left on device";
      continue;
    }
    fs::create_directories(base, ec);
    if (ec) {
      last_error = base.string() + ": " + ec.message();
      continue;
    }
    RemoveStaleSecondaries(base);
    fs::path dir = base / suffix;
    fs::create_directories(dir, ec);
    if (!ec) return dir.string();
    last_error = dir.string() + ": " + ec.message();
  }
  return Status::Unavailable("creating a secondary directory for reading " + data_dir + ": " +
                             last_error);
}

}  // namespace

const std::vector<std::string>& StandardColumnFamilies() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>{rocksdb::kDefaultColumnFamilyName,
                                   "observations",
                                   "probes",
                                   "facts",
                                   "meta",
                                   "audit",
                                   "audit_index",
                                   "revisions"};
  return *names;
}

ScanRange ScanRange::Prefix(std::string_view prefix, bool reverse, size_t limit) {
  ScanRange r;
  r.begin = std::string(prefix);
  r.end = PrefixEnd(prefix);
  r.reverse = reverse;
  r.limit = limit;
  return r;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last != 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;
}

// ---------------------------------------------------------------- StoreBatch

StoreBatch::StoreBatch(Store* store) : store_(store), rep_(new rocksdb::WriteBatch) {}
StoreBatch::~StoreBatch() = default;

rocksdb::ColumnFamilyHandle* StoreBatch::Handle(std::string_view cf) {
  rocksdb::ColumnFamilyHandle* h = store_->cf(cf);
  if (h == nullptr && error_.ok()) {
    error_ = Status::Internal("write to unknown column family \"" + std::string(cf) + "\"");
  }
  return h;
}

void StoreBatch::Put(std::string_view cf, std::string_view key, std::string_view value) {
  if (auto* h = Handle(cf)) rep_->Put(h, ToSlice(key), ToSlice(value));
}

void StoreBatch::Delete(std::string_view cf, std::string_view key) {
  if (auto* h = Handle(cf)) rep_->Delete(h, ToSlice(key));
}

void StoreBatch::DeleteRange(std::string_view cf, std::string_view begin, std::string_view end) {
  if (auto* h = Handle(cf)) rep_->DeleteRange(h, ToSlice(begin), ToSlice(end));
}

size_t StoreBatch::Count() const { return rep_->Count(); }

// --------------------------------------------------------------------- Store

struct Store::Instance {
  rocksdb::DB* db = nullptr;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> handles;
  std::string secondary_dir;  // Removed with the instance (read-only stores).
  std::string table_files;    // The live table files when it was opened.

  ~Instance() {
    if (db != nullptr) {
      for (auto& [name, h] : handles) db->DestroyColumnFamilyHandle(h);
      db->Close().PermitUncheckedError();
      delete db;
    }
    if (!secondary_dir.empty()) {
      std::error_code ec;
      fs::remove_all(secondary_dir, ec);
    }
  }

  rocksdb::ColumnFamilyHandle* Handle(std::string_view name) const {
    auto it = handles.find(name);
    return it == handles.end() ? nullptr : it->second;
  }
};

namespace {

// The names of the live table files, sorted: changes when the primary
// flushes or compacts.
std::string TableFiles(rocksdb::DB* db) {
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += n + "\n";
  return out;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::OpenPrimary(const std::string& data_dir,
                                                  const std::vector<std::string>& extra) {
  return Open(data_dir, extra, /*read_only=*/false);
}

Result<std::unique_ptr<Store>> Store::OpenReadOnly(const std::string& data_dir,
                                                   const std::vector<std::string>& extra) {
  return Open(data_dir, extra, /*read_only=*/true);
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& data_dir,
                                           const std::vector<std::string>& extra, bool read_only) {
  if (data_dir.empty()) return Status::Invalid("no data directory given");
  std::unique_ptr<Store> store(new Store());
  store->read_only_ = read_only;
  store->data_dir_ = data_dir;
  store->db_path_ = (fs::path(data_dir) / "state").string();
  for (const auto& names : {StandardColumnFamilies(), extra}) {
    for (const std::string& n : names) {
      if (!store->Named(n)) store->named_.push_back(n);
    }
  }

  std::error_code ec;
  if (read_only) {
    if (!fs::exists(fs::path(store->db_path_) / "CURRENT", ec)) {
      return Status::NotFound("no state store in " + data_dir +
                              " (run clusterctl status or start clusterd first)");
    }
    Result<std::string> secondary = MakeSecondaryDir(data_dir);
    if (!secondary.ok()) return secondary.status();
    store->secondary_base_ = *secondary;  // The Store's destructor removes it.
  } else {
    fs::create_directories(store->db_path_, ec);
    if (ec) {
      return Status::Unavailable("creating data directory " + data_dir + ": " + ec.message());
    }
    Status room = CheckFreeSpace(store->db_path_, "opening state store " + store->db_path_);
    if (!room.ok()) return room;
  }
  Result<std::shared_ptr<Instance>> instance = store->OpenInstance();
  if (!instance.ok()) return instance.status();
  store->instance_ = std::move(instance).value();
  return store;
}

Result<std::shared_ptr<Store::Instance>> Store::OpenInstance() {
  const std::string& path = db_path_;
  rocksdb::Options options = BaseOptions();
  if (read_only_) {
    options.max_open_files = -1;  // Required for a secondary to follow compactions.
  } else {
    options.create_if_missing = true;
    options.create_missing_column_families = true;
  }

  // The families on disk; a new database has none yet. A primary opens all
  // of them (RocksDB insists); a secondary those it was asked for.
  std::vector<std::string> existing;
  rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(options, path, &existing);
  if (!ls.ok()) existing.clear();
  std::vector<std::string> open_names;
  if (read_only_) {
    for (const std::string& n : named_) {
      if (n == rocksdb::kDefaultColumnFamilyName ||
          std::find(existing.begin(), existing.end(), n) != existing.end()) {
        open_names.push_back(n);
      }
    }
  } else {
    open_names = named_;
    for (const std::string& n : existing) {
      if (!Named(n)) open_names.push_back(n);
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& n : open_names) {
    descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions(options));
  }

  auto instance = std::make_shared<Instance>();
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s;
  if (read_only_) {
    instance->secondary_dir = secondary_base_ + "/" + std::to_string(++generation_);
    s = rocksdb::DB::OpenAsSecondary(options, path, instance->secondary_dir, descriptors, &handles,
                                     &instance->db);
  } else {
    s = rocksdb::DB::Open(options, path, descriptors, &handles, &instance->db);
  }
  if (!s.ok()) {
    instance->db = nullptr;
    if (!read_only_ && MentionsLock(s)) {
      return Status::Conflict("data directory " + data_dir_ +
                              " is in use by another process (a running clusterd, or another "
                              "clusterctl): talk to that clusterd with --server URL, or stop it (" +
                              s.ToString() + ")");
    }
    return FromRocks(s,
                     std::string("opening state store ") + path + (read_only_ ? " read-only" : ""));
  }
  for (size_t i = 0; i < handles.size(); ++i) instance->handles[open_names[i]] = handles[i];
  if (read_only_) instance->table_files = TableFiles(instance->db);
  return instance;
}

Store::~Store() {
  instance_.reset();
  if (!secondary_base_.empty()) {
    std::error_code ec;
    fs::remove_all(secondary_base_, ec);
  }
}

std::shared_ptr<Store::Instance> Store::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return instance_;
}

bool Store::Named(std::string_view cf) const {
  return std::find(named_.begin(), named_.end(), cf) != named_.end();
}

rocksdb::DB* Store::db() const { return current()->db; }

rocksdb::ColumnFamilyHandle* Store::cf(std::string_view name) const {
  return current()->Handle(name);
}

Status Store::CatchUp() {
  if (!read_only_) return Status::Ok();
  std::lock_guard<std::mutex> serial(catch_up_mu_);
  std::shared_ptr<Instance> instance = current();
  CLUSTERCTL_RETURN_IF_ERROR(
      FromRocks(instance->db->TryCatchUpWithPrimary(), "catching up with " + db_path_));
  if (TableFiles(instance->db) == instance->table_files) return Status::Ok();
  // The primary flushed or compacted: start afresh (see the header).
  Result<std::shared_ptr<Instance>> fresh = OpenInstance();
  if (!fresh.ok()) return fresh.status().Annotate("catching up with " + db_path_);
  std::lock_guard<std::mutex> lock(mu_);
  instance_ = std::move(fresh).value();
  return Status::Ok();
}

Status Store::Commit(StoreBatch* batch, bool sync) {
  if (!read_only_ && !batch->error_.ok()) return batch->error_;
  return Write(batch->rep(), sync);
}

Status Store::Write(rocksdb::WriteBatch* batch, bool sync) {
  if (read_only_) {
    return Status::Permission("the state store in " + data_dir_ +
                              " is open read-only; writes go through the clusterd that owns it "
                              "(--server URL)");
  }
  Status room = CheckFreeSpace(db_path_, "writing to state store " + db_path_);
  if (!room.ok()) return room;
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(current()->db->Write(wo, batch), "writing to state store " + db_path_);
}

struct StoreSnapshot::Rep {
  std::shared_ptr<Store::Instance> instance;
  const rocksdb::Snapshot* snapshot = nullptr;
  std::unique_lock<std::mutex> no_catch_up;  // Read-only stores: what they have instead.
};

StoreSnapshot::StoreSnapshot(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

StoreSnapshot::~StoreSnapshot() {
  if (rep_ && rep_->snapshot != nullptr) rep_->instance->db->ReleaseSnapshot(rep_->snapshot);
}

std::unique_ptr<StoreSnapshot> Store::Snapshot() const {
  auto rep = std::make_unique<StoreSnapshot::Rep>();
  if (read_only_) {
    // A secondary changes only in CatchUp(); keeping that out is the snapshot.
    rep->no_catch_up = std::unique_lock<std::mutex>(catch_up_mu_);
    rep->instance = current();
  } else {
    rep->instance = current();
    rep->snapshot = rep->instance->db->GetSnapshot();
  }
  return std::unique_ptr<StoreSnapshot>(new StoreSnapshot(std::move(rep)));
}

Result<std::optional<std::string>> Store::Get(std::string_view cf_name, std::string_view key,
                                              const StoreSnapshot* snapshot) const {
  std::shared_ptr<Instance> instance = snapshot ? snapshot->rep_->instance : current();
  rocksdb::ColumnFamilyHandle* h = instance->Handle(cf_name);
  if (h == nullptr) {
    if (read_only_ && Named(cf_name)) return std::optional<std::string>();
    return Status::Internal("read from unknown column family \"" + std::string(cf_name) + "\"");
  }
  rocksdb::ReadOptions ro;
  if (snapshot != nullptr) ro.snapshot = snapshot->rep_->snapshot;
  std::string value;
  rocksdb::Status s = instance->db->Get(ro, h, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "reading " + std::string(cf_name) + " from " + db_path_);
  return std::optional<std::string>(std::move(value));
}

Status Store::Scan(std::string_view cf_name, const ScanRange& range, const ScanVisitor& visit,
                   const StoreSnapshot* snapshot) const {
  std::shared_ptr<Instance> instance = snapshot ? snapshot->rep_->instance : current();
  rocksdb::ColumnFamilyHandle* h = instance->Handle(cf_name);
  if (h == nullptr) {
    if (read_only_ && Named(cf_name)) return Status::Ok();
    return Status::Internal("scan of unknown column family \"" + std::string(cf_name) + "\"");
  }
  if (!range.end.empty() && range.end <= range.begin) return Status::Ok();
  rocksdb::ReadOptions ro;
  if (snapshot != nullptr) ro.snapshot = snapshot->rep_->snapshot;
  rocksdb::Slice lower = ToSlice(range.begin);
  rocksdb::Slice upper = ToSlice(range.end);
  if (!range.begin.empty()) ro.iterate_lower_bound = &lower;
  if (!range.end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(instance->db->NewIterator(ro, h));
  if (range.reverse) {
    it->SeekToLast();
  } else if (range.begin.empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(lower);
  }
  size_t visited = 0;
  while (it->Valid()) {
    if (!visit(ToView(it->key()), ToView(it->value()))) break;
    if (range.limit != 0 && ++visited >= range.limit) break;
    if (range.reverse) {
      it->Prev();
    } else {
      it->Next();
    }
  }
  return FromRocks(it->status(), "scanning " + std::string(cf_name) + " in " + db_path_);
}

Status Store::Flush() {
  if (read_only_) return Status::Permission("cannot flush a read-only state store");
  std::shared_ptr<Instance> instance = current();
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (auto& [name, h] : instance->handles) all.push_back(h);
  Status room = CheckFreeSpace(db_path_, "flushing state store " + db_path_);
  if (!room.ok()) return room;
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(instance->db->Flush(fo, all), "flushing state store " + db_path_);
}

}  // namespace clusterctl::store
