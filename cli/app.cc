#include "cli/app.h"

namespace clusterctl::cli {
int Main(int, char**) { return 0; }
}  // namespace clusterctl::cli
