#include "desired-state/loader.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <thread>

#include "desired-state/internal.h"
#include "desired-state/schema.h"

namespace clusterctl::desired_state {
namespace {

// Runs fn(0..n-1) on up to 4 threads (yaml-cpp dominates load time and is
// single-threaded per parser). std::thread stacks are 8 MiB on Linux, enough
// for yaml-cpp's recursion within the nesting limit.
void ParseInParallel(size_t n, const std::function<void(size_t)>& fn) {
  const size_t workers =
      std::min<size_t>({n, 4, std::max(1u, std::thread::hardware_concurrency())});
  if (workers <= 1 || n < 8) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

// Checks every `passwordFile` and `identityFile` string below `value`
// (`pointer` is its JSON pointer) against `policy`.
void CheckSecretFiles(const YamlDocument& doc, const nlohmann::json& value,
                      const std::string& pointer, const SecretsPolicy& policy, Diagnostics* diags) {
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      CheckSecretFiles(doc, value[i], pointer + "/" + std::to_string(i), policy, diags);
    }
    return;
  }
  if (!value.is_object()) return;
  for (const auto& [key, member] : value.items()) {
    const std::string at = pointer + "/" + JsonPointerEscape(key);
    if ((key == "passwordFile" || key == "identityFile") && member.is_string()) {
      auto resolved = ResolveSecretFile(policy, member.get<std::string>());
      if (!resolved.ok()) {
        diags->Add(doc.Locate(at), key + " " + resolved.status().message(),
                   "put the file in secretsDir (" + policy.dir +
                       ") and name it relative to it (docs/desired-state.md, Secrets)");
      }
      continue;
    }
    CheckSecretFiles(doc, member, at, policy, diags);
  }
}

}  // namespace

LoadResult LoadFiles(const std::vector<SourceFile>& files, const Revision& revision,
                     const LoadOptions& options) {
  LoadResult result;
  // Documents must outlive decoding: Decoded keeps pointers to them.
  std::deque<YamlDocument> docs;
  std::vector<std::vector<YamlDocument>> parsed(files.size());
  std::vector<Diagnostics> file_errors(files.size());
  ParseInParallel(files.size(), [&](size_t i) {
    ReadYaml(files[i].path, files[i].content, options.yaml, &parsed[i], &file_errors[i]);
  });
  size_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    result.errors.Append(file_errors[i]);
    total += parsed[i].size();
    if (total > options.max_documents) {
      result.errors.Add(
          Location{files[i].path},
          "the revision has more than " + std::to_string(options.max_documents) + " documents",
          "split the cluster into several repositories");
      return result;
    }
    for (auto& d : parsed[i]) docs.push_back(std::move(d));
  }

  const Schemas& schemas = Schemas::Get();
  internal::Decoded decoded;
  for (auto& doc : docs) {
    if (!schemas.Validate(doc, &result.errors)) {
      internal::NoteInvalid(doc, &decoded);
      continue;
    }
    schemas.ApplyDefaults(&doc.value);
    if (options.secrets) CheckSecretFiles(doc, doc.value, "", *options.secrets, &result.errors);
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
  result.warnings.insert(result.warnings.end(), snapshot.warnings.begin(), snapshot.warnings.end());
  if (!snapshot.problems.empty()) {
    result.errors.Append(snapshot.problems);
    result.state.reset();
  }
  return result;
}

}  // namespace clusterctl::desired_state
