-- A session opened by a user whom the tenant's MFA policy requires to have a second
-- factor, but who has none yet: it carries no permissions and can only enrol one.
ALTER TABLE sessions ADD COLUMN restricted BIGINT NOT NULL DEFAULT 0 CHECK (restricted IN (0, 1));
