// FakePackageFiles: PackageFiles in memory, with switches that make the next write, fsync or rename
// fail the way the disk does (errors built by the same file_error() the disk implementation uses).
#pragma once

#include <cerrno>
#include <map>
#include <optional>
#include <string>

#include "protocol/core/secrets.h"
#include "service/provisioning/package_files.h"

namespace dispatch::testing {

class FakePackageFiles final : public service::provisioning::PackageFiles {
 public:
  // Failures to inject: an errno for the next write_chunk (e.g. ENOSPC), publish's fsync, or its rename.
  std::optional<int> fail_write;
  std::optional<int> fail_fsync;
  std::optional<int> fail_rename;
  std::map<std::string, std::string> parts;  // id → upload bytes
  std::map<std::string, std::string> bins;   // id → published bytes
  int writes = 0;
  // When set, published_path names <published_dir>/<id>.bin for a published id (no file is written: the
  // tests that use it stop before an HTTP listener would read it).
  std::optional<std::string> published_dir;

  core::Status open() override { return {}; }

  core::Status write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) override {
    ++writes;
    if (auto e = std::exchange(fail_write, std::nullopt))
      return service::provisioning::file_error("write", *e);
    auto& f = parts[id];
    const auto end = static_cast<std::size_t>(offset) + bytes.size();
    if (f.size() < end) f.resize(end, '\0');
    f.replace(static_cast<std::size_t>(offset), bytes.size(), bytes);
    return {};
  }

  core::Status publish(const std::string& id, std::int64_t size, const std::string& sha256) override {
    auto it = parts.find(id);
    const std::string bytes = it == parts.end() ? std::string() : it->second;
    if (static_cast<std::int64_t>(bytes.size()) != size || core::sha256_hex(bytes) != sha256) {
      parts.erase(id);
      return core::make_error(core::ErrorCode::bad_request, "upload does not match the package (fake)");
    }
    if (auto e = std::exchange(fail_fsync, std::nullopt))
      return service::provisioning::file_error("fsync", *e);
    if (auto e = std::exchange(fail_rename, std::nullopt))
      return service::provisioning::file_error("rename", *e);
    bins[id] = bytes;
    parts.erase(id);
    return {};
  }

  core::Result<std::string> read(const std::string& id, std::int64_t offset, std::int64_t length) override {
    auto it = bins.find(id);
    if (it == bins.end() || static_cast<std::int64_t>(it->second.size()) < offset + length) {
      return service::provisioning::file_error("read", EIO);
    }
    return it->second.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }

  core::Status unpublish(const std::string& id) override {
    if (auto it = bins.find(id); it != bins.end()) {
      parts[id] = it->second;
      bins.erase(it);
    }
    return {};
  }

  core::Status remove(const std::string& id, Kind kind) override {
    (kind == Kind::part ? parts : bins).erase(id);
    return {};
  }

  std::optional<std::string> published_path(const std::string& id) const override {
    if (!published_dir || bins.count(id) == 0) return std::nullopt;
    return *published_dir + "/" + id + ".bin";
  }

  core::Result<std::vector<Entry>> scan() override {
    std::vector<Entry> out;
    for (const auto& [id, _] : parts) out.push_back(Entry{id, Kind::part});
    for (const auto& [id, _] : bins) out.push_back(Entry{id, Kind::bin});
    return out;
  }
};

}  // namespace dispatch::testing
