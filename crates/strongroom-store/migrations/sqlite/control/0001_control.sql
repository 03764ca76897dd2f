-- Control database: the platform directory. Operators, tenants (where each one lives),
-- and the platform's token-signing keys (wrapped by the root key, never in clear).
-- Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE operators (
    id            TEXT    PRIMARY KEY,           -- UUIDv7
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL UNIQUE,       -- lower-cased e-mail: one account per address
    password_hash TEXT    NOT NULL,              -- PHC argon2id string
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE tenants (
    id            TEXT    PRIMARY KEY,           -- UUIDv7
    slug          TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'contract_ended')),
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid                 TEXT    PRIMARY KEY,     -- RFC 7638 thumbprint
    public_key          BLOB    NOT NULL,
    wrapped_private_key BLOB    NOT NULL,        -- PKCS#8, wrapped by the key provider
    created_at          INTEGER NOT NULL
) STRICT;
