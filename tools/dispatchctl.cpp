// dispatchctl: the operator CLI. An independent client of the wire contract (PROTOCOL §3, §4): every
// subcommand is one or a few platform API calls over MQTT. Exit codes: 0 ok, 1 the service refused or the
// work failed, 2 usage or input file error, 3 broker/service unreachable; `campaign watch` adds 4-7.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tools/api.h"
#include "tools/campaign_view.h"
#include "tools/documents.h"
#include "tools/terminal.h"
#include "tools/upload.h"

namespace {

using nlohmann::json;
using namespace dispatch::tools;
using Clock = std::chrono::steady_clock;

struct Globals {
  std::string broker = "tcp://127.0.0.1:1883";
  int mqtt_version = 5;
  std::string ca_file, cert_file, key_file, username, password;
  bool tls_no_verify_hostname = false;
  int timeout_s = 10;
  bool json_output = false;
};

Globals g;

ApiClient make_api() {
  ClientOptions o;
  o.uri = g.broker;
  o.mqtt_version = g.mqtt_version == 3 ? 4 : 5;
  o.ca_file = g.ca_file;
  o.cert_file = g.cert_file;
  o.key_file = g.key_file;
  o.tls_verify_hostname = !g.tls_no_verify_hostname;
  o.username = g.username;
  o.password = g.password;
  return ApiClient(std::move(o), g.timeout_s);
}

int fail(const CallError& e) {
  std::cerr << e.text() << "\n";
  return e.exit_code();
}

int usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return k_exit_usage;
}

std::string scalar_text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ",";
      out += e.is_string() ? e.get<std::string>() : e.dump();
    }
    return out;
  }
  return v.dump();
}

// One "key: value" line per field (objects inline as JSON).
void print_object(const json& o) {
  for (const auto& [k, v] : o.items()) std::cout << k << ": " << scalar_text(v) << "\n";
}

// The answer's list: answer[key], else the first array field, else empty.
json list_of(const json& answer, const std::string& key) {
  if (answer.contains(key) && answer[key].is_array()) return answer[key];
  for (const auto& [k, v] : answer.items()) {
    if (v.is_array()) return v;
  }
  return json::array();
}

// A table of the preferred columns that occur in at least one item.
Table table_of(const json& items, const std::vector<std::string>& preferred) {
  Table t;
  for (const auto& c : preferred) {
    for (const auto& it : items) {
      if (it.is_object() && it.contains(c)) {
        t.columns.push_back(c);
        break;
      }
    }
  }
  for (const auto& it : items) {
    std::vector<std::string> row;
    for (const auto& c : t.columns) row.push_back(it.contains(c) ? scalar_text(it[c]) : "-");
    t.rows.push_back(std::move(row));
  }
  return t;
}

// Runs one call and prints the answer: raw JSON with --json, else via human().
int run_call(const std::string& resource, const std::string& action, const json& body,
             const std::function<void(const json&)>& human) {
  auto api = make_api();
  auto r = api.call(resource, action, body);
  if (!r) return fail(r.error());
  if (g.json_output) {
    std::cout << r->dump() << "\n";
  } else {
    // MQTT 3.1.1 answers echo the correlation id: plumbing, not part of what the operator asked for.
    json shown = *r;
    shown.erase("correlation_id");
    human(shown);
  }
  return k_exit_ok;
}

int run_list(const std::string& resource, const json& body, const std::string& key,
             const std::vector<std::string>& columns) {
  return run_call(resource, "list", body, [&](const json& a) {
    auto items = list_of(a, key);
    std::cout << render_table(table_of(items, columns), stdout_is_tty());
    if (a.contains("next_after") && a["next_after"].is_string() && stdout_is_tty()) {
      std::cout << "(more: --after " << a["next_after"].get<std::string>() << ")\n";
    }
  });
}

std::optional<std::pair<std::string, std::string>> split_kv(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(s.substr(0, eq), s.substr(eq + 1));
}

// k=v pairs into an object; nullopt (after printing the error) when one has no '='.
std::optional<json> attributes_of(const std::vector<std::string>& pairs) {
  json out = json::object();
  for (const auto& p : pairs) {
    auto kv = split_kv(p);
    if (!kv) {
      std::cerr << "error: --attr '" << p << "' must be key=value\n";
      return std::nullopt;
    }
    out[kv->first] = kv->second;
  }
  return out;
}

