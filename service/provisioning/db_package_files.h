// DbPackageFiles: PackageFiles in the database (storage::PackageBytesStore), for instances sharing a
// PostgreSQL database: every instance reads the bytes any instance received (PROTOCOL §7). The calls
// run in the caller's transaction (a savepoint inside the handler's), so a chunk and its record, or a
// publication and the package's `ready`, commit together.
//
// HTTP downloads stream a local file from a listener thread that never touches the database, so
// published_path() writes the published bytes once into `<cache_dir>/<id>.bin` (a cache: written to a
// temporary name, then renamed; a package's bytes never change once published) and returns that path.
// Cache files of packages the database no longer has are removed at start (scan() reports only rows).
#pragma once

#include <string>

#include "service/provisioning/package_files.h"
#include "storage/package_bytes.h"

namespace dispatch::service::provisioning {

class DbPackageFiles final : public PackageFiles {
 public:
  DbPackageFiles(storage::Database& db, std::string cache_dir);

  core::Status open() override;
  core::Status write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) override;
  // Checks the upload's chunks cover [0, size) without a gap (a gap or a size mismatch discards the
  // upload like a digest mismatch) and hash to sha256, then renames them to published.
  core::Status publish(const std::string& id, std::int64_t size, const std::string& sha256) override;
  core::Result<std::string> read(const std::string& id, std::int64_t offset, std::int64_t length) override;
  core::Status unpublish(const std::string& id) override;
  core::Status remove(const std::string& id, Kind kind) override;
  core::Result<std::vector<Entry>> scan() override;
  // The cache file of id's published bytes (written on first use); nullopt when they cannot be read or
  // written (the listener then answers 503).
  std::optional<std::string> published_path(const std::string& id) const override;

 private:
  std::string cache_path(const std::string& id) const { return cache_dir_ + "/" + id + ".bin"; }

  mutable storage::PackageBytesStore chunks_;
  std::string cache_dir_;
};

}  // namespace dispatch::service::provisioning
