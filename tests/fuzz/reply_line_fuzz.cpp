// Fuzzes protocol::parse_reply_line (what a device publishes on its reply topic). Invariant: a parsed
// reply re-encodes to a line that parses to the same reply.
#include "protocol/reply_line.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto parsed = protocol::parse_reply_line(fuzz::as_text(data, size));
  if (!parsed) return 0;
  auto line = protocol::encode_reply_line(parsed->id, parsed->success, parsed->output);
  auto again = protocol::parse_reply_line(line);
  fuzz::check(again.ok() && *again == *parsed, "parse(encode(parse(x))) == parse(x)");
  return 0;
}
