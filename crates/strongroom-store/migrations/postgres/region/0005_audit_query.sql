-- Audit-trail queries filter by actor and target as well as by action and time.
CREATE INDEX audit_entries_by_actor ON audit_entries (tenant_id, actor, seq);
CREATE INDEX audit_entries_by_target ON audit_entries (tenant_id, target, seq);

-- Per-subject keys for the personal data (IP address, user agent) inside audit entries,
-- wrapped by the root key provider (docs/formats/audit.md, "Personal data"). Erasing a
-- subject sets wrapped_key to NULL: the sealed data in its entries becomes unreadable
-- while every entry, and so every proof, stays byte for byte the same.
--
-- No foreign key to tenant_homes: the entry that creates a tenant is sealed (and its
-- subject key stored) before the tenant's home row exists.
CREATE TABLE audit_subjects (
    tenant_id    TEXT    COLLATE "C" NOT NULL,
    key_id       TEXT    COLLATE "C" NOT NULL,
    subject      TEXT    COLLATE "C" NOT NULL,  -- actor label, e.g. "operator:<uuid>"
    wrapped_key  BYTEA,                         -- NULL once erased
    created_us   BIGINT  NOT NULL,
    erased_us    BIGINT,
    PRIMARY KEY (tenant_id, key_id),
    CHECK ((wrapped_key IS NULL) = (erased_us IS NOT NULL))
);
-- At most one live key per subject.
CREATE UNIQUE INDEX audit_subjects_live ON audit_subjects (tenant_id, subject) WHERE wrapped_key IS NOT NULL;
ALTER TABLE audit_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_subjects
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
