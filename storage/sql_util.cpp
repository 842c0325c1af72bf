#include "storage/sql_util.h"

#include <stdexcept>

namespace dispatch::storage::detail {

namespace {

void append(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t colon = text.find(':', pos);
    if (colon == std::string::npos || colon == pos || colon - pos > 18) {
      throw std::runtime_error("malformed encoded list");
    }
    std::size_t len = 0;
    for (std::size_t i = pos; i < colon; ++i) {
      if (text[i] < '0' || text[i] > '9') throw std::runtime_error("malformed encoded list");
      len = len * 10 + static_cast<std::size_t>(text[i] - '0');
    }
    if (len > text.size() - colon - 1) throw std::runtime_error("malformed encoded list");
    out.push_back(text.substr(colon + 1, len));
    pos = colon + 1 + len;
  }
  return out;
}

}  // namespace

std::string encode_strings(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) append(out, v);
  return out;
}

std::vector<std::string> decode_strings(const std::string& text) { return split(text); }

std::string encode_map(const std::map<std::string, std::string>& values) {
  std::string out;
  for (const auto& [k, v] : values) {
    append(out, k);
    append(out, v);
  }
  return out;
}

std::map<std::string, std::string> decode_map(const std::string& text) {
  std::vector<std::string> parts = split(text);
  if (parts.size() % 2 != 0) throw std::runtime_error("malformed encoded map");
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < parts.size(); i += 2) out[parts[i]] = parts[i + 1];
  return out;
}

}  // namespace dispatch::storage::detail
