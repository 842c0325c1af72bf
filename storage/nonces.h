// NonceStore: nonces of fresh provisioning tokens already accepted, so a replay is refused even
// across a restart. Callers prune entries older than the accepted clock skew window.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

class NonceStore {
 public:
  explicit NonceStore(Database& db) : db_(db) {}

  // Records nonce_key seen at t. true when it was new; false when it was already recorded.
  core::Result<bool> insert_if_new(const std::string& nonce_key, core::TimeMs t);
  // Deletes nonces recorded before older_than; returns how many.
  core::Result<int> prune(core::TimeMs older_than);
  core::Result<std::int64_t> count();

 private:
  Database& db_;
};

}  // namespace dispatch::storage
