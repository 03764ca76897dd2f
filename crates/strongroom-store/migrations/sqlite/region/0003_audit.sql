-- The audit trail of each tenant in this region: an append-only log of canonical
-- entries (docs/formats/audit.md). Rows are only ever inserted: the triggers below make
-- the database itself refuse UPDATE and DELETE, whoever asks.

CREATE TABLE audit_entries (
    tenant_id   TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    time_us     INTEGER NOT NULL,              -- the entry's time, for range queries
    action      TEXT    NOT NULL,              -- copies of entry fields, for filters
    actor       TEXT    NOT NULL,              -- "<kind>:<id>"
    target      TEXT    NOT NULL,              -- "<kind>:<id>"
    entry       BLOB    NOT NULL,              -- canonical bytes: what the leaf hash covers
    leaf_hash   BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (tenant_id, seq)
) STRICT;
CREATE INDEX audit_entries_by_action ON audit_entries (tenant_id, action, seq);
CREATE INDEX audit_entries_by_time ON audit_entries (tenant_id, time_us);

CREATE TRIGGER audit_entries_are_never_updated BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

CREATE TRIGGER audit_entries_are_never_deleted BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
