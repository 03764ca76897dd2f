-- Control database: the platform directory. Operators, tenants (where each one lives),
-- and the platform's token-signing keys (wrapped by the root key, never in clear).
-- Times are integer microseconds since the Unix epoch, UTC.
--
-- PostgreSQL translation of migrations/sqlite/control/0001_control.sql: INTEGER is
-- BIGINT, BLOB is BYTEA, and TEXT compares byte by byte (COLLATE "C"), as SQLite's
-- default BINARY collation does, whatever the database's locale. These tables have no
-- tenant_id and so no row-level security: the application role's privileges on them
-- are in grants/control.sql.

CREATE TABLE operators (
    id            TEXT    COLLATE "C" PRIMARY KEY,           -- UUIDv7
    email         TEXT    COLLATE "C" NOT NULL,
    email_key     TEXT    COLLATE "C" NOT NULL UNIQUE,       -- lower-cased e-mail: one account per address
    password_hash TEXT    COLLATE "C" NOT NULL,              -- PHC argon2id string
    created_at    BIGINT  NOT NULL
);

CREATE TABLE tenants (
    id            TEXT    COLLATE "C" PRIMARY KEY,           -- UUIDv7
    slug          TEXT    COLLATE "C" NOT NULL UNIQUE,
    display_name  TEXT    COLLATE "C" NOT NULL,
    region        TEXT    COLLATE "C" NOT NULL,
    status        TEXT    COLLATE "C" NOT NULL CHECK (status IN ('active', 'contract_ended')),
    created_at    BIGINT  NOT NULL
);

CREATE TABLE signing_keys (
    kid                 TEXT    COLLATE "C" PRIMARY KEY,     -- RFC 7638 thumbprint
    public_key          BYTEA   NOT NULL,
    wrapped_private_key BYTEA   NOT NULL,        -- PKCS#8, wrapped by the key provider
    created_at          BIGINT  NOT NULL
);
