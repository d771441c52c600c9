// ParallelFor: fan a loop out over a few threads.
//
// Thread-safety: `fn` is called concurrently from up to `parallel` threads
// with distinct indices; it must be safe for that.
#pragma once

#include <cstddef>
#include <functional>

namespace clusterctl {

// Calls fn(i) once for every i in [0, n), on up to `parallel` threads, the
// caller's among them (values < 1 mean 1; never more threads than items), and
// returns when all calls have. When no thread can be started the caller does
// all the work. With one thread the calls run in order.
void ParallelFor(size_t n, int parallel, const std::function<void(size_t)>& fn);

}  // namespace clusterctl
