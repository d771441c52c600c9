// Field reference generated from the JSON Schemas in schemas/, so the user
// guide cannot drift from what the loader enforces. docs/desired-state.md and
// docs/configuration.md hold the generated tables between markers; the test
// tests/desired_state/docs_test.cc fails when they differ.
#pragma once

#include <string>
#include <vector>

namespace clusterctl::desired_state {

// Markdown: one "### <title>" section per schema with a table of every field
// (dotted path, type, default, description). `schema_names` are file stems of
// schemas/ ("cluster", "service", ...), in the order to print them.
std::string SchemaReference(const std::vector<std::string>& schema_names);

// Replaces the text between "<!-- BEGIN GENERATED REFERENCE -->" and
// "<!-- END GENERATED REFERENCE -->" in `document` with `reference`.
// Returns `document` unchanged if the markers are missing.
std::string ReplaceGeneratedSection(const std::string& document, const std::string& reference);

}  // namespace clusterctl::desired_state
