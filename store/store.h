// Store: the one embedded RocksDB database of a data directory, at
// <data_dir>/state, split into column families (CFs).
//
// Every module that keeps state (the state store, the audit log, the revision
// history) shares this one database: one WAL, one LOCK, one place to back up.
// Each module owns its own column families. The standard set below is always
// opened and created when missing; a module added later names its extra
// families in the `extra_column_families` argument of OpenPrimary() /
// OpenReadOnly(). Families that exist on disk but were not named (written by
// a newer clusterctl) are opened too, because RocksDB refuses to open a
// primary otherwise.
//
// Two ways to open:
//  - OpenPrimary(): the writer. Takes RocksDB's LOCK file, so one process per
//    data directory (clusterd, or a clusterctl run without a clusterd). A
//    second writer gets Code::kConflict naming the directory. The LOCK guards
//    one host only; it is not a distributed lock.
//  - OpenReadOnly(): a RocksDB secondary instance. Takes no lock, so read-only
//    commands work while clusterd runs. It sees the primary's data as of the
//    open and of each CatchUp(); it keeps its own small working directory at
//    <data_dir>/secondary/<pid>-<random> (removed on close; the directories
//    of dead processes are removed by the next OpenReadOnly()), or under
//    $TMPDIR/clusterctl-secondary-<uid>/ when the data directory is not
//    writable by this user.
//
// Durability: Commit(batch, /*sync=*/false) goes to the WAL in the page
// cache: it survives a kill of the process but not a power loss.
// sync=true fsyncs the WAL (about 0.5 ms here): use it for records that must
// exist before acting (the audit intent).
//
// A full disk: RocksDB 7.8 (Debian's build keeps its assertions) aborts the
// process when a write it started fails for want of space and the file is
// written again (WritableFileWriter::AssertFalseAndGetStatusForPrevError,
// found by the fault suite: clusterd died on SIGTERM with its disk full). So
// the store never lets RocksDB reach that point: opening a primary, Commit,
// Write and Flush first check the free space of the disk (statvfs, a few
// microseconds) and refuse with Code::kResourceExhausted, naming the disk and
// the space, while less than kMinFreeBytes is free. The reserve covers a
// memtable flush (write_buffer_size) and the WAL's preallocation; nothing is
// written, so the database stays as it was and a restart with space back
// loses nothing. A read-only store puts its secondary directory in $TMPDIR
// when the data directory's disk is short of space.
//
// Only store.cc includes RocksDB headers. Callers that need more than this
// interface (snapshots, custom iterators) include <rocksdb/db.h> themselves
// and use db() and cf(); keep such translation units few, each costs compile
// time.
//
// Thread-safety: after it is opened a Store is safe to use from many threads
// at once (reads, Commit, Scan, CatchUp, Flush); a ScanVisitor may call back
// into the Store. Opening and destroying are not concurrent with anything
// else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace clusterctl::store {

// The column families every Store opens (and a primary creates):
// "default", "observations", "probes", "facts", "meta", "audit",
// "audit_index", "revisions".
const std::vector<std::string>& StandardColumnFamilies();

// Which keys a Scan() visits, in byte order of the keys.
struct ScanRange {
  // The smallest key visited (inclusive). Default: "" (the first key).
  std::string begin;
  // Keys >= end are not visited. Default: "" (no upper bound).
  std::string end;
  // Visit from the largest key down to `begin`. Default: false.
  bool reverse = false;
  // Stop after this many keys; 0 means no limit. Default: 0.
  size_t limit = 0;

  // Every key that starts with `prefix`.
  static ScanRange Prefix(std::string_view prefix, bool reverse = false, size_t limit = 0);
};

// The smallest key greater than every key starting with `prefix`, or "" when
// there is none (prefix empty or all 0xff bytes). Used as ScanRange::end.
std::string PrefixEnd(std::string_view prefix);

// Called once per key; return false to stop the scan early. The views are
// valid only during the call.
using ScanVisitor = std::function<bool(std::string_view key, std::string_view value)>;

class Store;

// A consistent view of a Store at one moment (a RocksDB snapshot): reads
// through it (the `snapshot` argument of Store::Get/Scan) see every write
// committed before Store::Snapshot() returned and none after, in every
// column family. Cheap; released when destroyed. Must not outlive the Store.
// On a read-only store (a RocksDB secondary, which has no snapshots) it holds
// off Store::CatchUp() instead, so do not call CatchUp() while holding one.
class StoreSnapshot {
 public:
  ~StoreSnapshot();
  StoreSnapshot(const StoreSnapshot&) = delete;
  StoreSnapshot& operator=(const StoreSnapshot&) = delete;

