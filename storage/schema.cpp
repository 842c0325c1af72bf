// The schema, as ordered migrations. Never edit a released step: add a new one.
#include "storage/database.h"

namespace dispatch::storage {

namespace {

// Version 1: devices, packages, commands and deliveries, campaigns, download tokens, rate windows,
// nonces and a key/value table for service state.
const char* const k_schema_v1 = R"sql(
CREATE TABLE meta(
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE devices(
  hardware_id      TEXT PRIMARY KEY,
  public_key_pem   TEXT NOT NULL,
  key_type         TEXT NOT NULL,
  attributes       TEXT NOT NULL DEFAULT '',
  reported_version TEXT,
  properties       TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  last_seen        INTEGER
);
CREATE TABLE device_tags(
  hardware_id TEXT NOT NULL REFERENCES devices(hardware_id) ON DELETE CASCADE,
  tag         TEXT NOT NULL,
  PRIMARY KEY(hardware_id, tag)
) WITHOUT ROWID;
CREATE INDEX device_tags_by_tag ON device_tags(tag, hardware_id);

CREATE TABLE packages(
  id                   TEXT PRIMARY KEY,
  name                 TEXT NOT NULL,
  version              TEXT NOT NULL,
  prerequisite_version TEXT,
  type                 TEXT NOT NULL CHECK(type IN ('internal', 'external')),
  url                  TEXT NOT NULL DEFAULT '',
  sha256               TEXT NOT NULL DEFAULT '',
  size                 INTEGER NOT NULL DEFAULT 0,
  available            INTEGER NOT NULL DEFAULT 0,
  prerelease_ok        INTEGER NOT NULL DEFAULT 0,
  attributes           TEXT NOT NULL DEFAULT '',
  state                TEXT NOT NULL CHECK(state IN ('pending_upload', 'ready')),
  file_path            TEXT NOT NULL DEFAULT '',
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
CREATE INDEX packages_by_name ON packages(name);
CREATE TABLE package_tags(
  package_id TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  tag        TEXT NOT NULL,
  PRIMARY KEY(package_id, tag)
) WITHOUT ROWID;
CREATE INDEX package_tags_by_tag ON package_tags(tag, package_id);
CREATE TABLE package_chunks(
  package_id TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  offset     INTEGER NOT NULL,
  length     INTEGER NOT NULL,
  PRIMARY KEY(package_id, offset)
) WITHOUT ROWID;

CREATE TABLE commands(
  id           TEXT PRIMARY KEY,
  type         TEXT NOT NULL,
  execution    TEXT NOT NULL,
  command      TEXT NOT NULL DEFAULT '',
  arguments    TEXT NOT NULL DEFAULT '',
  package_id   TEXT NOT NULL DEFAULT '',
  description  TEXT NOT NULL DEFAULT '',
  ttl_s        INTEGER,
  expires_at   INTEGER,
  created_at   INTEGER NOT NULL,
  request_id   TEXT UNIQUE,
  request_hash TEXT,
  canceled     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE deliveries(
  command_id   TEXT NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
  hardware_id  TEXT NOT NULL,
  command_line TEXT NOT NULL,
  state        TEXT NOT NULL
               CHECK(state IN ('queued', 'sent', 'succeeded', 'failed', 'expired', 'canceled')),
  output       TEXT NOT NULL DEFAULT '',
  trimmed      INTEGER NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL DEFAULT 0,
  sent_at      INTEGER,
  replied_at   INTEGER,
  expires_at   INTEGER,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY(command_id, hardware_id)
);
CREATE INDEX deliveries_by_device ON deliveries(hardware_id, created_at);
CREATE INDEX deliveries_queued ON deliveries(created_at) WHERE state = 'queued';
CREATE INDEX deliveries_open_expiry ON deliveries(expires_at) WHERE state IN ('queued', 'sent');

CREATE TABLE campaigns(
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  type             TEXT NOT NULL,
  document_json    TEXT NOT NULL,
  state            TEXT NOT NULL,
  reason           TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  started_at       INTEGER,
  ended_at         INTEGER,
  current_group    INTEGER NOT NULL DEFAULT 0,
  group_done_at    INTEGER,
  ramp_successes   INTEGER NOT NULL DEFAULT 0,
  engine_state     TEXT NOT NULL DEFAULT '',
  updated_at       INTEGER NOT NULL
);
CREATE TABLE campaign_executions(
  campaign_id      TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id      TEXT NOT NULL,
  group_index      INTEGER NOT NULL,
  state            TEXT NOT NULL
                   CHECK(state IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out', 'canceled')),
  attempt          INTEGER NOT NULL DEFAULT 0,
  command_id       TEXT,
  sent_at          INTEGER,
  replied_at       INTEGER,
  next_attempt_at  INTEGER,
  output           TEXT NOT NULL DEFAULT '',
  version_verified INTEGER NOT NULL DEFAULT 0,
  updated_at       INTEGER NOT NULL,
  PRIMARY KEY(campaign_id, hardware_id)
);
CREATE TABLE campaign_attempts(
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  command_id  TEXT NOT NULL UNIQUE,
  PRIMARY KEY(campaign_id, hardware_id, attempt)
);

CREATE TABLE download_tokens(
  token_hash   TEXT PRIMARY KEY,
  hardware_id  TEXT NOT NULL,
  package_id   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  spent        INTEGER NOT NULL DEFAULT 0,
  served_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX download_tokens_by_package ON download_tokens(package_id);
CREATE TABLE token_ranges(
  token_hash TEXT NOT NULL REFERENCES download_tokens(token_hash) ON DELETE CASCADE,
  offset     INTEGER NOT NULL,
  length     INTEGER NOT NULL
);
CREATE INDEX token_ranges_by_token ON token_ranges(token_hash, offset);

CREATE TABLE rate_events(
  key TEXT NOT NULL,
  t   INTEGER NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events(key, t);
CREATE INDEX rate_events_by_time ON rate_events(t);

CREATE TABLE nonces(
  nonce_key TEXT PRIMARY KEY,
  t         INTEGER NOT NULL
);
CREATE INDEX nonces_by_time ON nonces(t);
)sql";

// v2: what the campaign engine needs to resume after a crash from the rows alone: the first send of
// attempt 1 (rate limit), when the execution became terminal (rate and ETA), a success reply waiting
// for the version report, and the highest attempt the broker acknowledged (unacknowledged sends are
// published again at start with the same command id).
constexpr const char* k_schema_v2 = R"sql(
ALTER TABLE campaign_executions ADD COLUMN first_sent_at INTEGER;
ALTER TABLE campaign_executions ADD COLUMN finished_at INTEGER;
ALTER TABLE campaign_executions ADD COLUMN reply_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaign_executions ADD COLUMN published_attempt INTEGER NOT NULL DEFAULT 0;
)sql";

// PostgreSQL: the same versions with the same tables, columns, keys and indexes. The differences are
// the dialect's: 64-bit BIGINT for SQLite's INTEGER, TEXT compared bytewise (COLLATE "C", as SQLite
// compares, so that ORDER BY and the "after" cursors of the lists agree on both backends), "offset"
// quoted (a reserved word), no WITHOUT ROWID, and an explicit rowid column where the stores order by
// insertion (deliveries).
const char* const k_pg_schema_v1 = R"sql(
CREATE TABLE meta(
  key   TEXT COLLATE "C" PRIMARY KEY,
  value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE devices(
  hardware_id      TEXT COLLATE "C" PRIMARY KEY,
  public_key_pem   TEXT COLLATE "C" NOT NULL,
  key_type         TEXT COLLATE "C" NOT NULL,
  attributes       TEXT COLLATE "C" NOT NULL DEFAULT '',
  reported_version TEXT COLLATE "C",
  properties       TEXT COLLATE "C" NOT NULL DEFAULT '',
  created_at       BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL,
  last_seen        BIGINT
);
CREATE TABLE device_tags(
  hardware_id TEXT COLLATE "C" NOT NULL REFERENCES devices(hardware_id) ON DELETE CASCADE,
  tag         TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY(hardware_id, tag)
);
CREATE INDEX device_tags_by_tag ON device_tags(tag, hardware_id);

CREATE TABLE packages(
  id                   TEXT COLLATE "C" PRIMARY KEY,
  name                 TEXT COLLATE "C" NOT NULL,
  version              TEXT COLLATE "C" NOT NULL,
  prerequisite_version TEXT COLLATE "C",
  type                 TEXT COLLATE "C" NOT NULL CHECK(type IN ('internal', 'external')),
  url                  TEXT COLLATE "C" NOT NULL DEFAULT '',
  sha256               TEXT COLLATE "C" NOT NULL DEFAULT '',
  size                 BIGINT NOT NULL DEFAULT 0,
  available            BIGINT NOT NULL DEFAULT 0,
  prerelease_ok        BIGINT NOT NULL DEFAULT 0,
  attributes           TEXT COLLATE "C" NOT NULL DEFAULT '',
  state                TEXT COLLATE "C" NOT NULL CHECK(state IN ('pending_upload', 'ready')),
  file_path            TEXT COLLATE "C" NOT NULL DEFAULT '',
  created_at           BIGINT NOT NULL,
  updated_at           BIGINT NOT NULL
);
CREATE INDEX packages_by_name ON packages(name);
CREATE TABLE package_tags(
  package_id TEXT COLLATE "C" NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  tag        TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY(package_id, tag)
);
CREATE INDEX package_tags_by_tag ON package_tags(tag, package_id);
CREATE TABLE package_chunks(
  package_id TEXT COLLATE "C" NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  "offset"     BIGINT NOT NULL,
  length     BIGINT NOT NULL,
  PRIMARY KEY(package_id, "offset")
);

CREATE TABLE commands(
  id           TEXT COLLATE "C" PRIMARY KEY,
  type         TEXT COLLATE "C" NOT NULL,
  execution    TEXT COLLATE "C" NOT NULL,
  command      TEXT COLLATE "C" NOT NULL DEFAULT '',
  arguments    TEXT COLLATE "C" NOT NULL DEFAULT '',
  package_id   TEXT COLLATE "C" NOT NULL DEFAULT '',
  description  TEXT COLLATE "C" NOT NULL DEFAULT '',
  ttl_s        BIGINT,
  expires_at   BIGINT,
  created_at   BIGINT NOT NULL,
  request_id   TEXT COLLATE "C" UNIQUE,
  request_hash TEXT COLLATE "C",
  canceled     BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE deliveries(
  rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
  command_id   TEXT COLLATE "C" NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
  hardware_id  TEXT COLLATE "C" NOT NULL,
  command_line TEXT COLLATE "C" NOT NULL,
  state        TEXT COLLATE "C" NOT NULL
               CHECK(state IN ('queued', 'sent', 'succeeded', 'failed', 'expired', 'canceled')),
  output       TEXT COLLATE "C" NOT NULL DEFAULT '',
  trimmed      BIGINT NOT NULL DEFAULT 0,
  attempts     BIGINT NOT NULL DEFAULT 0,
  sent_at      BIGINT,
  replied_at   BIGINT,
  expires_at   BIGINT,
  created_at   BIGINT NOT NULL,
  PRIMARY KEY(command_id, hardware_id)
);
CREATE INDEX deliveries_by_device ON deliveries(hardware_id, created_at);
CREATE INDEX deliveries_queued ON deliveries(created_at) WHERE state = 'queued';
CREATE INDEX deliveries_open_expiry ON deliveries(expires_at) WHERE state IN ('queued', 'sent');

CREATE TABLE campaigns(
  id               TEXT COLLATE "C" PRIMARY KEY,
  name             TEXT COLLATE "C" NOT NULL,
  type             TEXT COLLATE "C" NOT NULL,
  document_json    TEXT COLLATE "C" NOT NULL,
  state            TEXT COLLATE "C" NOT NULL,
  reason           TEXT COLLATE "C" NOT NULL DEFAULT '',
  created_at       BIGINT NOT NULL,
  started_at       BIGINT,
  ended_at         BIGINT,
  current_group    BIGINT NOT NULL DEFAULT 0,
  group_done_at    BIGINT,
  ramp_successes   BIGINT NOT NULL DEFAULT 0,
  engine_state     TEXT COLLATE "C" NOT NULL DEFAULT '',
  updated_at       BIGINT NOT NULL
);
CREATE TABLE campaign_executions(
  campaign_id      TEXT COLLATE "C" NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id      TEXT COLLATE "C" NOT NULL,
  group_index      BIGINT NOT NULL,
  state            TEXT COLLATE "C" NOT NULL
                   CHECK(state IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out', 'canceled')),
  attempt          BIGINT NOT NULL DEFAULT 0,
  command_id       TEXT COLLATE "C",
  sent_at          BIGINT,
  replied_at       BIGINT,
  next_attempt_at  BIGINT,
  output           TEXT COLLATE "C" NOT NULL DEFAULT '',
  version_verified BIGINT NOT NULL DEFAULT 0,
  updated_at       BIGINT NOT NULL,
  PRIMARY KEY(campaign_id, hardware_id)
);
CREATE TABLE campaign_attempts(
  campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT COLLATE "C" NOT NULL,
  attempt     BIGINT NOT NULL,
  command_id  TEXT COLLATE "C" NOT NULL UNIQUE,
  PRIMARY KEY(campaign_id, hardware_id, attempt)
);

CREATE TABLE download_tokens(
  token_hash   TEXT COLLATE "C" PRIMARY KEY,
  hardware_id  TEXT COLLATE "C" NOT NULL,
  package_id   TEXT COLLATE "C" NOT NULL,
  created_at   BIGINT NOT NULL,
  expires_at   BIGINT NOT NULL,
  spent        BIGINT NOT NULL DEFAULT 0,
  served_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX download_tokens_by_package ON download_tokens(package_id);
CREATE TABLE token_ranges(
  token_hash TEXT COLLATE "C" NOT NULL REFERENCES download_tokens(token_hash) ON DELETE CASCADE,
  "offset"     BIGINT NOT NULL,
  length     BIGINT NOT NULL
);
CREATE INDEX token_ranges_by_token ON token_ranges(token_hash, "offset");

CREATE TABLE rate_events(
  key TEXT COLLATE "C" NOT NULL,
  t   BIGINT NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events(key, t);
CREATE INDEX rate_events_by_time ON rate_events(t);

CREATE TABLE nonces(
  nonce_key TEXT COLLATE "C" PRIMARY KEY,
  t         BIGINT NOT NULL
);
CREATE INDEX nonces_by_time ON nonces(t);
)sql";

constexpr const char* k_pg_schema_v2 = R"sql(
ALTER TABLE campaign_executions ADD COLUMN first_sent_at BIGINT;
ALTER TABLE campaign_executions ADD COLUMN finished_at BIGINT;
ALTER TABLE campaign_executions ADD COLUMN reply_ok BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaign_executions ADD COLUMN published_attempt BIGINT NOT NULL DEFAULT 0;
)sql";

// v3 (issue 15): the device's reported version when an attempt was sent (verify_version of "latest"
// needs a newer one), and each attempt's own reply, so that a late reply to a superseded attempt is
// recorded (PROTOCOL §4) without changing the execution.
constexpr const char* k_schema_v3 = R"sql(
ALTER TABLE campaign_executions ADD COLUMN version_at_send TEXT;
ALTER TABLE campaign_attempts ADD COLUMN replied_at INTEGER;
ALTER TABLE campaign_attempts ADD COLUMN success INTEGER;
ALTER TABLE campaign_attempts ADD COLUMN output TEXT NOT NULL DEFAULT '';
)sql";

constexpr const char* k_pg_schema_v3 = R"sql(
ALTER TABLE campaign_executions ADD COLUMN version_at_send TEXT COLLATE "C";
ALTER TABLE campaign_attempts ADD COLUMN replied_at BIGINT;
ALTER TABLE campaign_attempts ADD COLUMN success BIGINT;
ALTER TABLE campaign_attempts ADD COLUMN output TEXT COLLATE "C" NOT NULL DEFAULT '';
)sql";

// v4 (issue 14, retention): when each request_id idempotency record was written (records of earlier
// versions count from the upgrade), and the indexes the purges walk: commands by age, download tokens by
// expiry, idempotency records by age.
constexpr const char* k_schema_v4 = R"sql(
ALTER TABLE meta ADD COLUMN created_at INTEGER;
UPDATE meta SET created_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000 WHERE key LIKE 'request:%';
CREATE INDEX meta_by_created ON meta(created_at) WHERE created_at IS NOT NULL;
CREATE INDEX commands_by_created ON commands(created_at);
CREATE INDEX download_tokens_by_expiry ON download_tokens(expires_at);
)sql";

constexpr const char* k_pg_schema_v4 = R"sql(
ALTER TABLE meta ADD COLUMN created_at BIGINT;
UPDATE meta SET created_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT WHERE key LIKE 'request:%';
CREATE INDEX meta_by_created ON meta(created_at) WHERE created_at IS NOT NULL;
CREATE INDEX commands_by_created ON commands(created_at);
CREATE INDEX download_tokens_by_expiry ON download_tokens(expires_at);
)sql";

// v5 (issue 13): package bytes as rows, readable by every instance sharing a PostgreSQL database
// (storage/package_bytes.h). SQLite gets the same table (Base64 text; its nodes keep files on disk).
constexpr const char* k_schema_v5 = R"sql(
CREATE TABLE package_bytes (
  package_id TEXT NOT NULL,
  kind       TEXT NOT NULL,
  "offset"   INTEGER NOT NULL,
  length     INTEGER NOT NULL,
  data       TEXT NOT NULL,
  PRIMARY KEY (package_id, kind, "offset")
);
)sql";

constexpr const char* k_pg_schema_v5 = R"sql(
CREATE TABLE package_bytes (
  package_id TEXT COLLATE "C" NOT NULL,
  kind       TEXT COLLATE "C" NOT NULL,
  "offset"   BIGINT NOT NULL,
  length     BIGINT NOT NULL,
  data       BYTEA NOT NULL,
  PRIMARY KEY (package_id, kind, "offset")
);
)sql";

// v6 (issue 13): leases, one row per thing that exactly one instance may drive at a time (a campaign
// "campaign:<id>", an instance's own liveness "instance:<id>"). token is the fencing token: it grows on
// every takeover and never goes back (a released lease keeps its row), so a write fenced on (name, token)
// fails once anybody else has held the lease since (storage/leases.h).
constexpr const char* k_schema_v6 = R"sql(
CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  token      INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX leases_by_expiry ON leases(expires_at);
)sql";

constexpr const char* k_pg_schema_v6 = R"sql(
CREATE TABLE leases (
  name       TEXT COLLATE "C" PRIMARY KEY,
  holder     TEXT COLLATE "C" NOT NULL,
  token      BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX leases_by_expiry ON leases(expires_at);
)sql";

// v7 (issue 13): who publishes what across instances. deliveries.owner is the instance that committed a
// queued delivery (NULL: written before v7, anybody's); another instance takes the rows over when the
// owner's "instance:<id>" lease lapses (service/cluster.h). campaign_replies is the inbox of replies to a
// campaign's current attempts received by an instance that does not drive the campaign: the driving
// instance applies them and deletes them in its fenced write (one row per attempt at most).
constexpr const char* k_schema_v7 = R"sql(
ALTER TABLE deliveries ADD COLUMN owner TEXT;
CREATE INDEX deliveries_queued_by_owner ON deliveries(owner, created_at) WHERE state = 'queued';
CREATE TABLE campaign_replies (
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  command_id  TEXT NOT NULL,
  hardware_id TEXT NOT NULL,
  success     INTEGER NOT NULL,
  output      TEXT NOT NULL DEFAULT '',
  replied_at  INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, command_id)
);
)sql";

