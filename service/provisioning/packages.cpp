#include "service/provisioning/packages.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "protocol/core/secrets.h"
#include "protocol/core/time.h"
#include "protocol/errors.h"
#include "protocol/ids.h"
#include "protocol/package_requests.h"
#include "service/logging.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using Json = nlohmann::json;

namespace {

constexpr int k_list_page = 1000;

// Distinct bytes covered by the chunk records (they may overlap when a sender changes chunk sizes).
std::int64_t covered_bytes(std::vector<storage::ChunkRow> chunks) {
  std::sort(chunks.begin(), chunks.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
  std::int64_t total = 0, end = 0;
  for (const auto& c : chunks) {
    const std::int64_t s = std::max(c.offset, end), e = c.offset + c.length;
    if (e > s) {
      total += e - s;
      end = e;
    }
  }
  return total;
}

}  // namespace

Packages::Packages(const Config& config, core::Clock& clock, storage::Database& db, PackageFiles& files,
                   DownloadTokens& tokens, BatchEffects& effects)
    : config_(config),
      clock_(clock),
      db_(db),
      files_(files),
      tokens_(tokens),
      packages_(db),
      idempotency_(db),
      effects_(effects) {}

Status Packages::start() {
  if (auto st = files_.open(); !st) return st;
  auto entries = files_.scan();
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    const char* ext = e.kind == PackageFiles::Kind::part ? ".part" : ".bin";
    auto p = packages_.get(e.id);
    if (!p) {
      if (p.error().code != ErrorCode::not_found) return p.error();
      // Not known to the database: perhaps a package deleted during a crash, perhaps someone else's file.
      log_warn({{"package_id", e.id}}, "package file {}{} belongs to no known package; left in place", e.id,
               ext);
      continue;
    }
    const bool ready = p->state == "ready";
    Status st;
    if (p->type != "internal" || (ready && e.kind == PackageFiles::Kind::part)) {
      log_info({{"package_id", e.id}}, "removing stale package file {}{}", e.id, ext);
      st = files_.remove(e.id, e.kind);
    } else if (!ready && e.kind == PackageFiles::Kind::bin) {
      // Published but never recorded as ready (a crash between the rename and set_ready): the next
      // frame verifies it again.
      st = files_.unpublish(e.id);
    }
    if (!st)
      log_warn({{"package_id", e.id}}, "package file {}{} could not be repaired: {}", e.id, ext,
               st.error().message);
  }
  return {};
}

Result<Json> Packages::api(const std::string& action, const Json& body) {
  if (action == "create") return create(body);
  if (action == "get") return get(body);
  if (action == "list") return list(body);
  if (action == "update") return update(body);
  if (action == "delete") return remove(body);
  return make_error(ErrorCode::not_found,
                    fmt::format("unknown API action packages/{}", protocol::printable(action)));
}

Result<Json> Packages::to_json(const storage::PackageRow& p) {
  Json j{{"id", p.id},
         {"name", p.name},
         {"version", p.version},
         {"prerequisite_version", p.prerequisite_version ? Json(*p.prerequisite_version) : Json(nullptr)},
         {"type", p.type},
         {"size", p.size},
         {"sha256", p.sha256},
         {"tags", p.tags},
         {"available", p.available},
         {"prerelease_ok", p.prerelease_ok},
         {"attributes", p.attributes},
         {"state", p.state},
         {"created_at", core::format_rfc3339(p.created_at)},
         {"updated_at", core::format_rfc3339(p.updated_at)}};
  if (p.type == "external") j["url"] = p.url;
  if (p.state == "ready") {
    j["received"] = p.size;
  } else {
    auto chunks = packages_.chunks(p.id);
    if (!chunks) return chunks.error();
    j["received"] = covered_bytes(*chunks);
  }
  return j;
}

Result<Json> Packages::create(const Json& body) {
  auto c = protocol::parse_package_create(body);
  if (!c) return c.error();
  const bool internal = c->type == protocol::PackageType::internal;
  if (internal && *c->size > config_.provisioning_max_package_bytes) {
    return make_error(ErrorCode::too_large, fmt::format("package of {} bytes exceeds the limit of {} bytes",
                                                        *c->size, config_.provisioning_max_package_bytes));
  }

  auto seen = idempotency_.replay("packages/create", c->request_id, body);
  if (!seen) return seen.error();
  if (*seen) return std::move(**seen);

  const core::TimeMs now = clock_.now_ms();
  storage::PackageRow row;
  row.id = core::new_id(now);
  row.name = c->name;
  row.version = c->version;
  row.prerequisite_version = c->prerequisite_version;
  row.type = std::string(protocol::to_string(c->type));
  row.url = c->url.value_or("");
  row.sha256 = c->sha256.value_or("");
  row.size = c->size.value_or(0);
  row.tags = c->tags;
  row.available = c->available;
  row.prerelease_ok = c->prerelease_ok;
  row.attributes = c->attributes;
  row.state = internal ? "pending_upload" : "ready";
  row.created_at = row.updated_at = now;
  Json answer{{"id", row.id}};
  auto st = db_.transaction([&]() -> Status {
    if (auto s = packages_.insert(row); !s) return s;
    return idempotency_.record("packages/create", c->request_id, body, answer, now);
  });
  if (!st) return st.error();
  log_info({{"package_id", row.id}}, "package created: {} {} ({})", row.name, row.version, row.type);
  return answer;
}

