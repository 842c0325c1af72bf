// PackageBytesStore: the bytes of internal packages as rows of the database, so that every instance
// sharing a PostgreSQL database can read them (PROTOCOL §7; docs/storage.md says why rows and not large
// objects). One row per uploaded chunk: (package_id, kind, offset) → the bytes. kind is "part" while the
// upload runs and "bin" once published; publishing renames the rows in the transaction that marks the
// package ready, so bytes and state can never disagree.
//
// PostgreSQL keeps the bytes as BYTEA (sent and read as Base64 text: libpqxx passes text parameters);
// SQLite keeps the Base64 text itself (a one-node database keeps package bytes in files and uses this
// store only in tests, so that the store is tested on both backends like every other).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

class PackageBytesStore {
 public:
  explicit PackageBytesStore(Database& db) : db_(db) {}

  struct Extent {
    std::int64_t offset = 0;
    std::int64_t length = 0;
  };

  // Stores bytes at offset of (id, kind), replacing a chunk stored at the same offset.
  core::Status put(const std::string& id, std::string_view kind, std::int64_t offset, std::string_view bytes);
  // The chunks of (id, kind), by offset.
  core::Result<std::vector<Extent>> extents(const std::string& id, std::string_view kind);
  // Exactly `length` bytes at `offset` of (id, kind); unavailable "package bytes missing at <offset>" when
  // the chunks leave a gap there or end before offset + length.
  core::Result<std::string> read(const std::string& id, std::string_view kind, std::int64_t offset,
                                 std::int64_t length);
  // Moves every chunk of (id, from) to (id, to), replacing what `to` held; how many moved.
  core::Result<int> rename(const std::string& id, std::string_view from, std::string_view to);
  // Deletes the chunks of (id, kind); how many.
  core::Result<int> remove(const std::string& id, std::string_view kind);
  // Every (id, kind) that has chunks, by id.
  core::Result<std::vector<std::pair<std::string, std::string>>> list();

 private:
  Database& db_;
};

}  // namespace dispatch::storage
