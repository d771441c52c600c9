#include "base/malloc_tuning.h"

#include <malloc.h>

namespace clusterctl {

void TuneMallocForDaemon() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_TOP_PAD, 64 << 20);
}

void ReleaseFreeMemory() { malloc_trim(0); }

}  // namespace clusterctl
