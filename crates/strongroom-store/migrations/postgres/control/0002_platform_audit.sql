-- The platform's own audit trail, in the control database: the same tables (and the
-- same append-only triggers) as a tenant's trail in a region database, holding one log
-- for the pseudo-tenant with the nil id. It records what operators and the platform
-- do: operator sign-ins and changes, tenant creation, signing-key changes.
-- (The statements below are those of the region migrations 0001, 0003, 0004, 0005
-- and 0010, so both logs have exactly one shape — row-level security included: the
-- adapter sets app.tenant_id to the nil id in every control-database transaction.)

-- Region database: the data of the tenants resident in one region, and nothing else.
-- Every table holding tenant data has a tenant_id column, and every query the adapter
-- runs against it binds tenant_id from the caller's TenantScope.

CREATE TABLE tenant_homes (
    tenant_id   TEXT    COLLATE "C" PRIMARY KEY,
    slug        TEXT    COLLATE "C" NOT NULL,
    created_at  BIGINT  NOT NULL
);

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

-- The integrated form of each tenant's audit log: its signing key (wrapped by the root
-- key provider), how many entries the latest signed checkpoint covers, that checkpoint,
-- and the tlog-tiles hash tiles. Tiles are derived data: a verifier recomputes them
-- from the entries and checks them against the signed checkpoint.

CREATE TABLE audit_logs (
    tenant_id     TEXT    COLLATE "C" PRIMARY KEY REFERENCES tenant_homes (tenant_id),
    key_name      TEXT    COLLATE "C" NOT NULL,
    public_key    BYTEA   NOT NULL CHECK (octet_length(public_key) = 32),
    wrapped_seed  BYTEA   NOT NULL,
    size          BIGINT  NOT NULL DEFAULT 0 CHECK (size >= 0),
    checkpoint    TEXT    COLLATE "C"        -- signed note; NULL until the first one
);
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_logs
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE audit_tiles (
    tenant_id  TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    level      BIGINT  NOT NULL CHECK (level >= 0),
    idx        BIGINT  NOT NULL CHECK (idx >= 0),
    hashes     BYTEA   NOT NULL CHECK (octet_length(hashes) % 32 = 0 AND octet_length(hashes) BETWEEN 32 AND 8192),
    PRIMARY KEY (tenant_id, level, idx)
);
ALTER TABLE audit_tiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_tiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_tiles
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

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

-- A full hash tile (256 hashes) never changes again: its hashes are committed to by
-- every later checkpoint. Refuse to rewrite or remove one, so that tampering with the
-- tree needs more than an UPDATE (and the integrator re-checks the partial ones
-- against the last signed checkpoint before extending them).

CREATE FUNCTION audit_full_tiles_no_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'full audit tiles are final';
END;
$$;
CREATE TRIGGER audit_full_tiles_no_update BEFORE UPDATE ON audit_tiles
FOR EACH ROW WHEN (octet_length(OLD.hashes) = 8192)
EXECUTE FUNCTION audit_full_tiles_no_update();

CREATE FUNCTION audit_tiles_no_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'audit tiles are append-only';
END;
$$;
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
FOR EACH ROW EXECUTE FUNCTION audit_tiles_no_delete();
CREATE TRIGGER audit_tiles_no_truncate BEFORE TRUNCATE ON audit_tiles
FOR EACH STATEMENT EXECUTE FUNCTION audit_tiles_no_delete();

INSERT INTO tenant_homes (tenant_id, slug, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'platform', 0);

-- Row-level security on tenant_homes comes after its one row: forced security binds
-- the owner too, and no app.tenant_id is set while migrating.
ALTER TABLE tenant_homes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_homes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_homes
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
