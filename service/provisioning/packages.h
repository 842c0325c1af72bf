// Packages: the packages resource of the platform API (PROTOCOL §3: packages/create|get|list|update|
// delete and packages/upload) and the start-up check of the package files. Package rows live in the
// database; the bytes of internal packages in PackageFiles. Called only from the service loop thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/idempotency.h"
#include "service/provisioning/download_tokens.h"
#include "service/provisioning/package_files.h"
#include "storage/database.h"
#include "storage/packages.h"

namespace dispatch::service::provisioning {

class Packages {
 public:
  // An upload that makes a package ready notes after_package_ready_commit in effects.
  Packages(const Config& config, core::Clock& clock, storage::Database& db, PackageFiles& files,
           DownloadTokens& tokens, BatchEffects& effects);

  // Opens the files and reconciles them with the database. Only files the database knows are touched:
  // a published file of a package that is not ready goes back to being an upload (it is verified
  // again by the next frame); an upload file of a ready or external package is removed. Files of
  // unknown ids are logged and left alone (they may not be ours).
  core::Status start();

  // packages/create|get|list|update|delete: the answer document or the error to send.
  // Unknown action: not_found "unknown API action packages/<action>".
  core::Result<nlohmann::json> api(const std::string& action, const nlohmann::json& body);

  // packages/upload: one frame. Errors, besides the header's (protocol::parse_upload_header):
  //   too_large   chunk over provisioning.max_chunk_bytes
  //   not_found   no such package;   conflict  an external package
  //   bad_request "chunk [a, b) lies beyond the package size n" (never overflows, whatever the offset)
  //   bad_request "upload incomplete: …" on last with bytes missing; a size/digest mismatch (discarded)
  //   unavailable the files failed (PackageFiles; the chunk is then not recorded)
  // A frame for a ready package answers {id, received: size, state: ready} again.
  core::Result<nlohmann::json> upload(const nlohmann::json& header, std::string_view data);

 private:
  core::Result<nlohmann::json> create(const nlohmann::json& body);
  core::Result<nlohmann::json> get(const nlohmann::json& body);
  core::Result<nlohmann::json> list(const nlohmann::json& body);
  core::Result<nlohmann::json> update(const nlohmann::json& body);
  core::Result<nlohmann::json> remove(const nlohmann::json& body);
  core::Result<nlohmann::json> to_json(const storage::PackageRow& p);
  core::Status finish_upload(const storage::PackageRow& p);

  const Config& config_;
  core::Clock& clock_;
  storage::Database& db_;
  PackageFiles& files_;
  DownloadTokens& tokens_;
  storage::PackageStore packages_;
  IdempotentRequests idempotency_;
  BatchEffects& effects_;
};

}  // namespace dispatch::service::provisioning
