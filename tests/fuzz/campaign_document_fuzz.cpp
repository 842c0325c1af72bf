// Fuzzes campaigns::parse_campaign_document behind protocol::parse_json_object, as campaigns/create
// receives it. Invariant (the header's promise): parse_campaign_document(to_json(d)) == d.
#include "campaigns/document.h"
#include "protocol/json_request.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto object = protocol::parse_json_object(fuzz::as_text(data, size));
  if (!object) return 0;
  auto doc = campaigns::parse_campaign_document(*object);
  if (!doc) {
    fuzz::check(doc.error().code == core::ErrorCode::bad_request, "documents fail only with bad_request");
    return 0;
  }
  auto stored = campaigns::to_json(*doc);
  auto again = campaigns::parse_campaign_document(stored);
  fuzz::check(again.ok() && *again == *doc, "parse(to_json(d)) == d");
  return 0;
}
