column campaign_attempts.campaign_id text NOT NULL COLLATE C
column campaign_attempts.hardware_id text NOT NULL COLLATE C
column campaign_attempts.attempt bigint NOT NULL
column campaign_attempts.command_id text NOT NULL COLLATE C
column campaign_attempts.replied_at bigint
column campaign_attempts.success bigint
column campaign_attempts.output text NOT NULL DEFAULT ''::text COLLATE C
column campaign_executions.campaign_id text NOT NULL COLLATE C
column campaign_executions.hardware_id text NOT NULL COLLATE C
column campaign_executions.group_index bigint NOT NULL
column campaign_executions.state text NOT NULL COLLATE C
column campaign_executions.attempt bigint NOT NULL DEFAULT 0
column campaign_executions.command_id text COLLATE C
column campaign_executions.sent_at bigint
column campaign_executions.replied_at bigint
column campaign_executions.next_attempt_at bigint
column campaign_executions.output text NOT NULL DEFAULT ''::text COLLATE C
column campaign_executions.version_verified bigint NOT NULL DEFAULT 0
column campaign_executions.updated_at bigint NOT NULL
column campaign_executions.first_sent_at bigint
column campaign_executions.finished_at bigint
column campaign_executions.reply_ok bigint NOT NULL DEFAULT 0
column campaign_executions.published_attempt bigint NOT NULL DEFAULT 0
column campaign_executions.version_at_send text COLLATE C
column campaign_replies.campaign_id text NOT NULL COLLATE C
column campaign_replies.command_id text NOT NULL COLLATE C
column campaign_replies.hardware_id text NOT NULL COLLATE C
column campaign_replies.success bigint NOT NULL
column campaign_replies.output text NOT NULL DEFAULT ''::text COLLATE C
column campaign_replies.replied_at bigint NOT NULL
column campaign_versions.campaign_id text NOT NULL COLLATE C
column campaign_versions.hardware_id text NOT NULL COLLATE C
column campaign_versions.version text NOT NULL COLLATE C
column campaign_versions.reported_at bigint NOT NULL
column campaigns.id text NOT NULL COLLATE C
column campaigns.name text NOT NULL COLLATE C
column campaigns.type text NOT NULL COLLATE C
column campaigns.document_json text NOT NULL COLLATE C
column campaigns.state text NOT NULL COLLATE C
column campaigns.reason text NOT NULL DEFAULT ''::text COLLATE C
column campaigns.created_at bigint NOT NULL
column campaigns.started_at bigint
column campaigns.ended_at bigint
column campaigns.current_group bigint NOT NULL DEFAULT 0
column campaigns.group_done_at bigint
column campaigns.ramp_successes bigint NOT NULL DEFAULT 0
column campaigns.engine_state text NOT NULL DEFAULT ''::text COLLATE C
column campaigns.updated_at bigint NOT NULL
column command_targets.command_id text NOT NULL COLLATE C
column command_targets.hardware_ids text NOT NULL COLLATE C
column command_targets.total bigint NOT NULL
column command_targets.expanded bigint NOT NULL DEFAULT 0
column command_targets.command_line text NOT NULL COLLATE C
column command_targets.expires_at bigint
column command_targets.created_at bigint NOT NULL
column command_targets.owner text NOT NULL DEFAULT ''::text COLLATE C
column commands.id text NOT NULL COLLATE C
column commands.type text NOT NULL COLLATE C
column commands.execution text NOT NULL COLLATE C
column commands.command text NOT NULL DEFAULT ''::text COLLATE C
column commands.arguments text NOT NULL DEFAULT ''::text COLLATE C
column commands.package_id text NOT NULL DEFAULT ''::text COLLATE C
column commands.description text NOT NULL DEFAULT ''::text COLLATE C
column commands.ttl_s bigint
column commands.expires_at bigint
column commands.created_at bigint NOT NULL
column commands.request_id text COLLATE C
column commands.request_hash text COLLATE C
column commands.canceled bigint NOT NULL DEFAULT 0
column deliveries.rowid bigint NOT NULL IDENTITY ALWAYS
column deliveries.command_id text NOT NULL COLLATE C
column deliveries.hardware_id text NOT NULL COLLATE C
column deliveries.command_line text NOT NULL COLLATE C
column deliveries.state text NOT NULL COLLATE C
column deliveries.output text NOT NULL DEFAULT ''::text COLLATE C
column deliveries.trimmed bigint NOT NULL DEFAULT 0
column deliveries.attempts bigint NOT NULL DEFAULT 0
column deliveries.sent_at bigint
column deliveries.replied_at bigint
column deliveries.expires_at bigint
column deliveries.created_at bigint NOT NULL
column deliveries.owner text COLLATE C
column device_tags.hardware_id text NOT NULL COLLATE C
column device_tags.tag text NOT NULL COLLATE C
column devices.hardware_id text NOT NULL COLLATE C
column devices.public_key_pem text NOT NULL COLLATE C
column devices.key_type text NOT NULL COLLATE C
column devices.attributes text NOT NULL DEFAULT ''::text COLLATE C
column devices.reported_version text COLLATE C
column devices.properties text NOT NULL DEFAULT ''::text COLLATE C
column devices.created_at bigint NOT NULL
column devices.updated_at bigint NOT NULL
column devices.last_seen bigint
column download_tokens.token_hash text NOT NULL COLLATE C
column download_tokens.hardware_id text NOT NULL COLLATE C
column download_tokens.package_id text NOT NULL COLLATE C
column download_tokens.created_at bigint NOT NULL
column download_tokens.expires_at bigint NOT NULL
column download_tokens.spent bigint NOT NULL DEFAULT 0
column download_tokens.served_bytes bigint NOT NULL DEFAULT 0
column download_tokens.pulled_bytes bigint NOT NULL DEFAULT 0
column instance_starts.instance_id text NOT NULL COLLATE C
column instance_starts.started_at bigint NOT NULL
column leases.name text NOT NULL COLLATE C
column leases.holder text NOT NULL COLLATE C
column leases.token bigint NOT NULL
column leases.expires_at bigint NOT NULL
column meta.key text NOT NULL COLLATE C
column meta.value text NOT NULL COLLATE C
column meta.created_at bigint
column nonces.nonce_key text NOT NULL COLLATE C
column nonces.t bigint NOT NULL
column package_bytes.package_id text NOT NULL COLLATE C
column package_bytes.kind text NOT NULL COLLATE C
column package_bytes.offset bigint NOT NULL
column package_bytes.length bigint NOT NULL
column package_bytes.data bytea NOT NULL
column package_chunks.package_id text NOT NULL COLLATE C
column package_chunks.offset bigint NOT NULL
column package_chunks.length bigint NOT NULL
column package_tags.package_id text NOT NULL COLLATE C
column package_tags.tag text NOT NULL COLLATE C
column packages.id text NOT NULL COLLATE C
column packages.name text NOT NULL COLLATE C
column packages.version text NOT NULL COLLATE C
column packages.prerequisite_version text COLLATE C
column packages.type text NOT NULL COLLATE C
column packages.url text NOT NULL DEFAULT ''::text COLLATE C
column packages.sha256 text NOT NULL DEFAULT ''::text COLLATE C
column packages.size bigint NOT NULL DEFAULT 0
column packages.available bigint NOT NULL DEFAULT 0
column packages.prerelease_ok bigint NOT NULL DEFAULT 0
column packages.attributes text NOT NULL DEFAULT ''::text COLLATE C
column packages.state text NOT NULL COLLATE C
column packages.file_path text NOT NULL DEFAULT ''::text COLLATE C
column packages.created_at bigint NOT NULL
column packages.updated_at bigint NOT NULL
column rate_events.key text NOT NULL COLLATE C
column rate_events.t bigint NOT NULL
column schema_version.version integer NOT NULL
column token_ranges.token_hash text NOT NULL COLLATE C
column token_ranges.offset bigint NOT NULL
column token_ranges.length bigint NOT NULL
constraint campaign_attempts campaign_attempts_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id) ON DELETE CASCADE
constraint campaign_attempts campaign_attempts_command_id_key UNIQUE (command_id)
constraint campaign_attempts campaign_attempts_pkey PRIMARY KEY (campaign_id, hardware_id, attempt)
constraint campaign_executions campaign_executions_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id) ON DELETE CASCADE
constraint campaign_executions campaign_executions_pkey PRIMARY KEY (campaign_id, hardware_id)
constraint campaign_executions campaign_executions_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'sent'::text, 'succeeded'::text, 'failed'::text, 'timed_out'::text, 'canceled'::text])))
constraint campaign_replies campaign_replies_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id) ON DELETE CASCADE
constraint campaign_replies campaign_replies_pkey PRIMARY KEY (campaign_id, command_id)
constraint campaign_versions campaign_versions_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns(id) ON DELETE CASCADE
constraint campaign_versions campaign_versions_pkey PRIMARY KEY (campaign_id, hardware_id)
constraint campaigns campaigns_pkey PRIMARY KEY (id)
constraint command_targets command_targets_command_id_fkey FOREIGN KEY (command_id) REFERENCES commands(id) ON DELETE CASCADE
constraint command_targets command_targets_pkey PRIMARY KEY (command_id)
constraint commands commands_pkey PRIMARY KEY (id)
constraint commands commands_request_id_key UNIQUE (request_id)
constraint deliveries deliveries_command_id_fkey FOREIGN KEY (command_id) REFERENCES commands(id) ON DELETE CASCADE
constraint deliveries deliveries_pkey PRIMARY KEY (command_id, hardware_id)
constraint deliveries deliveries_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'sent'::text, 'succeeded'::text, 'failed'::text, 'expired'::text, 'canceled'::text])))
constraint device_tags device_tags_hardware_id_fkey FOREIGN KEY (hardware_id) REFERENCES devices(hardware_id) ON DELETE CASCADE
constraint device_tags device_tags_pkey PRIMARY KEY (hardware_id, tag)
constraint devices devices_pkey PRIMARY KEY (hardware_id)
constraint download_tokens download_tokens_pkey PRIMARY KEY (token_hash)
constraint instance_starts instance_starts_pkey PRIMARY KEY (instance_id)
constraint leases leases_pkey PRIMARY KEY (name)
constraint meta meta_pkey PRIMARY KEY (key)
constraint nonces nonces_pkey PRIMARY KEY (nonce_key)
constraint package_bytes package_bytes_pkey PRIMARY KEY (package_id, kind, "offset")
constraint package_chunks package_chunks_package_id_fkey FOREIGN KEY (package_id) REFERENCES packages(id) ON DELETE CASCADE
constraint package_chunks package_chunks_pkey PRIMARY KEY (package_id, "offset")
constraint package_tags package_tags_package_id_fkey FOREIGN KEY (package_id) REFERENCES packages(id) ON DELETE CASCADE
constraint package_tags package_tags_pkey PRIMARY KEY (package_id, tag)
constraint packages packages_pkey PRIMARY KEY (id)
constraint packages packages_state_check CHECK ((state = ANY (ARRAY['pending_upload'::text, 'ready'::text])))
constraint packages packages_type_check CHECK ((type = ANY (ARRAY['internal'::text, 'external'::text])))
constraint token_ranges token_ranges_token_hash_fkey FOREIGN KEY (token_hash) REFERENCES download_tokens(token_hash) ON DELETE CASCADE
index CREATE UNIQUE INDEX campaign_attempts_command_id_key ON campaign_attempts USING btree (command_id)
index CREATE UNIQUE INDEX campaign_attempts_pkey ON campaign_attempts USING btree (campaign_id, hardware_id, attempt)
index CREATE INDEX campaign_executions_open_by_device ON campaign_executions USING btree (hardware_id) WHERE (state = ANY (ARRAY['queued'::text, 'sent'::text]))
index CREATE UNIQUE INDEX campaign_executions_pkey ON campaign_executions USING btree (campaign_id, hardware_id)
index CREATE UNIQUE INDEX campaign_replies_pkey ON campaign_replies USING btree (campaign_id, command_id)
index CREATE UNIQUE INDEX campaign_versions_pkey ON campaign_versions USING btree (campaign_id, hardware_id)
index CREATE UNIQUE INDEX campaigns_pkey ON campaigns USING btree (id)
index CREATE INDEX command_targets_by_owner ON command_targets USING btree (owner, created_at)
index CREATE UNIQUE INDEX command_targets_pkey ON command_targets USING btree (command_id)
index CREATE INDEX commands_by_created ON commands USING btree (created_at)
index CREATE UNIQUE INDEX commands_pkey ON commands USING btree (id)
index CREATE UNIQUE INDEX commands_request_id_key ON commands USING btree (request_id)
index CREATE INDEX deliveries_by_device ON deliveries USING btree (hardware_id, created_at)
index CREATE INDEX deliveries_open_expiry ON deliveries USING btree (expires_at) WHERE (state = ANY (ARRAY['queued'::text, 'sent'::text]))
index CREATE UNIQUE INDEX deliveries_pkey ON deliveries USING btree (command_id, hardware_id)
index CREATE INDEX deliveries_queued_by_owner ON deliveries USING btree (owner, created_at) WHERE (state = 'queued'::text)
index CREATE INDEX device_tags_by_tag ON device_tags USING btree (tag, hardware_id)
index CREATE UNIQUE INDEX device_tags_pkey ON device_tags USING btree (hardware_id, tag)
index CREATE UNIQUE INDEX devices_pkey ON devices USING btree (hardware_id)
index CREATE INDEX download_tokens_by_expiry ON download_tokens USING btree (expires_at)
index CREATE INDEX download_tokens_by_package ON download_tokens USING btree (package_id)
index CREATE UNIQUE INDEX download_tokens_pkey ON download_tokens USING btree (token_hash)
index CREATE INDEX instance_starts_by_time ON instance_starts USING btree (started_at)
index CREATE UNIQUE INDEX instance_starts_pkey ON instance_starts USING btree (instance_id)
index CREATE INDEX leases_by_expiry ON leases USING btree (expires_at)
index CREATE UNIQUE INDEX leases_pkey ON leases USING btree (name)
index CREATE INDEX meta_by_created ON meta USING btree (created_at) WHERE (created_at IS NOT NULL)
index CREATE UNIQUE INDEX meta_pkey ON meta USING btree (key)
index CREATE INDEX nonces_by_time ON nonces USING btree (t)
index CREATE UNIQUE INDEX nonces_pkey ON nonces USING btree (nonce_key)
index CREATE UNIQUE INDEX package_bytes_pkey ON package_bytes USING btree (package_id, kind, "offset")
index CREATE UNIQUE INDEX package_chunks_pkey ON package_chunks USING btree (package_id, "offset")
index CREATE INDEX package_tags_by_tag ON package_tags USING btree (tag, package_id)
index CREATE UNIQUE INDEX package_tags_pkey ON package_tags USING btree (package_id, tag)
index CREATE INDEX packages_by_name ON packages USING btree (name)
index CREATE UNIQUE INDEX packages_pkey ON packages USING btree (id)
index CREATE INDEX rate_events_by_key ON rate_events USING btree (key, t)
index CREATE INDEX rate_events_by_time ON rate_events USING btree (t)
index CREATE INDEX token_ranges_by_token ON token_ranges USING btree (token_hash, "offset")
