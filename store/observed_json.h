// JSON form of the observed-state types (reconcilers/observed.h): how the
// state store keeps them, how `clusterctl --json` prints them and how the
// HTTP API answers with them. One definition, so the three agree.
//
// Field names are snake_case and match the struct members; enums are their
// lower-case names ("running", "readiness"). Every field is always written.
// Reading is lenient about absent fields (they keep their defaults, so a
// record written by an older clusterctl still loads) but strict about types,
// and requires the identifying fields (service, machine).
//
// Strings come from machines (systemd output, probe answers) and may hold
// invalid UTF-8: ToJsonString() replaces such bytes with U+FFFD instead of
// throwing. Code that dumps a nlohmann::json built from these types must
// do the same (nlohmann::json::error_handler_t::replace).
//
// No secret is part of these types; nothing here reads files.
//
// The to_json/from_json overloads live in namespace clusterctl::reconcilers,
// next to the types, so nlohmann finds them by argument-dependent lookup
// (`nlohmann::json j = instance;`). from_json throws nlohmann::json
// exceptions like every nlohmann conversion; the Parse*() functions do not.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "base/status.h"
#include "reconcilers/observed.h"

namespace clusterctl::reconcilers {

void to_json(nlohmann::json& j, const ObservedInstance& v);
void from_json(const nlohmann::json& j, ObservedInstance& v);
void to_json(nlohmann::json& j, const MachineFacts& v);
void from_json(const nlohmann::json& j, MachineFacts& v);
void to_json(nlohmann::json& j, const MachineObservation& v);  // {"facts": ..., "instances": [...]}
void from_json(const nlohmann::json& j, MachineObservation& v);
void to_json(nlohmann::json& j, const ProbeResult& v);
void from_json(const nlohmann::json& j, ProbeResult& v);

}  // namespace clusterctl::reconcilers

namespace clusterctl::store {

// ProbeRoleName() reversed. Errors: Code::kInvalid for an unknown name.
Result<reconcilers::ProbeRole> ParseProbeRole(std::string_view name);

// Compact JSON text (one line) of a value.
std::string ToJsonString(const reconcilers::ObservedInstance& v);
std::string ToJsonString(const reconcilers::MachineFacts& v);
std::string ToJsonString(const reconcilers::MachineObservation& v);
std::string ToJsonString(const reconcilers::ProbeResult& v);

// Parses JSON text into a value. Errors: Code::kInvalid with the parser's
// message (malformed text, a field of the wrong type, a missing identifying
// field).
Result<reconcilers::ObservedInstance> ParseObservedInstance(std::string_view text);
Result<reconcilers::MachineFacts> ParseMachineFacts(std::string_view text);
Result<reconcilers::MachineObservation> ParseMachineObservation(std::string_view text);
Result<reconcilers::ProbeResult> ParseProbeResult(std::string_view text);

}  // namespace clusterctl::store
