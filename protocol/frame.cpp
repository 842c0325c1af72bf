#include "protocol/frame.h"

#include <fmt/format.h>

#include <cstdint>
#include <optional>

#include "protocol/errors.h"

namespace dispatch::protocol {

namespace {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;

std::optional<json> parse_object(std::string_view text) {
  // The header is at most max_header bytes, so nesting cannot be deep enough to matter. A NUL would end
  // nlohmann's input early and hide what follows it.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return std::nullopt;
  return value;
}

}  // namespace

core::Result<Frame> parse_frame(std::string_view payload, std::size_t max_header) {
  const auto newline = payload.find('\n');
  const bool header_too_long =
      newline == std::string_view::npos ? payload.size() > max_header : newline > max_header;
  if (header_too_long) {
    return make_error(ErrorCode::too_large, fmt::format("frame header exceeds {} bytes", max_header));
  }
  if (newline == std::string_view::npos) {
    auto header = parse_object(payload);
    if (header && header->contains("error")) return Frame{std::move(*header), {}};
    return make_error(ErrorCode::bad_request, "frame has no header line");
  }
  auto header = parse_object(payload.substr(0, newline));
  if (!header) return make_error(ErrorCode::bad_request, "frame header must be a JSON object");
  Frame frame{std::move(*header), payload.substr(newline + 1)};
  if (auto it = frame.header.find("length"); it != frame.header.end()) {
    const bool non_negative_integer =
        it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0);
    if (!non_negative_integer) {
      return make_error(ErrorCode::bad_request, "frame field 'length' must be a non-negative integer");
    }
    const auto length = it->get<std::uint64_t>();
    if (length != frame.body.size()) {
      return make_error(ErrorCode::bad_request, fmt::format("frame length {} disagrees with {} bytes of data",
                                                            length, frame.body.size()));
    }
  }
  return frame;
}

std::string encode_frame(const json& header, std::string_view body) {
  std::string out = dump_json(header);
  out.reserve(out.size() + 1 + body.size());
  out += '\n';
  out += body;
  return out;
}

}  // namespace dispatch::protocol
