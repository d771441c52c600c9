// ReadDirectory: the desired-state files of a plain directory (not a git
// repository), for `clusterctl validate --repo DIR` in editors, pre-commit
// hooks and CI checkouts. The same rules as GitSource apply: only regular
// *.yaml / *.yml files, hidden entries skipped, symbolic links reported and
// never followed, size limits checked before a file is read.
#pragma once

#include <string>

#include "base/status.h"
#include "desired-state/git_source.h"

namespace clusterctl::desired_state {

// Reads `dir` into a Snapshot whose revision.commit is "working-tree".
Result<Snapshot> ReadDirectory(const std::string& dir, const SourceLimits& limits = {});

}  // namespace clusterctl::desired_state
