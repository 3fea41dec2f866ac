-- Kong 3.10's core schema, as its core migrations 000_base to
-- 025_390_to_3100 leave a fresh database (see migrations.go). Written for
-- gong; Kong reads and writes the same tables.

-- batch_delete_expired_rows removes a few expired rows of the table that
-- fired it, the column holding the expiry given as the trigger argument.
CREATE FUNCTION batch_delete_expired_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format(
    'DELETE FROM %1$I WHERE ctid IN (SELECT ctid FROM %1$I WHERE %2$I < CURRENT_TIMESTAMP AT TIME ZONE ''UTC'' ORDER BY %2$I LIMIT 2 FOR UPDATE SKIP LOCKED)',
    TG_TABLE_NAME, TG_ARGV[0]);
  RETURN NULL;
END;
$$;

-- sync_tags keeps the tags table, one row per tagged entity, in step with
-- the tags column of the entity tables.
CREATE FUNCTION sync_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  CASE TG_OP
  WHEN 'TRUNCATE' THEN
    DELETE FROM tags WHERE entity_name = TG_TABLE_NAME;
    RETURN NULL;
  WHEN 'DELETE' THEN
    DELETE FROM tags WHERE entity_id = OLD.id;
    RETURN OLD;
  ELSE
    INSERT INTO tags (entity_id, entity_name, tags) VALUES (NEW.id, TG_TABLE_NAME, NEW.tags)
      ON CONFLICT (entity_id) DO UPDATE SET tags = EXCLUDED.tags;
    RETURN NEW;
  END CASE;
END;
$$;

