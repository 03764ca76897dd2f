-- Applications (OAuth 2.0 confidential clients) of each tenant. The client secret is
-- stored only as its SHA-256: it is 32 random bytes, so no slow hash is needed.
CREATE TABLE applications (
    tenant_id    TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    permissions  TEXT    NOT NULL,           -- space-separated permission names
    active       INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_by   TEXT    NOT NULL,           -- actor label
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