// ---- device ----

struct DeviceArgs {
  std::string hw, key_file, tag, after, request_id;
  std::vector<std::string> tags, attrs;
  int limit = 0;
};

void add_device(CLI::App& app, std::function<int()>& action) {
  static DeviceArgs a;
  auto* dev = app.add_subcommand("device", "Register, inspect and delete devices (devices/*)");
  dev->require_subcommand(1);

  auto* reg = dev->add_subcommand("register", "Register a device or replace its key, tags and attributes");
  reg->add_option("hardware_id", a.hw, "Hardware id (^[A-Za-z0-9_-]{3,128}$)")->required();
  reg->add_option("--public-key", a.key_file, "PEM SubjectPublicKeyInfo file (RSA >= 2048, P-256 or Ed25519)")
      ->required();
  reg->add_option("--tag", a.tags, "Tag (repeatable)");
  reg->add_option("--attr", a.attrs, "Attribute key=value (repeatable)");
  reg->add_option("--request-id", a.request_id, "Idempotency key");
  reg->callback([&action] {
    action = [] {
      auto pem = read_text_file(a.key_file);
      if (!pem) return usage_error(pem.error().message);
      auto attrs = attributes_of(a.attrs);
      if (!attrs) return k_exit_usage;
      json body{{"hardware_id", a.hw}, {"public_key", *pem}, {"tags", a.tags}, {"attributes", *attrs}};
      if (!a.request_id.empty()) body["request_id"] = a.request_id;
      return run_call("devices", "register", body, [](const json& r) {
        bool created = r.value("created", false);
        std::cout << (created ? "registered " : "updated ") << r.value("hardware_id", a.hw) << "\n";
      });
    };
  });

  auto* get = dev->add_subcommand("get", "Show one device");
  get->add_option("hardware_id", a.hw, "Hardware id")->required();
  get->callback([&action] {
    action = [] { return run_call("devices", "get", {{"hardware_id", a.hw}}, print_object); };
  });

  auto* list =
      dev->add_subcommand("list", "List devices (a table; one key=value line per device when piped)");
  list->add_option("--tag", a.tag, "Only devices with this tag");
  list->add_option("--limit", a.limit, "At most N devices (service default 100, max 1000)");
  list->add_option("--after", a.after, "Continue after this hardware id (paging)");
  list->callback([&action] {
    action = [] {
      json body = json::object();
      if (!a.tag.empty()) body["tag"] = a.tag;
      if (a.limit > 0) body["limit"] = a.limit;
      if (!a.after.empty()) body["after"] = a.after;
      return run_list("devices", body, "devices",
                      {"hardware_id", "key_type", "tags", "reported_version", "last_seen"});
    };
  });

  auto* del = dev->add_subcommand("delete", "Delete a device");
  del->add_option("hardware_id", a.hw, "Hardware id")->required();
  del->callback([&action] {
    action = [] {
      return run_call("devices", "delete", {{"hardware_id", a.hw}},
                      [](const json&) { std::cout << "deleted " << a.hw << "\n"; });
    };
  });
}

// ---- package ----

struct PackageArgs {
  std::string id, name, version, prerequisite, type = "internal", url, sha256, file, available_text,
                                               request_id, tag;
  std::vector<std::string> tags, attrs;
  std::int64_t size = -1;
  bool available = false, prerelease_ok = false, restart = false, clear_tags = false;
  std::size_t chunk_kib = 256;
  int limit = 0;
};

