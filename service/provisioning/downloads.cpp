#include "service/provisioning/downloads.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/core/secrets.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/package_requests.h"
#include "service/failpoint.h"
#include "service/logging.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using Json = nlohmann::json;

Downloads::Downloads(const Config& config, core::Clock& clock, storage::Database& db, PackageFiles& files,
                     DownloadTokens& tokens, DeviceAnswers& answers, BatchEffects& effects)
    : config_(config),
      clock_(clock),
      files_(files),
      tokens_(tokens),
      answers_(answers),
      effects_(effects),
      packages_(db) {
  limits_.max_bytes = static_cast<std::size_t>(config.api_max_request_bytes);
  limits_.max_depth = config.api_max_depth;
}

Result<Downloads::Chunk> Downloads::serve(const std::string& hw, const Result<Json>& body, core::TimeMs now) {
  if (!body) return body.error();
  auto r = protocol::parse_download_request(*body, config_.provisioning_max_chunk_bytes);
  if (!r) return r.error();
  auto token = tokens_.check(r->download_token, hw, now);
  if (!token) return token.error();
  auto p = packages_.get(token->package_id);
  if (!p || p->state != "ready" || p->type != "internal") {
    if (!p && p.error().code != ErrorCode::not_found) return p.error();
    return make_error(ErrorCode::token_invalid, "download token is invalid, spent or expired");
  }
  const std::int64_t total = p->size;
  if (r->offset > total || (r->offset == total && total > 0)) {
    return make_error(ErrorCode::bad_request,
                      fmt::format("offset {} lies beyond the package size {}", r->offset, total));
  }
  const std::int64_t len = std::min(r->length, total - r->offset);
  if (auto st = tokens_.charge(*token, len, total); !st) return st.error();
  Chunk c;
  auto bytes = files_.read(p->id, r->offset, len);
  if (!bytes) return bytes.error();
  c.bytes = std::move(*bytes);
  // Recorded only once the bytes are in hand; the store decides atomically whether the token is spent.
  auto served = tokens_.record(*token, now, r->offset, len, total);
  if (!served) return served.error();
  if (served->spent_now) {
    DISPATCH_FAILPOINT("before_token_spend_commit");
    effects_.note("after_token_spend_commit");
    log_debug({{"hardware_id", hw}, {"package_id", p->id}}, "download token fully served");
  }
  bytes_mqtt_ += c.bytes.size();
  c.header = Json{{"offset", r->offset},
                  {"length", len},
                  {"total", total},
                  {"sha256", p->sha256},
                  {"last", r->offset + len == total}};
  return c;
}

void Downloads::on_download(const std::string& hw, const InboundMessage& m) {
  auto body = protocol::parse_json_object(m.payload, limits_);
  Result<Chunk> chunk = make_error(ErrorCode::internal, "internal error");
  try {
    chunk = serve(hw, body, clock_.now_ms());
  } catch (const std::exception& e) {
    log_limited(spdlog::level::err, "provisioning.download_threw", {{"hardware_id", hw}},
                "provisioning download failed unexpectedly: {}", e.what());
    chunk = make_error(ErrorCode::internal, "internal error");
  }
  const Correlation correlation = correlation_of(m, body ? &*body : nullptr);
  if (!chunk) {
    answers_.answer_frame(protocol::TopicKind::provisioning_data, hw, m, correlation, chunk.error());
    return;
  }
  answers_.answer_frame(protocol::TopicKind::provisioning_data, hw, m, correlation,
                        protocol::Frame{std::move(chunk->header), chunk->bytes});
}

Result<Downloads::Stream> Downloads::begin_stream(const std::string& token) {
  const core::TimeMs now = clock_.now_ms();
  auto row = tokens_.check(token, now);
  if (!row) return row.error();
  for (const auto& [tag, s] : streams_) {
    if (s.token.token_hash == row->token_hash) {
      return make_error(ErrorCode::token_invalid, "download token is invalid, spent or expired");
    }
  }
  auto p = packages_.get(row->package_id);
  if (!p || p->state != "ready" || p->type != "internal") {
    if (!p && p.error().code != ErrorCode::not_found) return p.error();
    return make_error(ErrorCode::token_invalid, "download token is invalid, spent or expired");
  }
  auto path = files_.published_path(p->id);
  if (!path) return make_error(ErrorCode::unavailable, "package files are not streamable");
  if (auto st = tokens_.charge(*row, p->size, p->size); !st) return st.error();
  const std::uint64_t tag = next_tag_++;
  streams_.emplace(tag, Streaming{*row, p->size});
  return Stream{std::move(*path), p->size, tag};
}

std::optional<std::uint64_t> Downloads::stream_in_progress(const std::string& token) const {
  if (streams_.empty() || token.empty()) return std::nullopt;
  const std::string hash = DownloadTokens::key_of(token);
  for (const auto& [tag, s] : streams_) {
    if (s.token.token_hash == hash) return tag;
  }
  return std::nullopt;
}

void Downloads::end_stream(std::uint64_t tag, std::int64_t first, std::int64_t bytes) {
  auto it = streams_.find(tag);
  if (it == streams_.end()) return;
  const Streaming s = std::move(it->second);
  streams_.erase(it);
  if (bytes <= 0 && s.total > 0) return;
  if (bytes > 0) bytes_http_ += static_cast<std::uint64_t>(bytes);
  // Charged when it ends: the bytes are already sent. record() is one transaction of its own and is
  // not wrapped in another that an error would roll back: an exhausted token's spend must commit (it
  // was logged there). Across instances, concurrent streams of one token each passed begin_stream's
  // pre-check, so together they may pass the bound by one package per concurrent stream.
  const core::TimeMs now = clock_.now_ms();
  auto served = tokens_.record(s.token, now, first, bytes, s.total);
  if (served && served->spent_now) {
    effects_.note("after_token_spend_commit");
    log_debug({{"hardware_id", s.token.hardware_id}, {"package_id", s.token.package_id}},
              "download token fully served over HTTP");
  }
  if (!served && served.error().code != ErrorCode::token_invalid) {
    log_limited(spdlog::level::warn, "download.http_not_recorded",
                {{"hardware_id", s.token.hardware_id}, {"package_id", s.token.package_id}},
                "HTTP download not recorded: {}", served.error().message);
  }
}

}  // namespace dispatch::service::provisioning
