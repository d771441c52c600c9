#include "desired-state/loader.h"

#include <algorithm>
#include <functional>
#include <locale>
#include <memory>
#include <thread>

#include "base/parallel.h"
#include "base/sha256.h"
#include "desired-state/internal.h"
#include "desired-state/schema.h"

namespace clusterctl::desired_state {
namespace {

// Runs fn(0..n-1) on a few threads, sized from the cores and bounded
// (yaml-cpp dominates load time and is single-threaded per parser). Small
// revisions stay on the caller's thread. std::thread stacks are 8 MiB on
// Linux, enough for yaml-cpp's recursion within the nesting limit.
void ParseInParallel(size_t n, const std::function<void(size_t)>& fn) {
  // valijson compiles a std::regex per "pattern" check, and libstdc++'s
  // ctype<char>::narrow fills a per-locale cache lazily on first use of each
  // character: threads compiling regexes at once write it concurrently (the
  // same bytes: GCC PR 77704; ThreadSanitizer reports it). Fill it once here,
  // before any worker starts.
  static const bool narrow_cache_filled = [] {
    const auto& ctype = std::use_facet<std::ctype<char>>(std::locale());
    for (int c = 0; c < 256; ++c) (void)ctype.narrow(static_cast<char>(c), '\0');
    return true;
  }();
  (void)narrow_cache_filled;
  constexpr unsigned kMaxThreads = 4;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  ParallelFor(n, n < 8 ? 1 : static_cast<int>(std::min(cores, kMaxThreads)), fn);
}

// What the per-file work depends on besides the file itself: the schemas,
// the YAML limits and the layout of a cache entry (bump kFormat when
// ParsedFile or what fills it changes).
std::string Fingerprint(const Schemas& schemas, const YamlLimits& limits) {
  constexpr int kFormat = 2;
  return Sha256Hex(std::to_string(kFormat) + " " + std::to_string(limits.max_file_bytes) + " " +
                   std::to_string(limits.max_depth) + " " + std::to_string(limits.max_documents) +
                   " " + std::to_string(limits.max_nodes) + " " + schemas.fingerprint());
}

// Every `passwordFile` and `identityFile` string below `value` (`pointer` is
// its JSON pointer), in document order.
void FindSecretFiles(const nlohmann::json& value, const std::string& pointer,
                     std::vector<internal::ParsedFile::SecretFile>* out) {
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      FindSecretFiles(value[i], pointer + "/" + std::to_string(i), out);
    }
    return;
  }
  if (!value.is_object()) return;
  for (const auto& [key, member] : value.items()) {
    const std::string at = pointer + "/" + JsonPointerEscape(key);
    if ((key == "passwordFile" || key == "identityFile") && member.is_string()) {
      out->push_back({key, at, member.get<std::string>()});
      continue;
    }
    FindSecretFiles(member, at, out);
  }
}

// Prunes a decoded document's JSON to what CheckAndResolve (semantic.cc)
// reads of it: spec.ssh (machines) and spec.reconcile (services).
void KeepWhatTheRevisionStepsRead(nlohmann::json* value) {
  auto spec = value->find("spec");
  if (spec == value->end() || !spec->is_object()) {
    *value = nlohmann::json::object();
    return;
  }
  nlohmann::json kept = nlohmann::json::object();
  for (const char* key : {"ssh", "reconcile"}) {
    if (auto it = spec->find(key); it != spec->end()) kept[key] = std::move(*it);
  }
  *value = nlohmann::json{{"spec", std::move(kept)}};
}

// Step 2 and 3 of one file whose YAML was read: schema check, defaults,
// decoding.
void CheckAndDecode(const Schemas& schemas, internal::ParsedFile* file) {
  file->checked.resize(file->docs.size());
  for (size_t i = 0; i < file->docs.size(); ++i) {
    YamlDocument& doc = file->docs[i];
    internal::ParsedFile::Checked& c = file->checked[i];
    c.valid = schemas.Validate(doc, &c.schema_errors);
    if (!c.valid) {
      internal::NoteInvalid(doc, &file->decoded);
      continue;
    }
    schemas.ApplyDefaults(&doc.value);
    internal::Decode(doc, &file->decoded, &c.decode_errors);
    FindSecretFiles(doc.value, "", &c.secret_files);
    KeepWhatTheRevisionStepsRead(&doc.value);
  }
}

template <typename T>
void AppendAll(const std::vector<T>& from, std::vector<T>* to) {
  to->insert(to->end(), from.begin(), from.end());
}

// Room in `all` for the decoded objects of every file.
void Reserve(const std::vector<ParseCache::Entry>& files, internal::Decoded* all) {
  size_t machines = 0, services = 0;
  for (const auto& f : files) {
    machines += f->decoded.machines.size();
    services += f->decoded.services.size();
  }
  all->machines.reserve(machines);
  all->machine_docs.reserve(machines);
  all->services.reserve(services);
  all->service_docs.reserve(services);
}

