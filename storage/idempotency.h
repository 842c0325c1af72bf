// IdempotencyStore: the first answer to a create request, by request_id (PROTOCOL §3). Same request_id and
// same body → the first answer again; a different body → the caller answers conflict.
#pragma once

#include <optional>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct IdempotentAnswer {
  std::string fingerprint;  // identity of the request body
  std::string answer;       // the answer document as sent
};

class IdempotencyStore {
 public:
  explicit IdempotencyStore(Database& db) : db_(db) {}
  // scope names the action ("commands/send"); the pair (scope, request_id) is unique.
  core::Result<std::optional<IdempotentAnswer>> find(const std::string& scope, const std::string& request_id);
  // Records the answer; conflict when (scope, request_id) is already recorded. Call inside the
  // transaction that creates the object, so the two are committed together.
  core::Status put(const std::string& scope, const std::string& request_id, const std::string& fingerprint,
                   const std::string& answer, core::TimeMs now);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
