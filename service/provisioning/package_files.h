// PackageFiles: where the bytes of internal packages live (like LevelDB's Env, the file system behind an
// interface so tests can make it fail). A package `id` (an object id minted by the service) has at most
// one upload file ("part", being written) and one published file ("bin", verified, what downloads
// read). Called only from the service loop thread.
//
// Errors: every I/O failure is `unavailable` (PROTOCOL §5: storage trouble, retry) with a message made by
// file_error(), which never names a path (the implementation logs the path). A published file whose size
// or digest does not match is `bad_request` (see publish()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::service::provisioning {

// The one wording of file errors on the wire: "package storage is full" for ENOSPC/EDQUOT, otherwise
// "package storage failed: <operation>: <strerror>".
core::Error file_error(std::string_view operation, int err);

class PackageFiles {
 public:
  enum class Kind { part, bin };
  struct Entry {
    std::string id;  // a valid object id (other names are never listed)
    Kind kind = Kind::part;
  };

  virtual ~PackageFiles() = default;

  // Creates the directory when missing.
  virtual core::Status open() = 0;
  // Writes `bytes` at `offset` of id's upload file (created when missing) and makes them durable
  // (fsync) before returning ok: a chunk recorded after this returns is never lost by a crash.
  virtual core::Status write_chunk(const std::string& id, std::int64_t offset, std::string_view bytes) = 0;
  // Checks that id's upload file (an empty one when missing and size == 0) holds exactly `size` bytes
  // whose SHA-256 is `sha256`, then renames it atomically into the published file and makes the rename
  // durable. On a mismatch the upload file is removed and the error is bad_request
  // "upload does not match the package: got <n> bytes with sha256 <h>, expected …; the upload was
  // discarded". I/O failures (read, fsync, rename) leave the upload file in place.
  virtual core::Status publish(const std::string& id, std::int64_t size, const std::string& sha256) = 0;
  // Exactly `length` bytes at `offset` of id's published file; unavailable when the file is shorter.
  virtual core::Result<std::string> read(const std::string& id, std::int64_t offset, std::int64_t length) = 0;
  // Moves id's published file back to its upload file (a start-up repair: published but never recorded
  // as ready). Ok when there is no published file.
  virtual core::Status unpublish(const std::string& id) = 0;
  // Removes id's upload and published files; missing files are fine.
  virtual core::Status remove(const std::string& id, Kind kind) = 0;
  core::Status remove_all(const std::string& id) {
    auto a = remove(id, Kind::part);
    auto b = remove(id, Kind::bin);
    return a ? b : a;
  }
  // Every upload and published file whose name is <object id>.part or <object id>.bin; anything else in
  // the directory is not ours and is never listed (so never touched).
  virtual core::Result<std::vector<Entry>> scan() = 0;
};

}  // namespace dispatch::service::provisioning
