-- Applications (OAuth 2.0 confidential clients) of each tenant. The client secret is
-- stored only as its SHA-256: it is 32 random bytes, so no slow hash is needed.
CREATE TABLE applications (
    tenant_id    TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    id           TEXT    COLLATE "C" NOT NULL,
    name         TEXT    COLLATE "C" NOT NULL,
    secret_hash  BYTEA   NOT NULL CHECK (octet_length(secret_hash) = 32),
    permissions  TEXT    COLLATE "C" NOT NULL,  -- space-separated permission names
    active       BIGINT  NOT NULL CHECK (active IN (0, 1)),
    created_by   TEXT    COLLATE "C" NOT NULL,  -- actor label
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE applications ENABLE ROW LEVEL SECURITY;
ALTER TABLE applications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON applications
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