constexpr const char* k_pg_schema_v7 = R"sql(
ALTER TABLE deliveries ADD COLUMN owner TEXT COLLATE "C";
CREATE INDEX deliveries_queued_by_owner ON deliveries(owner, created_at) WHERE state = 'queued';
CREATE TABLE campaign_replies (
  campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  command_id  TEXT COLLATE "C" NOT NULL,
  hardware_id TEXT COLLATE "C" NOT NULL,
  success     BIGINT NOT NULL,
  output      TEXT COLLATE "C" NOT NULL DEFAULT '',
  replied_at  BIGINT NOT NULL,
  PRIMARY KEY (campaign_id, command_id)
);
)sql";

// v8 (issue 13): the answer to a device does not depend on which instance receives its message.
// campaign_executions_open_by_device lists a device's open (queued or sent) executions in every campaign,
// whoever drives it, for the pending pull, presence redelivery and version reports (partial: only open
// rows, so at most one per campaign in flight per device). campaign_versions is the inbox of version
// reports (verify_version) received by an instance that does not drive the campaign: the newest report per
// device and campaign; the driving instance applies it and deletes it in its fenced write.
constexpr const char* k_schema_v8 = R"sql(
CREATE INDEX campaign_executions_open_by_device ON campaign_executions(hardware_id)
  WHERE state IN ('queued', 'sent');
