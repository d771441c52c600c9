// How clusterd sets up glibc's malloc, in one place, so that the benchmarks
// that stand for clusterd (bench/load_bench's reload) measure the library
// the way clusterd runs it (docs/benchmarks.md, issue 17: the resident set
// and the reload).
//
//   TuneMallocForDaemon()  one malloc arena instead of glibc's eight per
//                          core, and a 64 MiB top pad. Call before any
//                          thread starts.
//   ReleaseFreeMemory()    hands every free page of the heap back to the
//                          kernel (malloc_trim(0)); clusterd calls it after
//                          each pass.
//
// Why: clusterd runs ~35 threads (SSH observation, probes, the drift watch,
// RocksDB, the API) that mostly wait on machines; each arena keeps what its
// threads freed, and glibc's per-thread cache takes most small allocations
// without the arena's lock. Without a top pad, every reload of a 10,000-
// service revision handed its ~30 MiB of temporaries back to the kernel
// and faulted them in again the next time: 114 ms instead of 82 ms per
// reload. With it, the pages stay until the next ReleaseFreeMemory.
//
// Thread-safety: TuneMallocForDaemon before threads start; ReleaseFreeMemory
// from any thread.
#pragma once

namespace clusterctl {

void TuneMallocForDaemon();
void ReleaseFreeMemory();

}  // namespace clusterctl
