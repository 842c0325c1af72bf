// The command line sent to a device (PROTOCOL §1.1, esthesis-compatible):
//   <id> <type><exec>[ <command>[ <arguments>]]
// one space between parts, no quoting, no escaping, no line terminator. Devices split it on single
// spaces, so encode refuses anything such a split would not give back unchanged.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::protocol {

enum class CommandType : char {
  exec = 'e',
  firmware = 'f',
  reboot = 'r',
  shutdown = 's',
  ping = 'p',
  health = 'h',
};

enum class Execution : char {
  sync = 's',
  async = 'a',
};

// API names: "exec", "firmware", "reboot", "shutdown", "ping", "health" / "sync", "async".
std::string_view to_string(CommandType type);
std::string_view to_string(Execution execution);
// Inverse of to_string; nullopt for any other spelling (case-sensitive).
std::optional<CommandType> command_type_from_string(std::string_view name);
std::optional<Execution> execution_from_string(std::string_view name);

struct CommandLine {
  std::string id;
  CommandType type = CommandType::exec;
  Execution execution = Execution::sync;
  // Empty means absent (for firmware: "latest package for this device").
  std::string command;
  std::vector<std::string> arguments;

  bool operator==(const CommandLine&) const = default;
};

// The command and arguments of an exec command, checked once for commands/send and campaigns/create:
// what a device's single-space split would not give back unchanged is refused with bad_request:
//   "command must not be empty"
//   "command must not contain a space"             / "command must not contain a control character"
//   "argument <n> is empty"                        (n counts from 1)
//   "argument <n> must not contain a space"        / "argument <n> must not contain a control character"
// (control character: a byte below 0x20, or 0x7f; a tab is one).
core::Status validate_exec(std::string_view command, const std::vector<std::string>& arguments);

// The wire text. Arguments are dropped when command is empty (as the spec says). The second token is
// always exactly two letters (an esthesis agent indexes both without checking). bad_request:
//   "invalid command id '<id>': must match ^[A-Za-z0-9_.:-]{1,128}$"
//   "unknown command type"  / "unknown execution"  (a value outside the enums, e.g. a cast integer)
//   "command must not contain a space"             / "command must not contain a control character"
//   "argument <n> is empty"                        (n counts from 1)
//   "argument <n> must not contain a space"        / "argument <n> must not contain a control character"
// (control character: a byte below 0x20, or 0x7f).
core::Result<std::string> encode(const CommandLine& line);

// Reads a command line exactly as the esthesis Go agent does (split on every single space). bad_request:
//   "command line needs an id and a type"  (fewer than two parts)
//   "command line has an empty id"
//   "command type '<t>' must be two letters"  (type part not exactly 2 bytes)
//   "unknown command type '<c>'"  /  "unknown execution '<c>'"
// A third part becomes command (possibly empty), the rest arguments (possibly empty ones).
core::Result<CommandLine> parse_command_line(std::string_view text);

}  // namespace dispatch::protocol
