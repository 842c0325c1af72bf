CREATE INDEX campaign_executions_open_by_device ON campaign_executions(hardware_id)
  WHERE state IN ('queued', 'sent');
CREATE INDEX command_targets_by_owner ON command_targets(owner, created_at);
CREATE INDEX commands_by_created ON commands(created_at);
CREATE INDEX deliveries_by_device ON deliveries(hardware_id, created_at);
CREATE INDEX deliveries_open_expiry ON deliveries(expires_at) WHERE state IN ('queued', 'sent');
CREATE INDEX deliveries_queued_by_owner ON deliveries(owner, created_at) WHERE state = 'queued';
CREATE INDEX device_tags_by_tag ON device_tags(tag, hardware_id);
CREATE INDEX download_tokens_by_expiry ON download_tokens(expires_at);
CREATE INDEX download_tokens_by_package ON download_tokens(package_id);
CREATE INDEX instance_starts_by_time ON instance_starts(started_at);
CREATE INDEX leases_by_expiry ON leases(expires_at);
CREATE INDEX meta_by_created ON meta(created_at) WHERE created_at IS NOT NULL;
CREATE INDEX nonces_by_time ON nonces(t);
CREATE INDEX package_tags_by_tag ON package_tags(tag, package_id);
CREATE INDEX packages_by_name ON packages(name);
CREATE INDEX rate_events_by_key ON rate_events(key, t);
CREATE INDEX rate_events_by_time ON rate_events(t);
CREATE INDEX token_ranges_by_token ON token_ranges(token_hash, offset);
CREATE TABLE campaign_attempts(
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  command_id  TEXT NOT NULL UNIQUE, replied_at INTEGER, success INTEGER, output TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(campaign_id, hardware_id, attempt)
);
CREATE TABLE "campaign_executions"(
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
CREATE TABLE campaign_replies (
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  command_id  TEXT NOT NULL,
  hardware_id TEXT NOT NULL,
  success     INTEGER NOT NULL,
  output      TEXT NOT NULL DEFAULT '',
  replied_at  INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, command_id)
);
CREATE TABLE campaign_versions (
  campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  hardware_id TEXT NOT NULL,
  version     TEXT NOT NULL,
  reported_at INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, hardware_id)
);
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
CREATE TABLE "deliveries"(
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
CREATE TABLE device_tags(
  hardware_id TEXT NOT NULL REFERENCES devices(hardware_id) ON DELETE CASCADE,
  tag         TEXT NOT NULL,
  PRIMARY KEY(hardware_id, tag)
) WITHOUT ROWID;
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
CREATE TABLE download_tokens(
  token_hash   TEXT PRIMARY KEY,
  hardware_id  TEXT NOT NULL,
  package_id   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  spent        INTEGER NOT NULL DEFAULT 0,
  served_bytes INTEGER NOT NULL DEFAULT 0
, pulled_bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE instance_starts (
  instance_id TEXT PRIMARY KEY,
  started_at  INTEGER NOT NULL
);
CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  token      INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE meta(
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
, created_at INTEGER);
CREATE TABLE nonces(
  nonce_key TEXT PRIMARY KEY,
  t         INTEGER NOT NULL
);
CREATE TABLE package_bytes (
  package_id TEXT NOT NULL,
  kind       TEXT NOT NULL,
  "offset"   INTEGER NOT NULL,
  length     INTEGER NOT NULL,
  data       TEXT NOT NULL,
  PRIMARY KEY (package_id, kind, "offset")
);
CREATE TABLE package_chunks(
  package_id TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  offset     INTEGER NOT NULL,
  length     INTEGER NOT NULL,
  PRIMARY KEY(package_id, offset)
) WITHOUT ROWID;
CREATE TABLE package_tags(
  package_id TEXT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
  tag        TEXT NOT NULL,
  PRIMARY KEY(package_id, tag)
) WITHOUT ROWID;
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
CREATE TABLE rate_events(
  key TEXT NOT NULL,
  t   INTEGER NOT NULL
);
CREATE TABLE schema_version(version INTEGER NOT NULL);
CREATE TABLE token_ranges(
  token_hash TEXT NOT NULL REFERENCES download_tokens(token_hash) ON DELETE CASCADE,
  offset     INTEGER NOT NULL,
  length     INTEGER NOT NULL
);
