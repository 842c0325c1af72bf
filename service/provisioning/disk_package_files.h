// DiskPackageFiles: PackageFiles in one directory (storage.data_dir): <id>.part while uploading,
// <id>.bin once published. POSIX calls only; every failure is logged with its path and answered with
// file_error() (no path on the wire).
#pragma once

#include <string>

#include "service/provisioning/package_files.h"

namespace dispatch::service::provisioning {

class DiskPackageFiles final : public PackageFiles {
 public:
  explicit DiskPackageFiles(std::string dir) : dir_(std::move(dir)) {}

  core::Status open() override;
  core::Status write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) override;
  core::Status publish(const std::string& id, std::int64_t size, const std::string& sha256) override;
  core::Result<std::string> read(const std::string& id, std::int64_t offset, std::int64_t length) override;
  core::Status unpublish(const std::string& id) override;
  core::Status remove(const std::string& id, Kind kind) override;
  core::Result<std::vector<Entry>> scan() override;

  std::string path(const std::string& id, Kind kind) const;

 private:
  std::string dir_;
};

}  // namespace dispatch::service::provisioning
