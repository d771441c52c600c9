// YamlReader: turns the text of one YAML file into JSON documents, safely.
//
// yaml-cpp 0.7 has hazards measured on Debian 12 (see DEPENDENCIES.md): it
// loops forever on some garbage in LoadAll, overflows its stack on deep
// nesting, silently returns empty documents, accepts duplicate keys, invalid
// UTF-8 and NUL bytes, and expands aliases. This reader is the only place
// that calls yaml-cpp. It checks the text before parsing (size, UTF-8, NUL,
// byte-order marks), parses with an event handler that bounds depth, node
// count and document count as it goes, rejects anchors, aliases and tags,
// and reports duplicate keys and empty documents.
//
// Scalars follow the YAML 1.2 core schema: a plain scalar may be null, a
// bool, an integer or a float; a quoted scalar is always a string.
//
// Every node keeps its place: Document::Locate(pointer) maps a JSON pointer
// ("/spec/process/command/0") to file:line:col for error messages. For a map
// member the place is that of its key.
//
// Thread-safety: ReadYaml is reentrant. yaml-cpp recurses per nesting level:
// call it on a thread with at least 1 MiB of stack (the main thread is fine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "desired-state/diagnostics.h"

namespace clusterctl::desired_state {

struct YamlLimits {
  size_t max_file_bytes = 1 << 20;  // Default: 1 MiB.
  size_t max_depth = 64;            // Default: 64 nested collections.
  size_t max_documents = 10000;     // Default: 10,000 documents per file.
  size_t max_nodes = 2000000;       // Default: 2,000,000 nodes per file.
};

struct YamlDocument {
  // A place in the document's file (`where.file`); kept per node, so it
  // holds no copy of the path (the parse cache keeps documents resident).
  struct LineColumn {
    int line = 0;
    int column = 0;
  };

  // The places of a document's nodes by JSON pointer. Compact, because the
  // parse cache keeps every document of a revision resident: the pointers
  // back to back in one string and a sorted array of 16-byte entries (~40
  // bytes a node, against ~110 for a hash map of strings).
  class Places {
   public:
    Places() = default;
    explicit Places(const std::unordered_map<std::string, LineColumn>& by_pointer);

    // The place of exactly `pointer`, or nullptr.
    const LineColumn* Find(std::string_view pointer) const;
    // Every node under `pointer` (not the node itself), with its place.
    std::vector<std::pair<std::string_view, LineColumn>> Under(std::string_view pointer) const;
    size_t size() const { return entries_.size(); }

   private:
    struct Entry {
      uint32_t offset = 0;  // Of the pointer in text_.
      uint32_t length = 0;
      LineColumn at;
    };
    std::string_view Key(const Entry& e) const { return {text_.data() + e.offset, e.length}; }

    std::string text_;
    std::vector<Entry> entries_;  // Sorted by pointer.
  };

  nlohmann::json value;
  Location where;  // Where the document starts.
  Places places;

  // The place of `pointer`, or of its nearest ancestor that has one.
  Location Locate(const std::string& pointer) const;
};

// Parses `content` (the text of `path`). Appends every document to `out` and
// every problem to `diags`. A file with any problem yields no documents, so a
// half-read file never looks like a file with fewer services.
void ReadYaml(const std::string& path, std::string_view content, const YamlLimits& limits,
              std::vector<YamlDocument>* out, Diagnostics* diags);

// Escapes one JSON-pointer reference token ("~" -> "~0", "/" -> "~1").
std::string JsonPointerEscape(std::string_view token);

}  // namespace clusterctl::desired_state
