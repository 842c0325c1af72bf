// Byte encodings: Base64 (RFC 4648 §4, padded), Base64url (RFC 4648 §5, unpadded) and hex.
//
// Decoders are strict: they return nullopt for any character outside the alphabet (whitespace
// included), a length that no encoding produces, misplaced or missing padding, or non-zero unused bits
// in the last character — so every accepted text is the one canonical encoding of its bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dispatch::core {

std::string base64_encode(std::string_view bytes);
// Standard alphabet, '=' padding required (length a multiple of 4). "" decodes to "".
std::optional<std::string> base64_decode(std::string_view text);

std::string base64url_encode(std::string_view bytes);
// URL-safe alphabet ('-', '_'), no padding: a '=' is refused. "" decodes to "".
std::optional<std::string> base64url_decode(std::string_view text);

// Lowercase, two characters per byte.
std::string hex_encode(std::string_view bytes);
// Accepts upper and lower case; nullopt for an odd length or a non-hex character.
std::optional<std::string> hex_decode(std::string_view text);

// Untrusted text made safe to echo in an error message (which may end up in JSON): printable ASCII is
// kept, every other byte becomes "\xNN", and input longer than max_bytes is cut there and ends in
// "...". Always valid UTF-8.
std::string escape_for_message(std::string_view text, std::size_t max_bytes = 64);

}  // namespace dispatch::core
