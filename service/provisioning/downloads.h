// Downloads: chunked package downloads over MQTT (PROTOCOL §2.4). Each request is answered with one
// frame on the device's data topic: the header and the bytes, or an error header. A download token
// serves its package once (DownloadTokens), re-requests within max_download_factor × the package size.
// Called only from the service loop thread.
#pragma once

#include <string>
#include <utility>

#include "protocol/core/clock.h"
#include "protocol/json_request.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/event_queue.h"
#include "service/provisioning/download_tokens.h"
#include "service/provisioning/package_files.h"
#include "service/router.h"
#include "storage/database.h"
#include "storage/packages.h"

namespace dispatch::service::provisioning {

class Downloads {
 public:
  Downloads(const Config& config, core::Clock& clock, storage::Database& db, PackageFiles& files,
            DownloadTokens& tokens, DeviceAnswers& answers, BatchEffects& effects);

  // A request on esthesis/provisioning/download/{hw}: exactly one frame back. Errors (in the header):
  // the request's (protocol::parse_download_request), token_invalid (unknown, spent, expired, another
  // device's, its package gone or not ready, or the token exhausted its bound), bad_request "offset <o>
  // lies beyond the package size <n>", unavailable (files or storage). A request that spends its token
  // notes after_token_spend_commit in effects.
  void on_download(const std::string& hw, const InboundMessage& m);

 private:
  struct Chunk {
    nlohmann::json header;
    std::string bytes;
  };
  core::Result<Chunk> serve(const std::string& hw, const core::Result<nlohmann::json>& body,
                            core::TimeMs now);

  const Config& config_;
  core::Clock& clock_;
  PackageFiles& files_;
  DownloadTokens& tokens_;
  DeviceAnswers& answers_;
  BatchEffects& effects_;
  storage::PackageStore packages_;
  protocol::JsonLimits limits_;
};

}  // namespace dispatch::service::provisioning
