// What this process costs and how much a directory holds: the figures
// clusterd reports about itself in GET /api/v1/stats.
//
//   ReadProcessStats()  CPU time (getrusage), resident set size
//                       (/proc/self/statm), open descriptors (/proc/self/fd)
//                       and threads (/proc/self/status) of this process.
//   DirectoryUsage()    the disk space of a tree, as `du -sx` counts it.
//
// Linux only (/proc). No clock is read: uptime and pass durations come from
// the caller's base/clock.h. Errors name the path that could not be read.
//
// Thread-safety: both functions are reentrant; the figures of one call are
// read one after the other, not as one atomic snapshot.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace clusterctl {

struct ProcessStats {
  double cpu_seconds = 0;  // user + system, this process, all threads
  int64_t rss_bytes = 0;   // resident set size now
  int64_t open_fds = 0;    // entries of /proc/self/fd (not counting the one used to list it)
  int64_t threads = 0;
};

// Of this process. Fails (kUnavailable) when /proc is not mounted.
Result<ProcessStats> ReadProcessStats();

// Bytes used by the files under `path` (st_blocks * 512 of regular files and
// directories, `path` included), and how many regular files there are.
// Symbolic links are not followed and count nothing (`path` itself is
// followed when it is one: the caller named it); directories on another
// filesystem than `path` are not entered. The walk stops after
// `max_entries` entries (of any kind) and sets `truncated`.
//
// A file deleted while the walk runs (a compaction removing a table file) is
// skipped. Errors: a missing `path` is kNotFound, an unreadable directory
// anywhere in the tree kPermission, each naming the path.
struct DirUsage {
  uint64_t bytes = 0;
  uint64_t files = 0;
  bool truncated = false;
};
Result<DirUsage> DirectoryUsage(const std::string& path, uint64_t max_entries = 1000000);

}  // namespace clusterctl
