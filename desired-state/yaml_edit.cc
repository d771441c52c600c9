#include "desired-state/yaml_edit.h"

#include <algorithm>
#include <vector>

#include "desired-state/yaml_reader.h"

namespace clusterctl::desired_state {

namespace {

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines, bool final_newline) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i];
    if (i + 1 < lines.size() || final_newline) out += '\n';
  }
  return out;
}

Result<std::vector<YamlDocument>> Parse(const std::string& path, const std::string& text) {
  std::vector<YamlDocument> docs;
  Diagnostics diags;
  ReadYaml(path, text, {}, &docs, &diags);
  if (!diags.empty()) return Status::Invalid(diags.ToString());
  return docs;
}

const YamlDocument* Find(const std::vector<YamlDocument>& docs, const std::string& kind,
                         const std::string& name) {
  for (const auto& d : docs) {
    if (!d.value.is_object() || d.value.value("kind", "") != kind) continue;
    const auto meta = d.value.find("metadata");
    if (meta != d.value.end() && meta->is_object() && meta->value("name", "") == name) return &d;
  }
  return nullptr;
}

}  // namespace

Result<std::string> SetSpecKey(const std::string& path, const std::string& text,
                               const std::string& kind, const std::string& name,
                               const std::string& key,
                               const std::optional<std::string>& value_yaml) {
  auto docs = Parse(path, text);
  if (!docs.ok()) return docs.status();
  const YamlDocument* doc = Find(*docs, kind, name);
  if (doc == nullptr) {
    return Status::NotFound("no " + kind + " named \"" + name + "\" in " + path);
  }
  const YamlDocument::LineColumn* spec_at = doc->places.Find("/spec");
  const auto spec = doc->value.find("spec");
  auto by_hand = [&](const std::string& why) {
    return Status::Invalid(path + ": the spec of " + kind + " \"" + name + "\" " + why +
                           "; edit spec." + key + " by hand");
  };
  if (spec_at == nullptr || spec == doc->value.end() || !spec->is_object() || spec->empty()) {
    return by_hand("is empty or missing");
  }
  // The spec's own keys: their lines and the column they start at.
  int first_line = 0, column = 0;
  for (const auto& [k, v] : spec->items()) {
    const YamlDocument::LineColumn* at = doc->places.Find("/spec/" + JsonPointerEscape(k));
    if (at == nullptr) return by_hand("could not be located");
    if (at->line <= spec_at->line) return by_hand("is written in flow style");
    if (first_line == 0 || at->line < first_line) {
      first_line = at->line;
      column = at->column;
    }
  }
  std::vector<std::string> lines = SplitLines(text);
  const bool final_newline = !text.empty() && text.back() == '\n';
  const std::string pointer = "/spec/" + JsonPointerEscape(key);
  const std::string replacement =
      value_yaml ? std::string(static_cast<size_t>(column - 1), ' ') + key + ": " + *value_yaml
                 : "";
  if (const YamlDocument::LineColumn* at = doc->places.Find(pointer)) {
    // Every line of the key's value: its own and those of nested nodes.
    int last = at->line;
    for (const auto& [p, where] : doc->places.Under(pointer)) last = std::max(last, where.line);
    const auto begin = lines.begin() + (at->line - 1);
    lines.erase(begin, lines.begin() + last);
    if (value_yaml) lines.insert(lines.begin() + (at->line - 1), replacement);
  } else if (value_yaml) {
    lines.insert(lines.begin() + (first_line - 1), replacement);
  } else {
    return text;  // Nothing to remove.
  }
  std::string edited = JoinLines(lines, final_newline);

  // The edit must mean exactly what was asked, and nothing else changed.
  auto again = Parse(path, edited);
  if (!again.ok())
    return by_hand("did not parse after the edit (" + again.status().message() + ")");
  const YamlDocument* after = Find(*again, kind, name);
  nlohmann::json expected = doc->value;
  if (value_yaml) {
    std::vector<YamlDocument> value_doc;
    Diagnostics diags;
    ReadYaml(path, key + ": " + *value_yaml + "\n", {}, &value_doc, &diags);
    if (!diags.empty() || value_doc.size() != 1) return Status::Invalid("bad value " + *value_yaml);
    expected["spec"][key] = value_doc[0].value[key];
  } else {
    expected["spec"].erase(key);
  }
  bool same_elsewhere = again->size() == docs->size();
  for (size_t i = 0; same_elsewhere && i < docs->size(); ++i) {
    same_elsewhere = &(*docs)[i] == doc || (*again)[i].value == (*docs)[i].value;
  }
  if (after == nullptr || after->value != expected || !same_elsewhere) {
    return by_hand("has a layout this edit does not handle");
  }
  return edited;
}

}  // namespace clusterctl::desired_state
