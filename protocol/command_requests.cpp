#include "protocol/command_requests.h"

#include <fmt/format.h>

#include "protocol/json_request.h"

namespace dispatch::protocol {

using core::ErrorCode;
using core::make_error;

core::Result<SendCommandRequest> parse_send_command(const nlohmann::json& body) {
  SendCommandRequest r;
  auto type_name = required_string(body, "type");
  if (!type_name) return type_name.error();
  auto type = command_type_from_string(*type_name);
  if (!type) {
    return make_error(ErrorCode::bad_request,
                      "field 'type' must be one of exec, firmware, reboot, shutdown, ping, health");
  }
  r.type = *type;
  r.type_name = *type_name;
  auto exec_name = optional_string(body, "execution");
  if (!exec_name) return exec_name.error();
  auto execution = execution_from_string(exec_name->value_or("sync"));
  if (!execution) return make_error(ErrorCode::bad_request, "field 'execution' must be one of sync, async");
  r.execution = *execution;
  auto command = optional_string(body, "command");
  if (!command) return command.error();
  r.command = command->value_or("");
  auto arguments = optional_string_array(body, "arguments");
  if (!arguments) return arguments.error();
  r.arguments = arguments->value_or(std::vector<std::string>{});
  auto package_id = optional_object_id(body, "package_id");
  if (!package_id) return package_id.error();
  r.package_id = *package_id;
  auto hardware_ids = optional_hardware_id_array(body, "hardware_ids");
  if (!hardware_ids) return hardware_ids.error();
  r.hardware_ids = std::move(*hardware_ids);
  auto tags = optional_tags(body, "tags");
  if (!tags) return tags.error();
  r.tags = std::move(*tags);
  auto ttl = optional_int(body, "ttl_s", 1, 365LL * 86400);
  if (!ttl) return ttl.error();
  r.ttl_s = *ttl;
  auto description = optional_string(body, "description");
  if (!description) return description.error();
  r.description = *description;
  auto request_id = optional_object_id(body, "request_id");
  if (!request_id) return request_id.error();
  r.request_id = *request_id;

  const bool has_args = !r.arguments.empty();
  switch (r.type) {
    case CommandType::exec:
      if (r.command.empty())
        return make_error(ErrorCode::bad_request, "type 'exec' needs a non-empty 'command'");
      break;
    case CommandType::firmware:
      if (!r.command.empty() || has_args) {
        return make_error(ErrorCode::bad_request,
                          "type 'firmware' takes 'package_id' (or none for the latest package), not "
                          "'command' or 'arguments'");
      }
      break;
    default:
      if (!r.command.empty() || has_args) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("type '{}' takes no 'command' or 'arguments'", r.type_name));
      }
      if (r.package_id) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("type '{}' takes no 'package_id'", r.type_name));
      }
  }
  if (r.hardware_ids.empty() && r.tags.empty()) {
    return make_error(ErrorCode::bad_request, "no targets: give 'hardware_ids' or 'tags'");
  }
  return r;
}

core::Result<CommandRef> parse_command_ref(const nlohmann::json& body) {
  auto id = required_object_id(body, "command_id");
  if (!id) return id.error();
  return CommandRef{std::move(*id)};
}

core::Result<GetCommandRequest> parse_get_command(const nlohmann::json& body) {
  auto id = required_object_id(body, "command_id");
  if (!id) return id.error();
  auto page = parse_page(body, CursorKind::hardware_id);
  if (!page) return page.error();
  return GetCommandRequest{std::move(*id), std::move(*page)};
}

core::Result<ListCommandsRequest> parse_list_commands(const nlohmann::json& body) {
  ListCommandsRequest r;
  auto page = parse_page(body, CursorKind::object_id);
  if (!page) return page.error();
  r.page = std::move(*page);
  if (body.contains("hardware_id") && !body["hardware_id"].is_null()) {
    auto hw = required_hardware_id(body, "hardware_id");
    if (!hw) return hw.error();
    r.hardware_id = std::move(*hw);
  }
  return r;
}

}  // namespace dispatch::protocol