CREATE TABLE campaign_versions (
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT NOT NULL,
  version     TEXT NOT NULL,
  reported_at INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, hardware_id)
);
)sql";

constexpr const char* k_pg_schema_v8 = R"sql(
CREATE INDEX campaign_executions_open_by_device ON campaign_executions(hardware_id)
  WHERE state IN ('queued', 'sent');
CREATE TABLE campaign_versions (
  campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT COLLATE "C" NOT NULL,
  version     TEXT COLLATE "C" NOT NULL,
  reported_at BIGINT NOT NULL,
  PRIMARY KEY (campaign_id, hardware_id)
);
)sql";

// v9 (issue 13): the cluster's restart epoch. A table of its own rather than a column on leases: a start
// is a fact about a process run, not about who holds what (an instance's lease keeps its token across a
// quick restart, and leases are also campaigns'), and MAX over a small indexed table is the one read every
// instance makes every third of a lease TTL. One row per instance id, pruned on write to the last day
// (storage/instance_starts.h).
constexpr const char* k_schema_v9 = R"sql(
CREATE TABLE instance_starts (
  instance_id TEXT PRIMARY KEY,
  started_at  INTEGER NOT NULL
);
CREATE INDEX instance_starts_by_time ON instance_starts(started_at);
)sql";