// Adds one file's decoded objects to those of the files before it.
void Merge(const internal::Decoded& file, internal::Decoded* all) {
  AppendAll(file.clusters, &all->clusters);
  AppendAll(file.machines, &all->machines);
  AppendAll(file.services, &all->services);
  AppendAll(file.profiles, &all->profiles);
  AppendAll(file.cluster_docs, &all->cluster_docs);
  AppendAll(file.machine_docs, &all->machine_docs);
  AppendAll(file.service_docs, &all->service_docs);
  AppendAll(file.profile_docs, &all->profile_docs);
  for (const auto& [kind, names] : file.invalid)
    all->invalid[kind].insert(names.begin(), names.end());
}

}  // namespace

LoadResult LoadFiles(const std::vector<SourceFile>& files, const Revision& revision,
                     const LoadOptions& options) {
  LoadResult result;
  const Schemas& schemas = options.schemas != nullptr ? *options.schemas : Schemas::Get();
  ParseCache* cache = options.cache.get();

  // Steps 1-3 per file: from the cache, or parsed (in parallel). Entries are
  // shared and immutable; a fresh one is filled in before it is shared.
  std::vector<std::string> keys(files.size());
  std::vector<ParseCache::Entry> entries(files.size());
  // The last owner frees a revision's parse (~17 times its text) on the
  // threads that parse: one thread alone took ~10% of a cold load.
  struct ReleaseInParallel {
    std::vector<ParseCache::Entry>* entries;
    ~ReleaseInParallel() {
      ParseInParallel(entries->size(), [this](size_t i) { (*entries)[i].reset(); });
    }
  } release{&entries};
  std::vector<std::unique_ptr<internal::ParsedFile>> fresh(files.size());
  std::vector<size_t> misses;
  if (cache != nullptr) {
    const std::string fingerprint = Fingerprint(schemas, options.yaml);
    for (size_t i = 0; i < files.size(); ++i) {
      const SourceFile& f = files[i];
      const std::string blob = f.blob.empty() ? "sha256:" + Sha256Hex(f.content) : f.blob;
      keys[i] = fingerprint + " " + blob + " " + f.path;
      entries[i] = cache->Find(keys[i]);
      if (entries[i] == nullptr) misses.push_back(i);
    }
  } else {
    for (size_t i = 0; i < files.size(); ++i) misses.push_back(i);
  }
  ParseInParallel(misses.size(), [&](size_t m) {
    const size_t i = misses[m];
    auto file = std::make_unique<internal::ParsedFile>();
    file->bytes = files[i].content.size();
    ReadYaml(files[i].path, files[i].content, options.yaml, &file->docs, &file->read_errors);
    fresh[i] = std::move(file);
  });
  auto parsed = [&](size_t i) -> const internal::ParsedFile& {
    return entries[i] != nullptr ? *entries[i] : *fresh[i];
  };

  // Keeps the complete entries of this revision's files, drops the rest.
  auto update_cache = [&] {
    if (cache == nullptr) return;
    std::vector<std::pair<std::string, ParseCache::Entry>> kept;
    kept.reserve(files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      if (entries[i] != nullptr) kept.emplace_back(std::move(keys[i]), entries[i]);
    }
    cache->Replace(std::move(kept), files.size() - misses.size(), misses.size());
  };

  // The document bound, before any document is checked.
  size_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    result.errors.Append(parsed(i).read_errors);
    total += parsed(i).docs.size();
    if (total > options.max_documents) {
      result.errors.Add(
          Location{files[i].path},
          "the revision has more than " + std::to_string(options.max_documents) + " documents",
          "split the cluster into several repositories");
      update_cache();
      return result;
    }
  }
  ParseInParallel(misses.size(),
                  [&](size_t m) { CheckAndDecode(schemas, fresh[misses[m]].get()); });
  for (size_t i : misses) entries[i] = std::move(fresh[i]);
  update_cache();

  // The diagnostics in the order of a sequential load: per document, its
  // schema check, its secret files, its decoding. Secret files are looked
  // up on every load (they live outside the repository).
  internal::Decoded decoded;
  Reserve(entries, &decoded);
  bool any_document = false;
  for (const ParseCache::Entry& file : entries) {
    for (size_t d = 0; d < file->docs.size(); ++d) {
      any_document = true;
      const internal::ParsedFile::Checked& c = file->checked[d];
      result.errors.Append(c.schema_errors);
      if (!c.valid) continue;
      if (options.secrets) {
        for (const auto& secret : c.secret_files) {
          auto resolved = ResolveSecretFile(*options.secrets, secret.path);
          if (resolved.ok()) continue;
          result.errors.Add(file->docs[d].Locate(secret.pointer),
                            secret.key + " " + resolved.status().message(),
                            "put the file in secretsDir (" + options.secrets->dir +
                                ") and name it relative to it (docs/desired-state.md, Secrets)");
        }
      }
      result.errors.Append(c.decode_errors);
    }
    Merge(file->decoded, &decoded);
  }
  if (!any_document && result.errors.empty()) {
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
