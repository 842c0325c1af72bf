// Provisioning requests (PROTOCOL §2.1, §2.4 and the packages resource of §3) parsed into typed structs.
// Pure: no I/O, no clock (the caller passes the time), no configuration object (the caller passes the
// few limits that matter). Every function checks its fields in a fixed order and returns the first
// error, always bad_request unless stated; messages never quote a token or signature.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"

namespace dispatch::protocol {

enum class PackageType { internal, external };
std::string_view to_string(PackageType type);

// packages/create. Checks, in order: name (1–256 chars), version (SemVer, normalized), prerequisite_version
// (SemVer, normalized), type (internal|external), url, sha256, size (≥ 0), tags, available, prerelease_ok,
// attributes, request_id; then sha256 is 64 lowercase hex; an internal package takes no url and needs
// sha256 and size; an external one needs an http(s) url (no spaces or control characters, ≤ 2048).
// The size limit is the caller's (it is configuration).
struct PackageCreate {
  std::string name;
  std::string version;
  std::optional<std::string> prerequisite_version;
  PackageType type = PackageType::internal;
  std::optional<std::string> url;
  std::optional<std::string> sha256;
  std::optional<std::int64_t> size;
  std::vector<std::string> tags;
  bool available = false;
  bool prerelease_ok = false;
  std::map<std::string, std::string> attributes;
  std::optional<std::string> request_id;
};
core::Result<PackageCreate> parse_package_create(const nlohmann::json& body);

// packages/get and packages/delete: {id}.
core::Result<std::string> parse_package_id(const nlohmann::json& body);

// packages/list: {name?, tag?, available?, limit? (1..max_limit, default 100), after?}.
struct PackageListRequest {
  std::optional<std::string> name;
  std::optional<std::string> tag;
  std::optional<bool> available;
  int limit = 100;
  std::optional<std::string> after;
};
core::Result<PackageListRequest> parse_package_list(const nlohmann::json& body, int max_limit);

// packages/update: {id, available?, tags?}; "nothing to update: give 'available' or 'tags'" when neither.
struct PackageUpdate {
  std::string id;
  std::optional<bool> available;
  std::optional<std::vector<std::string>> tags;
};
core::Result<PackageUpdate> parse_package_update(const nlohmann::json& body);

// packages/upload frame header: {id, offset ≥ 0, last?}. The chunk bounds are checked against the
// package by the service (they need its size).
struct UploadHeader {
  std::string id;
  std::int64_t offset = 0;
  bool last = false;
};
core::Result<UploadHeader> parse_upload_header(const nlohmann::json& header);

// True when `nonce` may be a fresh-token nonce: 16–64 characters of the standard or URL-safe Base64
// alphabets ([A-Za-z0-9+/=_-]); PROTOCOL §2.1 asks only for 16–64 characters, and these are the ones a
// random nonce is written with.
bool valid_nonce(std::string_view nonce);

// §2.1 package query. What the service asks of the token part:
struct QueryRules {
  bool token_required = true;  // false: provisioning.token = off (no token fields are read)
  bool fresh_required = true;  // true: provisioning.token = fresh (a static token is refused)
  core::TimeMs skew_ms = 300'000;
};
// Fields: version (SemVer when present), package_id (object id), then unless tokens are off: token
// (required), ts, nonce. A query is fresh when it has ts or nonce, or when rules.fresh_required; a fresh
// query needs both ("missing required field 'ts'"/"… 'nonce'"), a valid nonce, an RFC 3339 ts, and ts
// within ±skew of now, else unauthorized "token time is more than <s> s away from the service clock".
struct PackageQuery {
  std::optional<std::string> version;
  std::optional<std::string> package_id;
  std::optional<std::string> token;  // absent only when tokens are off
  std::optional<std::string> ts;     // present exactly when the query is fresh
  std::optional<std::string> nonce;
};
core::Result<PackageQuery> parse_package_query(const nlohmann::json& body, const QueryRules& rules,
                                               core::TimeMs now);

// §2.4 download request: {download_token, offset ≥ 0, length 1..max_chunk}.
struct DownloadRequest {
  std::string download_token;
  std::int64_t offset = 0;
  std::int64_t length = 0;
};
core::Result<DownloadRequest> parse_download_request(const nlohmann::json& body, std::int64_t max_chunk);

}  // namespace dispatch::protocol
