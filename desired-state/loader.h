// Load: from the files of one revision to a validated DesiredState.
//
// Pure: no I/O, no clock. The steps, each adding to one Diagnostics list so a
// user sees every error of a revision at once:
//   1. ReadYaml every file (limits, hazards; yaml_reader.h)
//   2. check every document against schemas/ (schema.h)
//   3. apply schema defaults and decode into model types (decode.cc)
//   4. semantic checks: one Cluster, unique names, references, selectors,
//      dependency cycles, services on zero machines (semantic.cc)
//   5. expand desired instances with their spec hashes (instances.cc)
// Steps 1-3 are per file: they run on a few threads (one file per task; the
// result does not depend on the order) and, with options.cache, only for the
// files that changed since the last load (parse_cache.h). Steps 4-5 run over
// the whole revision every time.
// With options.secrets set, every `passwordFile` and `identityFile` the
// revision names is also checked against the secrets rule (secret_file.h),
// which looks at the file system (the only I/O of a load).
// A revision with any error yields no DesiredState.
//
// Thread-safety: reentrant; call on a thread with >= 1 MiB of stack.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/secret_file.h"
#include "desired-state/diagnostics.h"
#include "desired-state/git_source.h"
#include "desired-state/model.h"
#include "desired-state/parse_cache.h"
#include "desired-state/yaml_reader.h"

namespace clusterctl::desired_state {

class Schemas;

struct LoadOptions {
  YamlLimits yaml;
  size_t max_documents = 200000;  // Default: 200,000 documents per revision.
  // Where the secret files the revision names may live; a path that breaks
  // the rule is an error at its file:line:col. clusterd and clusterctl always
  // set it (config secretsDir). Default: unset = paths are not checked, for
  // tools and tests that never read a secret.
  std::optional<SecretsPolicy> secrets;
  // Keeps the per-file work between loads (parse_cache.h); the result is the
  // same with or without it. Shared by copies of these options. Default:
  // none, every file is parsed.
  std::shared_ptr<ParseCache> cache;
  // The schemas documents are checked against. Default: nullptr, the
  // schemas compiled in (Schemas::Get()); tests give others.
  const Schemas* schemas = nullptr;
};

struct LoadResult {
  std::optional<DesiredState> state;  // Set when there is no error.
  Diagnostics errors;
  std::vector<std::string> warnings;

  bool ok() const { return state.has_value(); }
};

// Loads the files of `snapshot` (its `problems` are reported as errors).
LoadResult Load(const Snapshot& snapshot, const LoadOptions& options = {});

// The same from plain files, for callers without git.
LoadResult LoadFiles(const std::vector<SourceFile>& files, const Revision& revision,
                     const LoadOptions& options = {});

}  // namespace clusterctl::desired_state
