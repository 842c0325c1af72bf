// Devices module (PROTOCOL §1.4, §3): devices/register|get|list|delete, metadata (ELP properties and the
// reported firmware version), ping and presence (last_seen, written in batches). Called from the service
// loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "service/config.h"
#include "service/event_queue.h"

namespace dispatch::storage {
class Database;
class DeviceStore;
}  // namespace dispatch::storage

namespace dispatch::service {

class Router;

struct DeviceCounters {
  std::uint64_t metadata_malformed = 0;
  std::uint64_t properties_dropped = 0;  // values past devices.max_properties / max_properties_bytes
};

class DevicesModule {
 public:
  // A registered device reported its firmware version (semver, normalised).
  using VersionListener = std::function<void(const std::string& hw, const std::string& version)>;

  DevicesModule(const Config& config, core::Clock& clock, storage::Database& db);
  ~DevicesModule();
  DevicesModule(const DevicesModule&) = delete;
  DevicesModule& operator=(const DevicesModule&) = delete;

  void set_version_listener(VersionListener listener) { on_version_ = std::move(listener); }
  // devices/register|get|list|delete, metadata and ping.
  void register_routes(Router& router);

  // hw sent something: its last_seen is written at the next flush.
  void seen(const std::string& hw);
  // Writes last_seen at most once a second, or now when force. devices/get and devices/list force it, so a
  // read shows every message seen before it.
  void flush(bool force);

  core::Result<nlohmann::json> register_device(const nlohmann::json& body);
  core::Result<nlohmann::json> get(const nlohmann::json& body);
  core::Result<nlohmann::json> list(const nlohmann::json& body);
  core::Result<nlohmann::json> remove(const nlohmann::json& body);
  // ELP metadata: merged into the device's properties (unregistered devices: dropped).
  void on_metadata(const std::string& hw, const InboundMessage& m);

  const DeviceCounters& counters() const { return counters_; }

 private:
  const Config& config_;
  core::Clock& clock_;
  std::unique_ptr<storage::DeviceStore> devices_;
  VersionListener on_version_;
  std::map<std::string, core::TimeMs> seen_;  // last_seen to write at the next flush
  core::TimeMs last_seen_flush_ = 0;
  DeviceCounters counters_;
};

}  // namespace dispatch::service
