-- The platform's own audit trail, in the control database: the same tables (and the
-- same append-only triggers) as a tenant's trail in a region database, holding one log
-- for the pseudo-tenant with the nil id. It records what operators and the platform
-- do: operator sign-ins and changes, tenant creation, signing-key changes.
-- (The statements below are those of the region migrations 0001, 0003, 0004, 0005
-- and 0010, so both logs have exactly one shape.)

-- Region database: the data of the tenants resident in one region, and nothing else.
-- Every table holding tenant data has a tenant_id column, and every query the adapter
-- runs against it binds tenant_id from the caller's TenantScope.

CREATE TABLE tenant_homes (
    tenant_id   TEXT    PRIMARY KEY,
    slug        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

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

-- The integrated form of each tenant's audit log: its signing key (wrapped by the root
-- key provider), how many entries the latest signed checkpoint covers, that checkpoint,
-- and the tlog-tiles hash tiles. Tiles are derived data: a verifier recomputes them
-- from the entries and checks them against the signed checkpoint.

CREATE TABLE audit_logs (
    tenant_id     TEXT    PRIMARY KEY REFERENCES tenant_homes (tenant_id),
    key_name      TEXT    NOT NULL,
    public_key    BLOB    NOT NULL CHECK (length(public_key) = 32),
    wrapped_seed  BLOB    NOT NULL,
    size          INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    checkpoint    TEXT                       -- signed note; NULL until the first one
) STRICT;

CREATE TABLE audit_tiles (
    tenant_id  TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    level      INTEGER NOT NULL CHECK (level >= 0),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    hashes     BLOB    NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) BETWEEN 32 AND 8192),
    PRIMARY KEY (tenant_id, level, idx)
) STRICT;

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
    tenant_id    TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    subject      TEXT    NOT NULL,            -- actor label, e.g. "operator:<uuid>"
    wrapped_key  BLOB,                        -- NULL once erased
    created_us   INTEGER NOT NULL,
    erased_us    INTEGER,
    PRIMARY KEY (tenant_id, key_id),
    CHECK ((wrapped_key IS NULL) = (erased_us IS NOT NULL))
) STRICT;
-- At most one live key per subject.
CREATE UNIQUE INDEX audit_subjects_live ON audit_subjects (tenant_id, subject) WHERE wrapped_key IS NOT NULL;

-- A full hash tile (256 hashes) never changes again: its hashes are committed to by
-- every later checkpoint. Refuse to rewrite or remove one, so that tampering with the
-- tree needs more than an UPDATE (and the integrator re-checks the partial ones
-- against the last signed checkpoint before extending them).

CREATE TRIGGER audit_full_tiles_no_update BEFORE UPDATE ON audit_tiles
WHEN length(OLD.hashes) = 8192
BEGIN
    SELECT RAISE(ABORT, 'full audit tiles are final');
END;

CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
BEGIN
    SELECT RAISE(ABORT, 'audit tiles are append-only');
END;


INSERT INTO tenant_homes (tenant_id, slug, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'platform', 0);
