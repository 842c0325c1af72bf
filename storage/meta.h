// MetaStore: small named values of service state (e.g. "last_expiry_run"), one row per key.
#pragma once

#include <optional>
#include <string>

#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

class MetaStore {
 public:
  explicit MetaStore(Database& db) : db_(db) {}

  // The value of key, or nullopt when never set.
  core::Result<std::optional<std::string>> get(const std::string& key);
  // Sets (inserts or replaces) key.
  core::Status set(const std::string& key, const std::string& value);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
