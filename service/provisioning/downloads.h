// Downloads: chunked package downloads over MQTT (PROTOCOL §2.4). Each request is answered with one
// frame on the device's data topic: the header and the bytes, or an error header. A download token
// serves its package once (DownloadTokens), re-requests within max_download_factor × the package size.
// Called only from the service loop thread.
#pragma once

#include <map>
#include <optional>
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

  // HTTP downloads (PROTOCOL §6, `download?token=`): the listener streams the published file itself.
  struct Stream {
    std::string path;       // the published file
    std::int64_t size = 0;  // the package size (the whole representation)
    std::uint64_t tag = 0;  // give it back to end_stream / abandon_stream
  };
  // Checks the token (the token's own device; token_invalid when unknown, spent, expired, its package
  // gone or not ready, exhausted, or already being streamed: of two concurrent uses exactly one streams)
  // and pre-checks the whole package against its bound (DownloadTokens::charge on the row's count; the
  // stream is counted when it ends). unavailable when the files are not local.
  core::Result<Stream> begin_stream(const std::string& token);
  // The listener wrote [first, first + bytes) of the stream `tag`: recorded as served and counted against
  // the bound in one transaction (DownloadTokens::record); the token is spent once every byte was served
  // once (a broken stream leaves it usable for a Range resume), or when these bytes passed the bound
  // (across instances, concurrent streams of one token may each pass begin_stream's pre-check: the
  // bound is then exceeded by at most one package per concurrent stream).
  void end_stream(std::uint64_t tag, std::int64_t first, std::int64_t bytes);
  // The tag of the stream of `token` in progress, if any.
  std::optional<std::uint64_t> stream_in_progress(const std::string& token) const;
  // The stream never started (the listener gave up before the answer): forget it.
  void abandon_stream(std::uint64_t tag) { streams_.erase(tag); }

  // Package bytes served: MQTT chunks answered, and HTTP bytes the listener reported written.
  std::uint64_t bytes_mqtt() const { return bytes_mqtt_; }
  std::uint64_t bytes_http() const { return bytes_http_; }

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
  std::uint64_t bytes_mqtt_ = 0;
  std::uint64_t bytes_http_ = 0;
  struct Streaming {
    storage::DownloadTokenRow token;
    std::int64_t total = 0;
  };
  std::map<std::uint64_t, Streaming> streams_;  // HTTP streams in progress, by tag
  std::uint64_t next_tag_ = 1;
};

}  // namespace dispatch::service::provisioning
