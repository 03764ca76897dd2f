-- One-time invitations to become a tenant's user (an operator inviting the first admin).
-- Only the SHA-256 of the invitation token is stored; it works once, until it expires.
CREATE TABLE invitations (
    tenant_id   TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (tenant_id, hash)
) STRICT;
