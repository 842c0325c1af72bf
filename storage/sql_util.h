// Helpers shared by the stores of this folder (not part of the storage API): binding optionals and
// the small text encoding used for string lists and maps kept in one column.
//
// Encoding: each string is written as "<decimal length>:<bytes>", one after another; a map is its
// keys and values alternating. It is unambiguous for any bytes (spaces, commas, NUL) and needs no
// JSON library in this layer. Decoding malformed text throws std::runtime_error, which the stores
// turn into an internal error (the column was not written by this code).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "storage/statement.h"

namespace dispatch::storage::detail {

// Rows per multi-row INSERT or keyed UPDATE, on both backends (parameters per statement stay far below
// PostgreSQL's 65,535 and SQLite's 32,766: 16 columns x 512 rows = 8,192).
constexpr std::size_t k_pg_batch = 512;

// Calls f(first, n) for consecutive batches that cover [0, total): k_pg_batch items at a time, then halving
// sizes for the rest, so that a store prepares few distinct statement texts (all cached).
template <class F>
void for_each_batch(std::size_t total, F&& f) {
  std::size_t done = 0;
  while (done < total) {
    std::size_t n = k_pg_batch;
    while (n > total - done) n /= 2;
    f(done, n);
    done += n;
  }
}

// "row, row, …" n times: the VALUES list of a multi-row INSERT.
inline std::string value_rows(const std::string& row, std::size_t n) {
  std::string out;
  out.reserve((row.size() + 2) * n);
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ", ";
    out += row;
  }
  return out;
}

std::string encode_strings(const std::vector<std::string>& values);
std::vector<std::string> decode_strings(const std::string& text);
std::string encode_map(const std::map<std::string, std::string>& values);
std::map<std::string, std::string> decode_map(const std::string& text);

inline void bind_opt(Statement& s, int index, const std::optional<std::int64_t>& v) {
  if (v) {
    s.bind(index, static_cast<std::int64_t>(*v));
  } else {
    s.bind(index);
  }
}

inline void bind_opt(Statement& s, int index, const std::optional<std::string>& v) {
  if (v) {
    s.bind(index, *v);
  } else {
    s.bind(index);
  }
}

inline std::optional<std::int64_t> opt_int64(const Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

inline std::optional<std::string> opt_string(const Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getString();
}

}  // namespace dispatch::storage::detail
