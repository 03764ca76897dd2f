-- Regulated records (docs/formats/records.md): typed, versioned, immutable once
-- approved, with 21 CFR Part 11 electronic signatures.
--
-- What may change and what may not is enforced here, not only in the code: revisions,
-- signatures and record-type versions are append-only; a version row is frozen once
-- approved; nothing in these tables is ever deleted. Content is sealed under the
-- tenant's data keys; only what listing needs (ids, type, status, times, creator id) is
-- plaintext. Searchable fields are stored as blind-index tokens (HMAC-SHA-256), never as
-- values.

-- Tenant users gain a printed name (what a signature's manifestation shows).
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';

-- One row per version of a record type's definition (JSON: schema, signature policy,
-- searchable fields, retention). Changing a type appends version n+1.
CREATE TABLE record_types (
    tenant_id    TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    name         TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    definition   TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
) STRICT;

CREATE TRIGGER record_types_are_never_updated BEFORE UPDATE ON record_types
BEGIN
    SELECT RAISE(ABORT, 'record type versions are append-only');
END;
CREATE TRIGGER record_types_are_never_deleted BEFORE DELETE ON record_types
BEGIN
    SELECT RAISE(ABORT, 'record type versions are append-only');
END;

-- A record: its current version and state, and a change counter (the ETag).
CREATE TABLE records (
    tenant_id        TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    id               TEXT    NOT NULL,
    type_name        TEXT    NOT NULL,
    current_version  INTEGER NOT NULL CHECK (current_version > 0),
    status           TEXT    NOT NULL CHECK (status IN ('draft', 'in_review', 'approved', 'retired')),
    seq              INTEGER NOT NULL CHECK (seq > 0),
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX records_by_type ON records (tenant_id, type_name, id);
CREATE INDEX records_by_creator ON records (tenant_id, created_by, id);

-- A version of a record. Drafts and versions in review change (new revision, state);
-- an approved version never does.
CREATE TABLE record_versions (
    tenant_id     TEXT    NOT NULL,
    record_id     TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version > 0),
    type_version  INTEGER NOT NULL CHECK (type_version > 0),
    state         TEXT    NOT NULL CHECK (state IN ('draft', 'in_review', 'approved')),
    revision      INTEGER NOT NULL CHECK (revision > 0),
    content_hash  BLOB    NOT NULL CHECK (length(content_hash) = 32),
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    approved_at   INTEGER,
    PRIMARY KEY (tenant_id, record_id, version),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
) STRICT;

CREATE TRIGGER approved_versions_are_never_updated BEFORE UPDATE ON record_versions
WHEN OLD.state = 'approved'
BEGIN
    SELECT RAISE(ABORT, 'an approved record version is immutable');
END;
CREATE TRIGGER record_versions_are_never_deleted BEFORE DELETE ON record_versions
BEGIN
    SELECT RAISE(ABORT, 'record versions are never deleted');
END;

-- Every saved state of a version's content, sealed (kind `record-revision`), with the
-- content hash and the attachments it includes. Append-only.
CREATE TABLE record_revisions (
    tenant_id     TEXT    NOT NULL,
    record_id     TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    revision      INTEGER NOT NULL CHECK (revision > 0),
    dek_version   INTEGER NOT NULL,
    sealed        BLOB    NOT NULL,
    attachments   TEXT    NOT NULL,            -- JSON array, see records.md
    content_hash  BLOB    NOT NULL CHECK (length(content_hash) = 32),
    saved_by      TEXT    NOT NULL,
    saved_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, record_id, version, revision),
    FOREIGN KEY (tenant_id, record_id, version) REFERENCES record_versions (tenant_id, record_id, version)
) STRICT;

CREATE TRIGGER record_revisions_are_never_updated BEFORE UPDATE ON record_revisions
BEGIN
    SELECT RAISE(ABORT, 'record revisions are append-only');
END;
CREATE TRIGGER record_revisions_are_never_deleted BEFORE DELETE ON record_revisions
BEGIN
    SELECT RAISE(ABORT, 'record revisions are append-only');
END;

-- State changes that are not revisions (submit, reject, approve, retire), for history.
CREATE TABLE record_events (
    tenant_id   TEXT    NOT NULL,
    record_id   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT,
    at          INTEGER NOT NULL,
    audit_seq   INTEGER NOT NULL,              -- its audit entry: orders review rounds
    PRIMARY KEY (tenant_id, record_id, seq),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
) STRICT;

CREATE TRIGGER record_events_are_never_updated BEFORE UPDATE ON record_events
BEGIN
    SELECT RAISE(ABORT, 'record events are append-only');
END;
CREATE TRIGGER record_events_are_never_deleted BEFORE DELETE ON record_events
BEGIN
    SELECT RAISE(ABORT, 'record events are append-only');
END;

-- Electronic signatures. `signature_hash` is what the `record.sign` audit entry at
-- `audit_seq` commits to (its `after`). Append-only.
CREATE TABLE signatures (
    tenant_id       TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    record_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    signer_id       TEXT    NOT NULL,
    printed_name    TEXT    NOT NULL,
    meaning         TEXT    NOT NULL,
    comment         TEXT,
    signed_at       INTEGER NOT NULL,
    content_hash    BLOB    NOT NULL CHECK (length(content_hash) = 32),
    session_id      TEXT    NOT NULL,
    reauth          TEXT    NOT NULL,
    signature_hash  BLOB    NOT NULL CHECK (length(signature_hash) = 32),
    audit_seq       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, record_id, version) REFERENCES record_versions (tenant_id, record_id, version)
) STRICT;
CREATE INDEX signatures_by_version ON signatures (tenant_id, record_id, version, signed_at);
CREATE INDEX signatures_by_session ON signatures (tenant_id, session_id);

CREATE TRIGGER signatures_are_never_updated BEFORE UPDATE ON signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;
CREATE TRIGGER signatures_are_never_deleted BEFORE DELETE ON signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;

-- Blind index of the searchable fields of each record's current content:
-- HMAC-SHA-256(index key, type ‖ field ‖ normalised value). Replaced on every save.
CREATE TABLE record_index (
    tenant_id   TEXT    NOT NULL,
    record_id   TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    token       BLOB    NOT NULL CHECK (length(token) = 32),
    PRIMARY KEY (tenant_id, field, token, record_id),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records (tenant_id, id)
) STRICT;
CREATE INDEX record_index_by_record ON record_index (tenant_id, record_id);
