-- The integrated form of each tenant's audit log: its signing key (wrapped by the root
-- key provider), how many entries the latest signed checkpoint covers, that checkpoint,
-- and the tlog-tiles hash tiles. Tiles are derived data: a verifier recomputes them
-- from the entries and checks them against the signed checkpoint.

CREATE TABLE audit_logs (
    tenant_id     TEXT    COLLATE "C" PRIMARY KEY REFERENCES tenant_homes (tenant_id),
    key_name      TEXT    COLLATE "C" NOT NULL,
    public_key    BYTEA   NOT NULL CHECK (octet_length(public_key) = 32),
    wrapped_seed  BYTEA   NOT NULL,
    size          BIGINT  NOT NULL DEFAULT 0 CHECK (size >= 0),
    checkpoint    TEXT    COLLATE "C"        -- signed note; NULL until the first one
);
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_logs
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE audit_tiles (
    tenant_id  TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    level      BIGINT  NOT NULL CHECK (level >= 0),
    idx        BIGINT  NOT NULL CHECK (idx >= 0),
    hashes     BYTEA   NOT NULL CHECK (octet_length(hashes) % 32 = 0 AND octet_length(hashes) BETWEEN 32 AND 8192),
    PRIMARY KEY (tenant_id, level, idx)
);
ALTER TABLE audit_tiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_tiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_tiles
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