constexpr const char* k_pg_schema_v9 = R"sql(
CREATE TABLE instance_starts (
  instance_id TEXT COLLATE "C" PRIMARY KEY,
  started_at  BIGINT NOT NULL
);
CREATE INDEX instance_starts_by_time ON instance_starts(started_at);
)sql";

// v10 (issue 13): the bytes served under a download token so far, re-requests included, so that the bound
// on what one token pulls (provisioning.max_download_factor × the package size) is counted in the row
// every instance locks in TokenStore::serve, not in one process's memory. served_bytes counts distinct
// bytes (when the token is spent); pulled_bytes counts every byte sent (when it is exhausted).
constexpr const char* k_schema_v10 = R"sql(
ALTER TABLE download_tokens ADD COLUMN pulled_bytes INTEGER NOT NULL DEFAULT 0;
)sql";

constexpr const char* k_pg_schema_v10 = R"sql(
ALTER TABLE download_tokens ADD COLUMN pulled_bytes BIGINT NOT NULL DEFAULT 0;
)sql";

// v11 (issue 16): the state CHECKs of the two tables every send and reply writes, without an IN list.
// SQLite evaluates a CHECK's "state IN (6 constants)" by building a temporary b-tree of the constants for
// every row it checks (OpenEphemeral; only lists of up to 2 are compared directly): about 5 µs per insert
// and per UPDATE of state, a fifth of a campaign's database time. The same rule as equalities costs
// nothing measurable. SQLite cannot alter a CHECK, so both tables are rebuilt (rows, rowids and indexes
// kept) in the migration's transaction; nothing references them. PostgreSQL plans IN lists well: its
// CHECKs stay. On both backends deliveries_queued goes: deliveries_queued_by_owner holds the same rows (the
// queued ones) and serves every reader of them (the reload at a start scans it and sorts, once); one
// index fewer to write per delivery sent, marked sent and answered (about 15% of a fan-out's inserts).
constexpr const char* k_schema_v11 = R"sql(
CREATE TABLE deliveries_v11(
  command_id   TEXT NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
  hardware_id  TEXT NOT NULL,
  command_line TEXT NOT NULL,
  state        TEXT NOT NULL
               CHECK(state = 'queued' OR state = 'sent' OR state = 'succeeded' OR state = 'failed' OR
                     state = 'expired' OR state = 'canceled'),
  output       TEXT NOT NULL DEFAULT '',
  trimmed      INTEGER NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL DEFAULT 0,
  sent_at      INTEGER,
  replied_at   INTEGER,
  expires_at   INTEGER,
  created_at   INTEGER NOT NULL,
  owner        TEXT,
  PRIMARY KEY(command_id, hardware_id)
);
INSERT INTO deliveries_v11(rowid, command_id, hardware_id, command_line, state, output, trimmed, attempts,
                           sent_at, replied_at, expires_at, created_at, owner)
  SELECT rowid, command_id, hardware_id, command_line, state, output, trimmed, attempts, sent_at,
         replied_at, expires_at, created_at, owner FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v11 RENAME TO deliveries;
