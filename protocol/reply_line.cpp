#include "protocol/reply_line.h"

#include <fmt/format.h>

#include "protocol/ids.h"

namespace dispatch::protocol {

using core::ErrorCode;
using core::make_error;

core::Result<ReplyLine> parse_reply_line(std::string_view text) {
  const auto first_space = text.find(' ');
  if (first_space == std::string_view::npos)
    return make_error(ErrorCode::bad_request, "reply line has no flag");
  const std::string_view id = text.substr(0, first_space);
  if (auto s = check_object_id(id, "command id"); !s) return s.error();

  const std::string_view rest = text.substr(first_space + 1);
  const auto second_space = rest.find(' ');
  const std::string_view flag = rest.substr(0, second_space);
  if (flag != "s" && flag != "f") {
    return make_error(ErrorCode::bad_request,
                      fmt::format("reply flag '{}' must be 's' or 'f'", printable(flag, 16)));
  }
  ReplyLine reply;
  reply.id = std::string(id);
  reply.success = flag == "s";
  // esthesis agents drop the trailing space when the output is empty; we accept both forms.
  if (second_space != std::string_view::npos) reply.output = std::string(rest.substr(second_space + 1));
  return reply;
}

std::string encode_reply_line(std::string_view id, bool success, std::string_view output) {
  std::string out;
  out.reserve(id.size() + 3 + output.size());
  out += id;
  out += success ? " s " : " f ";
  out += output;
  return out;
}

}  // namespace dispatch::protocol
