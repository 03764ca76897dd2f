-- Keys and sealed data of the tenants in this region.
--
-- tenant_keks: each tenant's key-encryption keys, wrapped by a key provider (root key
--   file or an HSM); after a KEK rotation only the newest remains.
-- data_keys: each tenant's data keys, wrapped by one of its KEKs. seals_reserved counts
--   the AES-GCM nonces handed out under the key (the usage budget).
-- Crypto-shredding deletes both tables' rows for the tenant and stamps
-- tenant_homes.keys_destroyed_at. (On SQLite, secure_delete and a WAL checkpoint make
-- sure the wrapped bytes do not linger in free pages or the log; PostgreSQL has no
-- equivalent: dead tuples stay until VACUUM reclaims them, and the WAL and any base
-- backups keep them as long as they are retained.)
-- sealed_values: small sealed objects (tenant secrets, …), ciphertext only.
-- blobs: metadata of encrypted streams kept as files in the region's blob directory.

ALTER TABLE tenant_homes ADD COLUMN keys_destroyed_at BIGINT;

CREATE TABLE tenant_keks (
    tenant_id   TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    version     BIGINT  NOT NULL CHECK (version > 0),
    provider    TEXT    COLLATE "C" NOT NULL,
    wrapped     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
ALTER TABLE tenant_keks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_keks
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE data_keys (
    tenant_id       TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    version         BIGINT  NOT NULL CHECK (version > 0),
    kek_version     BIGINT  NOT NULL,
    wrapped         BYTEA   NOT NULL,
    created_at      BIGINT  NOT NULL,
    seals_reserved  BIGINT  NOT NULL DEFAULT 0 CHECK (seals_reserved >= 0),
    PRIMARY KEY (tenant_id, version)
);
ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_keys
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE sealed_values (
    tenant_id    TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    kind         TEXT    COLLATE "C" NOT NULL,
    id           TEXT    COLLATE "C" NOT NULL,
    version      BIGINT  NOT NULL CHECK (version > 0),
    dek_version  BIGINT  NOT NULL,
    sealed       BYTEA   NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
);
CREATE INDEX sealed_values_by_key ON sealed_values (tenant_id, kind, dek_version);
ALTER TABLE sealed_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE sealed_values FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sealed_values
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE blobs (
    tenant_id    TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    id           TEXT    COLLATE "C" NOT NULL,
    dek_version  BIGINT  NOT NULL,
    size         BIGINT  NOT NULL CHECK (size >= 0),
    file         TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX blobs_by_key ON blobs (tenant_id, dek_version);
ALTER TABLE blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE blobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON blobs
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
