// Small edits of a desired-state file as text, so that a commit written by
// clusterctl (stop, start) changes only the lines concerned: comments,
// key order and layout stay as the author wrote them. Pure.
//
// Only block-style specs are edited (`spec:` followed by indented keys, the
// layout of every example); a key inside a flow mapping (`spec: {a: 1}`)
// is refused with a hint to edit the file by hand. The edited text is parsed
// again and checked to hold exactly the intended value before it is
// returned.
//
// Thread-safety: free functions; reentrant.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"

namespace clusterctl::desired_state {

// Sets spec.<key> of the document of `kind` named `name` in `text` (the file
// `path`) to `value_yaml`, a one-line YAML value ("stopped", "[a, b]"), or
// removes the key when `value_yaml` is absent. A present key is rewritten in
// place (all its lines replaced by one); a missing one is added as the first
// key of the spec, indented like the others.
// Errors: NotFound when no such document is in the file; Invalid when the
// file does not parse or the spec is not in block style.
Result<std::string> SetSpecKey(const std::string& path, const std::string& text,
                               const std::string& kind, const std::string& name,
                               const std::string& key,
                               const std::optional<std::string>& value_yaml);

}  // namespace clusterctl::desired_state
