#include "protocol/package_requests.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/core/semver.h"
#include "protocol/core/time.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "protocol/request_fields.h"

namespace dispatch::protocol {

using core::ErrorCode;
using core::make_error;
using core::Result;
using Json = nlohmann::json;

namespace {

bool is_lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// http(s) only, no whitespace or control characters, bounded length.
bool valid_url(std::string_view url) {
  const bool https = url.rfind("https://", 0) == 0;
  const bool scheme = https || url.rfind("http://", 0) == 0;
  const auto prefix = https ? 8u : 7u;
  return scheme && url.size() > prefix && url.size() <= 2048 &&
         std::all_of(url.begin(), url.end(),
                     [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; });
}

bool base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
         c == '=' || c == '_' || c == '-';
}

}  // namespace

std::string_view to_string(PackageType type) {
  return type == PackageType::internal ? "internal" : "external";
}

Result<PackageCreate> parse_package_create(const Json& body) {
  PackageCreate c;
  auto name = required_string(body, "name");
  if (!name) return name.error();
  if (name->empty() || name->size() > 256) {
    return make_error(ErrorCode::bad_request, "field 'name' must be 1 to 256 characters");
  }
  c.name = std::move(*name);
  auto version_text = required_string(body, "version");
  if (!version_text) return version_text.error();
  auto version = core::parse_semver(*version_text);
  if (!version) return make_error(ErrorCode::bad_request, "field 'version': " + version.error().message);
  c.version = core::format(*version);
  auto prereq_text = optional_string(body, "prerequisite_version");
  if (!prereq_text) return prereq_text.error();
  if (*prereq_text) {
    auto v = core::parse_semver(**prereq_text);
    if (!v) return make_error(ErrorCode::bad_request, "field 'prerequisite_version': " + v.error().message);
    c.prerequisite_version = core::format(*v);
  }
  auto type = required_string(body, "type");
  if (!type) return type.error();
  if (*type != "internal" && *type != "external") {
    return make_error(ErrorCode::bad_request, "field 'type' must be one of internal, external");
  }
  c.type = *type == "internal" ? PackageType::internal : PackageType::external;
  auto url = optional_string(body, "url");
  if (!url) return url.error();
  c.url = *url;
  auto sha = optional_string(body, "sha256");
  if (!sha) return sha.error();
  c.sha256 = *sha;
  auto size = optional_int(body, "size", 0);
  if (!size) return size.error();
  c.size = *size;
  auto tags = optional_tags(body, "tags");
  if (!tags) return tags.error();
  c.tags = std::move(*tags);
  auto available = required_bool(body, "available");
  if (!available) return available.error();
  c.available = *available;
  auto prerelease_ok = optional_bool(body, "prerelease_ok");
  if (!prerelease_ok) return prerelease_ok.error();
  c.prerelease_ok = prerelease_ok->value_or(false);
  auto attributes = optional_string_map(body, "attributes");
  if (!attributes) return attributes.error();
  c.attributes = std::move(*attributes);
  auto request_id = optional_object_id(body, "request_id");
  if (!request_id) return request_id.error();
  c.request_id = *request_id;

  if (c.sha256 && !is_lower_hex64(*c.sha256)) {
    return make_error(ErrorCode::bad_request, "field 'sha256' must be 64 lowercase hex characters");
  }
  if (c.type == PackageType::internal) {
    if (c.url) return make_error(ErrorCode::bad_request, "an internal package takes no 'url'");
    if (!c.sha256)
      return make_error(ErrorCode::bad_request, "an internal package needs 'sha256' to check its upload");
    if (!c.size)
      return make_error(ErrorCode::bad_request, "an internal package needs 'size' to check its upload");
  } else if (!c.url || !valid_url(*c.url)) {
    return make_error(ErrorCode::bad_request, "an external package needs an http:// or https:// 'url'");
  }
  return c;
}

Result<std::string> parse_package_id(const Json& body) { return required_object_id(body, "id"); }

