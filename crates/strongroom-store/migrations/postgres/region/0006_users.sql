-- Tenant users, their role grants (apart from the profile, with who granted them),
-- their sign-in sessions and refresh tokens. Every row carries tenant_id; every query
-- binds it from the caller's TenantScope.

CREATE TABLE users (
    tenant_id      TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    id             TEXT    COLLATE "C" NOT NULL,
    email          TEXT    COLLATE "C" NOT NULL,  -- as given
    email_key      TEXT    COLLATE "C" NOT NULL,  -- lower-case: unique per tenant
    password_hash  TEXT    COLLATE "C" NOT NULL,  -- PHC string (argon2id)
    status         TEXT    COLLATE "C" NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email_key)
);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE role_grants (
    tenant_id   TEXT    COLLATE "C" NOT NULL,
    user_id     TEXT    COLLATE "C" NOT NULL,
    role        TEXT    COLLATE "C" NOT NULL,
    granted_by  TEXT    COLLATE "C" NOT NULL,     -- actor label, e.g. "user:<uuid>", "local-admin"
    granted_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
ALTER TABLE role_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON role_grants
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE sessions (
    tenant_id   TEXT    COLLATE "C" NOT NULL,
    id          TEXT    COLLATE "C" NOT NULL,
    user_id     TEXT    COLLATE "C" NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- Refresh tokens are stored as SHA-256 hashes. A token is used once: presenting a used
-- one again means it was stolen or replayed, and the whole session is revoked.
CREATE TABLE refresh_tokens (
    tenant_id   TEXT    COLLATE "C" NOT NULL,
    hash        BYTEA   NOT NULL CHECK (octet_length(hash) = 32),
    session_id  TEXT    COLLATE "C" NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (tenant_id, hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
