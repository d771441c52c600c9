// Schema checks and defaults for desired-state documents.
//
// The JSON Schemas in schemas/ (compiled in, see schemas/embedded.h) are the
// source of truth for field names, types and defaults. Validation is done by
// valijson; its raw errors are turned into messages a user can act on, with
// the file:line:col of the offending key or value:
//
//   services/a.yaml:9:5: error: unknown field "comand" in spec.process;
//       remove it or fix its spelling (fields here: command, env, user, workingDir)
//
// Thread-safety: Schemas::Get() is built once on first use and is immutable.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "desired-state/diagnostics.h"
#include "desired-state/yaml_reader.h"
#include "schemas/embedded.h"

namespace clusterctl::desired_state {

class Schemas {
 public:
  // The schemas compiled into this binary.
  static const Schemas& Get();
  ~Schemas();

  // Checks the envelope (apiVersion, kind, metadata, spec) and then the spec
  // against the schema of its kind. Adds every problem to `diags`; returns
  // whether the document is valid.
  bool Validate(const YamlDocument& doc, Diagnostics* diags) const;

  // Fills in every default the schema of the document's kind declares, for
  // fields that are absent. `doc` must have passed Validate().
  void ApplyDefaults(nlohmann::json* doc) const;

  // Checks a whole document against the schema named `schema_name` (the file
  // stem in schemas/, e.g. "config"), without the envelope, then applies its
  // defaults. For files that are not desired-state documents.
  bool ValidateAndDefault(const std::string& schema_name, YamlDocument* doc,
                          Diagnostics* diags) const;

  // The parsed schema text of a kind ("document", "cluster", "service", ...).
  const nlohmann::json& Raw(const std::string& kind) const;

  // SHA-256 (hex) over every schema's kind and text: two Schemas with the
  // same fingerprint check and default documents alike. Part of the key of
  // the parse cache (parse_cache.h).
  const std::string& fingerprint() const;

  // Schemas built from `texts` instead of the compiled-in ones, for tests of
  // what depends on the schemas (the parse cache's invalidation).
  static std::unique_ptr<Schemas> FromTextsForTest(
      const std::vector<schemas::EmbeddedSchema>& texts);

 private:
  explicit Schemas(const std::vector<schemas::EmbeddedSchema>& texts);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "Service" -> "service": the schemas/ file stem of a document kind.
std::string SchemaNameOfKind(const std::string& kind);

}  // namespace clusterctl::desired_state
