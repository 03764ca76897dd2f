-- Whether a session was opened with a verified second factor. A session opened without
-- one is re-checked against the tenant's MFA policy on every request, so a role that
-- needs a factor, granted mid-session, restricts the session at once.
ALTER TABLE sessions ADD COLUMN second_factor BIGINT NOT NULL DEFAULT 0 CHECK (second_factor IN (0, 1));