int package_upload(const PackageArgs& a) {
  auto api = make_api();
  UploadOptions opts;
  opts.package_id = a.id;
  opts.path = a.file;
  opts.chunk_size = a.chunk_kib * 1024;
  opts.restart = a.restart;
  UploadOutcome outcome;
  const bool tty = stdout_is_tty() && !g.json_output;
  int last_decile = -1;
  auto started = Clock::now();
  auto r = upload_package(api, opts, outcome, [&](std::uint64_t done, std::uint64_t total) {
    double f = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    if (tty) {
      std::cout << "\r" << render_bar(f) << "  " << format_bytes(done) << " / " << format_bytes(total)
                << std::flush;
    } else if (!g.json_output && static_cast<int>(f * 10) != last_decile) {
      last_decile = static_cast<int>(f * 10);
      std::cout << fmt::format("uploaded {} of {} bytes ({:.0f}%)\n", done, total, f * 100.0);
    }
  });
  if (tty) std::cout << "\n";
  if (!r) {
    if (!r.error().unreachable && r.error().error.message.rfind("cannot read", 0) == 0) {
      return usage_error(r.error().error.message);
    }
    auto code = fail(r.error());
    if (!r.error().unreachable)
      std::cerr << "hint: re-run the same command to resume, or add --restart to send every chunk again\n";
    return code;
  }
  if (g.json_output) {
    std::cout << r->dump() << "\n";
  } else if (outcome.already_uploaded) {
    std::cout << fmt::format("package {} already holds this file ({} bytes, sha256 {})\n", a.id, outcome.size,
                             outcome.sha256);
  } else {
    auto secs = std::chrono::duration<double>(Clock::now() - started).count();
    std::cout << fmt::format(
        "uploaded {} bytes to package {}{} in {:.1f} s, sha256 {}\n", outcome.size, a.id,
        outcome.resumed_at ? fmt::format(" (resumed at byte {})", outcome.resumed_at) : "", secs,
        outcome.sha256);
  }
  return k_exit_ok;
}

void add_package(CLI::App& app, std::function<int()>& action) {
  static PackageArgs a;
  auto* pkg = app.add_subcommand("package", "Create, upload and manage provisioning packages (packages/*)");
  pkg->require_subcommand(1);

  auto* create =
      pkg->add_subcommand("create", "Create a package (upload its file next, for internal packages)");
  create->add_option("--name", a.name, "Package name")->required();
  create->add_option("--version", a.version, "SemVer 2.0.0 version")->required();
  create->add_option("--prerequisite", a.prerequisite, "Lowest version it may be installed over");
  create->add_option("--type", a.type, "internal (uploaded) or external (--url)")
      ->check(CLI::IsMember({"internal", "external"}));
  create->add_option("--url", a.url, "Download URL (external packages)");
  create->add_option("--sha256", a.sha256, "Expected SHA-256 (64 lowercase hex)");
  create->add_option("--size", a.size, "Expected size in bytes");
  create->add_option("--tag", a.tags, "Tag (repeatable; none = every device)");
  create->add_option("--attr", a.attrs, "Attribute key=value (repeatable)");
  create->add_flag("--available", a.available, "Offer it to devices right away");
  create->add_flag("--prerelease-ok", a.prerelease_ok, "Offer a pre-release to devices on releases");
  create->add_option("--request-id", a.request_id, "Idempotency key");
  create->callback([&action] {
    action = [] {
      auto attrs = attributes_of(a.attrs);
      if (!attrs) return k_exit_usage;
      json body{{"name", a.name},      {"version", a.version},     {"type", a.type},
                {"tags", a.tags},      {"available", a.available}, {"prerelease_ok", a.prerelease_ok},
                {"attributes", *attrs}};
      if (!a.prerequisite.empty()) body["prerequisite_version"] = a.prerequisite;
      if (!a.url.empty()) body["url"] = a.url;
      if (!a.sha256.empty()) body["sha256"] = a.sha256;
      if (a.size >= 0) body["size"] = a.size;
      if (!a.request_id.empty()) body["request_id"] = a.request_id;
      return run_call("packages", "create", body,
                      [](const json& r) { std::cout << r.value("id", "") << "\n"; });
    };
  });

  auto* upload = pkg->add_subcommand(
      "upload",
      "Upload a package's file in chunks (needs MQTT 5). Size and sha256 are computed locally.\n"
      "Resumable: re-run the same command after an interruption; it asks packages/get and continues at the\n"
      "package's 'received' byte count (a package already ready with the same sha256 is left alone).\n"
      "--restart sends every chunk again (chunks are idempotent per offset).");
  upload->add_option("id", a.id, "Package id")->required();
  upload->add_option("file", a.file, "File to upload")->required();
  upload
      ->add_option("--chunk-kib", a.chunk_kib,
                   "Chunk size in KiB (default 256, the service's default maximum)")
      ->check(CLI::Range(1, 16384));
  upload->add_flag("--restart", a.restart, "Send the whole file again from offset 0");
  upload->callback([&action] { action = [] { return package_upload(a); }; });

  auto* get = pkg->add_subcommand("get", "Show one package (state, received bytes, sha256, …)");
  get->add_option("id", a.id, "Package id")->required();
  get->callback([&action] {
    action = [] { return run_call("packages", "get", {{"id", a.id}}, print_object); };
  });

  auto* list = pkg->add_subcommand("list", "List packages");
  list->add_option("--name", a.name, "Only packages with this name");
  list->add_option("--tag", a.tag, "Only packages with this tag");
  list->add_option("--limit", a.limit, "At most N packages");
  list->callback([&action] {
    action = [] {
      json body = json::object();
      if (!a.name.empty()) body["name"] = a.name;
      if (!a.tag.empty()) body["tag"] = a.tag;
      if (a.limit > 0) body["limit"] = a.limit;
      return run_list("packages", body, "packages",
                      {"id", "name", "version", "type", "state", "available", "tags", "size"});
    };
  });

  auto* update = pkg->add_subcommand("update", "Change a package's availability or tags");
  update->add_option("id", a.id, "Package id")->required();
  update->add_option("--available", a.available_text, "true or false")
      ->check(CLI::IsMember({"true", "false"}));
  update->add_option("--tag", a.tags, "Replace the tags (repeatable)");
  update->add_flag("--clear-tags", a.clear_tags, "Remove every tag (the package then matches every device)");
  update->callback([&action] {
    action = [] {
      json body{{"id", a.id}};
      if (!a.available_text.empty()) body["available"] = a.available_text == "true";
      if (!a.tags.empty() || a.clear_tags) body["tags"] = a.tags;
      if (body.size() == 1) return usage_error("package update needs --available, --tag or --clear-tags");
      return run_call("packages", "update", body, print_object);
    };
  });

  auto* del = pkg->add_subcommand("delete", "Delete a package");
  del->add_option("id", a.id, "Package id")->required();
  del->callback([&action] {
    action = [] {
      return run_call("packages", "delete", {{"id", a.id}},
                      [](const json&) { std::cout << "deleted " << a.id << "\n"; });
    };
  });
}

