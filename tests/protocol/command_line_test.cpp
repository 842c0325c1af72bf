#include "protocol/command_line.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;

TEST_CASE("command types and executions convert from and to API names", "[protocol][command_line]") {
  struct {
    const char* name;
    CommandType type;
  } types[] = {{"exec", CommandType::exec},     {"firmware", CommandType::firmware},
               {"reboot", CommandType::reboot}, {"shutdown", CommandType::shutdown},
               {"ping", CommandType::ping},     {"health", CommandType::health}};
  for (const auto& c : types) {
    INFO(c.name);
    CHECK(to_string(c.type) == c.name);
    CHECK(command_type_from_string(c.name) == c.type);
  }
  CHECK(to_string(Execution::sync) == "sync");
  CHECK(to_string(Execution::async) == "async");
  CHECK(execution_from_string("sync") == Execution::sync);
  CHECK(execution_from_string("async") == Execution::async);
  CHECK_FALSE(command_type_from_string("Exec").has_value());
  CHECK_FALSE(command_type_from_string("e").has_value());
  CHECK_FALSE(execution_from_string("").has_value());
}

TEST_CASE("command lines encode and parse back", "[protocol][command_line]") {
  struct {
    const char* rule;
    CommandLine line;
    std::string wire;
  } cases[] = {
      {"firmware latest: no command", {"id", CommandType::firmware, Execution::async, "", {}}, "id fa"},
      {"firmware by package id", {"id", CommandType::firmware, Execution::sync, "pkg1", {}}, "id fs pkg1"},
      {"exec with arguments",
       {"id", CommandType::exec, Execution::sync, "ls", {"-la", "/var"}},
       "id es ls -la /var"},
      {"reboot", {"c-1", CommandType::reboot, Execution::sync, "", {}}, "c-1 rs"},
      {"shutdown async", {"c-1", CommandType::shutdown, Execution::async, "", {}}, "c-1 sa"},
      {"ping", {"c.1:2", CommandType::ping, Execution::sync, "", {}}, "c.1:2 ps"},
      {"health", {"c", CommandType::health, Execution::async, "", {}}, "c ha"},
      {"utf-8 argument",
       {"c", CommandType::exec, Execution::sync, "echo", {"h\xc3\xa9"}},
       "c es echo h\xc3\xa9"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto wire = encode(c.line);
    REQUIRE(wire.ok());
    CHECK(*wire == c.wire);
    auto back = parse_command_line(c.wire);
    REQUIRE(back.ok());
    CHECK(*back == c.line);
  }
}

TEST_CASE("arguments without a command are dropped", "[protocol][command_line]") {
  auto wire = encode({"id", CommandType::firmware, Execution::sync, "", {"x", "y"}});
  REQUIRE(wire.ok());
  CHECK(*wire == "id fs");
}

TEST_CASE("encode refuses what a single-space split would not give back", "[protocol][command_line]") {
  struct {
    const char* rule;
    CommandLine line;
    std::string message;
  } cases[] = {
      {"id with a space",
       {"a b", CommandType::exec, Execution::sync, "ls", {}},
       "invalid command id 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"empty id",
       {"", CommandType::exec, Execution::sync, "ls", {}},
       "invalid command id '': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"command with a space",
       {"id", CommandType::exec, Execution::sync, "ls -la", {}},
       "command must not contain a space"},
      {"command with a newline",
       {"id", CommandType::exec, Execution::sync, "ls\n", {}},
       "command must not contain a control character"},
      {"command with DEL",
       {"id", CommandType::exec, Execution::sync, "ls\x7f", {}},
       "command must not contain a control character"},
      {"empty argument", {"id", CommandType::exec, Execution::sync, "ls", {"-l", ""}}, "argument 2 is empty"},
      {"argument with a space",
       {"id", CommandType::exec, Execution::sync, "echo", {"a b"}},
       "argument 1 must not contain a space"},
      {"argument with a tab",
       {"id", CommandType::exec, Execution::sync, "echo", {"a\tb"}},
       "argument 1 must not contain a control character"},
      {"argument with NUL",
       {"id", CommandType::exec, Execution::sync, "echo", {"ok", std::string("a\0b", 3)}},
       "argument 2 must not contain a control character"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto wire = encode(c.line);
    REQUIRE_FALSE(wire.ok());
    CHECK(wire.error().code == ErrorCode::bad_request);
    CHECK(wire.error().message == c.message);
  }
}

TEST_CASE("command lines parse exactly as the esthesis agent splits them", "[protocol][command_line]") {
  struct {
    const char* rule;
    std::string wire;
    std::string command;
    std::vector<std::string> arguments;
  } cases[] = {
      {"double space gives an empty argument", "id es echo a  b", "echo", {"a", "", "b"}},
      {"trailing space gives an empty command", "id fa ", "", {}},
      {"no command", "id fa", "", {}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto line = parse_command_line(c.wire);
    REQUIRE(line.ok());
    CHECK(line->command == c.command);
    CHECK(line->arguments == c.arguments);
  }
}

TEST_CASE("malformed command lines are refused", "[protocol][command_line]") {
  struct {
    const char* rule;
    std::string wire;
    std::string message;
  } cases[] = {
      {"empty", "", "command line needs an id and a type"},
      {"id only", "abc", "command line needs an id and a type"},
      {"empty id", " es", "command line has an empty id"},
      {"one letter", "id e", "command type 'e' must be two letters"},
      {"three letters", "id esx", "command type 'esx' must be two letters"},
      {"empty type", "id ", "command type '' must be two letters"},
      {"unknown type", "id xs", "unknown command type 'x'"},
      {"unknown execution", "id ex", "unknown execution 'x'"},
      {"upper case", "id ES", "unknown command type 'E'"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto line = parse_command_line(c.wire);
    REQUIRE_FALSE(line.ok());
    CHECK(line.error().code == ErrorCode::bad_request);
    CHECK(line.error().message == c.message);
  }
}

TEST_CASE("validate_exec refuses what a single-space split would not give back", "[protocol][command_line]") {
  struct {
    const char* rule;
    std::string command;
    std::vector<std::string> arguments;
    std::string message;  // empty: accepted
  } cases[] = {
      {"plain command and arguments", "ls", {"-la", "/var"}, ""},
      {"utf-8 argument", "echo", {"h\xc3\xa9"}, ""},
      {"no arguments", "uptime", {}, ""},
      {"empty command", "", {}, "command must not be empty"},
      {"command with a space", "ls -la", {}, "command must not contain a space"},
      {"command with a tab", "ls\t", {}, "command must not contain a control character"},
      {"command with a newline", "ls\n", {}, "command must not contain a control character"},
      {"empty argument", "ls", {"-l", ""}, "argument 2 is empty"},
      {"only an empty argument", "echo", {""}, "argument 1 is empty"},
      {"argument with a space", "echo", {"a b"}, "argument 1 must not contain a space"},
      {"argument with a tab", "echo", {"a\tb"}, "argument 1 must not contain a control character"},
      {"argument with a carriage return",
       "echo",
       {"ok", "a\r"},
       "argument 2 must not contain a control character"},
      {"argument with NUL",
       "echo",
       {std::string("a\0b", 3)},
       "argument 1 must not contain a control character"},
      {"argument with DEL", "echo", {"a\x7f"}, "argument 1 must not contain a control character"},
      {"argument with ESC", "echo", {"\x1b[2J"}, "argument 1 must not contain a control character"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto st = validate_exec(c.command, c.arguments);
    if (c.message.empty()) {
      CHECK(st.ok());
      continue;
    }
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::bad_request);
    CHECK(st.error().message == c.message);
  }
}

TEST_CASE("every encoded command line has a second token of exactly two letters",
          "[protocol][command_line]") {
  struct {
    const char* rule;
    CommandType type;
    std::string command;
    std::vector<std::string> arguments;
  } cases[] = {
      {"exec", CommandType::exec, "ls", {"-la"}},
      {"firmware latest", CommandType::firmware, "", {}},
      {"firmware with a package id", CommandType::firmware, "01JDPKG0000000000000000000", {}},
      {"reboot", CommandType::reboot, "", {}},
      {"shutdown", CommandType::shutdown, "", {}},
      {"ping", CommandType::ping, "", {}},
      {"health", CommandType::health, "", {}},
  };
  for (const auto& c : cases) {
    for (Execution execution : {Execution::sync, Execution::async}) {
      INFO(c.rule << " " << to_string(execution));
      auto wire = encode({"c-1", c.type, execution, c.command, c.arguments});
      REQUIRE(wire.ok());
      const std::string second = wire->substr(
          4, wire->find(' ', 4) == std::string::npos ? std::string::npos : wire->find(' ', 4) - 4);
      REQUIRE(second.size() == 2);
      CHECK(second[0] == static_cast<char>(c.type));
      CHECK(second[1] == (execution == Execution::sync ? 's' : 'a'));
      auto back = parse_command_line(*wire);
      REQUIRE(back.ok());
      CHECK(back->type == c.type);
      CHECK(back->command == c.command);
    }
  }
}

TEST_CASE("encode refuses a type or execution outside the enums", "[protocol][command_line]") {
  struct {
    const char* rule;
    CommandLine line;
    std::string message;
  } cases[] = {
      {"type NUL", {"id", static_cast<CommandType>(0), Execution::sync, "", {}}, "unknown command type"},
      {"type letter of no type",
       {"id", static_cast<CommandType>('x'), Execution::sync, "", {}},
       "unknown command type"},
      {"execution NUL", {"id", CommandType::reboot, static_cast<Execution>(0), "", {}}, "unknown execution"},
      {"execution space",
       {"id", CommandType::reboot, static_cast<Execution>(' '), "", {}},
       "unknown execution"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto wire = encode(c.line);
    REQUIRE_FALSE(wire.ok());
    CHECK(wire.error().code == ErrorCode::bad_request);
    CHECK(wire.error().message == c.message);
  }
}
