// LeaseStore: named leases with fencing tokens, so that several instances sharing one database agree on
// who drives what (PROTOCOL §7). A lease is held by one holder (an instance id) until expires_at; its
// token grows by one on every takeover (a new holder, or the same holder after its lease lapsed) and
// never goes back, so a write fenced on (name, token) is refused once anybody else has held the lease
// since the writer took it, even if the writer still believes it holds it (a paused or partitioned
// instance). Times are the callers' clocks (core::TimeMs): instances must agree on the time to well
// under a lease's TTL, which NTP gives; the fence, not the expiry, is what keeps the data safe.
//
// Lease names in use: "campaign:<id>" (the instance that drives a campaign) and "instance:<id>" (an
// instance's own liveness: its outbox rows are taken over when it lapses).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct LeaseRow {
  std::string name;             // the primary key, e.g. "campaign:01J…"
  std::string holder;           // the instance id holding (or last holding) the lease
  std::int64_t token = 0;       // the fencing token; 1 for the first holder ever
  core::TimeMs expires_at = 0;  // held while now < expires_at; 0 once released
};

class LeaseStore {
 public:
  explicit LeaseStore(Database& db) : db_(db) {}

  // Takes the lease for holder until now + ttl_ms when it is free (no row, released or expired at now)
  // or already held by holder; returns the row as it now is. A holder renewing its live lease keeps its
  // token; anybody else taking it (and a holder whose lease had lapsed) gets token + 1.
  // conflict when another holder's lease is live at now. bad_request when name or holder is empty or
  // ttl_ms < 1. Decided by one statement (an upsert guarded on holder and expiry), so of several
  // connections racing for a free lease exactly one wins. May be called inside a transaction.
  core::Result<LeaseRow> acquire(const std::string& name, const std::string& holder, core::TimeMs now,
                                 std::int64_t ttl_ms);
  // Takes the lease for holder until now + ttl_ms whoever holds it, live or not: token + 1 (1 for a new
  // row). For an operator's action on a campaign another live instance drives (the action must be
  // applied somewhere now): the old holder's next fenced write fails its check and it drops the campaign.
  // On PostgreSQL it waits for a transaction that holds the row lock through check() to end first.
  // bad_request as acquire. May be called inside a transaction.
  core::Result<LeaseRow> take_over(const std::string& name, const std::string& holder, core::TimeMs now,
                                   std::int64_t ttl_ms);
  // Extends a lease held by holder with token to now + ttl_ms, whether or not it has lapsed, as long
  // as nobody took it over (a lapsed lease nobody took is still safely ours: the fence did not move).
  // conflict ("lease <name> lost") when the row has another holder or token; bad_request as acquire.
  core::Result<LeaseRow> renew(const std::string& name, const std::string& holder, std::int64_t token,
                               core::TimeMs now, std::int64_t ttl_ms);
  // Lets go of the lease (expires_at = 0) when holder still holds it with token; the row and its token
  // stay, so the next holder gets token + 1. Releasing a lease one no longer holds is not an error
  // (nothing changes); returns whether this call released it.
  core::Result<bool> release(const std::string& name, const std::string& holder, std::int64_t token);
  // The fence: ok when the lease still has holder and token, conflict ("lease <name> lost") otherwise.
  // Meant to run inside the transaction whose writes it guards: it updates the lease row in place, so
  // on PostgreSQL it holds the row lock until that transaction ends and a takeover waits for it (and
  // then gets the next token); on SQLite the write transaction already excludes every other writer.
  // A conflict returned from the transaction's function rolls all of its writes back.
  core::Status check(const std::string& name, const std::string& holder, std::int64_t token);
  // not_found when there is no such lease.
  core::Result<LeaseRow> get(const std::string& name);
  // Leases whose name starts with prefix (e.g. "campaign:"), by name; at most limit rows (limit >= 1).
  core::Result<std::vector<LeaseRow>> list(const std::string& prefix, int limit);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
