// Fuzzes the provisioning request parsers (protocol/package_requests.h) on one JSON document. Invariants:
// no parser throws or crashes; whatever is accepted keeps the promises of the header (ids are object
// ids, offsets and lengths within their bounds, a fresh query has a valid nonce).
#include <nlohmann/json.hpp>

#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "protocol/package_requests.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto body = protocol::parse_json_object(fuzz::as_text(data, size));
  if (!body) return 0;
  if (auto c = protocol::parse_package_create(*body)) {
    fuzz::check(!c->name.empty() && c->name.size() <= 256, "name length");
    fuzz::check(c->type != protocol::PackageType::internal || (c->sha256 && c->size && *c->size >= 0),
                "internal package has sha256 and size");
    for (const auto& t : c->tags) fuzz::check(protocol::valid_object_id(t), "tags are ids");
  }
  if (auto l = protocol::parse_package_list(*body, 1000)) {
    fuzz::check(l->limit >= 1 && l->limit <= 1000, "list limit in bounds");
  }
  if (auto u = protocol::parse_package_update(*body)) {
    fuzz::check(protocol::valid_object_id(u->id) && (u->available || u->tags),
                "update has an id and a change");
  }
  if (auto h = protocol::parse_upload_header(*body)) fuzz::check(h->offset >= 0, "upload offset >= 0");
  if (auto d = protocol::parse_download_request(*body, 262144)) {
    fuzz::check(d->offset >= 0 && d->length >= 1 && d->length <= 262144, "download range in bounds");
  }
  for (const protocol::QueryRules rules : {protocol::QueryRules{}, protocol::QueryRules{true, false, 300'000},
                                           protocol::QueryRules{false, false, 300'000}}) {
    if (auto q = protocol::parse_package_query(*body, rules, 1'800'000'000'000)) {
      fuzz::check(!rules.token_required || q->token.has_value(), "a token when tokens are on");
      fuzz::check(!q->nonce || protocol::valid_nonce(*q->nonce), "an accepted nonce is valid");
      fuzz::check(!rules.fresh_required || !rules.token_required || q->ts.has_value(), "fresh mode has ts");
    }
  }
  return 0;
}
