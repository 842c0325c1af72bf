#include "storage/packages.h"

#include <algorithm>

#include "storage/sql_util.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;
using detail::bind_opt;
using detail::decode_map;
using detail::encode_map;
using detail::opt_string;

namespace {

constexpr const char* k_columns =
    "id, name, version, prerequisite_version, type, url, sha256, size, available, prerelease_ok, "
    "attributes, state, file_path, created_at, updated_at";

PackageRow read_row(Statement& q) {
  PackageRow row;
  row.id = q.getColumn(0).getString();
  row.name = q.getColumn(1).getString();
  row.version = q.getColumn(2).getString();
  row.prerequisite_version = opt_string(q.getColumn(3));
  row.type = q.getColumn(4).getString();
  row.url = q.getColumn(5).getString();
  row.sha256 = q.getColumn(6).getString();
  row.size = q.getColumn(7).getInt64();
  row.available = q.getColumn(8).getInt() != 0;
  row.prerelease_ok = q.getColumn(9).getInt() != 0;
  row.attributes = decode_map(q.getColumn(10).getString());
  row.state = q.getColumn(11).getString();
  row.file_path = q.getColumn(12).getString();
  row.created_at = q.getColumn(13).getInt64();
  row.updated_at = q.getColumn(14).getInt64();
  return row;
}

std::vector<std::string> tags_of(Statement& q, const std::string& id) {
  q.reset();
  q.bind(1, id);
  std::vector<std::string> tags;
  while (q.executeStep()) tags.push_back(q.getColumn(0).getString());
  return tags;
}

void write_tags(Database& db, const std::string& id, const std::vector<std::string>& tags) {
  auto clear = db.prepare("DELETE FROM package_tags WHERE package_id = ?");
  clear->bind(1, id);
  clear->exec();
  auto add = db.prepare("INSERT INTO package_tags(package_id, tag) VALUES(?, ?) ON CONFLICT DO NOTHING");
  for (const auto& tag : tags) {
    add->reset();
    add->bind(1, id);
    add->bind(2, tag);
    add->exec();
  }
}

core::Error no_package(const std::string& id) {
  return make_error(ErrorCode::not_found, "package " + id + " does not exist");
}

bool package_exists(Database& db, const std::string& id) {
  auto q = db.prepare("SELECT 1 FROM packages WHERE id = ?");
  q->bind(1, id);
  return q->executeStep();
}

}  // namespace

Status PackageStore::insert(const PackageRow& p) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(std::string("INSERT INTO packages(") + k_columns +
                         ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q->bind(1, p.id);
    q->bind(2, p.name);
    q->bind(3, p.version);
    bind_opt(*q, 4, p.prerequisite_version);
    q->bind(5, p.type);
    q->bind(6, p.url);
    q->bind(7, p.sha256);
    q->bind(8, p.size);
    q->bind(9, p.available ? 1 : 0);
    q->bind(10, p.prerelease_ok ? 1 : 0);
    q->bind(11, encode_map(p.attributes));
    q->bind(12, p.state);
    q->bind(13, p.file_path);
    q->bind(14, p.created_at);
    q->bind(15, p.updated_at);
    q->exec();
    write_tags(db_, p.id, p.tags);
    return {};
  });
}

