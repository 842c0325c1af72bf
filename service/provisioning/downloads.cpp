#include "service/provisioning/downloads.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/package_requests.h"
#include "service/failpoint.h"

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
  if (auto st = tokens_.charge(*token, now, len, total); !st) return st.error();
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
    spdlog::info("download token of {} for package {} fully served", hw, p->id);
  }
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
    spdlog::error("provisioning download of {} failed unexpectedly: {}", hw, e.what());
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

}  // namespace dispatch::service::provisioning
