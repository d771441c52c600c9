// Internal steps of Load (loader.h); not part of the public surface.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "desired-state/diagnostics.h"
#include "desired-state/model.h"
#include "desired-state/yaml_reader.h"

namespace clusterctl::desired_state::internal {

// The element named `name` of a vector sorted by name, or nullptr.
template <typename T>
const T* FindByName(const std::vector<T>& sorted, const std::string& name) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), name,
                             [](const T& x, const std::string& n) { return x.name < n; });
  return it != sorted.end() && it->name == name ? &*it : nullptr;
}

// The decoded objects of a revision before semantic checks.
struct Decoded {
  std::vector<Cluster> clusters;
  std::vector<Machine> machines;  // Machine ssh holds only the machine's own fields here.
  std::vector<Service> services;
  std::vector<Profile> profiles;
  // Per object, where its fields are: the document it came from.
  std::vector<const YamlDocument*> machine_docs, service_docs, profile_docs, cluster_docs;
  // Objects whose document failed the schema check, by kind then name. They
  // count as defined for references, so one typo is reported once, not again
  // at every place that names the object.
  std::map<std::string, std::set<std::string>> invalid;

  bool IsInvalid(const std::string& kind, const std::string& name) const {
    auto it = invalid.find(kind);
    return it != invalid.end() && it->second.count(name) > 0;
  }
};

// What Load computes from one file alone (parse_cache.h). Built once, then
// immutable: `decoded` points into `docs`, so it is never copied.
struct ParsedFile {
  // A `passwordFile` or `identityFile` string of a document: checked
  // against the secrets policy on every load (the files live outside the
  // repository), so it is kept after the document's JSON is pruned.
  struct SecretFile {
    std::string key;      // "passwordFile" or "identityFile".
    std::string pointer;  // Its JSON pointer in the document.
    std::string path;     // Its value.
  };
  // One document's schema check and decoding.
  struct Checked {
    Diagnostics schema_errors;
    bool valid = false;  // When false, the document was not decoded.
    Diagnostics decode_errors;
    std::vector<SecretFile> secret_files;  // In document order.
  };
  // Schema defaults applied to the valid ones. Once a valid document is
  // decoded, its JSON keeps only what the whole-revision steps read
  // (CheckAndResolve: spec.ssh and spec.reconcile); its places stay whole.
  // The cache keeps every document resident: a service's full JSON with
  // its defaults is most of what it would hold (docs/benchmarks.md).
  std::vector<YamlDocument> docs;
  Diagnostics read_errors;       // ReadYaml's.
  std::vector<Checked> checked;  // Per document; empty until checked.
  Decoded decoded;               // This file's objects; points into docs.
  size_t bytes = 0;              // Length of the source text.

  ParsedFile() = default;
  ParsedFile(const ParsedFile&) = delete;
  ParsedFile& operator=(const ParsedFile&) = delete;
};

// Records the kind and name of a document that failed the schema check, when
// they can be read.
void NoteInvalid(const YamlDocument& doc, Decoded* out);

// Decodes one schema-valid document (defaults applied) into `out`. Semantic
// problems local to one document (two drivers, no machines) go to `diags`.
void Decode(const YamlDocument& doc, Decoded* out, Diagnostics* diags);

// Cross-document checks; fills `state` (sorted objects, resolved SSH
// settings, service order) when there are no errors.
void CheckAndResolve(Decoded& decoded, DesiredState* state, Diagnostics* diags);

// Every service that is to run must have its dependencies running too.
void CheckDesiredDependencies(const DesiredState& state, Diagnostics* diags);

// Expands (service, machine) instances with desired state and spec hash.
void ExpandInstances(DesiredState* state);

}  // namespace clusterctl::desired_state::internal
