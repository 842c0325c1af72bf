// PackageStore: provisioning packages, their tags, and the bookkeeping of chunked uploads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct PackageRow {
  std::string id;
  std::string name;
  std::string version;  // as given by the caller (normalized by the caller); storage does not parse it
  std::optional<std::string> prerequisite_version;
  std::string type = "internal";  // "internal" or "external"
  std::string url;
  std::string sha256;
  std::int64_t size = 0;
  std::vector<std::string> tags;  // sorted, without duplicates when read back
  bool available = false;
  bool prerelease_ok = false;
  std::map<std::string, std::string> attributes;
  std::string state = "pending_upload";  // "pending_upload" (internal, not uploaded yet) or "ready"
  std::string file_path;
  core::TimeMs created_at = 0;
  core::TimeMs updated_at = 0;
};

struct PackageQuery {
  std::optional<std::string> name;
  std::optional<std::string> tag;
  std::optional<bool> available;
  int limit = 100;
  std::optional<std::string> after;  // cursor: only ids strictly greater
};

struct ChunkRow {
  std::int64_t offset = 0;
  std::int64_t length = 0;
  bool operator==(const ChunkRow&) const = default;
};

class PackageStore {
 public:
  explicit PackageStore(Database& db) : db_(db) {}

  // conflict when the id exists; internal when type or state is not one of the allowed values.
  core::Status insert(const PackageRow& row);
  // not_found when no such package.
  core::Result<PackageRow> get(const std::string& id);
  // Packages matching every given filter, ordered by id.
  core::Result<std::vector<PackageRow>> list(const PackageQuery& query);
  // Changes availability and/or replaces the tags; updated_at = now. not_found when no such package.
  core::Status update(const std::string& id, std::optional<bool> available,
                      const std::optional<std::vector<std::string>>& tags, core::TimeMs now);
  // Deletes the package, its tags and chunk records; not_found when no such package.
  core::Status remove(const std::string& id);
  // Marks an uploaded package ready with its file, size and digest, and forgets its chunk records.
  // not_found when no such package.
  core::Status set_ready(const std::string& id, const std::string& file_path, std::int64_t size,
                         const std::string& sha256, core::TimeMs now);
  // Records that [offset, offset + length) was received; recording the same offset again replaces
  // the length (idempotent for a re-sent chunk). not_found when no such package.
  core::Status record_chunk(const std::string& package_id, std::int64_t offset, std::int64_t length);
  // Recorded chunks ordered by offset.
  core::Result<std::vector<ChunkRow>> chunks(const std::string& package_id);
  core::Status clear_chunks(const std::string& package_id);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