// ---- command ----

struct CommandArgs {
  std::string id, type = "exec", execution = "sync", command, package_id, description, request_id, hw;
  std::vector<std::string> arguments, hardware_ids, tags;
  int ttl_s = 0, wait_s = 0, limit = 0;
  CLI::Option* wait_opt = nullptr;
};

bool terminal_state(const std::string& s) {
  return s == "succeeded" || s == "failed" || s == "expired" || s == "canceled";
}

Table device_table(const json& answer) {
  Table t{{"device", "state", "output"}, {}};
  if (!answer.contains("devices") || !answer["devices"].is_array()) return t;
  for (const auto& d : answer["devices"]) {
    std::string out = d.contains("output") && d["output"].is_string() ? d["output"].get<std::string>() : "";
    if (d.value("trimmed", false)) out += " [trimmed]";
    t.rows.push_back({d.value("hardware_id", ""), d.value("state", ""), out});
  }
  return t;
}

int command_send(CommandArgs& a) {
  json body{{"type", a.type}, {"execution", a.execution}, {"hardware_ids", a.hardware_ids}, {"tags", a.tags}};
  if (!a.command.empty()) body["command"] = a.command;
  if (!a.arguments.empty()) body["arguments"] = a.arguments;
  if (!a.package_id.empty()) body["package_id"] = a.package_id;
  if (a.ttl_s > 0) body["ttl_s"] = a.ttl_s;
  if (!a.description.empty()) body["description"] = a.description;
  if (!a.request_id.empty()) body["request_id"] = a.request_id;
  const bool wait = a.wait_opt && a.wait_opt->count() > 0;

  auto api = make_api();
  if (auto err = api.connect()) return fail(*err);
  if (wait) {
    // Subscribed before sending so that no reply event is missed; "+" turns the event topic into a filter.
    if (auto st = api.mqtt().subscribe(api.topics().command_event_filter(), 1); !st) {
      return fail(CallError{st.error(), true});
    }
  }
  auto sent = api.call("commands", "send", body);
  if (!sent) return fail(sent.error());
  std::string id = sent->value("command_id", "");
  auto scheduled = sent->value("devices_scheduled", 0);
  if (!wait) {
    if (g.json_output) {
      std::cout << sent->dump() << "\n";
    } else {
      std::cout << fmt::format("command {}: {} device(s) matched, {} scheduled\n", id,
                               sent->value("devices_matched", 0), scheduled);
    }
    return k_exit_ok;
  }

  auto deadline = Clock::now() + std::chrono::seconds(a.wait_s);
  json last;
  bool complete = false;
  auto next_poll = Clock::now();
  while (true) {
    auto now = Clock::now();
    if (now >= next_poll) {
      auto got = api.call("commands", "get", {{"command_id", id}});
      if (!got) return fail(got.error());
      last = *got;
      std::size_t done = 0, total = 0;
      if (last.contains("devices") && last["devices"].is_array()) {
        total = last["devices"].size();
        for (const auto& d : last["devices"]) done += terminal_state(d.value("state", "")) ? 1 : 0;
      }
      complete = done == total && total >= static_cast<std::size_t>(scheduled);
      if (complete || now >= deadline) break;
      next_poll = now + std::chrono::seconds(1);
    }
    // Reply events wake the poll early; their content is re-read from commands/get.
    auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::min(next_poll, deadline) - Clock::now());
    if (auto ev = api.mqtt().next(static_cast<int>(std::max<std::int64_t>(wait_ms.count(), 1)))) {
      if (ev->topic == api.topics().command_event(id))
        next_poll = std::min(next_poll, Clock::now() + std::chrono::milliseconds(100));
    }
    if (Clock::now() >= deadline) next_poll = Clock::now();
  }

  bool all_ok = complete && scheduled > 0;
  if (last.contains("devices") && last["devices"].is_array()) {
    for (const auto& d : last["devices"]) all_ok = all_ok && d.value("state", "") == "succeeded";
  }
  if (g.json_output) {
    std::cout << last.dump() << "\n";
  } else {
    std::cout << render_table(device_table(last), stdout_is_tty());
    if (!complete)
      std::cerr << fmt::format("command {}: not every device answered within {} s\n", id, a.wait_s);
    if (scheduled == 0) std::cerr << fmt::format("command {}: no device was scheduled\n", id);
  }
  return all_ok ? k_exit_ok : k_exit_failed;
}

