#include "tools/upload.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "protocol/core/secrets.h"
#include "protocol/frame.h"

namespace dispatch::tools {

using core::ErrorCode;
using core::make_error;

core::Result<std::pair<std::uint64_t, std::string>> file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(ErrorCode::bad_request, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  core::Sha256 hasher;
  std::vector<char> buf(1 << 20);
  std::uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = in.gcount();
    if (n <= 0) break;
    hasher.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    size += static_cast<std::uint64_t>(n);
  }
  if (in.bad()) return make_error(ErrorCode::bad_request, fmt::format("cannot read {}: read error", path));
  return std::make_pair(size, hasher.final_hex());
}

namespace {

std::uint64_t received_of(const nlohmann::json& pkg) {
  if (pkg.contains("received") && pkg["received"].is_number_unsigned())
    return pkg["received"].get<std::uint64_t>();
  if (pkg.contains("received") && pkg["received"].is_number_integer() &&
      pkg["received"].get<std::int64_t>() > 0) {
    return static_cast<std::uint64_t>(pkg["received"].get<std::int64_t>());
  }
  return 0;
}

}  // namespace

CallResult upload_package(ApiClient& api, const UploadOptions& options, UploadOutcome& outcome,
                          const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  auto digest = file_digest(options.path);
  if (!digest) return CallError{digest.error(), false};
  outcome.size = digest->first;
  outcome.sha256 = digest->second;

  auto pkg = api.call("packages", "get", {{"id", options.package_id}});
  if (!pkg) return pkg;
  std::string state = pkg->value("state", std::string());
  std::string remote_sha = pkg->contains("sha256") && (*pkg)["sha256"].is_string()
                               ? (*pkg)["sha256"].get<std::string>()
                               : std::string();
  if (!options.restart && state == "ready" && remote_sha == outcome.sha256) {
    outcome.already_uploaded = true;
    outcome.last_answer = *pkg;
    return *pkg;
  }
  std::uint64_t offset = options.restart ? 0 : received_of(*pkg);
  // A byte count at or beyond the file's end cannot be trusted to describe this file: send it all again.
  if (offset >= outcome.size) offset = 0;
  outcome.resumed_at = offset;

  std::ifstream in(options.path, std::ios::binary);
  if (!in) {
    return CallError{make_error(ErrorCode::bad_request,
                                fmt::format("cannot read {}: {}", options.path, std::strerror(errno))),
                     false};
  }
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<char> buf(std::max<std::size_t>(options.chunk_size, 1));
  CallResult last = nlohmann::json::object();
  do {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), outcome.size - offset));
    in.read(buf.data(), static_cast<std::streamsize>(want));
    if (static_cast<std::size_t>(in.gcount()) != want) {
      return CallError{
          make_error(ErrorCode::bad_request, fmt::format("cannot read {}: the file changed while "
                                                         "uploading",
                                                         options.path)),
          false};
    }
    bool is_last = offset + want >= outcome.size;
    nlohmann::json header{
        {"id", options.package_id}, {"offset", offset}, {"length", want}, {"last", is_last}};
    if (is_last) {
      // Not part of the frame contract; a service that checks the upload against them may use them.
      header["size"] = outcome.size;
      header["sha256"] = outcome.sha256;
    }
    last = api.call_raw("packages", "upload",
                        protocol::encode_frame(header, std::string_view(buf.data(), want)));
    if (!last) return last;
    offset += want;
    outcome.sent_bytes += want;
    if (progress) progress(offset, outcome.size);
  } while (offset < outcome.size);
  outcome.last_answer = *last;
  return last;
}

}  // namespace dispatch::tools
