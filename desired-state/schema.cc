// The only translation unit that includes valijson (it costs ~30 s to compile).
#include "desired-state/schema.h"

#include <algorithm>
#include <regex>
#include <set>
#include <stdexcept>
#include <string_view>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "base/sha256.h"
#include "schemas/embedded.h"

namespace clusterctl::desired_state {
namespace {

using nlohmann::json;

constexpr std::string_view kDocsHint = "see docs/desired-state.md";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "spec.process.command[0]" from pointer tokens.
std::string DottedPath(const std::vector<std::string>& tokens, const json& root) {
  std::string out;
  const json* node = &root;
  for (const auto& t : tokens) {
    if (node != nullptr && node->is_array()) {
      out += "[" + t + "]";
      size_t i = std::stoul(t);
      node = i < node->size() ? &(*node)[i] : nullptr;
    } else {
      if (!out.empty()) out += ".";
      out += t;
      node = (node != nullptr && node->is_object() && node->contains(t)) ? &(*node)[t] : nullptr;
    }
  }
  return out.empty() ? "the document" : out;
}

std::string Pointer(const std::vector<std::string>& tokens) {
  std::string p;
  for (const auto& t : tokens) p += "/" + JsonPointerEscape(t);
  return p;
}

const json* InstanceAt(const json& root, const std::vector<std::string>& tokens) {
  const json* node = &root;
  for (const auto& t : tokens) {
    if (node->is_array()) {
      size_t i = std::stoul(t);
      if (i >= node->size()) return nullptr;
      node = &(*node)[i];
    } else if (node->is_object() && node->contains(t)) {
      node = &(*node)[t];
    } else {
      return nullptr;
    }
  }
  return node;
}

// Follows "$ref": "#/definitions/x" within `root`.
const json& Deref(const json& root, const json& node) {
  const json* n = &node;
  for (int guard = 0; guard < 16 && n->is_object() && n->contains("$ref"); ++guard) {
    std::string ref = (*n)["$ref"].get<std::string>();
    if (!StartsWith(ref, "#/")) break;
    n = &root.at(json::json_pointer(ref.substr(1)));
  }
  return *n;
}

// The subschema that describes the instance at `tokens`, or nullptr.
const json* SchemaAt(const json& root, const std::vector<std::string>& tokens) {
  const json* s = &Deref(root, root);
  for (const auto& t : tokens) {
    if (s->contains("properties") && (*s)["properties"].contains(t)) {
      s = &Deref(root, (*s)["properties"][t]);
    } else if (s->contains("items")) {
      s = &Deref(root, (*s)["items"]);
    } else if (s->contains("additionalProperties") && (*s)["additionalProperties"].is_object()) {
      s = &Deref(root, (*s)["additionalProperties"]);
    } else {
      return nullptr;
    }
  }
  return s;
}

std::string TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "a list";
    case json::value_t::object:
      return "a mapping";
    default:
      return "a value";
  }
}

std::string ExpectedType(const json& schema) {
  if (!schema.contains("type")) return "of another type";
  std::string t = schema["type"].is_string() ? schema["type"].get<std::string>() : "";
  if (t == "integer") return "an integer";
  if (t == "boolean") return "true or false";
  if (t == "string") return "a string";
  if (t == "array") return "a list";
  if (t == "object") return "a mapping";
  if (t == "number") return "a number";
  return "of another type";
}

std::string Shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// valijson reports nothing for a key that fails "propertyNames": find such
// keys here. Returns whether any was reported.
bool ReportBadKeys(const YamlDocument& doc, const json& root, const json& schema_in,
                   const json& value, std::vector<std::string>* at, Diagnostics* diags, int depth) {
  if (depth > 32) return false;
  const json& schema = Deref(root, schema_in);
  bool any = false;
  if (value.is_object()) {
    if (schema.contains("propertyNames") && schema["propertyNames"].contains("pattern")) {
      const std::regex re(schema["propertyNames"]["pattern"].get<std::string>());
      for (const auto& [k, _] : value.items()) {
        if (std::regex_search(k, re)) continue;
        at->push_back(k);
        std::string path =
            DottedPath(std::vector<std::string>(at->begin(), at->end() - 1), doc.value);
        diags->Add(doc.Locate(Pointer(*at)), "invalid key \"" + k + "\" in " + path,
                   "it must match " + schema["propertyNames"]["pattern"].get<std::string>());
        at->pop_back();
        any = true;
      }
    }
    for (const auto& [k, v] : value.items()) {
      const json* sub = nullptr;
      if (schema.contains("properties") && schema["properties"].contains(k)) {
        sub = &schema["properties"][k];
      } else if (schema.contains("additionalProperties") &&
                 schema["additionalProperties"].is_object()) {
        sub = &schema["additionalProperties"];
      }
      if (sub == nullptr) continue;
      at->push_back(k);
      any |= ReportBadKeys(doc, root, *sub, v, at, diags, depth + 1);
      at->pop_back();
    }
  } else if (value.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < value.size(); ++i) {
      at->push_back(std::to_string(i));
      any |= ReportBadKeys(doc, root, schema["items"], value[i], at, diags, depth + 1);
      at->pop_back();
    }
  }
  return any;
}

