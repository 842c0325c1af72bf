#include "protocol/command_line.h"

#include <fmt/format.h>

#include <array>
#include <utility>

#include "protocol/ids.h"

namespace dispatch::protocol {

namespace {

using core::ErrorCode;
using core::make_error;

constexpr std::array<std::pair<CommandType, std::string_view>, 6> k_types{{
    {CommandType::exec, "exec"},
    {CommandType::firmware, "firmware"},
    {CommandType::reboot, "reboot"},
    {CommandType::shutdown, "shutdown"},
    {CommandType::ping, "ping"},
    {CommandType::health, "health"},
}};

constexpr std::array<std::pair<Execution, std::string_view>, 2> k_executions{{
    {Execution::sync, "sync"},
    {Execution::async, "async"},
}};

bool has_control(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

core::Status check_part(std::string_view value, std::string_view what) {
  if (value.find(' ') != std::string_view::npos) {
    return make_error(ErrorCode::bad_request, fmt::format("{} must not contain a space", what));
  }
  if (has_control(value)) {
    return make_error(ErrorCode::bad_request, fmt::format("{} must not contain a control character", what));
  }
  return {};
}

bool known_type(CommandType type) {
  for (const auto& [t, name] : k_types) {
    if (t == type) return true;
  }
  return false;
}

}  // namespace

std::string_view to_string(CommandType type) {
  for (const auto& [t, name] : k_types) {
    if (t == type) return name;
  }
  return "exec";
}

std::string_view to_string(Execution execution) { return execution == Execution::async ? "async" : "sync"; }

std::optional<CommandType> command_type_from_string(std::string_view name) {
  for (const auto& [t, n] : k_types) {
    if (n == name) return t;
  }
  return std::nullopt;
}

std::optional<Execution> execution_from_string(std::string_view name) {
  for (const auto& [e, n] : k_executions) {
    if (n == name) return e;
  }
  return std::nullopt;
}

core::Status validate_exec(std::string_view command, const std::vector<std::string>& arguments) {
  if (command.empty()) return make_error(ErrorCode::bad_request, "command must not be empty");
  if (auto s = check_part(command, "command"); !s) return s;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    // An empty argument would read back as two spaces, which the device splits into an extra argument.
    if (arguments[i].empty()) {
      return make_error(ErrorCode::bad_request, fmt::format("argument {} is empty", i + 1));
    }
    if (auto s = check_part(arguments[i], fmt::format("argument {}", i + 1)); !s) return s;
  }
  return {};
}

core::Result<std::string> encode(const CommandLine& line) {
  if (auto s = check_object_id(line.id, "command id"); !s) return s.error();
  // The enums are closed, but a cast integer is not: an esthesis agent reads the second token's two
  // bytes unchecked, so nothing but a known letter pair may ever be published there.
  if (!known_type(line.type)) {
    return make_error(ErrorCode::bad_request, "unknown command type");
  }
  if (line.execution != Execution::sync && line.execution != Execution::async) {
    return make_error(ErrorCode::bad_request, "unknown execution");
  }
  std::string out =
      fmt::format("{} {}{}", line.id, static_cast<char>(line.type), static_cast<char>(line.execution));
  if (line.command.empty()) return out;
  if (auto s = validate_exec(line.command, line.arguments); !s) return s.error();
  out += ' ';
  out += line.command;
  for (const std::string& arg : line.arguments) {
    out += ' ';
    out += arg;
  }
  return out;
}

core::Result<CommandLine> parse_command_line(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto space = text.find(' ', start);
    if (space == std::string_view::npos) {
      parts.push_back(text.substr(start));
      break;
    }
    parts.push_back(text.substr(start, space - start));
    start = space + 1;
  }
  if (parts.size() < 2) return make_error(ErrorCode::bad_request, "command line needs an id and a type");
  if (parts[0].empty()) return make_error(ErrorCode::bad_request, "command line has an empty id");
  const std::string_view letters = parts[1];
  if (letters.size() != 2) {
    return make_error(ErrorCode::bad_request,
                      fmt::format("command type '{}' must be two letters", printable(letters)));
  }
  CommandLine line;
  line.id = std::string(parts[0]);
  bool type_known = false;
  for (const auto& [t, name] : k_types) {
    if (static_cast<char>(t) == letters[0]) {
      line.type = t;
      type_known = true;
    }
  }
  if (!type_known) {
    return make_error(ErrorCode::bad_request,
                      fmt::format("unknown command type '{}'", printable(letters.substr(0, 1))));
  }
  if (letters[1] == static_cast<char>(Execution::sync)) {
    line.execution = Execution::sync;
  } else if (letters[1] == static_cast<char>(Execution::async)) {
    line.execution = Execution::async;
  } else {
    return make_error(ErrorCode::bad_request,
                      fmt::format("unknown execution '{}'", printable(letters.substr(1))));
  }
  if (parts.size() > 2) line.command = std::string(parts[2]);
  for (std::size_t i = 3; i < parts.size(); ++i) line.arguments.emplace_back(parts[i]);
  return line;
}

}  // namespace dispatch::protocol
