-- Keys and sealed data of the tenants in this region.
--
-- tenant_keks: each tenant's key-encryption keys, wrapped by a key provider (root key
--   file or an HSM); after a KEK rotation only the newest remains.
-- data_keys: each tenant's data keys, wrapped by one of its KEKs. seals_reserved counts
--   the AES-GCM nonces handed out under the key (the usage budget).
-- Crypto-shredding deletes both tables' rows for the tenant and stamps
-- tenant_homes.keys_destroyed_at; secure_delete and a WAL checkpoint make sure the
-- wrapped bytes do not linger in free pages or the log.
-- sealed_values: small sealed objects (tenant secrets, …), ciphertext only.
-- blobs: metadata of encrypted streams kept as files in the region's blob directory.

ALTER TABLE tenant_homes ADD COLUMN keys_destroyed_at INTEGER;

CREATE TABLE tenant_keks (
    tenant_id   TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    version     INTEGER NOT NULL CHECK (version > 0),
    provider    TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT;

CREATE TABLE data_keys (
    tenant_id       TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    version         INTEGER NOT NULL CHECK (version > 0),
    kek_version     INTEGER NOT NULL,
    wrapped         BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    seals_reserved  INTEGER NOT NULL DEFAULT 0 CHECK (seals_reserved >= 0),
    PRIMARY KEY (tenant_id, version)
) STRICT;

CREATE TABLE sealed_values (
    tenant_id    TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    kind         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    dek_version  INTEGER NOT NULL,
    sealed       BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
) STRICT;
CREATE INDEX sealed_values_by_key ON sealed_values (tenant_id, kind, dek_version);

CREATE TABLE blobs (
    tenant_id    TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    id           TEXT    NOT NULL,
    dek_version  INTEGER NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    file         TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX blobs_by_key ON blobs (tenant_id, dek_version);