void add_command(CLI::App& app, std::function<int()>& action) {
  static CommandArgs a;
  auto* cmd = app.add_subcommand("command", "Send commands to devices and read their replies (commands/*)");
  cmd->require_subcommand(1);

  auto* send = cmd->add_subcommand(
      "send",
      "Send a command to devices by id and/or tag.\n"
      "With --wait [SECONDS] (default 60): waits until every scheduled device answered (or the time ran "
      "out),\n"
      "prints a table (device, state, output) and exits 0 only if every device succeeded, else 1.");
  send->add_option("--type", a.type, "exec, firmware, reboot, shutdown, ping or health")
      ->check(CLI::IsMember({"exec", "firmware", "reboot", "shutdown", "ping", "health"}));
  send->add_option("--execution", a.execution, "sync or async")->check(CLI::IsMember({"sync", "async"}));
  send->add_option("--command", a.command, "Command to run (exec) or package id (firmware)");
  send->add_option("--arg", a.arguments, "Argument (repeatable, no spaces)")->allow_extra_args(false);
  send->add_option("--package", a.package_id, "Package id (firmware; default: latest for each device)");
  send->add_option("--hw", a.hardware_ids, "Hardware id (repeatable)");
  send->add_option("--tag", a.tags, "Tag (repeatable)");
  send->add_option("--ttl", a.ttl_s, "Seconds the command stays deliverable");
  send->add_option("--description", a.description, "Free text");
  send->add_option("--request-id", a.request_id, "Idempotency key");
  a.wait_opt = send->add_option("--wait", a.wait_s, "Wait up to SECONDS for the replies (default 60)")
                   ->expected(0, 1)
                   ->default_str("60");
  send->callback([&action] { action = [] { return command_send(a); }; });

  auto* get = cmd->add_subcommand("get", "Show a command and each device's state and output");
  get->add_option("command_id", a.id, "Command id")->required();
  get->callback([&action] {
    action = [] {
      return run_call("commands", "get", {{"command_id", a.id}}, [](const json& r) {
        if (r.contains("command") && r["command"].is_object()) print_object(r["command"]);
        std::cout << render_table(device_table(r), stdout_is_tty());
      });
    };
  });

  auto* list = cmd->add_subcommand("list", "List commands");
  list->add_option("--hw", a.hw, "Only commands sent to this device");
  list->add_option("--limit", a.limit, "At most N commands");
  list->callback([&action] {
    action = [] {
      json body = json::object();
      if (!a.hw.empty()) body["hardware_id"] = a.hw;
      if (a.limit > 0) body["limit"] = a.limit;
      return run_list("commands", body, "commands",
                      {"command_id", "id", "type", "execution", "command", "arguments", "created_at",
                       "devices_scheduled", "description"});
    };
  });

  auto* cancel = cmd->add_subcommand("cancel", "Cancel a command's unanswered deliveries");
  cancel->add_option("command_id", a.id, "Command id")->required();
  cancel->callback([&action] {
    action = [] { return run_call("commands", "cancel", {{"command_id", a.id}}, print_object); };
  });
}