CREATE INDEX deliveries_by_device ON deliveries(hardware_id, created_at);
CREATE INDEX deliveries_open_expiry ON deliveries(expires_at) WHERE state IN ('queued', 'sent');
CREATE INDEX deliveries_queued_by_owner ON deliveries(owner, created_at) WHERE state = 'queued';

CREATE TABLE campaign_executions_v11(
  campaign_id       TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id       TEXT NOT NULL,
  group_index       INTEGER NOT NULL,
  state             TEXT NOT NULL
                    CHECK(state = 'queued' OR state = 'sent' OR state = 'succeeded' OR state = 'failed' OR
                          state = 'timed_out' OR state = 'canceled'),
  attempt           INTEGER NOT NULL DEFAULT 0,
  command_id        TEXT,
  sent_at           INTEGER,
  replied_at        INTEGER,
  next_attempt_at   INTEGER,
  output            TEXT NOT NULL DEFAULT '',
  version_verified  INTEGER NOT NULL DEFAULT 0,
  updated_at        INTEGER NOT NULL,
  first_sent_at     INTEGER,
  finished_at       INTEGER,
  reply_ok          INTEGER NOT NULL DEFAULT 0,
  published_attempt INTEGER NOT NULL DEFAULT 0,
  version_at_send   TEXT,
  PRIMARY KEY(campaign_id, hardware_id)
);
INSERT INTO campaign_executions_v11(rowid, campaign_id, hardware_id, group_index, state, attempt, command_id,
                                    sent_at, replied_at, next_attempt_at, output, version_verified,
                                    updated_at, first_sent_at, finished_at, reply_ok, published_attempt,
                                    version_at_send)
  SELECT rowid, campaign_id, hardware_id, group_index, state, attempt, command_id, sent_at, replied_at,
         next_attempt_at, output, version_verified, updated_at, first_sent_at, finished_at, reply_ok,
         published_attempt, version_at_send FROM campaign_executions;
