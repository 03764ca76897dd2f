-- The integrated form of each tenant's audit log: its signing key (wrapped by the root
-- key provider), how many entries the latest signed checkpoint covers, that checkpoint,
-- and the tlog-tiles hash tiles. Tiles are derived data: a verifier recomputes them
-- from the entries and checks them against the signed checkpoint.

CREATE TABLE audit_logs (
    tenant_id     TEXT    PRIMARY KEY REFERENCES tenant_homes (tenant_id),
    key_name      TEXT    NOT NULL,
    public_key    BLOB    NOT NULL CHECK (length(public_key) = 32),
    wrapped_seed  BLOB    NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    checkpoint    TEXT                       -- signed note; NULL until the first one
) STRICT;

CREATE TABLE audit_tiles (
    tenant_id  TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    level      INTEGER NOT NULL CHECK (level >= 0),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    hashes     BLOB    NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) BETWEEN 32 AND 8192),
    PRIMARY KEY (tenant_id, level, idx)
) STRICT;
