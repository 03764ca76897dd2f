-- Regulated records (docs/formats/records.md): typed, versioned, immutable once
-- approved, with 21 CFR Part 11 electronic signatures.
--
-- What may change and what may not is enforced here, not only in the code: revisions,
-- signatures and record-type versions are append-only; a version row is frozen once
-- approved; nothing in these tables is ever deleted. Content is sealed under the
-- tenant's data keys; only what listing needs (ids, type, status, times, creator id) is
-- plaintext. Searchable fields are stored as blind-index tokens (HMAC-SHA-256), never as
-- values.
--
-- (On PostgreSQL, TRUNCATE fires no row trigger: each table whose rows are never
-- deleted also refuses TRUNCATE, with the message of its DELETE trigger.)

-- Tenant users gain a printed name (what a signature's manifestation shows).
ALTER TABLE users ADD COLUMN full_name TEXT COLLATE "C" NOT NULL DEFAULT '';

-- One row per version of a record type's definition (JSON: schema, signature policy,
-- searchable fields, retention). Changing a type appends version n+1.
CREATE TABLE record_types (
    tenant_id    TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    name         TEXT    COLLATE "C" NOT NULL,
    version      BIGINT  NOT NULL CHECK (version > 0),
    definition   TEXT    COLLATE "C" NOT NULL,
    created_by   TEXT    COLLATE "C" NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
ALTER TABLE record_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_types FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON record_types
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION record_types_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record type versions are append-only';
END;
$$;
CREATE TRIGGER record_types_are_never_updated BEFORE UPDATE ON record_types
FOR EACH ROW EXECUTE FUNCTION record_types_are_never_updated();
CREATE FUNCTION record_types_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record type versions are append-only';
END;
$$;
CREATE TRIGGER record_types_are_never_deleted BEFORE DELETE ON record_types
FOR EACH ROW EXECUTE FUNCTION record_types_are_never_deleted();
CREATE TRIGGER record_types_are_never_truncated BEFORE TRUNCATE ON record_types
FOR EACH STATEMENT EXECUTE FUNCTION record_types_are_never_deleted();

-- A record: its current version and state, and a change counter (the ETag).
CREATE TABLE records (
    tenant_id        TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    id               TEXT    COLLATE "C" NOT NULL,
    type_name        TEXT    COLLATE "C" NOT NULL,
    current_version  BIGINT  NOT NULL CHECK (current_version > 0),
    status           TEXT    COLLATE "C" NOT NULL CHECK (status IN ('draft', 'in_review', 'approved', 'retired')),
    seq              BIGINT  NOT NULL CHECK (seq > 0),
    created_by       TEXT    COLLATE "C" NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX records_by_type ON records (tenant_id, type_name, id);
CREATE INDEX records_by_creator ON records (tenant_id, created_by, id);
ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- A version of a record. Drafts and versions in review change (new revision, state);
-- an approved version never does.
CREATE TABLE record_versions (
    tenant_id     TEXT    COLLATE "C" NOT NULL,
    record_id     TEXT    COLLATE "C" NOT NULL,
    version       BIGINT  NOT NULL CHECK (version > 0),
    type_version  BIGINT  NOT NULL CHECK (type_version > 0),
    state         TEXT    COLLATE "C" NOT NULL CHECK (state IN ('draft', 'in_review', 'approved')),
    revision      BIGINT  NOT NULL CHECK (revision > 0),
    content_hash  BYTEA   NOT NULL CHECK (octet_length(content_hash) = 32),
    created_by    TEXT    COLLATE "C" NOT NULL,
    created_at    BIGINT  NOT NULL,
    approved_at   BIGINT,
    PRIMARY KEY (tenant_id, record_id, version),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
);
ALTER TABLE record_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON record_versions
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION approved_versions_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'an approved record version is immutable';
END;
$$;
CREATE TRIGGER approved_versions_are_never_updated BEFORE UPDATE ON record_versions
FOR EACH ROW WHEN (OLD.state = 'approved')
EXECUTE FUNCTION approved_versions_are_never_updated();
CREATE FUNCTION record_versions_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record versions are never deleted';
END;
$$;
CREATE TRIGGER record_versions_are_never_deleted BEFORE DELETE ON record_versions
FOR EACH ROW EXECUTE FUNCTION record_versions_are_never_deleted();
CREATE TRIGGER record_versions_are_never_truncated BEFORE TRUNCATE ON record_versions
FOR EACH STATEMENT EXECUTE FUNCTION record_versions_are_never_deleted();

-- Every saved state of a version's content, sealed (kind `record-revision`), with the
-- content hash and the attachments it includes. Append-only.
CREATE TABLE record_revisions (
    tenant_id     TEXT    COLLATE "C" NOT NULL,
    record_id     TEXT    COLLATE "C" NOT NULL,
    version       BIGINT  NOT NULL,
    revision      BIGINT  NOT NULL CHECK (revision > 0),
    dek_version   BIGINT  NOT NULL,
    sealed        BYTEA   NOT NULL,
    attachments   TEXT    COLLATE "C" NOT NULL,  -- JSON array, see records.md
    content_hash  BYTEA   NOT NULL CHECK (octet_length(content_hash) = 32),
    saved_by      TEXT    COLLATE "C" NOT NULL,
    saved_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, record_id, version, revision),
    FOREIGN KEY (tenant_id, record_id, version) REFERENCES record_versions (tenant_id, record_id, version)
);
ALTER TABLE record_revisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_revisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON record_revisions
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION record_revisions_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record revisions are append-only';
END;
$$;
CREATE TRIGGER record_revisions_are_never_updated BEFORE UPDATE ON record_revisions
FOR EACH ROW EXECUTE FUNCTION record_revisions_are_never_updated();
CREATE FUNCTION record_revisions_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record revisions are append-only';
END;
$$;
CREATE TRIGGER record_revisions_are_never_deleted BEFORE DELETE ON record_revisions
FOR EACH ROW EXECUTE FUNCTION record_revisions_are_never_deleted();
CREATE TRIGGER record_revisions_are_never_truncated BEFORE TRUNCATE ON record_revisions
FOR EACH STATEMENT EXECUTE FUNCTION record_revisions_are_never_deleted();

-- State changes that are not revisions (submit, reject, approve, retire), for history.
CREATE TABLE record_events (
    tenant_id   TEXT    COLLATE "C" NOT NULL,
    record_id   TEXT    COLLATE "C" NOT NULL,
    seq         BIGINT  NOT NULL,
    version     BIGINT  NOT NULL,
    action      TEXT    COLLATE "C" NOT NULL,
    actor       TEXT    COLLATE "C" NOT NULL,
    reason      TEXT    COLLATE "C",
    at          BIGINT  NOT NULL,
    audit_seq   BIGINT  NOT NULL,              -- its audit entry: orders review rounds
    PRIMARY KEY (tenant_id, record_id, seq),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
);
ALTER TABLE record_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON record_events
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION record_events_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record events are append-only';
END;
$$;
CREATE TRIGGER record_events_are_never_updated BEFORE UPDATE ON record_events
FOR EACH ROW EXECUTE FUNCTION record_events_are_never_updated();
CREATE FUNCTION record_events_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'record events are append-only';
END;
$$;
CREATE TRIGGER record_events_are_never_deleted BEFORE DELETE ON record_events
FOR EACH ROW EXECUTE FUNCTION record_events_are_never_deleted();
CREATE TRIGGER record_events_are_never_truncated BEFORE TRUNCATE ON record_events
FOR EACH STATEMENT EXECUTE FUNCTION record_events_are_never_deleted();

-- Electronic signatures. `signature_hash` is what the `record.sign` audit entry at
-- `audit_seq` commits to (its `after`). Append-only.
CREATE TABLE signatures (
    tenant_id       TEXT    COLLATE "C" NOT NULL,
    id              TEXT    COLLATE "C" NOT NULL,
    record_id       TEXT    COLLATE "C" NOT NULL,
    version         BIGINT  NOT NULL,
    signer_id       TEXT    COLLATE "C" NOT NULL,
    printed_name    TEXT    COLLATE "C" NOT NULL,
    meaning         TEXT    COLLATE "C" NOT NULL,
    comment         TEXT    COLLATE "C",
    signed_at       BIGINT  NOT NULL,
    content_hash    BYTEA   NOT NULL CHECK (octet_length(content_hash) = 32),
    session_id      TEXT    COLLATE "C" NOT NULL,
    reauth          TEXT    COLLATE "C" NOT NULL,
    signature_hash  BYTEA   NOT NULL CHECK (octet_length(signature_hash) = 32),
    audit_seq       BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, record_id, version) REFERENCES record_versions (tenant_id, record_id, version)
);
CREATE INDEX signatures_by_version ON signatures (tenant_id, record_id, version, signed_at);
CREATE INDEX signatures_by_session ON signatures (tenant_id, session_id);
ALTER TABLE signatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE signatures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON signatures
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION signatures_are_never_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'signatures are append-only';
END;
$$;
CREATE TRIGGER signatures_are_never_updated BEFORE UPDATE ON signatures
FOR EACH ROW EXECUTE FUNCTION signatures_are_never_updated();
CREATE FUNCTION signatures_are_never_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'signatures are append-only';
END;
$$;
CREATE TRIGGER signatures_are_never_deleted BEFORE DELETE ON signatures
FOR EACH ROW EXECUTE FUNCTION signatures_are_never_deleted();
CREATE TRIGGER signatures_are_never_truncated BEFORE TRUNCATE ON signatures
FOR EACH STATEMENT EXECUTE FUNCTION signatures_are_never_deleted();

-- Blind index of the searchable fields of each record's current content:
-- HMAC-SHA-256(index key, type ‖ field ‖ normalised value). Replaced on every save.
CREATE TABLE record_index (
    tenant_id   TEXT    COLLATE "C" NOT NULL,
    record_id   TEXT    COLLATE "C" NOT NULL,
    field       TEXT    COLLATE "C" NOT NULL,
    token       BYTEA   NOT NULL CHECK (octet_length(token) = 32),
    PRIMARY KEY (tenant_id, field, token, record_id),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
);
CREATE INDEX record_index_by_record ON record_index (tenant_id, record_id);
ALTER TABLE record_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON record_index
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
