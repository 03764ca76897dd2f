-- Tenant users, their role grants (apart from the profile, with who granted them),
-- their sign-in sessions and refresh tokens. Every row carries tenant_id; every query
-- binds it from the caller's TenantScope.

CREATE TABLE users (
    tenant_id      TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    id             TEXT    NOT NULL,
    email          TEXT    NOT NULL,            -- as given
    email_key      TEXT    NOT NULL,            -- lower-case: unique per tenant
    password_hash  TEXT    NOT NULL,            -- PHC string (argon2id)
    status         TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email_key)
) STRICT;

CREATE TABLE role_grants (
    tenant_id   TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    granted_by  TEXT    NOT NULL,               -- actor label, e.g. "user:<uuid>", "local-admin"
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) STRICT;

CREATE TABLE sessions (
    tenant_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) STRICT;
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);

-- Refresh tokens are stored as SHA-256 hashes. A token is used once: presenting a used
-- one again means it was stolen or replayed, and the whole session is revoked.
CREATE TABLE refresh_tokens (
    tenant_id   TEXT    NOT NULL,
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    session_id  TEXT    NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (tenant_id, hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
) STRICT;
