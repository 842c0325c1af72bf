// An esthesis CORE device agent (Go, 3.1.x) as it behaves on the wire, for integration tests: every
// rule of /work/shared/reference/esthesis-agent.md that dispatch must live with, including the ones
// that hurt (QoS 0, no de-duplication, a crash on a short second token, a crash on a failed download).
// It deliberately spells its own topics and HTTP paths instead of using dispatch's protocol library,
// so a drift in dispatch shows up as a failing test rather than a matching change on both sides.
//
// Threads: Paho's callback only queues command lines; one command thread runs them in order (a sync
// exec or a firmware update blocks later commands, as in the agent); async execs run on their own
// threads; a pinger thread publishes pings. Every accessor may be called from the test thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "protocol/core/result.h"

namespace mqtt {
class async_client;
}

namespace dispatch::testing {

// What the agent's exec of a command gives: Go's exec.Cmd outcome.
struct ExecOutcome {
  bool ok = true;  // exit status 0
  std::string stdout_text;
  std::string stderr_text;
  std::string error;  // Go's error text when !ok, e.g. "exit status 1"
};
// Runs `command` with `arguments`; the default runs `/bin/sh -c "<command> <arguments joined by ' '>"`.
using Executor =
    std::function<ExecOutcome(const std::string& command, const std::vector<std::string>& arguments)>;

// The agent's split: on every single space, nothing trimmed, empty tokens kept ("a  b" -> a, "", b).
std::vector<std::string> split_single_spaces(std::string_view line);

// How the agent treats one command line.
struct ParsedCommand {
  enum class Outcome {
    run,       // a known type and execution letter: runs (and replies)
    no_reply,  // fewer than two tokens, or an unknown type/execution letter: logged, no reply at all
    crash,     // the second token is shorter than two bytes: the real agent panics (slice out of range)
  };
  Outcome outcome = Outcome::no_reply;
  std::string id;
  char type = 0;                       // e f r s p h
  char exec = 0;                       // s a
  std::string command;                 // third token, may be empty
  std::vector<std::string> arguments;  // the tokens after it, empty ones kept
};
ParsedCommand parse_command(std::string_view line);

// Go's url.QueryEscape (space -> '+', A-Za-z0-9 and -_.~ kept, the rest %XX upper case).
std::string query_escape(std::string_view s);
// Go's url.Values.Encode: keys sorted, each pair escaped, joined with '&'.
std::string encode_query(const std::map<std::string, std::string>& values);

// The standard Base64 RSASSA-PKCS1-v1_5-SHA256 signature over the UTF-8 hardware id with a PKCS#8 (or
// traditional) private key PEM: the agent's static provisioning token. bad_request for a bad key.
core::Result<std::string> static_token(std::string_view private_key_pem, std::string_view hardware_id);

inline constexpr std::string_view k_reply_no_provisioning_info = "No provisioning info available.";
inline constexpr std::string_view k_reply_firmware_initiated = "Firmware update initiated.";

struct EsthesisAgentOptions {
  std::string hardware_id;
  // tcp://host:port (or ssl://); when empty, taken from registration's mqttServer.
  std::string mqtt_server;
  std::chrono::milliseconds ping_interval{60000};  // --pingInterval
  bool version_report = true;                      // --versionReport
  std::string version_file;                        // its content is the current firmware version
  std::string provisioning_url;                    // when empty, taken from registration
  bool secure_provisioning = false;                // --secureProvisioning: send the static token
  std::string private_key_pem;                     // when empty, taken from registration
  bool provisioning_script_exists = true;          // firmware.sh is present
  // POST target of the first start (full URL); registration data.
  std::string registration_url;
  std::string tags, attributes, registration_secret;
  Executor executor;         // empty: /bin/sh -c (children are killed by stop())
  std::string download_dir;  // where firmware files go; empty: the directory of version_file
};

// The answer to one registration POST.
struct Registration {
  int status = 0;  // 0: transport error
  std::string body;
  std::string private_key_pem, public_key_pem, mqtt_server, provisioning_url;
};

class EsthesisAgent {
 public:
  explicit EsthesisAgent(EsthesisAgentOptions options);
  ~EsthesisAgent();  // stop()
  EsthesisAgent(const EsthesisAgent&) = delete;
  EsthesisAgent& operator=(const EsthesisAgent&) = delete;

  // One `POST <registration_url>` as the agent sends it. On 200 the private key, MQTT server and
  // provisioning URL of the answer replace the options' (the agent stores them in its properties
  // files). The agent retries while the status is not 200; tests call this again if they want that.
  Registration register_device();

  // Connects (MQTT 3.1.1, clean session, client id = hardware id, keep-alive 60 s, reconnect every 1 s),
  // subscribes to esthesis/command/request/{hw} at QoS 0 and waits for the SUBACK, publishes a ping,
  // then (with version_report) `health firmware='<version file>'` on metadata, and starts pinging.
  // unavailable when the broker does not accept the connection within 10 s.
  core::Status start();
  // Disconnects, kills running execs of the default executor, joins every thread. Lines not yet run
  // are lost (as in a process that exits). Idempotent.
  void stop();
  // stop() then start(): reads the version file again, so a finished update is reported.
  core::Status restart();

  bool connected() const;
  const EsthesisAgentOptions& options() const { return options_; }

  // How many times the line with command id `id` started to run (no de-duplication: a line delivered
  // twice runs twice).
  int executions_of(const std::string& id) const;
  // Lines and events that would have crashed the real agent (a second token shorter than two bytes,
  // a transport error while downloading firmware). Tests assert this stays 0.
  int would_have_crashed() const;
  // The reply lines published, in order.
  std::vector<std::string> replies() const;
  // Waits for the first reply of `id`; nullopt on timeout.
  std::optional<std::string> wait_for_reply(const std::string& id, std::chrono::milliseconds timeout) const;
  // Waits until `id` has run `n` times; false on timeout.
  bool wait_for_executions(const std::string& id, int n, std::chrono::milliseconds timeout) const;
  int pings_sent() const;
  std::vector<std::string> metadata_sent() const;  // every line published on esthesis/metadata/{hw}
  // The current content of the version file (trimmed of trailing white space).
  std::string current_version() const;
  // Bytes of the last firmware file downloaded, and the status of that download.
  std::string last_firmware() const;
  int last_download_status() const;

 private:
  void on_line(std::string line);
  void command_loop();
  void ping_loop();
  void run(const ParsedCommand& c);
  std::string exec(const ParsedCommand& c);      // the reply line
  std::string firmware(const ParsedCommand& c);  // the reply line
  void publish(const std::string& topic, const std::string& payload);
  void publish_ping();
  ExecOutcome shell(const std::string& command, const std::vector<std::string>& arguments);

  EsthesisAgentOptions options_;
  std::unique_ptr<mqtt::async_client> client_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<std::string> lines_;          // guarded by mu_
  bool running_ = false;                   // guarded by mu_
  std::map<std::string, int> executions_;  // guarded by mu_
  std::vector<std::string> replies_;       // guarded by mu_
  std::vector<std::string> metadata_;      // guarded by mu_
  int crashes_ = 0;                        // guarded by mu_
  int pings_ = 0;                          // guarded by mu_
  std::string last_firmware_;              // guarded by mu_
  int last_download_status_ = 0;           // guarded by mu_
  std::set<int> children_;                 // guarded by mu_: pids of running default execs
  bool update_running_ = false;            // command thread only

  std::thread command_thread_, ping_thread_;
  std::mutex async_mu_;
  std::vector<std::thread> async_threads_;  // guarded by async_mu_
};

}  // namespace dispatch::testing