Result<PackageListRequest> parse_package_list(const Json& body, int max_limit) {
  PackageListRequest q;
  auto name = optional_string(body, "name");
  if (!name) return name.error();
  q.name = *name;
  auto tag = optional_object_id(body, "tag");
  if (!tag) return tag.error();
  q.tag = *tag;
  auto available = optional_bool(body, "available");
  if (!available) return available.error();
  q.available = *available;
  auto limit = optional_int(body, "limit", 1, max_limit);
  if (!limit) return limit.error();
  q.limit = static_cast<int>(limit->value_or(std::min(100, max_limit)));
  auto after = optional_object_id(body, "after");
  if (!after) return after.error();
  q.after = *after;
  return q;
}

Result<PackageUpdate> parse_package_update(const Json& body) {
  PackageUpdate u;
  auto id = required_object_id(body, "id");
  if (!id) return id.error();
  u.id = std::move(*id);
  auto available = optional_bool(body, "available");
  if (!available) return available.error();
  u.available = *available;
  if (body.contains("tags") && !body["tags"].is_null()) {
    auto t = optional_tags(body, "tags");
    if (!t) return t.error();
    u.tags = std::move(*t);
  }
  if (!u.available && !u.tags) {
    return make_error(ErrorCode::bad_request, "nothing to update: give 'available' or 'tags'");
  }
  return u;
}

Result<UploadHeader> parse_upload_header(const Json& header) {
  UploadHeader h;
  auto id = required_object_id(header, "id");
  if (!id) return id.error();
  h.id = std::move(*id);
  auto offset = required_int(header, "offset", 0);
  if (!offset) return offset.error();
  h.offset = *offset;
  auto last = optional_bool(header, "last");
  if (!last) return last.error();
  h.last = last->value_or(false);
  return h;
}

bool valid_nonce(std::string_view nonce) {
  return nonce.size() >= 16 && nonce.size() <= 64 && std::all_of(nonce.begin(), nonce.end(), base64_char);
}

Result<PackageQuery> parse_package_query(const Json& body, const QueryRules& rules, core::TimeMs now) {
  PackageQuery q;
  auto version = optional_string(body, "version");
  if (!version) return version.error();
  if (*version) {
    if (auto v = core::parse_semver(**version); !v) {
      return make_error(ErrorCode::bad_request, "field 'version': " + v.error().message);
    }
  }
  q.version = *version;
  auto package_id = optional_object_id(body, "package_id");
  if (!package_id) return package_id.error();
  q.package_id = *package_id;
  if (!rules.token_required) return q;

  auto token = required_string(body, "token");
  if (!token) return token.error();
  q.token = *token;
  auto ts = optional_string(body, "ts");
  if (!ts) return ts.error();
  auto nonce = optional_string(body, "nonce");
  if (!nonce) return nonce.error();
  const bool fresh = ts->has_value() || nonce->has_value() || rules.fresh_required;
  if (!fresh) return q;  // a static token ("any" mode)
  if (!*ts) return make_error(ErrorCode::bad_request, "missing required field 'ts'");
  if (!*nonce) return make_error(ErrorCode::bad_request, "missing required field 'nonce'");
  if (!valid_nonce(**nonce)) {
    return make_error(ErrorCode::bad_request,
                      "field 'nonce' must be 16 to 64 characters of [A-Za-z0-9+/=_-]");
  }
  auto t = core::parse_rfc3339(**ts);
  if (!t) return make_error(ErrorCode::bad_request, "field 'ts' must be an RFC 3339 time");
  if (*t < now - rules.skew_ms || *t > now + rules.skew_ms) {
    return make_error(
        ErrorCode::unauthorized,
        fmt::format("token time is more than {} s away from the service clock", rules.skew_ms / 1000));
  }
  q.ts = *ts;
  q.nonce = *nonce;
  return q;
}

Result<DownloadRequest> parse_download_request(const Json& body, std::int64_t max_chunk) {
  DownloadRequest d;
  auto token = required_string(body, "download_token");
  if (!token) return token.error();
  d.download_token = std::move(*token);
  auto offset = required_int(body, "offset", 0);
  if (!offset) return offset.error();
  d.offset = *offset;
  auto length = required_int(body, "length", 1, max_chunk);
  if (!length) return length.error();
  d.length = *length;
  return d;
}

}  // namespace dispatch::protocol
