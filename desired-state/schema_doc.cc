#include "desired-state/schema_doc.h"

#include <nlohmann/json.hpp>

#include "desired-state/schema.h"

namespace clusterctl::desired_state {
namespace {

using nlohmann::json;

const json& Deref(const json& root, const json& node) {
  const json* n = &node;
  for (int guard = 0; guard < 16 && n->is_object() && n->contains("$ref"); ++guard) {
    n = &root.at(json::json_pointer((*n)["$ref"].get<std::string>().substr(1)));
  }
  return *n;
}

std::string TypeOf(const json& s) {
  if (s.contains("enum")) {
    std::string out;
    for (const auto& v : s["enum"]) out += (out.empty() ? "" : " | ") + v.get<std::string>();
    return out;
  }
  if (s.contains("const")) return "`" + s["const"].get<std::string>() + "`";
  if (!s.contains("type")) return "any";
  std::string t = s["type"].get<std::string>();
  if (t == "array") {
    std::string item = s.contains("items") && s["items"].contains("type")
                           ? s["items"]["type"].get<std::string>()
                           : "object";
    if (s.contains("items") && s["items"].contains("anyOf")) {  // rollout.waves: 3 or "50%".
      item.clear();
      for (const auto& alt : s["items"]["anyOf"]) {
        item += (item.empty() ? "" : " or ") + alt.value("type", std::string("object"));
      }
    }
    return "list of " + item;
  }
  if (t == "object" && s.contains("additionalProperties") &&
      s["additionalProperties"].is_object()) {
    return "map of string";
  }
  return t;
}

std::string Escape(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

void Walk(const json& root, const json& schema_in, const std::string& prefix, std::string* out,
          int depth) {
  const json& schema = Deref(root, schema_in);
  if (depth > 12 || !schema.contains("properties")) return;
  std::vector<std::string> required;
  if (schema.contains("required")) required = schema["required"].get<std::vector<std::string>>();
  for (const auto& [name, prop_in] : schema["properties"].items()) {
    const json& prop = Deref(root, prop_in);
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    std::string def = "";
    if (prop_in.contains("default"))
      def = prop_in["default"].dump();
    else if (prop.contains("default"))
      def = prop["default"].dump();
    bool req = std::find(required.begin(), required.end(), name) != required.end();
    std::string desc = prop_in.contains("description") ? prop_in["description"].get<std::string>()
                       : prop.contains("description")  ? prop["description"].get<std::string>()
                                                       : "";
    *out += "| `" + path + "` | " + Escape(TypeOf(prop)) + " | " +
            (req ? "required" : (def.empty() ? "" : "`" + Escape(def) + "`")) + " | " +
            Escape(desc) + " |\n";
    if (prop.contains("properties")) {
      Walk(root, prop, path, out, depth + 1);
    } else if (prop.contains("items") && Deref(root, prop["items"]).contains("properties")) {
      Walk(root, prop["items"], path + "[]", out, depth + 1);
    }
  }
}

}  // namespace

std::string SchemaReference(const std::vector<std::string>& schema_names) {
  std::string out;
  for (const auto& name : schema_names) {
    const json& root = Schemas::Get().Raw(name);
    out += "### " + root.value("title", name) + "\n\n";
    out += root.value("description", "") + "\n\n";
    out += "| Field | Type | Default | Description |\n|---|---|---|---|\n";
    Walk(root, root, "", &out, 0);
    out += "\n";
  }
  return out;
}

std::string ReplaceGeneratedSection(const std::string& document, const std::string& reference) {
  const std::string begin = "<!-- BEGIN GENERATED REFERENCE -->\n";
  const std::string end = "<!-- END GENERATED REFERENCE -->";
  size_t b = document.find(begin);
  size_t e = document.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) return document;
  return document.substr(0, b + begin.size()) + reference + document.substr(e);
}

}  // namespace clusterctl::desired_state