// ---- campaign ----

struct CampaignArgs {
  std::string id, file, request_id, state;
  int deadline_s = 0, limit = 0;
};

int campaign_watch(const CampaignArgs& a) {
  auto api = make_api();
  if (auto err = api.connect()) return fail(*err);
  if (auto st = api.mqtt().subscribe(api.topics().campaign_event(a.id), 1); !st)
    return fail(CallError{st.error(), true});
  auto first = api.call("campaigns", "get", {{"id", a.id}});
  if (!first) return fail(first.error());

  const bool tty = stdout_is_tty() && !g.json_output;
  std::size_t drawn_lines = 0;
  std::string last_text;
  auto show = [&](const json& snap) -> std::optional<int> {
    if (g.json_output) {
      std::cout << snap.dump() << std::endl;
    } else {
      auto text = render_campaign(snap, tty);
      if (tty) {
        // Redraw in place: move to the first line of the previous view and clear to the end of screen.
        if (drawn_lines) std::cout << fmt::format("\x1b[{}F\x1b[J", drawn_lines);
        std::cout << text << std::flush;
        drawn_lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
      } else if (text != last_text) {
        std::cout << text << std::flush;
      }
      last_text = text;
    }
    auto state = snap.value("state", "");
    auto code = watch_exit_code(state);
    if (code && *code == k_exit_campaign_paused_by_workflow) {
      std::cerr << "campaign paused by the workflow: " << snap.value("reason", "(no reason given)") << "\n";
    }
    return code;
  };
  if (auto code = show(*first)) return *code;

  auto started = Clock::now();
  auto next_poll = Clock::now() + std::chrono::seconds(5);
  while (true) {
    if (a.deadline_s > 0 && Clock::now() - started >= std::chrono::seconds(a.deadline_s)) {
      std::cerr << fmt::format("campaign {} did not end within {} s\n", a.id, a.deadline_s);
      return k_exit_campaign_watch_deadline;
    }
    if (auto ev = api.mqtt().next(500)) {
      auto snap = json::parse(ev->payload, nullptr, false);
      if (snap.is_object() && !snap.contains("error")) {
        if (auto code = show(snap)) return *code;
      }
      continue;
    }
    // The retained event is the live source; a slow poll covers a lost event.
    if (Clock::now() >= next_poll) {
      next_poll = Clock::now() + std::chrono::seconds(5);
      auto got = api.call("campaigns", "get", {{"id", a.id}});
      if (!got) return fail(got.error());
      if (auto code = show(*got)) return *code;
    }
  }
}

