// request_id idempotency of the create requests (PROTOCOL §3: commands/send, campaigns/create,
// packages/create): the first answer to a (scope, request_id) is kept with the fingerprint of its
// request body; the same request again gets that answer, a different body with the same id conflict.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"

namespace dispatch::storage {
class Database;
}

namespace dispatch::service {

// SHA-256 of the canonical JSON of a request body without the transport fields (reply_to, correlation_id):
// the identity of a request for request_id idempotency.
std::string request_fingerprint(const nlohmann::json& body);

class IdempotentRequests {
 public:
  explicit IdempotentRequests(storage::Database& db) : db_(db) {}

  // nullopt when request_id is absent or not seen in scope (go on and create); the first answer when it
  // was seen with the same body; conflict "request_id '<id>' was already used with a different request"
  // when with another body; the store's error otherwise.
  core::Result<std::optional<nlohmann::json>> replay(std::string_view scope,
                                                     const std::optional<std::string>& request_id,
                                                     const nlohmann::json& body);
  // Records answer for (scope, request_id); ok and nothing done without a request_id. Call inside the
  // transaction that creates the object, so both are committed together.
  core::Status record(std::string_view scope, const std::optional<std::string>& request_id,
                      const nlohmann::json& body, const nlohmann::json& answer, core::TimeMs now);
  // The answer to a create whose transaction failed with `failed` (rolled back). Two instances handling
  // the same request at once both find no record and both create; the second record() waits for the
  // first's commit and fails on the unique key (conflict). Then the request was not refused, it was
  // answered by the other instance: its stored answer is the answer here too (or conflict when the bodies
  // differ, as replay()). Any other failure, or no request_id, is returned as it is.
  core::Result<nlohmann::json> after_failed_create(std::string_view scope,
                                                   const std::optional<std::string>& request_id,
                                                   const nlohmann::json& body, core::Error failed);

 private:
  storage::Database& db_;
};

}  // namespace dispatch::service
