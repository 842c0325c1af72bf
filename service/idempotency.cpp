#include "service/idempotency.h"

#include <fmt/format.h>

#include "protocol/core/secrets.h"
#include "protocol/errors.h"
#include "storage/idempotency.h"

namespace dispatch::service {

std::string request_fingerprint(const nlohmann::json& body) {
  nlohmann::json copy = body;
  copy.erase("reply_to");
  copy.erase("correlation_id");
  // nlohmann's object keys are sorted, so dump() is canonical.
  return core::sha256_hex(protocol::dump_json(copy));
}

core::Result<std::optional<nlohmann::json>> IdempotentRequests::replay(
    std::string_view scope, const std::optional<std::string>& request_id, const nlohmann::json& body) {
  if (!request_id) return std::optional<nlohmann::json>();
  auto seen = storage::IdempotencyStore(db_).find(std::string(scope), *request_id);
  if (!seen) return seen.error();
  if (!*seen) return std::optional<nlohmann::json>();
  if ((*seen)->fingerprint != request_fingerprint(body)) {
    return core::make_error(
        core::ErrorCode::conflict,
        fmt::format("request_id '{}' was already used with a different request", *request_id));
  }
  auto answer = nlohmann::json::parse((*seen)->answer, nullptr, false);
  if (answer.is_discarded()) {
    return core::make_error(core::ErrorCode::internal,
                            fmt::format("the stored answer of request_id '{}' is unreadable", *request_id));
  }
  return std::optional<nlohmann::json>(std::move(answer));
}

core::Status IdempotentRequests::record(std::string_view scope, const std::optional<std::string>& request_id,
                                        const nlohmann::json& body, const nlohmann::json& answer,
                                        core::TimeMs now) {
  if (!request_id) return {};
  return storage::IdempotencyStore(db_).put(std::string(scope), *request_id, request_fingerprint(body),
                                            protocol::dump_json(answer), now);
}

core::Result<nlohmann::json> IdempotentRequests::after_failed_create(
    std::string_view scope, const std::optional<std::string>& request_id, const nlohmann::json& body,
    core::Error failed) {
  if (!request_id || failed.code != core::ErrorCode::conflict) return failed;
  // Read after the failed transaction was rolled back: on PostgreSQL (read committed) this statement sees
  // the commit the unique key waited for.
  auto winner = replay(scope, request_id, body);
  if (!winner) return winner.error();
  if (!*winner) return failed;  // a conflict of another kind
  return std::move(**winner);
}

}  // namespace dispatch::service