struct Compiled {
  json raw;
  valijson::Schema schema;
};

}  // namespace

struct Schemas::Impl {
  std::map<std::string, std::unique_ptr<Compiled>> by_kind;
  std::string fingerprint;

  // Turns valijson's errors for `instance` (the part of `doc` at `base`) into
  // diagnostics. Returns whether there were any.
  bool Report(const YamlDocument& doc, const std::vector<std::string>& base, const json& instance,
              const Compiled& schema, const valijson::ValidationResults& results,
              Diagnostics* diags) const;
};

Schemas::Schemas(const std::vector<schemas::EmbeddedSchema>& texts)
    : impl_(std::make_unique<Impl>()) {
  std::string all;
  for (const auto& embedded : texts) {
    all += std::to_string(embedded.kind.size()) + ":" + std::string(embedded.kind) +
           std::to_string(embedded.text.size()) + ":" + std::string(embedded.text);
    auto c = std::make_unique<Compiled>();
    c->raw = json::parse(embedded.text);
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(c->raw);
    parser.populateSchema(adapter, c->schema);
    impl_->by_kind[std::string(embedded.kind)] = std::move(c);
  }
  impl_->fingerprint = Sha256Hex(all);
}

Schemas::~Schemas() = default;

const Schemas& Schemas::Get() {
  static const Schemas* instance = new Schemas(schemas::All());
  return *instance;
}

std::unique_ptr<Schemas> Schemas::FromTextsForTest(
    const std::vector<schemas::EmbeddedSchema>& texts) {
  return std::unique_ptr<Schemas>(new Schemas(texts));
}

const std::string& Schemas::fingerprint() const { return impl_->fingerprint; }

const json& Schemas::Raw(const std::string& kind) const {
  auto it = impl_->by_kind.find(kind);
  if (it == impl_->by_kind.end()) throw std::out_of_range("no schema " + kind);
  return it->second->raw;
}

