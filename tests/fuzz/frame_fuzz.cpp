// Fuzzes protocol::parse_frame (download answers and package uploads). Invariants: the header is an
// object, a present "length" equals the body size, and encode_frame of a parsed frame parses again.
#include "protocol/frame.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto frame = protocol::parse_frame(fuzz::as_text(data, size), 512);
  if (!frame) return 0;
  fuzz::check(frame->header.is_object(), "frame header is an object");
  if (frame->header.contains("length")) {
    const auto& length = frame->header["length"];
    fuzz::check(length.is_number_unsigned() || length.is_number_integer(), "length is an integer");
    fuzz::check(length.get<std::int64_t>() == static_cast<std::int64_t>(frame->body.size()),
                "length equals the body size");
  }
  auto encoded = protocol::encode_frame(frame->header, frame->body);
  auto again = protocol::parse_frame(encoded, encoded.size() + 1);
  fuzz::check(again.ok() && again->body == frame->body, "encode_frame(parse_frame(x)) parses");
  return 0;
}
