// The JSON Schemas of schemas/*.schema.json, compiled into the binary.
//
// The schema files are the source of truth for the desired-state format: field
// names, types and defaults. docs/desired-state.md is checked against them by
// tests/desired_state/docs_test.cc.
#pragma once

#include <string_view>
#include <vector>

namespace clusterctl::schemas {

struct EmbeddedSchema {
  std::string_view kind;  // "cluster", "machine", "service", "profile", ...
  std::string_view text;  // the schema document, JSON
};

// Every embedded schema, sorted by file name. Thread-safe.
const std::vector<EmbeddedSchema>& All();

}  // namespace clusterctl::schemas
