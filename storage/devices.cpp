#include "storage/devices.h"

#include <algorithm>

#include "storage/sql_util.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;
using detail::decode_map;
using detail::encode_map;
using detail::opt_int64;
using detail::opt_string;

namespace {

constexpr const char* k_columns =
    "hardware_id, public_key_pem, key_type, attributes, reported_version, properties, created_at, "
    "updated_at, last_seen";

DeviceRow read_row(Statement& q) {
  DeviceRow row;
  row.hardware_id = q.getColumn(0).getString();
  row.public_key_pem = q.getColumn(1).getString();
  row.key_type = q.getColumn(2).getString();
  row.attributes = decode_map(q.getColumn(3).getString());
  row.reported_version = opt_string(q.getColumn(4));
  row.properties = decode_map(q.getColumn(5).getString());
  row.created_at = q.getColumn(6).getInt64();
  row.updated_at = q.getColumn(7).getInt64();
  row.last_seen = opt_int64(q.getColumn(8));
  return row;
}

std::vector<std::string> tags_of(Statement& q, const std::string& hardware_id) {
  q.reset();
  q.bind(1, hardware_id);
  std::vector<std::string> tags;
  while (q.executeStep()) tags.push_back(q.getColumn(0).getString());
  return tags;
}

Status not_found(const std::string& hardware_id) {
  return make_error(ErrorCode::not_found, "device " + hardware_id + " is not registered");
}

}  // namespace

Result<bool> DeviceStore::upsert(const DeviceRow& row, TimeMs now) {
  return db_.transaction([&]() -> Result<bool> {
    auto update = db_.prepare(
        "UPDATE devices SET public_key_pem = ?, key_type = ?, attributes = ?, "
        "updated_at = ? WHERE hardware_id = ?");
    update->bind(1, row.public_key_pem);
    update->bind(2, row.key_type);
    update->bind(3, encode_map(row.attributes));
    update->bind(4, now);
    update->bind(5, row.hardware_id);
    const bool created = update->exec() == 0;
    if (created) {
      auto insert = db_.prepare(
          "INSERT INTO devices(hardware_id, public_key_pem, key_type, attributes, "
          "properties, created_at, updated_at) VALUES(?, ?, ?, ?, '', ?, ?)");
      insert->bind(1, row.hardware_id);
      insert->bind(2, row.public_key_pem);
      insert->bind(3, row.key_type);
      insert->bind(4, encode_map(row.attributes));
      insert->bind(5, now);
      insert->bind(6, now);
      insert->exec();
    }
    auto clear = db_.prepare("DELETE FROM device_tags WHERE hardware_id = ?");
    clear->bind(1, row.hardware_id);
    clear->exec();
    auto tag = db_.prepare("INSERT INTO device_tags(hardware_id, tag) VALUES(?, ?) ON CONFLICT DO NOTHING");
    for (const auto& t : row.tags) {
      tag->reset();
      tag->bind(1, row.hardware_id);
      tag->bind(2, t);
      tag->exec();
    }
    return created;
  });
}

Result<DeviceRow> DeviceStore::get(const std::string& hardware_id) {
  return db_.read([&]() -> Result<DeviceRow> {
    auto q = db_.prepare(std::string("SELECT ") + k_columns + " FROM devices WHERE hardware_id = ?");
    q->bind(1, hardware_id);
    if (!q->executeStep()) return not_found(hardware_id).error();
    DeviceRow row = read_row(*q);
    auto tags = db_.prepare("SELECT tag FROM device_tags WHERE hardware_id = ? ORDER BY tag");
    row.tags = tags_of(*tags, hardware_id);
    return row;
  });
}

Result<std::vector<DeviceRow>> DeviceStore::list(const DeviceQuery& query) {
  return db_.read([&]() -> Result<std::vector<DeviceRow>> {
    std::string sql = std::string("SELECT ") + k_columns + " FROM devices WHERE hardware_id > ?";
    if (query.tag) {
      sql += " AND hardware_id IN (SELECT hardware_id FROM device_tags WHERE tag = ?)";
    }
    sql += " ORDER BY hardware_id LIMIT ?";
    auto q = db_.prepare(sql);
    int i = 1;
    q->bind(i++, query.after.value_or(""));
    if (query.tag) q->bind(i++, *query.tag);
    q->bind(i++, std::max(query.limit, 0));
    auto tags = db_.prepare("SELECT tag FROM device_tags WHERE hardware_id = ? ORDER BY tag");
    std::vector<DeviceRow> rows;
    while (q->executeStep()) {
      rows.push_back(read_row(*q));
      rows.back().tags = tags_of(*tags, rows.back().hardware_id);
    }
    return rows;
  });
}

