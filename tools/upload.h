// Package upload over the platform API (PROTOCOL §3 packages/upload): the file is sent in frames
// `{id, offset, length, last}` + '\n' + bytes, in order, each one answered before the next is sent.
//
// Resume: the service stores chunks by offset, so sending a chunk again is harmless. Before sending, the
// uploader asks packages/get: a package already `ready` with the same sha256 is left alone; otherwise the
// upload continues at the package's `received` byte count (0 when absent, beyond the file, or with
// restart). If the service then refuses the final check, re-running with restart re-sends everything.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tools/api.h"

namespace dispatch::tools {

struct UploadOptions {
  std::string package_id;
  std::string path;
  std::size_t chunk_size = 256 * 1024;
  bool restart = false;
};

struct UploadOutcome {
  std::uint64_t size = 0;
  std::string sha256;
  std::uint64_t resumed_at = 0;  // first offset sent
  std::uint64_t sent_bytes = 0;
  bool already_uploaded = false;
  nlohmann::json last_answer;  // the answer to the last frame (or packages/get when already uploaded)
};

// progress(done_bytes, total_bytes) is called after every acknowledged chunk.
// Errors: bad_request "cannot read <path>: …" (as a non-unreachable CallError, exit code 2 is the
// caller's choice), the service's error for any frame, or unreachable.
CallResult upload_package(ApiClient& api, const UploadOptions& options, UploadOutcome& outcome,
                          const std::function<void(std::uint64_t, std::uint64_t)>& progress);

// Size and sha256 of a file read in chunks. bad_request "cannot read <path>: <reason>".
core::Result<std::pair<std::uint64_t, std::string>> file_digest(const std::string& path);

}  // namespace dispatch::tools