std::string SchemaNameOfKind(const std::string& kind) {
  std::string s = kind;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool Schemas::Impl::Report(const YamlDocument& doc, const std::vector<std::string>& base,
                           const json& instance, const Compiled& schema,
                           const valijson::ValidationResults& results, Diagnostics* diags) const {
  bool any = false;
  std::set<std::string> seen;
  for (const auto& err : results) {
    std::vector<std::string> rel;
    for (const auto& c : err.context) {
      if (c == "<root>") continue;
      rel.push_back(c.size() >= 2 && c.front() == '[' ? c.substr(1, c.size() - 2) : c);
    }
    std::vector<std::string> full = base;
    full.insert(full.end(), rel.begin(), rel.end());
    const std::string& d = err.description;
    const json* node = InstanceAt(instance, rel);
    const json* sub = SchemaAt(schema.raw, rel);
    std::string path = DottedPath(full, doc.value);
    auto add = [&](const std::vector<std::string>& at, std::string msg, std::string hint) {
      std::string key = Pointer(at) + "\n" + msg;
      if (!seen.insert(key).second) return;
      diags->Add(doc.Locate(Pointer(at)), std::move(msg), std::move(hint));
      any = true;
    };

    if (StartsWith(d, "Object contains a property that could not be validated")) {
      if (node == nullptr || !node->is_object() || sub == nullptr) continue;
      std::vector<std::string> allowed;
      if (sub->contains("properties")) {
        for (const auto& [k, _] : (*sub)["properties"].items()) allowed.push_back(k);
      }
      for (const auto& [k, _] : node->items()) {
        if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
        auto at = full;
        at.push_back(k);
        add(at, "unknown field \"" + k + "\" in " + path,
            "remove it or fix its spelling (fields here: " + Join(allowed, ", ") + ")");
      }
    } else if (StartsWith(d, "Missing required property '")) {
      std::string name = d.substr(27, d.find('\'', 27) - 27);
      add(full, "missing required field \"" + name + "\" in " + path,
          "add it (" + std::string(kDocsHint) + ")");
    } else if (StartsWith(d, "Value type not permitted")) {
      if (node == nullptr || sub == nullptr) continue;
      add(full, path + " must be " + ExpectedType(*sub) + ", not " + TypeName(*node),
          sub->contains("description") ? (*sub)["description"].get<std::string>() : "");
    } else if (StartsWith(d, "Failed to match against any enum values")) {
      if (node == nullptr || sub == nullptr || !sub->contains("enum")) continue;
      std::vector<std::string> vals;
      for (const auto& v : (*sub)["enum"]) vals.push_back(v.get<std::string>());
      add(full, path + " is " + Shown(*node) + "; it must be one of: " + Join(vals, ", "), "");
    } else if (StartsWith(d, "Failed to match expected value set by 'const'")) {
      if (node == nullptr || sub == nullptr) continue;
      add(full, path + " is " + Shown(*node) + "; it must be " + (*sub)["const"].dump(), "");
    } else if (StartsWith(d, "Failed to match regex")) {
      if (node == nullptr || sub == nullptr) continue;
      std::string what =
          sub->contains("description") ? (*sub)["description"].get<std::string>() : "";
      if (rel.size() >= 1 && base.empty() && full.size() == 2 && full[1] == "name") {
        what = "use lower-case letters, digits and '-', starting and ending with a letter or digit";
      }
      add(full, path + " " + Shown(*node) + " is not valid",
          what.empty() ? "it must match " + (*sub)["pattern"].get<std::string>() : what);
    } else if (StartsWith(d, "Expected number")) {
      if (node == nullptr || sub == nullptr) continue;
      std::string range = "between " + (sub->contains("minimum") ? (*sub)["minimum"].dump() : "?") +
                          " and " + (sub->contains("maximum") ? (*sub)["maximum"].dump() : "?");
      add(full, path + " is " + Shown(*node) + "; it must be " + range, "");
    } else if (StartsWith(d, "Elements at indexes")) {
      add(full, path + " lists the same item twice", "remove the duplicate");
    } else if (StartsWith(d, "String should be") || StartsWith(d, "Array should contain") ||
               StartsWith(d, "Object should have")) {
      std::string lower = d;
      lower[0] = static_cast<char>(std::tolower(lower[0]));
      if (!lower.empty() && lower.back() == '.') lower.pop_back();
      add(full, path + ": " + lower, "");
    }
    // Other "Failed to validate ..." lines restate an error already reported
    // for a child node.
  }
  if (!any) {
    std::vector<std::string> at = base;
    any = ReportBadKeys(doc, schema.raw, schema.raw, instance, &at, diags, 0);
  }
  return any;
}

bool Schemas::Validate(const YamlDocument& doc, Diagnostics* diags) const {
  const Compiled& envelope = *impl_->by_kind.at("document");
  thread_local valijson::Validator validator(
      valijson::Validator::kStrongTypes);  // Keeps its regex cache.
  {
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(doc.value);
    if (!validator.validate(envelope.schema, target, &results)) {
      bool reported = impl_->Report(doc, {}, doc.value, envelope, results, diags);
      if (!reported) diags->Add(doc.where, "document does not match the schema", "");
      return false;
    }
  }
  const std::string kind = doc.value["kind"].get<std::string>();
  auto it = impl_->by_kind.find(SchemaNameOfKind(kind));
  if (it == impl_->by_kind.end()) return true;  // The envelope's enum rejects unknown kinds.
  const json& spec = doc.value["spec"];
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(spec);
  if (validator.validate(it->second->schema, target, &results)) return true;
  if (!impl_->Report(doc, {"spec"}, spec, *it->second, results, diags)) {
    diags->Add(doc.Locate("/spec"), kind + " spec does not match the schema", "");
  }
  return false;
}

namespace {

// Adds defaults of `schema` (an object schema) into `value`, recursively.
void FillDefaults(const json& root, const json& schema_in, json* value, int depth) {
  const json& schema = Deref(root, schema_in);
  if (depth > 32 || !value->is_object() || !schema.contains("properties")) return;
  for (const auto& [name, prop_in] : schema["properties"].items()) {
    const json& prop = Deref(root, prop_in);
    if (!value->contains(name)) {
      if (prop_in.contains("default")) {
        (*value)[name] = prop_in["default"];
      } else if (prop.contains("default")) {
        (*value)[name] = prop["default"];
      } else {
        continue;
      }
    }
    json& child = (*value)[name];
    if (child.is_object()) {
      FillDefaults(root, prop, &child, depth + 1);
    } else if (child.is_array() && prop.contains("items")) {
      for (auto& item : child) FillDefaults(root, prop["items"], &item, depth + 1);
    }
  }
}

}  // namespace

namespace {
void FillDefaults(const json& root, const json& schema_in, json* value, int depth);
}  // namespace

bool Schemas::ValidateAndDefault(const std::string& schema_name, YamlDocument* doc,
                                 Diagnostics* diags) const {
  const Compiled& schema = *impl_->by_kind.at(schema_name);
  thread_local valijson::Validator validator(
      valijson::Validator::kStrongTypes);  // Keeps its regex cache.
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(doc->value);
  if (!validator.validate(schema.schema, target, &results)) {
    if (!impl_->Report(*doc, {}, doc->value, schema, results, diags)) {
      diags->Add(doc->where, "the file does not match schemas/" + schema_name + ".schema.json", "");
    }
    return false;
  }
  FillDefaults(schema.raw, schema.raw, &doc->value, 0);
  return true;
}

void Schemas::ApplyDefaults(json* doc) const {
  auto it = impl_->by_kind.find(SchemaNameOfKind((*doc)["kind"].get<std::string>()));
  if (it == impl_->by_kind.end()) return;
  FillDefaults(it->second->raw, it->second->raw, &(*doc)["spec"], 0);
}

}  // namespace clusterctl::desired_state
