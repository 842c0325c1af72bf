// Fuzzes protocol::parse_command_line (a command line as a device would read it). Invariant: whatever
// encode() accepts, parse_command_line() reads back to the same wire text, and its second token is
// exactly two bytes (an esthesis agent indexes both unchecked).
#include "protocol/command_line.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto text = fuzz::as_text(data, size);
  auto parsed = protocol::parse_command_line(text);
  if (!parsed) return 0;
  auto encoded = protocol::encode(*parsed);
  if (!encoded) return 0;
  const auto first = encoded->find(' ');
  const auto second_end = first == std::string::npos ? first : encoded->find(' ', first + 1);
  fuzz::check(first != std::string::npos &&
                  (second_end == std::string::npos ? encoded->size() : second_end) - first - 1 == 2,
              "the second token is two letters");
  auto again = protocol::parse_command_line(*encoded);
  fuzz::check(again.ok(), "an encoded command line parses");
  auto encoded_again = protocol::encode(*again);
  fuzz::check(encoded_again.ok() && *encoded_again == *encoded, "encode(parse(encode(x))) == encode(x)");
  return 0;
}
