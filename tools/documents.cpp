#include "tools/documents.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dispatch::tools {

using core::ErrorCode;
using core::make_error;

core::Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(ErrorCode::bad_request, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(ErrorCode::bad_request, fmt::format("cannot read {}: read error", path));
  return ss.str();
}

namespace {

nlohmann::json to_json(const toml::node& node) {
  if (auto t = node.as_table()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [k, v] : *t) o[std::string(k.str())] = to_json(v);
    return o;
  }
  if (auto a = node.as_array()) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : *a) arr.push_back(to_json(v));
    return arr;
  }
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return i->get();
  if (auto f = node.as_floating_point()) return f->get();
  if (auto b = node.as_boolean()) return b->get();
  // Dates, times and date-times: TOML's own text is RFC 3339.
  std::ostringstream ss;
  if (auto d = node.as_date_time()) {
    ss << d->get();
  } else if (auto dd = node.as_date()) {
    ss << dd->get();
  } else if (auto tt = node.as_time()) {
    ss << tt->get();
  }
  return ss.str();
}

}  // namespace

core::Result<nlohmann::json> toml_to_json(const std::string& text) {
  try {
    toml::table t = toml::parse(text);
    return to_json(t);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    return make_error(ErrorCode::bad_request, fmt::format("line {}, column {}: {}", src.begin.line,
                                                          src.begin.column, std::string(e.description())));
  }
}

core::Result<nlohmann::json> load_campaign_document(const std::string& path) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? std::string() : path.substr(dot);
  if (ext != ".json" && ext != ".toml") {
    return make_error(ErrorCode::bad_request,
                      fmt::format("unsupported campaign file extension '{}' (use .json or .toml)", ext));
  }
  auto text = read_text_file(path);
  if (!text) return text.error();
  nlohmann::json doc;
  if (ext == ".json") {
    doc = nlohmann::json::parse(*text, nullptr, false);
    if (doc.is_discarded())
      return make_error(ErrorCode::bad_request, fmt::format("{}: not valid JSON", path));
  } else {
    auto j = toml_to_json(*text);
    if (!j) return make_error(ErrorCode::bad_request, fmt::format("{}: {}", path, j.error().message));
    doc = std::move(*j);
  }
  if (!doc.is_object())
    return make_error(ErrorCode::bad_request, fmt::format("{}: the document must be an object", path));
  return doc;
}

}  // namespace dispatch::tools
