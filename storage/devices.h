// DeviceStore: registered devices, their tags, and what they report about themselves.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct DeviceRow {
  std::string hardware_id;
  std::string public_key_pem;
  std::string key_type;           // e.g. "rsa", "ec_p256", "ed25519"; storage does not interpret it
  std::vector<std::string> tags;  // sorted, without duplicates when read back
  std::map<std::string, std::string> attributes;
  std::optional<std::string> reported_version;
  std::map<std::string, std::string> properties;
  core::TimeMs created_at = 0;
  core::TimeMs updated_at = 0;
  std::optional<core::TimeMs> last_seen;
};

struct DeviceQuery {
  std::optional<std::string> tag;    // only devices carrying this tag
  int limit = 100;                   // at most this many rows (values < 1 give none)
  std::optional<std::string> after;  // cursor: only hardware ids strictly greater
};

class DeviceStore {
 public:
  explicit DeviceStore(Database& db) : db_(db) {}

  // Registers row.hardware_id, or re-registers it: key, key type, tags and attributes are replaced,
  // updated_at = now; reported_version, properties, last_seen and created_at are kept. A new device
  // gets created_at = updated_at = now. Returns true when the device was created.
  core::Result<bool> upsert(const DeviceRow& row, core::TimeMs now);
  // not_found when no such device.
  core::Result<DeviceRow> get(const std::string& hardware_id);
  // Devices ordered by hardware id (cursor pagination with query.after).
  core::Result<std::vector<DeviceRow>> list(const DeviceQuery& query);
  // Deletes the device and its tags; not_found when no such device.
  core::Status remove(const std::string& hardware_id);
  // Hardware ids of devices carrying any of tags: sorted, each once. Empty tags give none.
  core::Result<std::vector<std::string>> hardware_ids_with_tags(const std::vector<std::string>& tags);
  // The subset of ids that are registered devices: sorted, each once.
  core::Result<std::vector<std::string>> existing(const std::vector<std::string>& ids);
  // Sets last_seen = max(last_seen, t) for each registered id (unknown ids are ignored), in one
  // transaction. Returns how many devices were updated.
  core::Result<int> touch_last_seen(const std::vector<std::string>& hardware_ids, core::TimeMs t);
  core::Result<int> touch_last_seen(const std::string& hardware_id, core::TimeMs t);
  // not_found when no such device.
  core::Status set_reported_version(const std::string& hardware_id, const std::string& version,
                                    core::TimeMs now);
  // Merges values into the device's properties (existing keys overwritten) within the bounds: a value is
  // kept only if the properties then number at most max_count and their names and values total at most
  // max_bytes; a value that would pass either bound is dropped (the one stored before, if any, stays).
  // Returns how many values were dropped; not_found when no such device.
  core::Result<int> set_properties(const std::string& hardware_id,
                                   const std::map<std::string, std::string>& values, core::TimeMs now,
                                   std::size_t max_count = 256, std::size_t max_bytes = 64 * 1024);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
