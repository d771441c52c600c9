#include "desired-state/loader.h"

#include <deque>

#include "desired-state/internal.h"
#include "desired-state/schema.h"

namespace clusterctl::desired_state {

LoadResult LoadFiles(const std::vector<SourceFile>& files, const Revision& revision,
                     const LoadOptions& options) {
  LoadResult result;
  // Documents must outlive decoding: Decoded keeps pointers to them.
  std::deque<YamlDocument> docs;
  size_t total = 0;
  for (const auto& f : files) {
    std::vector<YamlDocument> parsed;
    ReadYaml(f.path, f.content, options.yaml, &parsed, &result.errors);
    total += parsed.size();
    if (total > options.max_documents) {
      result.errors.Add(Location{f.path},
                        "the revision has more than " + std::to_string(options.max_documents) +
                            " documents",
                        "split the cluster into several repositories");
      return result;
    }
    for (auto& d : parsed) docs.push_back(std::move(d));
  }

  const Schemas& schemas = Schemas::Get();
  internal::Decoded decoded;
  for (auto& doc : docs) {
    if (!schemas.Validate(doc, &result.errors)) {
      internal::NoteInvalid(doc, &decoded);
      continue;
    }
    schemas.ApplyDefaults(&doc.value);
    internal::Decode(doc, &decoded, &result.errors);
  }
  if (docs.empty() && result.errors.empty()) {
    result.errors.Add(Location{}, "the revision has no YAML document",
                      "add cluster.yaml, machines/ and services/ (see examples/langgraph)");
  }
  DesiredState state;
  state.revision = revision;
  internal::CheckAndResolve(decoded, &state, &result.errors);
  if (!result.errors.empty()) return result;
  internal::ExpandInstances(&state);
  internal::CheckDesiredDependencies(state, &result.errors);
  if (!result.errors.empty()) return result;
  result.state = std::move(state);
  return result;
}

LoadResult Load(const Snapshot& snapshot, const LoadOptions& options) {
  LoadResult result = LoadFiles(snapshot.files, snapshot.revision, options);
  result.warnings.insert(result.warnings.end(), snapshot.warnings.begin(),
                         snapshot.warnings.end());
  if (!snapshot.problems.empty()) {
    result.errors.Append(snapshot.problems);
    result.state.reset();
  }
  return result;
}

}  // namespace clusterctl::desired_state
