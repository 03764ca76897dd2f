-- One-time invitations to become a tenant's user (an operator inviting the first admin).
-- Only the SHA-256 of the invitation token is stored; it works once, until it expires.
CREATE TABLE invitations (
    tenant_id   TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    hash        BYTEA   NOT NULL CHECK (octet_length(hash) = 32),
    email       TEXT    COLLATE "C" NOT NULL,
    role        TEXT    COLLATE "C" NOT NULL,
    created_by  TEXT    COLLATE "C" NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (tenant_id, hash)
);
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
