-- Operators can be disabled (their tokens stop working at the next request; the row is
-- kept: the trail names them), and can have a TOTP second factor (its state wrapped by
-- the root key provider, never in clear). Token-signing keys can be revoked: a revoked
-- key stops verifying at the next reload and leaves the JWKS.
ALTER TABLE operators ADD COLUMN disabled_at BIGINT;
ALTER TABLE operators ADD COLUMN mfa BYTEA;
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