DROP TABLE campaign_executions;
ALTER TABLE campaign_executions_v11 RENAME TO campaign_executions;
CREATE INDEX campaign_executions_open_by_device ON campaign_executions(hardware_id)
  WHERE state IN ('queued', 'sent');
)sql";

constexpr const char* k_pg_schema_v11 = R"sql(
DROP INDEX deliveries_queued;
)sql";

// v12 (issue 16): the targets of a large commands/send not yet written as deliveries (storage/commands.h,
// CommandTargets). The send commits the command, its first deliveries and this list, then answers and
// publishes while the rest are written chunk by chunk. hardware_ids holds the sorted ids, each followed by
// a space and the first preceded by one (" a b c ", so " <id> " finds one); `expanded` is how many of them
// (in order) are deliveries already, `total` how many it has (counts without decoding the list), `owner` the
// instance that writes them (a takeover moves it, as for queued deliveries).
constexpr const char* k_schema_v12 = R"sql(
CREATE TABLE command_targets(
  command_id   TEXT PRIMARY KEY REFERENCES commands(id) ON DELETE CASCADE,
  hardware_ids TEXT NOT NULL,
  total        INTEGER NOT NULL,
  expanded     INTEGER NOT NULL DEFAULT 0,
  command_line TEXT NOT NULL,
  expires_at   INTEGER,
  created_at   INTEGER NOT NULL,
  owner        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX command_targets_by_owner ON command_targets(owner, created_at);
)sql";