 private:
  friend class Store;
  struct Rep;
  explicit StoreSnapshot(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

// A group of writes committed atomically by Store::Commit(). Column families
// are named; naming one the store did not open is a bug that Commit()
// reports (Code::kInternal), so the Put/Delete calls themselves cannot fail.
//
// Thread-safety: one thread at a time. The Store must outlive the batch.
class StoreBatch {
 public:
  explicit StoreBatch(Store* store);
  ~StoreBatch();
  StoreBatch(const StoreBatch&) = delete;
  StoreBatch& operator=(const StoreBatch&) = delete;

  void Put(std::string_view cf, std::string_view key, std::string_view value);
  void Delete(std::string_view cf, std::string_view key);
  // Deletes every key in [begin, end).
  void DeleteRange(std::string_view cf, std::string_view begin, std::string_view end);

  // Number of operations added so far.
  size_t Count() const;
  // The underlying RocksDB batch, for operations this class does not wrap.
  // Owned by the StoreBatch.
  rocksdb::WriteBatch* rep() { return rep_.get(); }

 private:
  friend class Store;
  rocksdb::ColumnFamilyHandle* Handle(std::string_view cf);

  Store* store_;
  std::unique_ptr<rocksdb::WriteBatch> rep_;
  Status error_;  // The first unknown column family, reported by Commit().
};

class Store {
 public:
  // Free space below which the store writes nothing (see above): 64 MiB.
  static constexpr uint64_t kMinFreeBytes = uint64_t{64} << 20;

  // Opens <data_dir>/state for writing, creating the directories, the
  // database and missing column families. Options: WAL on, small info logs.
  // Errors: Code::kConflict when another process (a running clusterd or
  // another clusterctl) holds the database's LOCK; the message names the
  // directory and suggests --server or stopping it.
  static Result<std::unique_ptr<Store>> OpenPrimary(
      const std::string& data_dir, const std::vector<std::string>& extra_column_families = {});

  // Opens <data_dir>/state as a read-only secondary instance (see above).
  // Named families that do not exist in the database yet read as empty.
  // Errors: Code::kNotFound (with a hint) when there is no database there.
  static Result<std::unique_ptr<Store>> OpenReadOnly(
      const std::string& data_dir, const std::vector<std::string>& extra_column_families = {});

  // Closes the database; a read-only store removes its secondary directory.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  bool read_only() const { return read_only_; }
  const std::string& data_dir() const { return data_dir_; }
  // <data_dir>/state
  const std::string& db_path() const { return db_path_; }

  // The RocksDB database and a family's handle, both owned by the Store.
  // cf() returns nullptr for a family that is not open. On a read-only
  // store, CatchUp() may replace the database: both pointers are valid only
  // until the next CatchUp(). The methods below are unaffected.
  rocksdb::DB* db() const;
  rocksdb::ColumnFamilyHandle* cf(std::string_view name) const;

  // Read-only stores: makes what the primary wrote since the open or the
  // last CatchUp() visible. A primary: no-op.
  //
  // RocksDB 7.8's TryCatchUpWithPrimary() alone is not enough: once the
  // primary flushes a memtable, the secondary keeps serving the values it
  // had replayed from the flushed WAL, and Get() returns them in place of
  // the newer flushed ones (facebook/rocksdb#14444, #15051). So when the
  // primary's set of table files has changed since the last catch-up, the
  // store reopens its secondary instance instead (a few milliseconds plus
  // the replay of the live WAL). Reads in progress on other threads finish
  // on the instance they started with.
  Status CatchUp();

  // Applies a batch atomically. `sync`: fsync the WAL before returning.
  // Errors: Code::kPermission on a read-only store; kResourceExhausted when
  // the disk has less than kMinFreeBytes free (nothing written) or is full;
  // kInternal for an unknown family in the batch.
  Status Commit(StoreBatch* batch, bool sync);
  // The same for a raw RocksDB batch (handles from cf()).
  Status Write(rocksdb::WriteBatch* batch, bool sync);

  // The value of `key`, or nullopt when absent (also when the family is not
  // open on a read-only store).
  // With a `snapshot`, as of that snapshot.
  Result<std::optional<std::string>> Get(std::string_view cf, std::string_view key,
                                         const StoreSnapshot* snapshot = nullptr) const;

  // Visits the keys of `range` in order (see ScanRange). A family not open on
  // a read-only store visits nothing. With a `snapshot`, as of that snapshot.
  Status Scan(std::string_view cf, const ScanRange& range, const ScanVisitor& visit,
              const StoreSnapshot* snapshot = nullptr) const;

  // A consistent view of everything committed so far (see StoreSnapshot).
  std::unique_ptr<StoreSnapshot> Snapshot() const;

  // Writes every memtable to SST files and waits. Errors on a read-only store.
  Status Flush();

 private:
  friend class StoreSnapshot;
  struct Instance;  // One open RocksDB instance; defined in store.cc.

  Store() = default;
  static Result<std::unique_ptr<Store>> Open(const std::string& data_dir,
                                             const std::vector<std::string>& extra, bool read_only);
  Result<std::shared_ptr<Instance>> OpenInstance();
  std::shared_ptr<Instance> current() const;
  bool Named(std::string_view cf) const;

  bool read_only_ = false;
  std::string data_dir_;
  std::string db_path_;
  std::string secondary_base_;      // Read-only stores: <data_dir>/secondary/<pid>-<random>.
  std::vector<std::string> named_;  // Every family this process asked for.

  mutable std::mutex catch_up_mu_;  // Serialises CatchUp(); guards generation_.
  uint64_t generation_ = 0;         // Read-only stores: instances opened so far.

  mutable std::mutex mu_;  // Guards instance_ (the pointer, not the instance).
  std::shared_ptr<Instance> instance_;
};

}  // namespace clusterctl::store