void add_campaign(CLI::App& app, std::function<int()>& action) {
  static CampaignArgs a;
  auto* camp = app.add_subcommand("campaign", "Create, run and watch campaigns (campaigns/*)");
  camp->require_subcommand(1);

  auto* create =
      camp->add_subcommand("create", "Create a campaign from a JSON (.json) or TOML (.toml) document");
  create->add_option("file", a.file, "Campaign document")->required();
  create->add_option("--request-id", a.request_id, "Idempotency key");
  create->callback([&action] {
    action = [] {
      auto doc = load_campaign_document(a.file);
      if (!doc) return usage_error(doc.error().message);
      if (!a.request_id.empty()) (*doc)["request_id"] = a.request_id;
      return run_call("campaigns", "create", *doc,
                      [](const json& r) { std::cout << r.value("id", "") << "\n"; });
    };
  });

  for (const char* verb : {"start", "pause", "resume", "terminate", "delete"}) {
    auto* sub = camp->add_subcommand(verb, fmt::format("campaigns/{}: {} a campaign", verb, verb));
    sub->add_option("id", a.id, "Campaign id")->required();
    std::string v = verb;
    sub->callback([&action, v] {
      action = [v] {
        return run_call("campaigns", v, {{"id", a.id}}, [v](const json& r) {
          if (v == "delete") {
            std::cout << "deleted " << a.id << "\n";
          } else {
            std::cout << render_campaign(r, stdout_is_tty());
          }
        });
      };
    });
  }

  auto* get = camp->add_subcommand("get", "Show a campaign with its statistics");
  get->add_option("id", a.id, "Campaign id")->required();
  get->callback([&action] {
    action = [] {
      return run_call("campaigns", "get", {{"id", a.id}},
                      [](const json& r) { std::cout << render_campaign(r, stdout_is_tty()); });
    };
  });

  auto* list = camp->add_subcommand("list", "List campaigns");
  list->add_option("--state", a.state, "Only campaigns in this state");
  list->add_option("--limit", a.limit, "At most N campaigns");
  list->callback([&action] {
    action = [] {
      json body = json::object();
      if (!a.state.empty()) body["state"] = a.state;
      if (a.limit > 0) body["limit"] = a.limit;
      return run_list("campaigns", body, "campaigns",
                      {"id", "name", "type", "state", "reason", "created_at"});
    };
  });

  auto* watch = camp->add_subcommand(
      "watch",
      "Live view of a campaign from its retained event (esthesis/events/v1/campaigns/{id}): one bar per\n"
      "group, succeeded/failed/timed-out counts, rate, ETA; redrawn in place on a terminal, plain lines\n"
      "otherwise (one JSON snapshot per line with --json). Ends when the campaign ends. Exit codes:\n"
      "  0 completed, 4 aborted, 5 terminated_by_user, 6 paused_by_workflow (reason on stderr),\n"
      "  7 --deadline reached, 1 service error (e.g. not_found), 3 unreachable.\n"
      "paused_by_user keeps watching (the operator may resume).");
  watch->add_option("id", a.id, "Campaign id")->required();
  watch->add_option("--deadline", a.deadline_s, "Give up after SECONDS (exit 7); default: no limit");
  watch->callback([&action] { action = [] { return campaign_watch(a); }; });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dispatchctl: operator CLI for dispatchd (platform API over MQTT, PROTOCOL §3).\n"
      "Exit codes: 0 ok, 1 the service answered with an error (printed as 'error: <code>: <message>') or "
      "the\n"
      "work failed, 2 usage or input file error, 3 broker or service unreachable; campaign watch: see its "
      "--help."};
  app.require_subcommand(1);
  if (const char* env = std::getenv("DISPATCH_BROKER"); env && *env) g.broker = env;
  app.add_option("--broker", g.broker, "Broker URI, tcp://host:port or ssl://host:port (env DISPATCH_BROKER)")
      ->capture_default_str();
  app.add_option("--mqtt-version", g.mqtt_version, "5 or 3 (3.1.1: replies via reply_to/correlation_id)")
      ->check(CLI::IsMember({3, 5}))
      ->capture_default_str();
  app.add_option("--ca-file", g.ca_file, "CA certificate (PEM) for ssl:// brokers");
  app.add_option("--cert-file", g.cert_file, "Client certificate (PEM)");
  app.add_option("--key-file", g.key_file, "Client private key (PEM)");
  app.add_flag("--tls-no-verify-hostname", g.tls_no_verify_hostname,
               "DANGEROUS: accept a broker certificate that does not name the host of --broker");
  app.add_option("--username", g.username, "Broker user name");
  app.add_option("--password", g.password, "Broker password");
  app.add_option("--timeout", g.timeout_s, "Seconds to wait for the broker and for each answer")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_flag("--json", g.json_output, "Print the service's raw JSON answer");
  app.fallthrough();

  std::function<int()> action;
  add_device(app, action);
  add_package(app, action);
  add_command(app, action);
  add_campaign(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? k_exit_ok : k_exit_usage;
  }
  if (!action) return usage_error("no command given (see --help)");
  return action();
}