Status DeviceStore::remove(const std::string& hardware_id) {
  return db_.transaction([&]() -> Status {
    auto del = db_.prepare("DELETE FROM devices WHERE hardware_id = ?");
    del->bind(1, hardware_id);
    if (del->exec() == 0) return not_found(hardware_id);
    return {};
  });
}

Result<std::vector<std::string>> DeviceStore::hardware_ids_with_tags(const std::vector<std::string>& tags) {
  return db_.read([&]() -> Result<std::vector<std::string>> {
    std::vector<std::string> ids;
    auto q = db_.prepare("SELECT hardware_id FROM device_tags WHERE tag = ?");
    for (const auto& tag : tags) {
      q->reset();
      q->bind(1, tag);
      while (q->executeStep()) ids.push_back(q->getColumn(0).getString());
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
  });
}

Result<std::vector<std::string>> DeviceStore::existing(const std::vector<std::string>& ids) {
  return db_.read([&]() -> Result<std::vector<std::string>> {
    std::vector<std::string> found;
    auto q = db_.prepare("SELECT 1 FROM devices WHERE hardware_id = ?");
    for (const auto& id : ids) {
      q->reset();
      q->bind(1, id);
      if (q->executeStep()) found.push_back(id);
    }
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());
    return found;
  });
}

Result<int> DeviceStore::touch_last_seen(const std::vector<std::string>& hardware_ids, TimeMs t) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare(
        "UPDATE devices SET last_seen = ? WHERE hardware_id = ? "
        "AND (last_seen IS NULL OR last_seen < ?)");
    int updated = 0;
    for (const auto& id : hardware_ids) {
      q->reset();
      q->bind(1, t);
      q->bind(2, id);
      q->bind(3, t);
      updated += q->exec();
    }
    return updated;
  });
}

Result<int> DeviceStore::touch_last_seen(const std::string& hardware_id, TimeMs t) {
  return touch_last_seen(std::vector<std::string>{hardware_id}, t);
}

Status DeviceStore::set_reported_version(const std::string& hardware_id, const std::string& version,
                                         TimeMs now) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("UPDATE devices SET reported_version = ?, updated_at = ? WHERE hardware_id = ?");
    q->bind(1, version);
    q->bind(2, now);
    q->bind(3, hardware_id);
    if (q->exec() == 0) return not_found(hardware_id);
    return {};
  });
}

Result<int> DeviceStore::set_properties(const std::string& hardware_id,
                                        const std::map<std::string, std::string>& values, TimeMs now,
                                        std::size_t max_count, std::size_t max_bytes) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("SELECT properties FROM devices WHERE hardware_id = ?");
    q->bind(1, hardware_id);
    if (!q->executeStep()) return not_found(hardware_id).error();
    auto merged = decode_map(q->getColumn(0).getString());
    std::size_t bytes = 0;
    for (const auto& [k, v] : merged) bytes += k.size() + v.size();
    int dropped = 0;
    for (const auto& [k, v] : values) {
      auto it = merged.find(k);
      // Bytes after this value; an existing key frees its old value first.
      const std::size_t after = bytes + v.size() + (it == merged.end() ? k.size() : 0) -
                                (it == merged.end() ? 0 : it->second.size());
      if ((it == merged.end() && merged.size() >= max_count) || after > max_bytes) {
        ++dropped;
        continue;
      }
      bytes = after;
      merged[k] = v;
    }
    auto u = db_.prepare("UPDATE devices SET properties = ?, updated_at = ? WHERE hardware_id = ?");
    u->bind(1, encode_map(merged));
    u->bind(2, now);
    u->bind(3, hardware_id);
    u->exec();
    return dropped;
  });
}

}  // namespace dispatch::storage