constexpr const char* k_pg_schema_v12 = R"sql(
CREATE TABLE command_targets(
  command_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES commands(id) ON DELETE CASCADE,
  hardware_ids TEXT COLLATE "C" NOT NULL,
  total        BIGINT NOT NULL,
  expanded     BIGINT NOT NULL DEFAULT 0,
  command_line TEXT COLLATE "C" NOT NULL,
  expires_at   BIGINT,
  created_at   BIGINT NOT NULL,
  owner        TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX command_targets_by_owner ON command_targets(owner, created_at);
)sql";

}  // namespace

const std::vector<Migration>& schema_migrations(Backend backend) {
  static const std::vector<Migration> sqlite = {
      {1, k_schema_v1}, {2, k_schema_v2},   {3, k_schema_v3},   {4, k_schema_v4},
      {5, k_schema_v5}, {6, k_schema_v6},   {7, k_schema_v7},   {8, k_schema_v8},
      {9, k_schema_v9}, {10, k_schema_v10}, {11, k_schema_v11}, {12, k_schema_v12},
  };
  static const std::vector<Migration> postgres = {
      {1, k_pg_schema_v1}, {2, k_pg_schema_v2},   {3, k_pg_schema_v3},   {4, k_pg_schema_v4},
      {5, k_pg_schema_v5}, {6, k_pg_schema_v6},   {7, k_pg_schema_v7},   {8, k_pg_schema_v8},
      {9, k_pg_schema_v9}, {10, k_pg_schema_v10}, {11, k_pg_schema_v11}, {12, k_pg_schema_v12},
  };
  return backend == Backend::postgres ? postgres : sqlite;
}

}  // namespace dispatch::storage
