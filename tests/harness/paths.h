// Paths of the source tree, build tree and built binaries, for tests.
#pragma once

#include <string>

namespace clusterctl::testing {

inline std::string SourceDir() { return CLUSTERCTL_SOURCE_DIR; }
inline std::string BinaryDir() { return CLUSTERCTL_BINARY_DIR; }
inline std::string TestServiceBin() { return CLUSTERCTL_TEST_SERVICE_BIN; }
inline std::string CliBin() { return CLUSTERCTL_CLI_BIN; }
inline std::string ClusterdBin() { return CLUSTERCTL_CLUSTERD_BIN; }

}  // namespace clusterctl::testing