Result<Json> Packages::get(const Json& body) {
  auto id = protocol::parse_package_id(body);
  if (!id) return id.error();
  auto p = packages_.get(*id);
  if (!p) return p.error();
  return to_json(*p);
}

Result<Json> Packages::list(const Json& body) {
  auto r = protocol::parse_package_list(body, k_list_page);
  if (!r) return r.error();
  storage::PackageQuery q;
  q.name = r->name;
  q.tag = r->tag;
  q.available = r->available;
  q.limit = r->limit;
  q.after = r->after;
  auto rows = packages_.list(q);
  if (!rows) return rows.error();
  Json list = Json::array();
  for (const auto& p : *rows) {
    auto j = to_json(p);
    if (!j) return j.error();
    list.push_back(std::move(*j));
  }
  Json out{{"packages", std::move(list)}};
  if (static_cast<int>(rows->size()) == q.limit && !rows->empty()) out["next_after"] = rows->back().id;
  return out;
}

Result<Json> Packages::update(const Json& body) {
  auto u = protocol::parse_package_update(body);
  if (!u) return u.error();
  if (auto st = packages_.update(u->id, u->available, u->tags, clock_.now_ms()); !st) return st.error();
  return get(body);
}

Result<Json> Packages::remove(const Json& body) {
  auto id = protocol::parse_package_id(body);
  if (!id) return id.error();
  int tokens_removed = 0;
  auto st = db_.transaction([&]() -> Status {
    auto n = tokens_.remove_for_package(*id);
    if (!n) return n.error();
    tokens_removed = *n;
    return packages_.remove(*id);
  });
  if (!st) return st.error();
  // The row is gone first: a crash now leaves a file no package names, which start() reports.
  if (auto removed = files_.remove_all(*id); !removed) {
    log_warn({{"package_id", *id}}, "files of a deleted package not removed: {}", removed.error().message);
  }
  log_info({{"package_id", *id}}, "package deleted ({} unspent download tokens removed)", tokens_removed);
  return Json{{"id", *id}, {"deleted", true}};
}

Result<Json> Packages::upload(const Json& header, std::string_view data) {
  auto h = protocol::parse_upload_header(header);
  if (!h) return h.error();
  if (static_cast<std::int64_t>(data.size()) > config_.provisioning_max_chunk_bytes) {
    return make_error(ErrorCode::too_large,
                      fmt::format("upload chunk of {} bytes exceeds the limit of {} bytes", data.size(),
                                  config_.provisioning_max_chunk_bytes));
  }
  auto p = packages_.get(h->id);
  if (!p) return p.error();
  if (p->type != "internal") return make_error(ErrorCode::conflict, "an external package takes no upload");
  if (p->state == "ready") {
    // A re-sent frame after the package was verified (e.g. the answer was lost): nothing to do.
    return Json{{"id", p->id}, {"received", p->size}, {"state", "ready"}};
  }
  const auto length = static_cast<std::int64_t>(data.size());
  // offset ≥ 0 and 0 ≤ length, size: compared without adding, so no offset can overflow the check.
  if (h->offset > p->size || length > p->size - h->offset) {
    const bool end_fits = h->offset <= std::numeric_limits<std::int64_t>::max() - length;
    return make_error(
        ErrorCode::bad_request,
        end_fits ? fmt::format("chunk [{}, {}) lies beyond the package size {}", h->offset,
                               h->offset + length, p->size)
                 : fmt::format("chunk at offset {} lies beyond the package size {}", h->offset, p->size));
  }
  if (length > 0) {
    // Durable before it is recorded: a recorded chunk is never lost by a crash.
    if (auto st = files_.write_chunk(p->id, h->offset, data); !st) return st.error();
    if (auto st = packages_.record_chunk(p->id, h->offset, length); !st) return st.error();
  }
  auto chunks = packages_.chunks(p->id);
  if (!chunks) return chunks.error();
  const std::int64_t received = covered_bytes(*chunks);
  if (received < p->size) {
    if (h->last) {
      return make_error(ErrorCode::bad_request,
                        fmt::format("upload incomplete: {} of {} bytes received; send the missing chunks",
                                    received, p->size));
    }
    return Json{{"id", p->id}, {"received", received}, {"state", "pending_upload"}};
  }
  if (auto st = finish_upload(*p); !st) return st.error();
  return Json{{"id", p->id}, {"received", p->size}, {"state", "ready"}};
}

// Every byte is present: the files check size and digest and publish; then the row says ready.
Status Packages::finish_upload(const storage::PackageRow& p) {
  if (auto st = files_.publish(p.id, p.size, p.sha256); !st) {
    if (st.error().code == ErrorCode::bad_request) {
      // The upload was discarded: the sender must upload the right bytes again.
      if (auto cleared = packages_.clear_chunks(p.id); !cleared) return cleared;
      log_warn({{"package_id", p.id}}, "package upload refused: {}", st.error().message);
    }
    return st;
  }
  const std::string path = config_.storage_data_dir + "/" + p.id + ".bin";
  if (auto st = packages_.set_ready(p.id, path, p.size, p.sha256, clock_.now_ms()); !st) return st;
  effects_.note("after_package_ready_commit");
  log_info({{"package_id", p.id}}, "package uploaded and verified ({} bytes)", p.size);
  return {};
}

}  // namespace dispatch::service::provisioning
