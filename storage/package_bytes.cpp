#include "storage/package_bytes.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/core/encoding.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

// PostgreSQL's encode(…, 'base64') breaks lines every 76 characters.
std::string without_newlines(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
  return s;
}

}  // namespace

Status PackageBytesStore::put(const std::string& id, std::string_view kind, std::int64_t offset,
                              std::string_view bytes) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(db_.dialect(
        "INSERT INTO package_bytes(package_id, kind, \"offset\", length, data) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(package_id, kind, \"offset\") DO UPDATE SET length = excluded.length, data = "
        "excluded.data",
        "INSERT INTO package_bytes(package_id, kind, \"offset\", length, data) "
        "VALUES(?, ?, ?, ?, decode(?, 'base64')) "
        "ON CONFLICT(package_id, kind, \"offset\") DO UPDATE SET length = excluded.length, data = "
        "excluded.data"));
    q->bind(1, id);
    q->bind(2, std::string(kind));
    q->bind(3, offset);
    q->bind(4, static_cast<std::int64_t>(bytes.size()));
    q->bind(5, core::base64_encode(bytes));
    q->exec();
    return {};
  });
}

Result<std::vector<PackageBytesStore::Extent>> PackageBytesStore::extents(const std::string& id,
                                                                          std::string_view kind) {
  return db_.read([&]() -> Result<std::vector<Extent>> {
    auto q = db_.prepare(
        "SELECT \"offset\", length FROM package_bytes WHERE package_id = ? AND kind = ? ORDER BY \"offset\"");
    q->bind(1, id);
    q->bind(2, std::string(kind));
    std::vector<Extent> out;
    while (q->executeStep()) out.push_back({q->getColumn(0).getInt64(), q->getColumn(1).getInt64()});
    return out;
  });
}

Result<std::string> PackageBytesStore::read(const std::string& id, std::string_view kind, std::int64_t offset,
                                            std::int64_t length) {
  return db_.read([&]() -> Result<std::string> {
    // The chunks overlapping [offset, offset + length), by offset.
    auto q = db_.prepare(db_.dialect(
        "SELECT \"offset\", length, data FROM package_bytes WHERE package_id = ? AND kind = ? "
        "AND \"offset\" < ? AND \"offset\" + length > ? ORDER BY \"offset\"",
        "SELECT \"offset\", length, encode(data, 'base64') FROM package_bytes WHERE package_id = ? "
        "AND kind = ? AND \"offset\" < ? AND \"offset\" + length > ? ORDER BY \"offset\""));
    q->bind(1, id);
    q->bind(2, std::string(kind));
    q->bind(3, offset + length);
    q->bind(4, offset);
    std::string out;
    out.reserve(static_cast<std::size_t>(std::max<std::int64_t>(length, 0)));
    std::int64_t at = offset;  // the next byte wanted
    const std::int64_t end = offset + length;
    while (at < end && q->executeStep()) {
      const std::int64_t chunk_offset = q->getColumn(0).getInt64();
      if (chunk_offset > at) break;  // a gap
      auto bytes = core::base64_decode(without_newlines(q->getColumn(2).getString()));
      if (!bytes || static_cast<std::int64_t>(bytes->size()) != q->getColumn(1).getInt64()) {
        return make_error(ErrorCode::internal,
                          fmt::format("package chunk at {} does not decode", chunk_offset));
      }
      const std::int64_t from = at - chunk_offset;
      const std::int64_t take =
          std::min<std::int64_t>(static_cast<std::int64_t>(bytes->size()) - from, end - at);
      if (take <= 0) continue;  // an overlapped chunk already covered
      out.append(*bytes, static_cast<std::size_t>(from), static_cast<std::size_t>(take));
      at += take;
    }
    if (at < end) return make_error(ErrorCode::unavailable, fmt::format("package bytes missing at {}", at));
    return out;
  });
}

Result<int> PackageBytesStore::rename(const std::string& id, std::string_view from, std::string_view to) {
  return db_.transaction([&]() -> Result<int> {
    auto del = db_.prepare("DELETE FROM package_bytes WHERE package_id = ? AND kind = ?");
    del->bind(1, id);
    del->bind(2, std::string(to));
    del->exec();
    auto q = db_.prepare("UPDATE package_bytes SET kind = ? WHERE package_id = ? AND kind = ?");
    q->bind(1, std::string(to));
    q->bind(2, id);
    q->bind(3, std::string(from));
    return q->exec();
  });
}

Result<int> PackageBytesStore::remove(const std::string& id, std::string_view kind) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("DELETE FROM package_bytes WHERE package_id = ? AND kind = ?");
    q->bind(1, id);
    q->bind(2, std::string(kind));
    return q->exec();
  });
}

Result<std::vector<std::pair<std::string, std::string>>> PackageBytesStore::list() {
  return db_.read([&]() -> Result<std::vector<std::pair<std::string, std::string>>> {
    auto q = db_.prepare("SELECT DISTINCT package_id, kind FROM package_bytes ORDER BY package_id, kind");
    std::vector<std::pair<std::string, std::string>> out;
    while (q->executeStep()) out.emplace_back(q->getColumn(0).getString(), q->getColumn(1).getString());
    return out;
  });
}

}  // namespace dispatch::storage
