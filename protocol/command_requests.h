// The commands API requests (PROTOCOL §3 commands/send|get|list|cancel) as typed values. Pure: a parsed
// JSON object in, a request or a bad_request Error out; no storage, no clock.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocol/command_line.h"
#include "protocol/core/result.h"
#include "protocol/request_fields.h"

namespace dispatch::protocol {

struct SendCommandRequest {
  CommandType type = CommandType::exec;
  std::string type_name;  // as sent ("exec", …)
  Execution execution = Execution::sync;
  std::string command;                    // exec only (non-empty)
  std::vector<std::string> arguments;     // exec only
  std::optional<std::string> package_id;  // firmware only; none = the latest package
  std::vector<std::string> hardware_ids;  // as sent, each a valid hardware id
  std::vector<std::string> tags;          // sorted, deduplicated
  std::optional<std::int64_t> ttl_s;      // 1 .. 365 days; none = the configured default
  std::optional<std::string> description;
  std::optional<std::string> request_id;  // idempotency key (an object id)
};

// commands/send. Fields are checked in this order, each failure bad_request with the json_request
// message: type ("field 'type' must be one of exec, firmware, reboot, shutdown, ping, health"),
// execution ("field 'execution' must be one of sync, async"), command, arguments, package_id,
// hardware_ids, tags, ttl_s, description, request_id; then the rules of the type:
//   exec      "type 'exec' needs a non-empty 'command'"
//   firmware  "type 'firmware' takes 'package_id' (or none for the latest package), not 'command' or
//             'arguments'"
//   others    "type '<t>' takes no 'command' or 'arguments'", "type '<t>' takes no 'package_id'"
// and last "no targets: give 'hardware_ids' or 'tags'".
core::Result<SendCommandRequest> parse_send_command(const nlohmann::json& body);

// commands/get and commands/cancel: `command_id`, a required object id.
struct CommandRef {
  std::string command_id;
};
core::Result<CommandRef> parse_command_ref(const nlohmann::json& body);

// commands/get: `command_id` and paging of its devices (`after` is a hardware id).
struct GetCommandRequest {
  std::string command_id;
  Page page;
};
core::Result<GetCommandRequest> parse_get_command(const nlohmann::json& body);

// commands/list: paging (`after` is a command id) and an optional `hardware_id` filter.
struct ListCommandsRequest {
  Page page;
  std::optional<std::string> hardware_id;
};
core::Result<ListCommandsRequest> parse_list_commands(const nlohmann::json& body);

}  // namespace dispatch::protocol
