#include "service/migrate.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "protocol/core/secrets.h"
#include "service/daemon.h"
#include "service/file_lock.h"
#include "service/provisioning/disk_package_files.h"
#include "storage/copy.h"
#include "storage/database.h"
#include "storage/package_bytes.h"
#include "storage/packages.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

using Kind = provisioning::PackageFiles::Kind;

struct PackageCopy {
  int packages = 0;
  std::int64_t chunks = 0;
  std::int64_t bytes = 0;
};

// Exactly length bytes at offset of the file at path.
Result<std::string> read_range(const std::string& path, std::int64_t offset, std::int64_t length) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::unavailable, "cannot open " + path);
  in.seekg(offset);
  std::string bytes(static_cast<std::size_t>(length), '\0');
  in.read(bytes.data(), length);
  if (in.gcount() != length) {
    return make_error(ErrorCode::unavailable, fmt::format("{} ends before byte {}", path, offset + length));
  }
  return bytes;
}

// The bytes of internal packages, from files in data_dir (one node) to package_bytes rows (PostgreSQL,
// storage/package_bytes.h): a ready package's published file as "bin" rows of chunk_bytes each, checked
// against its size and SHA-256; an upload in progress as one "part" row per recorded chunk. A package
// whose bytes the source already keeps as rows was copied with the tables.
Result<PackageCopy> copy_package_files(storage::Database& source, storage::Database& target,
                                       const std::string& data_dir, std::int64_t chunk_bytes) {
  PackageCopy out;
  storage::PackageStore packages(source);
  storage::PackageBytesStore source_bytes(source);
  storage::PackageBytesStore target_bytes(target);
  provisioning::DiskPackageFiles files(data_dir);
  storage::PackageQuery query;
  query.limit = 100;
  for (;;) {
    auto page = packages.list(query);
    if (!page) return page.error();
    for (const auto& p : *page) {
      if (p.type != "internal") continue;
      const bool ready = p.state == "ready";
      const char* kind = ready ? "bin" : "part";
      auto as_rows = source_bytes.extents(p.id, kind);
      if (!as_rows) return as_rows.error();
      if (!as_rows->empty()) continue;
      const std::string path = files.path(p.id, ready ? Kind::bin : Kind::part);
      std::vector<storage::ChunkRow> extents;
      if (ready) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(path, ec);
        if (ec || static_cast<std::int64_t>(size) != p.size) {
          return make_error(
              ErrorCode::internal,
              fmt::format("package {}: its file {} {} (the package has {} bytes)", p.id, path,
                          ec ? "cannot be read: " + ec.message() : fmt::format("has {} bytes", size),
                          p.size));
        }
        for (std::int64_t at = 0; at < p.size; at += chunk_bytes) {
          extents.push_back({at, std::min(chunk_bytes, p.size - at)});
        }
      } else {
        auto recorded = packages.chunks(p.id);
        if (!recorded) return recorded.error();
        extents = *recorded;
        if (extents.empty()) continue;
      }
      core::Sha256 hasher;
      for (const auto& e : extents) {
        auto bytes = read_range(path, e.offset, e.length);
        if (!bytes) return make_error(ErrorCode::internal, "package " + p.id + ": " + bytes.error().message);
        if (ready) hasher.update(*bytes);
        if (auto st = target_bytes.put(p.id, kind, e.offset, *bytes); !st) return st.error();
        ++out.chunks;
        out.bytes += e.length;
      }
      if (ready) {
        const std::string digest = hasher.final_hex();
        if (digest != p.sha256) {
          return make_error(ErrorCode::internal, fmt::format("package {}: its file {} has SHA-256 {}, the "
                                                             "package says {}",
                                                             p.id, path, digest, p.sha256));
        }
      }
      ++out.packages;
    }
    if (static_cast<int>(page->size()) < query.limit) break;
    query.after = page->back().id;
  }
  return out;
}

struct Summary {
  std::vector<storage::TableCount> tables;
  PackageCopy packages;
};

}  // namespace

int run_migrate(const Config& config, const std::string& url) {
  if (!storage::is_postgres_url(url)) {
    std::fprintf(stderr, "dispatchd: --migrate-to needs a postgresql:// URI, got '%s'\n",
                 redacted_url(url).c_str());
    return 2;
  }
  if (!config.storage_url.empty()) {
    std::fprintf(stderr,
                 "dispatchd: --migrate-to copies the SQLite database storage.path, but storage.url is set "
                 "(%s): unset it for the copy\n",
                 redacted_url(config.storage_url).c_str());
    return 2;
  }
  const std::string& path = config.storage_path;
  const std::string shown_url = redacted_url(url);
  std::error_code ec;
  if (path == ":memory:" || !std::filesystem::is_regular_file(path, ec)) {
    std::fprintf(stderr, "dispatchd: cannot migrate: no SQLite database at %s (storage.path)\n",
                 path.c_str());
    return 1;
  }
  // Before the source connection: the lock must outlive it (service/file_lock.h).
  auto lock = FileLock::acquire(path);
  if (!lock) {
    std::fprintf(stderr, "dispatchd: cannot migrate: %s; stop it first\n", lock.error().message.c_str());
    return 1;
  }
  auto source = storage::Database::open(path);
  if (!source) {
    std::fprintf(stderr, "dispatchd: cannot open the SQLite database %s: %s\n", path.c_str(),
                 source.error().message.c_str());
    return 1;
  }
  auto target = storage::Database::open(url);
  if (!target) {
    std::fprintf(stderr, "dispatchd: cannot open the target %s: %s\n", shown_url.c_str(),
                 target.error().message.c_str());
    return 1;
  }
  const auto started = std::chrono::steady_clock::now();
  // The source's write lock for the whole copy (one snapshot, no writer meanwhile); the target's one
  // transaction commits everything or nothing.
  auto done = (*source)->transaction([&]() -> Result<Summary> {
    return (*target)->transaction([&]() -> Result<Summary> {
      Summary s;
      auto tables = storage::copy_tables(**source, **target);
      if (!tables) return tables.error();
      s.tables = std::move(*tables);
      auto packages = copy_package_files(**source, **target, config.storage_data_dir,
                                         config.provisioning_max_chunk_bytes);
      if (!packages) return packages.error();
      s.packages = *packages;
      return s;
    });
  });
  if (!done) {
    std::fprintf(stderr, "dispatchd: cannot migrate %s to %s: %s (nothing was committed)\n", path.c_str(),
                 shown_url.c_str(), done.error().message.c_str());
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string out =
      fmt::format("migrated {} (schema version {}) and the package files of {} to {} in {:.1f} s\n", path,
                  (*source)->schema_version(), config.storage_data_dir, shown_url, seconds);
  std::int64_t total = 0;
  for (const auto& t : done->tables) {
    out += fmt::format("  {:<24} {:>10} rows\n", t.table, t.rows);
    total += t.rows;
  }
  out += fmt::format("  {:<24} {:>10} rows in {} tables, each count checked in the target\n", "total", total,
                     done->tables.size());
  out += fmt::format("  package files: {} packages, {} bytes as {} package_bytes rows (SHA-256 checked)\n",
                     done->packages.packages, done->packages.bytes, done->packages.chunks);
  out += fmt::format("next: set storage.url = \"{}\" on every instance (docs/deployment.md)\n", shown_url);
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace dispatch::service