Result<PackageRow> PackageStore::get(const std::string& id) {
  return db_.read([&]() -> Result<PackageRow> {
    auto q = db_.prepare(std::string("SELECT ") + k_columns + " FROM packages WHERE id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return no_package(id);
    PackageRow row = read_row(*q);
    auto tags = db_.prepare("SELECT tag FROM package_tags WHERE package_id = ? ORDER BY tag");
    row.tags = tags_of(*tags, id);
    return row;
  });
}

Result<std::vector<PackageRow>> PackageStore::list(const PackageQuery& query) {
  return db_.read([&]() -> Result<std::vector<PackageRow>> {
    std::string sql = std::string("SELECT ") + k_columns + " FROM packages WHERE id > ?";
    if (query.name) sql += " AND name = ?";
    if (query.tag) sql += " AND id IN (SELECT package_id FROM package_tags WHERE tag = ?)";
    if (query.available) sql += " AND available = ?";
    sql += " ORDER BY id LIMIT ?";
    auto q = db_.prepare(sql);
    int i = 1;
    q->bind(i++, query.after.value_or(""));
    if (query.name) q->bind(i++, *query.name);
    if (query.tag) q->bind(i++, *query.tag);
    if (query.available) q->bind(i++, *query.available ? 1 : 0);
    q->bind(i++, std::max(query.limit, 0));
    auto tags = db_.prepare("SELECT tag FROM package_tags WHERE package_id = ? ORDER BY tag");
    std::vector<PackageRow> rows;
    while (q->executeStep()) {
      rows.push_back(read_row(*q));
      rows.back().tags = tags_of(*tags, rows.back().id);
    }
    return rows;
  });
}

Status PackageStore::update(const std::string& id, std::optional<bool> available,
                            const std::optional<std::vector<std::string>>& tags, TimeMs now) {
  return db_.transaction([&]() -> Status {
    auto q =
        db_.prepare("UPDATE packages SET available = COALESCE(?, available), updated_at = ? WHERE id = ?");
    if (available) {
      q->bind(1, *available ? 1 : 0);
    } else {
      q->bind(1);
    }
    q->bind(2, now);
    q->bind(3, id);
    if (q->exec() == 0) return no_package(id);
    if (tags) write_tags(db_, id, *tags);
    return {};
  });
}

Status PackageStore::remove(const std::string& id) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("DELETE FROM packages WHERE id = ?");
    q->bind(1, id);
    if (q->exec() == 0) return no_package(id);
    return {};
  });
}

Status PackageStore::set_ready(const std::string& id, const std::string& file_path, std::int64_t size,
                               const std::string& sha256, TimeMs now) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "UPDATE packages SET state = 'ready', file_path = ?, size = ?, sha256 = ?, "
        "updated_at = ? WHERE id = ?");
    q->bind(1, file_path);
    q->bind(2, size);
    q->bind(3, sha256);
    q->bind(4, now);
    q->bind(5, id);
    if (q->exec() == 0) return no_package(id);
    auto clear = db_.prepare("DELETE FROM package_chunks WHERE package_id = ?");
    clear->bind(1, id);
    clear->exec();
    return {};
  });
}

Status PackageStore::record_chunk(const std::string& package_id, std::int64_t offset, std::int64_t length) {
  return db_.transaction([&]() -> Status {
    if (!package_exists(db_, package_id)) return no_package(package_id);
    auto q = db_.prepare(
        "INSERT INTO package_chunks(package_id, \"offset\", length) VALUES(?, ?, ?) "
        "ON CONFLICT(package_id, \"offset\") DO UPDATE SET length = excluded.length");
    q->bind(1, package_id);
    q->bind(2, offset);
    q->bind(3, length);
    q->exec();
    return {};
  });
}

Result<std::vector<ChunkRow>> PackageStore::chunks(const std::string& package_id) {
  return db_.read([&]() -> Result<std::vector<ChunkRow>> {
    auto q =
        db_.prepare("SELECT \"offset\", length FROM package_chunks WHERE package_id = ? ORDER BY \"offset\"");
    q->bind(1, package_id);
    std::vector<ChunkRow> rows;
    while (q->executeStep()) rows.push_back(ChunkRow{q->getColumn(0).getInt64(), q->getColumn(1).getInt64()});
    return rows;
  });
}

Status PackageStore::clear_chunks(const std::string& package_id) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("DELETE FROM package_chunks WHERE package_id = ?");
    q->bind(1, package_id);
    q->exec();
    return {};
  });
}

}  // namespace dispatch::storage