CREATE TABLE ca_certificates (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    cert text NOT NULL,
    tags text[],
    cert_digest text NOT NULL,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE certificates (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    cert text,
    key text,
    tags text[],
    ws_id uuid,
    cert_alt text,
    key_alt text,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE cluster_events (
    id uuid NOT NULL,
    node_id uuid NOT NULL,
    at timestamp with time zone NOT NULL,
    nbf timestamp with time zone,
    expire_at timestamp with time zone NOT NULL,
    channel text,
    data text
);

CREATE TABLE clustering_data_planes (
    id uuid NOT NULL,
    hostname text NOT NULL,
    ip text NOT NULL,
    last_seen timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    config_hash text NOT NULL,
    ttl timestamp with time zone,
    version text,
    sync_status text DEFAULT 'unknown'::text NOT NULL,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    labels jsonb,
    cert_details jsonb,
    rpc_capabilities text[]
);

CREATE TABLE clustering_rpc_requests (
    id bigint NOT NULL,
    node_id uuid NOT NULL,
    reply_to uuid NOT NULL,
    ttl timestamp with time zone NOT NULL,
    payload json NOT NULL
);

CREATE SEQUENCE clustering_rpc_requests_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE clustering_rpc_requests_id_seq OWNED BY clustering_rpc_requests.id;

CREATE TABLE clustering_sync_version (
    version bigint NOT NULL
);

CREATE SEQUENCE clustering_sync_version_version_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE clustering_sync_version_version_seq OWNED BY clustering_sync_version.version;

CREATE TABLE consumers (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    username text,
    custom_id text,
    tags text[],
    ws_id uuid,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE filter_chains (
    id uuid NOT NULL,
    name text,
    enabled boolean DEFAULT true,
    route_id uuid,
    service_id uuid,
    ws_id uuid,
    cache_key text,
    filters jsonb[],
    tags text[],
    created_at timestamp with time zone,
    updated_at timestamp with time zone
);

CREATE TABLE key_sets (
    id uuid NOT NULL,
    name text,
    tags text[],
    ws_id uuid,
    created_at timestamp with time zone,
    updated_at timestamp with time zone
);

CREATE TABLE keys (
    id uuid NOT NULL,
    set_id uuid,
    name text,
    cache_key text,
    ws_id uuid,
    kid text,
    jwk text,
    pem jsonb,
    tags text[],
    created_at timestamp with time zone,
    updated_at timestamp with time zone
);

CREATE TABLE parameters (
    key text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone
);

CREATE TABLE plugins (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    name text NOT NULL,
    consumer_id uuid,
    service_id uuid,
    route_id uuid,
    config jsonb NOT NULL,
    enabled boolean NOT NULL,
    cache_key text,
    protocols text[],
    tags text[],
    ws_id uuid,
    instance_name text,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE routes (
    id uuid NOT NULL,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    name text,
    service_id uuid,
    protocols text[],
    methods text[],
    hosts text[],
    paths text[],
    snis text[],
    sources jsonb[],
    destinations jsonb[],
    regex_priority bigint,
    strip_path boolean,
    preserve_host boolean,
    tags text[],
    https_redirect_status_code integer,
    headers jsonb,
    path_handling text DEFAULT 'v0'::text,
    ws_id uuid,
    request_buffering boolean,
    response_buffering boolean,
    expression text,
    priority bigint
);

CREATE TABLE services (
    id uuid NOT NULL,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    name text,
    retries bigint,
    protocol text,
    host text,
    port bigint,
    path text,
    connect_timeout bigint,
    write_timeout bigint,
    read_timeout bigint,
    tags text[],
    client_certificate_id uuid,
    tls_verify boolean,
    tls_verify_depth smallint,
    ca_certificates uuid[],
    ws_id uuid,
    enabled boolean DEFAULT true
);

CREATE TABLE sm_vaults (
    id uuid NOT NULL,
    ws_id uuid,
    prefix text,
    name text NOT NULL,
    description text,
    config jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    updated_at timestamp with time zone,
    tags text[]
);

CREATE TABLE snis (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    name text NOT NULL,
    certificate_id uuid,
    tags text[],
    ws_id uuid,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE tags (
    entity_id uuid NOT NULL,
    entity_name text,
    tags text[]
);

CREATE TABLE targets (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text),
    upstream_id uuid,
    target text NOT NULL,
    weight integer NOT NULL,
    tags text[],
    ws_id uuid,
    cache_key text,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE upstreams (
    id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(3) AT TIME ZONE 'UTC'::text),
    name text,
    hash_on text,
    hash_fallback text,
    hash_on_header text,
    hash_fallback_header text,
    hash_on_cookie text,
    hash_on_cookie_path text,
    slots integer NOT NULL,
    healthchecks jsonb,
    tags text[],
    algorithm text,
    host_header text,
    client_certificate_id uuid,
    ws_id uuid,
    hash_on_query_arg text,
    hash_fallback_query_arg text,
    hash_on_uri_capture text,
    hash_fallback_uri_capture text,
    use_srv_name boolean DEFAULT false,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

CREATE TABLE workspaces (
    id uuid NOT NULL,
    name text,
    comment text,
    created_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text),
    meta jsonb,
    config jsonb,
    updated_at timestamp with time zone DEFAULT (CURRENT_TIMESTAMP(0) AT TIME ZONE 'UTC'::text)
);

ALTER TABLE ONLY clustering_rpc_requests ALTER COLUMN id SET DEFAULT nextval('clustering_rpc_requests_id_seq'::regclass);

ALTER TABLE ONLY clustering_sync_version ALTER COLUMN version SET DEFAULT nextval('clustering_sync_version_version_seq'::regclass);

ALTER TABLE ONLY ca_certificates ADD CONSTRAINT ca_certificates_cert_digest_key UNIQUE (cert_digest);

ALTER TABLE ONLY ca_certificates ADD CONSTRAINT ca_certificates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY certificates ADD CONSTRAINT certificates_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY certificates ADD CONSTRAINT certificates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cluster_events ADD CONSTRAINT cluster_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY clustering_data_planes ADD CONSTRAINT clustering_data_planes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY clustering_rpc_requests ADD CONSTRAINT clustering_rpc_requests_pkey PRIMARY KEY (id);

ALTER TABLE ONLY clustering_sync_version ADD CONSTRAINT clustering_sync_version_pkey PRIMARY KEY (version);

ALTER TABLE ONLY consumers ADD CONSTRAINT consumers_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY consumers ADD CONSTRAINT consumers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY consumers ADD CONSTRAINT consumers_ws_id_custom_id_unique UNIQUE (ws_id, custom_id);

ALTER TABLE ONLY consumers ADD CONSTRAINT consumers_ws_id_username_unique UNIQUE (ws_id, username);

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_cache_key_key UNIQUE (cache_key);

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_name_key UNIQUE (name);

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_pkey PRIMARY KEY (id);

ALTER TABLE ONLY key_sets ADD CONSTRAINT key_sets_name_key UNIQUE (name);

ALTER TABLE ONLY key_sets ADD CONSTRAINT key_sets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY keys ADD CONSTRAINT keys_cache_key_key UNIQUE (cache_key);

ALTER TABLE ONLY keys ADD CONSTRAINT keys_kid_set_id_key UNIQUE (kid, set_id);

ALTER TABLE ONLY keys ADD CONSTRAINT keys_name_key UNIQUE (name);

ALTER TABLE ONLY keys ADD CONSTRAINT keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY parameters ADD CONSTRAINT parameters_pkey PRIMARY KEY (key);

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_cache_key_key UNIQUE (cache_key);

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_pkey PRIMARY KEY (id);

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_ws_id_instance_name_unique UNIQUE (ws_id, instance_name);

ALTER TABLE ONLY routes ADD CONSTRAINT routes_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY routes ADD CONSTRAINT routes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY routes ADD CONSTRAINT routes_ws_id_name_unique UNIQUE (ws_id, name);

ALTER TABLE ONLY services ADD CONSTRAINT services_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY services ADD CONSTRAINT services_pkey PRIMARY KEY (id);

ALTER TABLE ONLY services ADD CONSTRAINT services_ws_id_name_unique UNIQUE (ws_id, name);

ALTER TABLE ONLY sm_vaults ADD CONSTRAINT sm_vaults_id_ws_id_key UNIQUE (id, ws_id);

ALTER TABLE ONLY sm_vaults ADD CONSTRAINT sm_vaults_pkey PRIMARY KEY (id);

ALTER TABLE ONLY sm_vaults ADD CONSTRAINT sm_vaults_prefix_key UNIQUE (prefix);

ALTER TABLE ONLY sm_vaults ADD CONSTRAINT sm_vaults_prefix_ws_id_key UNIQUE (prefix, ws_id);

ALTER TABLE ONLY snis ADD CONSTRAINT snis_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY snis ADD CONSTRAINT snis_name_key UNIQUE (name);

ALTER TABLE ONLY snis ADD CONSTRAINT snis_pkey PRIMARY KEY (id);

ALTER TABLE ONLY tags ADD CONSTRAINT tags_pkey PRIMARY KEY (entity_id);

ALTER TABLE ONLY targets ADD CONSTRAINT targets_cache_key_key UNIQUE (cache_key);

ALTER TABLE ONLY targets ADD CONSTRAINT targets_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY targets ADD CONSTRAINT targets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY upstreams ADD CONSTRAINT upstreams_id_ws_id_unique UNIQUE (id, ws_id);

ALTER TABLE ONLY upstreams ADD CONSTRAINT upstreams_pkey PRIMARY KEY (id);

ALTER TABLE ONLY upstreams ADD CONSTRAINT upstreams_ws_id_name_unique UNIQUE (ws_id, name);

ALTER TABLE ONLY workspaces ADD CONSTRAINT workspaces_name_key UNIQUE (name);

ALTER TABLE ONLY workspaces ADD CONSTRAINT workspaces_pkey PRIMARY KEY (id);

CREATE INDEX certificates_tags_idx ON certificates USING gin (tags);

CREATE INDEX cluster_events_at_idx ON cluster_events USING btree (at);

CREATE INDEX cluster_events_channel_idx ON cluster_events USING btree (channel);

CREATE INDEX cluster_events_expire_at_idx ON cluster_events USING btree (expire_at);

CREATE INDEX clustering_data_planes_ttl_idx ON clustering_data_planes USING btree (ttl);

CREATE INDEX clustering_rpc_requests_node_id_idx ON clustering_rpc_requests USING btree (node_id);

CREATE INDEX consumers_tags_idx ON consumers USING gin (tags);

CREATE INDEX consumers_username_idx ON consumers USING btree (lower(username));

CREATE UNIQUE INDEX filter_chains_cache_key_idx ON filter_chains USING btree (cache_key);

CREATE UNIQUE INDEX filter_chains_name_idx ON filter_chains USING btree (name);

CREATE INDEX filter_chains_tags_idx ON filter_chains USING gin (tags);

CREATE INDEX key_sets_tags_idx ON key_sets USING gin (tags);

CREATE INDEX keys_fkey_key_sets ON keys USING btree (set_id);

CREATE INDEX keys_tags_idx ON keys USING gin (tags);

CREATE INDEX plugins_consumer_id_idx ON plugins USING btree (consumer_id);

CREATE INDEX plugins_name_idx ON plugins USING btree (name);

CREATE INDEX plugins_route_id_idx ON plugins USING btree (route_id);

CREATE INDEX plugins_service_id_idx ON plugins USING btree (service_id);

CREATE INDEX plugins_tags_idx ON plugins USING gin (tags);

CREATE INDEX routes_service_id_idx ON routes USING btree (service_id);

CREATE INDEX routes_tags_idx ON routes USING gin (tags);

CREATE INDEX services_fkey_client_certificate ON services USING btree (client_certificate_id);

CREATE INDEX services_tags_idx ON services USING gin (tags);

CREATE INDEX sm_vaults_tags_idx ON sm_vaults USING gin (tags);

CREATE INDEX snis_certificate_id_idx ON snis USING btree (certificate_id);

CREATE INDEX snis_tags_idx ON snis USING gin (tags);

CREATE INDEX tags_entity_name_idx ON tags USING btree (entity_name);

CREATE INDEX tags_tags_idx ON tags USING gin (tags);

CREATE INDEX targets_tags_idx ON targets USING gin (tags);

CREATE INDEX targets_target_idx ON targets USING btree (target);

CREATE INDEX targets_upstream_id_idx ON targets USING btree (upstream_id);

CREATE INDEX upstreams_fkey_client_certificate ON upstreams USING btree (client_certificate_id);

CREATE INDEX upstreams_tags_idx ON upstreams USING gin (tags);

CREATE TRIGGER ca_certificates_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON ca_certificates FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER certificates_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON certificates FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER cluster_events_ttl_trigger AFTER INSERT ON cluster_events FOR EACH STATEMENT EXECUTE FUNCTION batch_delete_expired_rows('expire_at');

CREATE TRIGGER clustering_data_planes_ttl_trigger AFTER INSERT ON clustering_data_planes FOR EACH STATEMENT EXECUTE FUNCTION batch_delete_expired_rows('ttl');

CREATE TRIGGER consumers_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON consumers FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER filter_chains_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON filter_chains FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER key_sets_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON key_sets FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER keys_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON keys FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER plugins_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON plugins FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER routes_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON routes FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER services_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON services FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER sm_vaults_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON sm_vaults FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER snis_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON snis FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER targets_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON targets FOR EACH ROW EXECUTE FUNCTION sync_tags();

CREATE TRIGGER upstreams_sync_tags_trigger AFTER INSERT OR DELETE OR UPDATE OF tags ON upstreams FOR EACH ROW EXECUTE FUNCTION sync_tags();

ALTER TABLE ONLY certificates ADD CONSTRAINT certificates_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY consumers ADD CONSTRAINT consumers_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_route_id_fkey FOREIGN KEY (route_id) REFERENCES routes(id) ON DELETE CASCADE;

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_service_id_fkey FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE CASCADE;

ALTER TABLE ONLY filter_chains ADD CONSTRAINT filter_chains_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY key_sets ADD CONSTRAINT key_sets_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY keys ADD CONSTRAINT keys_set_id_fkey FOREIGN KEY (set_id) REFERENCES key_sets(id) ON DELETE CASCADE;

ALTER TABLE ONLY keys ADD CONSTRAINT keys_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_consumer_id_fkey FOREIGN KEY (consumer_id, ws_id) REFERENCES consumers(id, ws_id) ON DELETE CASCADE;

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_route_id_fkey FOREIGN KEY (route_id, ws_id) REFERENCES routes(id, ws_id) ON DELETE CASCADE;

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_service_id_fkey FOREIGN KEY (service_id, ws_id) REFERENCES services(id, ws_id) ON DELETE CASCADE;

ALTER TABLE ONLY plugins ADD CONSTRAINT plugins_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY routes ADD CONSTRAINT routes_service_id_fkey FOREIGN KEY (service_id, ws_id) REFERENCES services(id, ws_id);

ALTER TABLE ONLY routes ADD CONSTRAINT routes_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY services ADD CONSTRAINT services_client_certificate_id_fkey FOREIGN KEY (client_certificate_id, ws_id) REFERENCES certificates(id, ws_id);

ALTER TABLE ONLY services ADD CONSTRAINT services_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY sm_vaults ADD CONSTRAINT sm_vaults_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY snis ADD CONSTRAINT snis_certificate_id_fkey FOREIGN KEY (certificate_id, ws_id) REFERENCES certificates(id, ws_id);

ALTER TABLE ONLY snis ADD CONSTRAINT snis_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY targets ADD CONSTRAINT targets_upstream_id_fkey FOREIGN KEY (upstream_id, ws_id) REFERENCES upstreams(id, ws_id) ON DELETE CASCADE;

ALTER TABLE ONLY targets ADD CONSTRAINT targets_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

ALTER TABLE ONLY upstreams ADD CONSTRAINT upstreams_client_certificate_id_fkey FOREIGN KEY (client_certificate_id) REFERENCES certificates(id);

ALTER TABLE ONLY upstreams ADD CONSTRAINT upstreams_ws_id_fkey FOREIGN KEY (ws_id) REFERENCES workspaces(id);

-- Bookkeeping of Kong's connector: migration state and cluster mutexes.
CREATE TABLE schema_meta (
    key text NOT NULL,
    subsystem text NOT NULL,
    last_executed text,
    executed text[],
    pending text[],
    PRIMARY KEY (key, subsystem)
);

CREATE TABLE locks (
    key text PRIMARY KEY,
    owner text,
    ttl timestamp with time zone
);

CREATE INDEX locks_ttl_idx ON locks USING btree (ttl);

INSERT INTO workspaces (id, name) VALUES (gen_random_uuid(), 'default');

INSERT INTO parameters (key, value) VALUES ('cluster_id', gen_random_uuid()::text);
