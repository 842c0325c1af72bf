// Fuzzes the strict decoders of core/encoding.h (signatures, download tokens, hashes) and
// escape_for_message. Invariant (the header's promise): every accepted text is the canonical encoding
// of its bytes, so encode(decode(x)) == x.
#include "protocol/core/encoding.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto text = fuzz::as_text(data, size);
  if (auto bytes = core::base64_decode(text)) {
    fuzz::check(core::base64_encode(*bytes) == text, "base64: encode(decode(x)) == x");
  }
  if (auto bytes = core::base64url_decode(text)) {
    fuzz::check(core::base64url_encode(*bytes) == text, "base64url: encode(decode(x)) == x");
  }
  if (auto bytes = core::hex_decode(text)) {
    fuzz::check(bytes->size() * 2 == text.size(), "hex: two characters per byte");
  }
  fuzz::check(core::base64_decode(core::base64_encode(text)) == std::string(text),
              "base64 round-trips bytes");
  auto escaped = core::escape_for_message(text, 32);
  for (unsigned char c : escaped) fuzz::check(c >= 0x20 && c < 0x7f, "escape_for_message is printable ASCII");
  return 0;
}
