// Identifier rules of the wire (PROTOCOL "Conventions").
//
// A hardware id is what a device is called in topics and payloads: ^[A-Za-z0-9_-]{3,128}$. An object id
// is any other id that may travel in a topic or be echoed back: service-minted ids (command, package,
// campaign) and client-chosen ones (request_id, correlation ids): ^[A-Za-z0-9_.:-]{1,128}$. Neither may
// hold '/', '+', '#', NUL or spaces, so a checked id can never change the shape of a topic.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/core/result.h"

namespace dispatch::protocol {

inline constexpr std::string_view k_hardware_id_pattern = "^[A-Za-z0-9_-]{3,128}$";
inline constexpr std::string_view k_object_id_pattern = "^[A-Za-z0-9_.:-]{1,128}$";

bool valid_hardware_id(std::string_view id);
bool valid_object_id(std::string_view id);

// ok when valid_hardware_id(id); otherwise bad_request
// "invalid <field_name> '<printable(id)>': must match ^[A-Za-z0-9_-]{3,128}$".
core::Status check_hardware_id(std::string_view id, std::string_view field_name = "hardware_id");

// ok when valid_object_id(id); otherwise bad_request
// "invalid <field_name> '<printable(id)>': must match ^[A-Za-z0-9_.:-]{1,128}$".
core::Status check_object_id(std::string_view id, std::string_view field_name);

// Untrusted text made safe to quote in a message or a log line: at most max_bytes input bytes are kept
// (then "..." is appended); bytes outside printable ASCII, '\'' and '\\' are written as \xNN.
std::string printable(std::string_view text, std::size_t max_bytes = 64);

}  // namespace dispatch::protocol
