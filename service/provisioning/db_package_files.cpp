#include "service/provisioning/db_package_files.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "protocol/core/secrets.h"
#include "protocol/ids.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

const char* kind_name(PackageFiles::Kind kind) { return kind == PackageFiles::Kind::part ? "part" : "bin"; }

// Chunks are read this many bytes at a time when hashing or caching (bounded memory for any size).
constexpr std::int64_t k_read_block = 4 * 1024 * 1024;

}  // namespace

DbPackageFiles::DbPackageFiles(storage::Database& db, std::string cache_dir)
    : chunks_(db), cache_dir_(std::move(cache_dir)) {}

Status DbPackageFiles::open() {
  std::error_code ec;
  std::filesystem::create_directories(cache_dir_, ec);
  if (ec) {
    spdlog::error("package cache {}: {}", cache_dir_, ec.message());
    return file_error("create directory", ec.value());
  }
  // Cache files of packages the database does not hold as published go: they may be stale.
  auto listed = chunks_.list();
  if (!listed) return listed.error();
  for (const auto& entry : std::filesystem::directory_iterator(cache_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= 4 || name.substr(name.size() - 4) != ".bin") continue;
    const std::string id = name.substr(0, name.size() - 4);
    if (!protocol::valid_object_id(id)) continue;  // not ours: never touched
    bool published = false;
    for (const auto& [pid, kind] : *listed) published = published || (pid == id && kind == "bin");
    if (!published) std::filesystem::remove(entry.path(), ec);
  }
  return {};
}

Status DbPackageFiles::write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) {
  return chunks_.put(id, "part", offset, bytes);
}

Status DbPackageFiles::publish(const std::string& id, std::int64_t size, const std::string& sha256) {
  // Not a transaction of its own: the discarding of a mismatched upload below must not be undone by the
  // error this returns (it still is, with everything else, if the caller's transaction rolls back).
  {
    auto extents = chunks_.extents(id, "part");
    if (!extents) return extents.error();
    // Contiguous from 0: the bytes present, up to the first gap.
    std::int64_t covered = 0;
    for (const auto& e : *extents) {
      if (e.offset > covered) break;
      covered = std::max(covered, e.offset + e.length);
    }
    core::Sha256 hasher;
    for (std::int64_t at = 0; at < std::min(covered, size);) {
      const std::int64_t n = std::min(k_read_block, std::min(covered, size) - at);
      auto bytes = chunks_.read(id, "part", at, n);
      if (!bytes) return bytes.error();
      hasher.update(*bytes);
      at += n;
    }
    const std::string digest = hasher.final_hex();
    if (covered != size || !core::constant_time_equal(digest, sha256)) {
      if (auto removed = chunks_.remove(id, "part"); !removed) return removed.error();
      return make_error(
          ErrorCode::bad_request,
          fmt::format("upload does not match the package: got {} bytes with sha256 {}, expected "
                      "{} bytes with sha256 {}; the upload was discarded",
                      covered, digest, size, sha256));
    }
    auto moved = chunks_.rename(id, "part", "bin");
    if (!moved) return moved.error();
    return {};
  }
}

Result<std::string> DbPackageFiles::read(const std::string& id, std::int64_t offset, std::int64_t length) {
  return chunks_.read(id, "bin", offset, length);
}

Status DbPackageFiles::unpublish(const std::string& id) {
  std::error_code ec;
  std::filesystem::remove(cache_path(id), ec);
  auto moved = chunks_.rename(id, "bin", "part");
  if (!moved) return moved.error();
  return {};
}

Status DbPackageFiles::remove(const std::string& id, Kind kind) {
  if (kind == Kind::bin) {
    std::error_code ec;
    std::filesystem::remove(cache_path(id), ec);
  }
  auto removed = chunks_.remove(id, kind_name(kind));
  if (!removed) return removed.error();
  return {};
}

Result<std::vector<PackageFiles::Entry>> DbPackageFiles::scan() {
  auto listed = chunks_.list();
  if (!listed) return listed.error();
  std::vector<Entry> out;
  for (const auto& [id, kind] : *listed) {
    if (!protocol::valid_object_id(id)) continue;
    out.push_back(Entry{id, kind == "bin" ? Kind::bin : Kind::part});
  }
  return out;
}

std::optional<std::string> DbPackageFiles::published_path(const std::string& id) const {
  const std::string path = cache_path(id);
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  auto extents = chunks_.extents(id, "bin");
  if (!extents || extents->empty()) return std::nullopt;
  const std::int64_t size = extents->back().offset + extents->back().length;
  // A unique temporary name: another process (an instance on the same host) may be writing it too.
  const std::string tmp = fmt::format("{}/{}.{}.cache", cache_dir_, id, core::random_token());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (std::int64_t at = 0; out && at < size;) {
      const std::int64_t n = std::min(k_read_block, size - at);
      auto bytes = chunks_.read(id, "bin", at, n);
      if (!bytes) {
        spdlog::warn("package {}: cannot read its bytes for the HTTP cache: {}", id, bytes.error().message);
        out.close();
        std::filesystem::remove(tmp, ec);
        return std::nullopt;
      }
      out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
      at += n;
    }
    out.flush();
    if (!out) {
      spdlog::error("package cache {}: write failed", tmp);
      std::filesystem::remove(tmp, ec);
      return std::nullopt;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    spdlog::error("package cache {}: {}", path, ec.message());
    std::filesystem::remove(tmp, ec);
    return std::nullopt;
  }
  return path;
}

}  // namespace dispatch::service::provisioning
