-- The audit trail of each tenant in this region: an append-only log of canonical
-- entries (docs/formats/audit.md). Rows are only ever inserted: the triggers below make
-- the database itself refuse UPDATE and DELETE, whoever asks. (On PostgreSQL the
-- application role is also never granted UPDATE or DELETE on this table, so its
-- attempts fail the privilege check before any trigger runs; the triggers refuse
-- everyone else, the owner included. TRUNCATE, which fires no row trigger, is
-- refused by a statement trigger of its own.)

CREATE TABLE audit_entries (
    tenant_id   TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    seq         BIGINT  NOT NULL CHECK (seq >= 0),
    time_us     BIGINT  NOT NULL,              -- the entry's time, for range queries
    action      TEXT    COLLATE "C" NOT NULL,  -- copies of entry fields, for filters
    actor       TEXT    COLLATE "C" NOT NULL,  -- "<kind>:<id>"
    target      TEXT    COLLATE "C" NOT NULL,  -- "<kind>:<id>"
    entry       BYTEA   NOT NULL,              -- canonical bytes: what the leaf hash covers
    leaf_hash   BYTEA   NOT NULL CHECK (octet_length(leaf_hash) = 32),
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_entries_by_action ON audit_entries (tenant_id, action, seq);
CREATE INDEX audit_entries_by_time ON audit_entries (tenant_id, time_us);
ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_entries
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION audit_entries_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END;
$$;
CREATE TRIGGER audit_entries_are_never_updated BEFORE UPDATE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_are_never_updated();

CREATE FUNCTION audit_entries_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END;
$$;
CREATE TRIGGER audit_entries_are_never_deleted BEFORE DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_are_never_deleted();
CREATE TRIGGER audit_entries_are_never_truncated BEFORE TRUNCATE ON audit_entries
FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_are_never_deleted();
